//! `connectzero replay`: re-running one parked call and the line that
//! reports its result.

use super::{OpenTenant, call_start, open_tenant};
use crate::bindings::types::{CallFate, CallOutcome};
use crate::location::Location;
use crate::pipeline::CallResult;
use std::path::PathBuf;
/// What `connectzero replay` was asked.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Where the tenants are.
    pub location: Location,
    /// Tenant id.
    pub tenant: String,
    /// The call's key (`3cx:<call id>@<start ms>`).
    pub call: String,
    /// Queue `call.ended` / `missed-call` if the call posts.
    pub with_triggers: bool,
    /// Replacement components directory.
    pub components: Option<PathBuf>,
}

/// Re-run one parked (or retrying) call (`connectzero replay`): see
/// [`Pipeline::replay_call`]. Returns the call's result.
pub async fn replay(options: ReplayOptions) -> anyhow::Result<CallResult> {
    let key = options.call.trim().to_string();
    // Check the key before opening anything.
    call_start(&key)?;
    let opened = open_tenant(
        options.components.as_deref(),
        &options.location,
        &options.tenant,
    )?;
    let OpenTenant {
        pipeline, tenant, ..
    } = opened;
    let result = pipeline
        .replay_call(&tenant, &key, options.with_triggers)
        .await??;
    // Attach its recording now when 3CX has it; the live host retries later.
    pipeline.work_due_queues(&tenant).await?;
    Ok(result)
}

/// The line `connectzero replay` prints, and whether the call is now
/// handled (posted or skipped).
pub fn render_replay(result: &CallResult) -> (String, bool) {
    let key = &result.call_key;
    let detail = result.detail();
    match &result.fate {
        CallFate::Settled(CallOutcome::Posted(id)) => {
            let mut text = format!("{key}: posted as message {id}");
            if let Some(contact) = &result.contact_id {
                text.push_str(&format!(" to contact {contact}"));
            }
            if let Some(rule) = &result.rule {
                text.push_str(&format!(" (matched by {rule})"));
            }
            (text, true)
        }
        CallFate::Settled(CallOutcome::Skipped(reason)) => {
            (format!("{key}: skipped ({reason})"), true)
        }
        CallFate::Settled(CallOutcome::Parked(reason)) => (
            format!("{key}: parked again: {reason}; fix the cause and replay it again"),
            false,
        ),
        CallFate::Retrying(_) => (
            format!("{key}: failed for now: {detail}; it stays open: run the same replay again"),
            false,
        ),
        CallFate::DoneBefore(_) => (
            format!("{key}: already handled by another worker meanwhile ({detail})"),
            true,
        ),
        CallFate::InFlight => (
            format!(
                "{key}: another worker is processing it right now; check the call log, and replay again if it stays parked"
            ),
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::replay::ReplayError;
    #[test]
    fn call_keys_give_their_start_and_rows_are_not_calls() {
        assert_eq!(call_start("3cx:42@1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(call_start("3cx-segment:7@5"), Ok(5));
        assert!(matches!(
            call_start("3cx-row:9"),
            Err(ReplayError::UnreadableRow(_))
        ));
        assert!(matches!(call_start("42"), Err(ReplayError::NotACallKey(_))));
        assert!(matches!(
            call_start("3cx:x@5"),
            Err(ReplayError::NotACallKey(_))
        ));
    }
}
