//! # The attach stage — recordings, once 3CX finalises them
//!
//! `enqueue` puts each posted call with a recording into a durable queue;
//! `process-due` works the jobs whose time has come: for every recorded leg
//! it checks that 3CX has finalised the recording, streams the audio from
//! 3CX into a HighLevel upload, and finally sets the uploads as the call
//! message's attachments. A recording that is not final yet, or a transfer
//! that fails, is retried with backoff; after the tenant's recording window
//! the job gives up and the call stays logged without audio.
//!
//! A second queue (`insights`) waits, the same way, for 3CX's own
//! transcription of the recordings and brings its summary, sentiment score
//! and transcript into the CRM (see `insights`).
//!
//! It depends on `guest-support` and on what the `attach-stage` world
//! grants: never on the host, the runtime or another stage.

mod insights;
mod notes;
mod recordings;
mod transcripts;

use guest_support::bindings::connectzero::pipeline::types::TenantSettings;
use guest_support::queue::{Queue, backoff_ms};
use guest_support::{StageError, kv, time};
use recordings::Apis;
use serde::{Deserialize, Serialize};

guest_support::stage_bindings!(http_queue "attach-stage");

use exports::connectzero::pipeline::attach::{
    AttachJob, AttachOutcome, AttachReport, Guest, InsightsJob, InsightsReport,
};

/// Name of the queue in the tenant's bucket.
const QUEUE: &str = guest_support::queue::RECORDINGS;

/// How long a worker holds a job it is working: one attempt streams every
/// recording of a call (up to five) from 3CX to HighLevel, within one
/// invocation (the host stops any after 30 s, plus rate-limiter waits).
const ATTACH_CLAIM_MS: i64 = 90_000;

/// Longest wait between two attempts at one job. Recordings usually
/// finalise within two minutes, so checks stay frequent.
const MAX_BACKOFF_MS: i64 = 30_000;

/// What the queue keeps for one call.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    message_id: String,
    contact_id: String,
    conversation_id: String,
    recording_ids: Vec<i32>,
    /// Recordings already uploaded, with their hosted URLs, so a retry never
    /// uploads one twice.
    uploaded: Vec<(i32, String)>,
}

/// The final outcome remembered for a call.
#[derive(Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
enum Done<'a> {
    Attached { urls: &'a [String] },
    GaveUp { reason: &'a str },
}

struct Attach;

impl Guest for Attach {
    fn enqueue(_settings: TenantSettings, jobs: Vec<AttachJob>) -> Result<(), StageError> {
        let bucket = kv::open()?;
        let queue = Queue::new(&bucket, QUEUE);
        let now = time::now_ms();
        for job in jobs {
            let recording_ids = guest_support::recordings::of_call(&job.call);
            if recording_ids.is_empty() {
                continue;
            }
            let pending = Pending {
                message_id: job.message_id,
                contact_id: job.contact_id,
                conversation_id: job.conversation_id,
                recording_ids,
                uploaded: Vec::new(),
            };
            queue.push(&job.call.key, pending, now)?;
        }
        Ok(())
    }

    fn process_due(
        settings: TenantSettings,
        max_jobs: u32,
    ) -> Result<Vec<AttachReport>, StageError> {
        let bucket = kv::open()?;
        let queue = Queue::new(&bucket, QUEUE).claiming_for(ATTACH_CLAIM_MS);
        let apis = Apis::new(&settings);
        let now = time::now_ms();
        let window_ms = i64::from(settings.recording_window_secs) * 1000;
        let mut reports = Vec::new();
        for call_key in queue.due::<Pending>(now, max_jobs as usize)? {
            let Some(mut job) = queue.claim::<Pending>(&call_key, time::now_ms())? else {
                continue; // another worker has it
            };
            job.attempts += 1;
            let attempt = advance(&apis, &call_key, &mut job.payload);
            let message_id = job.payload.message_id.clone();
            let (outcome, last_error) = match attempt {
                Ok(Some(urls)) => {
                    queue.finish(&call_key, &job, &Done::Attached { urls: &urls })?;
                    (AttachOutcome::Attached(urls), None)
                }
                result if now - job.queued_at >= window_ms => {
                    let reason = give_up_reason(
                        &job.payload,
                        settings.recording_window_secs,
                        result.as_ref().err(),
                    );
                    queue.finish(&call_key, &job, &Done::GaveUp { reason: &reason })?;
                    (AttachOutcome::GaveUp(reason), result.err())
                }
                result => {
                    job.due_at =
                        now + backoff_ms(job.attempts - 1, settings.retry_base_ms, MAX_BACKOFF_MS);
                    queue.reschedule(&call_key, &job)?;
                    (AttachOutcome::Pending(job.due_at), result.err())
                }
            };
            reports.push(AttachReport {
                call_key,
                message_id,
                outcome,
                last_error,
            });
        }
        Ok(reports)
    }

    fn enqueue_insights(
        _settings: TenantSettings,
        jobs: Vec<InsightsJob>,
    ) -> Result<(), StageError> {
        insights::enqueue(jobs)
    }

    fn process_insights_due(
        settings: TenantSettings,
        max_jobs: u32,
    ) -> Result<Vec<InsightsReport>, StageError> {
        insights::process_due(&settings, max_jobs)
    }

    fn insights_queued(call_keys: Vec<String>) -> Result<(), StageError> {
        insights::queued(call_keys)
    }
}

/// Move every final, not yet uploaded recording; once all are uploaded,
/// attach them. `Ok(None)` while some recording is not final.
fn advance(
    apis: &Apis,
    call_key: &str,
    job: &mut Pending,
) -> Result<Option<Vec<String>>, StageError> {
    for &id in &job.recording_ids {
        if job.uploaded.iter().any(|(done, _)| *done == id) {
            continue;
        }
        if !apis.is_final(id)? {
            return Ok(None);
        }
        let file_name = format!("{}-{id}.wav", call_key.replace([':', '@'], "-"));
        let url = apis.transfer(id, &file_name, &job.contact_id, &job.conversation_id)?;
        job.uploaded.push((id, url));
    }
    let urls: Vec<String> = job.uploaded.iter().map(|(_, url)| url.clone()).collect();
    apis.attach(&job.message_id, &urls)?;
    Ok(Some(urls))
}

fn give_up_reason(job: &Pending, window_secs: u32, error: Option<&StageError>) -> String {
    let missing: Vec<String> = job
        .recording_ids
        .iter()
        .filter(|id| !job.uploaded.iter().any(|(done, _)| done == *id))
        .map(|id| id.to_string())
        .collect();
    match error {
        Some(error) => format!(
            "recording {} could not be attached within {window_secs} s; last error: {error:?}",
            missing.join(", ")
        ),
        None => format!(
            "3CX did not finalise recording {} within {window_secs} s",
            missing.join(", ")
        ),
    }
}

// Exported only when building the component: a native build (unit tests)
// would otherwise put WIT export names into the host linker's symbol list.
#[cfg(target_arch = "wasm32")]
export!(Attach);
