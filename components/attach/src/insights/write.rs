//! The CRM writes of an insights job: the summary and transcript notes
//! (each marked as sending first, and looked for before a second send),
//! the long transcript's text file and the sentiment field.

use super::{CLAIM_MS, Stored, Work};
use crate::transcripts::Found;
use guest_support::insights::{NOTE_MAX_CHARS, bounded};
use guest_support::queue::Job;
use guest_support::{StageError, time};

impl Work<'_> {
    /// Write what the settings ask for and is not written yet.
    pub(super) fn write(
        &self,
        key: &str,
        job: &mut Job<Stored>,
        found: &Found,
    ) -> Result<(), StageError> {
        let s = self.settings;
        if s.summary
            && let Some(summary) = &found.summary
            && job.payload.progress.summary_note.is_none()
        {
            let body = format!(
                "3CX's summary of the call (message {}):\n{summary}\n\n{}",
                job.payload.message_id,
                reference(&job.payload.message_id, "summary")
            );
            let id = self.note(key, job, "summary", "Call summary (3CX)", &body)?;
            job.payload.progress.summary_note = Some(id);
            self.save(key, job)?;
        }
        if s.transcript
            && let Some(transcript) = &found.transcript
            && job.payload.progress.transcript_note.is_none()
        {
            let body = self.transcript_body(key, job, transcript, found.transcript_cut)?;
            let id = self.note(key, job, "transcript", "Call transcript (3CX)", &body)?;
            job.payload.progress.transcript_note = Some(id);
            self.save(key, job)?;
        }
        if s.sentiment
            && let Some(score) = found.sentiment
            && !job.payload.progress.sentiment_set
        {
            self.crm.set_field(
                &job.payload.contact_id,
                &s.sentiment_field_key,
                &score.to_string(),
            )?;
            job.payload.progress.sentiment_set = true;
            self.save(key, job)?;
        }
        Ok(())
    }

    /// The transcript note's body: the whole transcript when it fits a
    /// note, else its start and the link to the whole as a text file
    /// (uploaded once).
    fn transcript_body(
        &self,
        key: &str,
        job: &mut Job<Stored>,
        transcript: &str,
        cut_by_3cx_limit: bool,
    ) -> Result<String, StageError> {
        let p = &job.payload;
        let reference = reference(&p.message_id, "transcript");
        let head = format!("3CX's transcript of the call (message {}):", p.message_id);
        let cut_note = if cut_by_3cx_limit {
            " (cut at 200,000 characters)"
        } else {
            ""
        };
        // Room for the heading, the reference and the link.
        let room = NOTE_MAX_CHARS.saturating_sub(head.len() + reference.len() + 300);
        if transcript.chars().count() <= room && !cut_by_3cx_limit {
            return Ok(format!("{head}\n{transcript}\n\n{reference}"));
        }
        let url = match &p.progress.transcript_file {
            Some(url) => url.clone(),
            None => {
                let file = format!("{}-transcript.txt", key.replace([':', '@', '/'], "-"));
                let url =
                    self.crm
                        .upload_text(&file, transcript, &p.contact_id, &p.conversation_id)?;
                job.payload.progress.transcript_file = Some(url.clone());
                self.save(key, job)?;
                url
            }
        };
        let (start, _) = bounded(transcript, room);
        Ok(format!(
            "{head}\nThe whole transcript{cut_note}: {url}\n\n{start}…\n\n{reference}"
        ))
    }

    /// Create a note once: marked as sending first; a mark found from an
    /// earlier attempt means the note may exist, so it is looked for first.
    fn note(
        &self,
        key: &str,
        job: &mut Job<Stored>,
        part: &str,
        title: &str,
        body: &str,
    ) -> Result<String, StageError> {
        let p = &job.payload;
        if p.progress.sending.iter().any(|s| s == part)
            && let Some(id) = self
                .crm
                .find_note(&p.contact_id, &reference(&p.message_id, part))?
        {
            return Ok(id);
        }
        if !job.payload.progress.sending.iter().any(|s| s == part) {
            job.payload.progress.sending.push(part.to_string());
            self.save(key, job)?;
        }
        self.crm.create_note(&job.payload.contact_id, title, body)
    }

    /// Keep the job's progress, still claimed.
    pub(super) fn save(&self, key: &str, job: &mut Job<Stored>) -> Result<(), StageError> {
        let due_at = job.due_at;
        job.due_at = time::now_ms() + CLAIM_MS;
        let saved = self.queue.reschedule(key, job);
        job.due_at = due_at;
        saved
    }
}

/// The line that names a note's call and part; what the read-back looks
/// for. The message id is unique in the location, unlike the call key
/// (two 3CX systems feeding one location can share one).
fn reference(message_id: &str, part: &str) -> String {
    format!("Ref: {message_id} {part}")
}
