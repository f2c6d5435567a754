//! # Stage 7: attach — recordings (placeholder)
//!
//! Builds, is wired into the host and answers every job, so the pipeline's
//! shape is complete. Fetching the recording from 3CX once it is final and
//! streaming it to the CRM comes with issue 4; until then each job answers
//! `no-recording` when the call has none and `not-enabled` otherwise, so
//! nothing claims an attachment that did not happen.

use guest_support::StageError;
use guest_support::bindings::connectzero::pipeline::types::TenantSettings;

guest_support::stage_bindings!(http_kv "attach-stage");

use exports::connectzero::pipeline::attach::{AttachJob, AttachOutcome, Guest};

struct Attach;

impl Guest for Attach {
    fn attach_recordings(
        _settings: TenantSettings,
        jobs: Vec<AttachJob>,
    ) -> Vec<Result<AttachOutcome, StageError>> {
        jobs.iter()
            .map(|job| {
                let recorded = job.call.legs.iter().any(|l| l.recording.is_some());
                Ok(if recorded {
                    AttachOutcome::NotEnabled
                } else {
                    AttachOutcome::NoRecording
                })
            })
            .collect()
    }
}

// Exported only when building the component: a native build (unit tests)
// would otherwise put WIT export names into the host linker's symbol list.
#[cfg(target_arch = "wasm32")]
export!(Attach);
