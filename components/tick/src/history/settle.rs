//! Settling the handled calls: written down in the call log, counted,
//! their follow-ups queued, then completed or released in the ledger,
//! with the cursor held before whatever must be read again.

use super::Handled;
use crate::connectzero::pipeline::call_log;
use crate::connectzero::pipeline::dedup::{self, Completion};
use crate::exports::connectzero::pipeline::tick::{CallResult, TickReport};
use crate::options::Options;
use crate::timing::time;
use crate::{describe, followups, note_rate_limit};
use guest_support::bindings::connectzero::pipeline::types::{
    Call, CallFate, CallOutcome as Outcome, StageError,
};

/// Write the handled calls down in the call log, count them, queue the
/// follow-ups of the posted ones, then record them in the ledger (complete,
/// or release to retry). Follow-ups are queued before the ledger records
/// the calls as done: a crash in between re-runs the calls (the post stage
/// finds its message, the queues ignore repeats) instead of leaving done
/// calls whose follow-ups were never queued.
pub(super) fn settle(
    options: &Options,
    handled: &[Handled],
    report: &mut TickReport,
    triggers: bool,
    hold_cursor_at: &mut i64,
) -> Result<Vec<CallResult>, StageError> {
    // Written down first, so a refusal leaves nothing counted or settled.
    if !handled.is_empty() {
        call_log::record_calls(&handled.iter().map(Handled::logged).collect::<Vec<_>>())?;
    }
    let mut completions = Vec::new();
    let mut released = Vec::new();
    let mut results = Vec::with_capacity(handled.len());
    for h in handled {
        match &h.outcome {
            Ok(outcome) => {
                completions.push(Completion {
                    call_key: h.call.key.clone(),
                    legs: h
                        .call
                        .legs
                        .iter()
                        .map(|l| (l.leg_id, l.start_time))
                        .collect(),
                    outcome: outcome.clone(),
                });
                match outcome {
                    Outcome::Posted(_) => report.posted += 1,
                    Outcome::Skipped(_) => report.skipped += 1,
                    Outcome::Parked(_) => report.parked += 1,
                }
            }
            Err(error) => {
                report.retrying += 1;
                note_rate_limit(report, error);
                *hold_cursor_at = (*hold_cursor_at).min(h.call.start_time);
                released.push(h.call.clone());
            }
        }
        results.push(CallResult {
            call_key: h.call.key.clone(),
            fate: h.fate(),
            contact_id: h.contact_id.clone(),
            rule: h.rule,
        });
    }
    // A call whose follow-ups could not be queued is not done: it is
    // released and retried (the post stage finds its message through the
    // send marker), so its recording and triggers are never dropped.
    let unqueued = followups::after_post(options, handled, triggers, report);
    if !unqueued.is_empty() {
        completions.retain(|c| !unqueued.contains(&c.call_key));
        for h in handled.iter().filter(|h| unqueued.contains(&h.call.key)) {
            *hold_cursor_at = (*hold_cursor_at).min(h.call.start_time);
            released.push(h.call.clone());
        }
        for r in results
            .iter_mut()
            .filter(|r| unqueued.contains(&r.call_key))
        {
            // Counted as posted above; it is retried instead.
            let why = match &r.fate {
                CallFate::Settled(Outcome::Posted(id)) => {
                    report.posted = report.posted.saturating_sub(1);
                    format!("posted as {id}; its follow-ups are queued on the next try")
                }
                _ => "its follow-ups are queued on the next try".to_string(),
            };
            report.retrying += 1;
            r.fate = CallFate::Retrying(StageError::Storage(why));
        }
    }
    if !finish(options, &completions, &released, report)
        && let Some(first) = completions
            .iter()
            .filter_map(|c| start_of(handled, &c.call_key))
            .min()
    {
        // The ledger did not record them: the cursor waits before them so
        // they are read again and settled once their claims expire.
        *hold_cursor_at = (*hold_cursor_at).min(first);
    }
    Ok(results)
}

/// The start of the handled call keyed `key`.
fn start_of(handled: &[Handled], key: &str) -> Option<i64> {
    handled
        .iter()
        .find(|h| h.call.key == key)
        .map(|h| h.call.start_time)
}

/// Record final outcomes and release the calls to retry; false when the
/// ledger refused the outcomes. A storage failure here is not fatal to
/// the calls: unfinished claims expire and the calls are processed again
/// (the caller holds the cursor before them).
pub(super) fn finish(
    options: &Options,
    completions: &[Completion],
    released: &[Call],
    report: &mut TickReport,
) -> bool {
    let mut recorded = true;
    if !completions.is_empty()
        && let Err(error) = time("dedup", "complete", || dedup::complete(completions))
    {
        recorded = false;
        report.warnings.push(format!(
            "could not record outcomes in the ledger: {}",
            describe(&error)
        ));
    }
    if !released.is_empty()
        && let Err(error) = time("dedup", "release", || {
            dedup::release(released, &options.worker)
        })
    {
        report.warnings.push(format!(
            "could not release calls; they retry when the lease expires: {}",
            describe(&error)
        ));
    }
    recorded
}
