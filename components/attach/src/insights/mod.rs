//! 3CX's own insights of a posted call, brought into the CRM: a second
//! durable queue in the attach stage (`insights/…`, same grants as the
//! recordings: 3CX, HighLevel, the key-value store).
//!
//! A job checks the call's recordings (`transcripts::state`) with backoff
//! until 3CX has transcribed them, failed, or the tenant's window passed.
//! Once transcribed it writes, as the settings ask, the summary as a
//! contact note, the transcript as a contact note (a linked text file when
//! longer than a note) and the sentiment score into the contact custom
//! field; each once. Before a note is sent its part is marked as sending
//! in the job; a job that finds such a mark (its worker died, or the
//! answer was lost) looks for the note by its reference line before
//! sending it again, as the post stage does with its send markers. The
//! written job stays queued until the tick says its `call.insights` event
//! is queued (`insights-queued`), so a crash in between repeats the report,
//! not the writes.

mod write;

use crate::notes::Crm;
use crate::recordings::Apis;
use crate::transcripts::{self, State};
use guest_support::bindings::connectzero::pipeline::types::{
    CallInsights, Direction, InsightsSettings, TenantSettings,
};
use guest_support::insights::excerpt;
use guest_support::queue::{Job, Queue, backoff_ms};
use guest_support::{StageError, kv, time};
use serde::{Deserialize, Serialize};

use crate::exports::connectzero::pipeline::attach::{InsightsJob, InsightsOutcome, InsightsReport};

/// Name of the queue in the tenant's bucket.
pub const QUEUE: &str = guest_support::queue::INSIGHTS;

/// How long a worker holds an insights job: longer than any invocation
/// may run (the hosts stop one after 15 minutes, rate-limiter waits
/// included), so a second worker never takes over a job whose first
/// worker may still be writing a note (it would write it again). A job
/// whose worker crashed waits this long: insights are not urgent.
const CLAIM_MS: i64 = 16 * 60_000;

/// Longest wait between two checks: 3CX transcribes in minutes, not
/// seconds, so once a minute is enough.
const MAX_BACKOFF_MS: i64 = 60_000;

/// What the queue keeps for one call: the job as queued, and how far it got.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Stored {
    call_key: String,
    message_id: String,
    contact_id: String,
    conversation_id: String,
    recording_ids: Vec<i32>,
    direction: String,
    phone: String,
    started_at: i64,
    crm_user_id: Option<String>,
    #[serde(default)]
    progress: Progress,
}

/// How far a job got. Every field is written before the next step, so a
/// retry goes on from there.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Progress {
    /// The summary note's id, once written.
    summary_note: Option<String>,
    /// The transcript note's id, once written.
    transcript_note: Option<String>,
    /// The long transcript's uploaded file, once uploaded.
    transcript_file: Option<String>,
    /// The sentiment field was set.
    sentiment_set: bool,
    /// Notes sent whose answer is not recorded: looked for before they
    /// are sent again.
    sending: Vec<String>,
    /// Every part written: what the report carries from then on.
    written: Option<Written>,
}

/// What a written job reports (and `call.insights` carries).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Written {
    summary: Option<String>,
    sentiment_score: Option<i32>,
    transcript_excerpt: Option<String>,
}

/// The outcome remembered once a job leaves the queue.
#[derive(Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
enum Done<'a> {
    Written,
    None,
    GaveUp { reason: &'a str },
}

/// Queue the jobs (a call already queued or finished is ignored).
pub fn enqueue(jobs: Vec<InsightsJob>) -> Result<(), StageError> {
    let bucket = kv::open()?;
    let queue = Queue::new(&bucket, QUEUE);
    let now = time::now_ms();
    for job in jobs {
        if job.recording_ids.is_empty() {
            continue;
        }
        let stored = Stored {
            call_key: job.call_key.clone(),
            message_id: job.message_id,
            contact_id: job.contact_id,
            conversation_id: job.conversation_id,
            recording_ids: job.recording_ids,
            direction: direction_name(job.direction).into(),
            phone: job.phone,
            started_at: job.started_at,
            crm_user_id: job.crm_user_id,
            progress: Progress::default(),
        };
        queue.push(&job.call_key, stored, now)?;
    }
    Ok(())
}

/// Work up to `max_jobs` due jobs.
pub fn process_due(
    settings: &TenantSettings,
    max_jobs: u32,
) -> Result<Vec<InsightsReport>, StageError> {
    let bucket = kv::open()?;
    let queue = Queue::new(&bucket, QUEUE).claiming_for(CLAIM_MS);
    let work = Work {
        queue: &queue,
        apis: Apis::new(settings),
        crm: Crm::new(settings),
        settings: &settings.insights,
    };
    let now = time::now_ms();
    let window_ms = i64::from(settings.insights.window_secs) * 1000;
    let mut reports = Vec::new();
    for key in queue.due::<Stored>(now, max_jobs as usize)? {
        let Some(mut job) = queue.claim::<Stored>(&key, time::now_ms())? else {
            continue;
        };
        job.attempts += 1;
        let attempt = work.advance(&key, &mut job);
        let (outcome, last_error) = match attempt {
            Ok(Step::Written(w)) => {
                // Reported again until the tick acknowledges it.
                job.due_at = now;
                queue.reschedule(&key, &job)?;
                (InsightsOutcome::Written(w.into()), None)
            }
            Ok(Step::NothingToWait) => {
                queue.finish(&key, &job, &Done::None)?;
                (InsightsOutcome::None, None)
            }
            result if now - job.queued_at >= window_ms => {
                let reason = match &result {
                    Err(error) => format!(
                        "insights not written within {} s; last error: {}",
                        settings.insights.window_secs,
                        guest_support::api::describe(error)
                    ),
                    Ok(Step::Failing(codes)) => format!(
                        "3CX did not transcribe recording {} within {} s ({codes})",
                        join_ids(&job.payload.recording_ids),
                        settings.insights.window_secs
                    ),
                    Ok(_) => format!(
                        "3CX did not transcribe recording {} within {} s",
                        join_ids(&job.payload.recording_ids),
                        settings.insights.window_secs
                    ),
                };
                queue.finish(&key, &job, &Done::GaveUp { reason: &reason })?;
                (InsightsOutcome::GaveUp(reason), result.err())
            }
            result => {
                job.due_at =
                    now + backoff_ms(job.attempts - 1, settings.retry_base_ms, MAX_BACKOFF_MS);
                queue.reschedule(&key, &job)?;
                (InsightsOutcome::Pending(job.due_at), result.err())
            }
        };
        reports.push(InsightsReport {
            job: job.payload.to_wit(),
            outcome,
            last_error,
        });
    }
    Ok(reports)
}

/// The `call.insights` events of these calls are queued: their written
/// jobs leave the queue.
pub fn queued(call_keys: Vec<String>) -> Result<(), StageError> {
    let bucket = kv::open()?;
    let queue = Queue::new(&bucket, QUEUE).claiming_for(CLAIM_MS);
    for key in call_keys {
        // Due now (a written job is rescheduled due), so it can be claimed.
        let Some(job) = queue.claim::<Stored>(&key, time::now_ms())? else {
            continue;
        };
        if job.payload.progress.written.is_some() {
            queue.finish(&key, &job, &Done::Written)?;
        } else {
            queue.reschedule(&key, &job)?;
        }
    }
    Ok(())
}

/// What one attempt came to.
enum Step {
    /// Every part the settings ask for is written.
    Written(Written),
    /// No recording 3CX can transcribe.
    NothingToWait,
    /// 3CX reports a `TranscriptionResult` read as a failure: waited on
    /// like `Waiting` until the window ends (the codes have no documented
    /// meaning, so none ends the wait on its own), then named in the
    /// give-up.
    Failing(String),
    /// Not transcribed yet.
    Waiting,
}

struct Work<'a> {
    queue: &'a Queue<'a>,
    apis: Apis,
    crm: Crm,
    settings: &'a InsightsSettings,
}

impl Work<'_> {
    fn advance(&self, key: &str, job: &mut Job<Stored>) -> Result<Step, StageError> {
        if let Some(written) = &job.payload.progress.written {
            return Ok(Step::Written(written.clone()));
        }
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for &id in &job.payload.recording_ids {
            match transcripts::state(self.apis.transcription(id)?.as_ref()) {
                State::Waiting => return Ok(Step::Waiting),
                State::NotTranscribable => {}
                State::Failed(code) => {
                    failed.push(format!("TranscriptionResult {code} for recording {id}"))
                }
                State::Done(found) => done.push((id, found)),
            }
        }
        if done.is_empty() {
            return Ok(if failed.is_empty() {
                Step::NothingToWait
            } else {
                Step::Failing(failed.join(", "))
            });
        }
        let found = transcripts::merge(&done);
        self.write(key, job, &found)?;
        let s = self.settings;
        let written = Written {
            summary: found.summary.filter(|_| s.summary),
            sentiment_score: found.sentiment.filter(|_| s.sentiment),
            transcript_excerpt: found
                .transcript
                .as_deref()
                .filter(|_| s.transcript)
                .map(excerpt),
        };
        job.payload.progress.written = Some(written.clone());
        self.save(key, job)?;
        Ok(Step::Written(written))
    }
}

fn join_ids(ids: &[i32]) -> String {
    ids.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
        Direction::Internal => "internal",
    }
}

impl Stored {
    fn to_wit(&self) -> InsightsJob {
        InsightsJob {
            call_key: self.call_key.clone(),
            message_id: self.message_id.clone(),
            contact_id: self.contact_id.clone(),
            conversation_id: self.conversation_id.clone(),
            recording_ids: self.recording_ids.clone(),
            direction: match self.direction.as_str() {
                "outbound" => Direction::Outbound,
                "internal" => Direction::Internal,
                _ => Direction::Inbound,
            },
            phone: self.phone.clone(),
            started_at: self.started_at,
            crm_user_id: self.crm_user_id.clone(),
        }
    }
}

impl From<Written> for CallInsights {
    fn from(w: Written) -> Self {
        Self {
            summary: w.summary,
            sentiment_score: w.sentiment_score,
            transcript_excerpt: w.transcript_excerpt,
        }
    }
}
