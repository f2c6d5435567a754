//! Settling the handled calls: written down in the call log, counted,
//! their follow-ups queued, then completed or released in the ledger,
//! with the cursor held before whatever must be read again.

use super::Handled;
use crate::connectzero::pipeline::call_log::{self, HandledCall};
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
        let error_of = |key: &str| unqueued.iter().find(|(k, _)| k == key).map(|(_, e)| e);
        completions.retain(|c| error_of(&c.call_key).is_none());
        let mut relogged = Vec::new();
        for h in handled.iter() {
            let Some(error) = error_of(&h.call.key) else {
                continue;
            };
            *hold_cursor_at = (*hold_cursor_at).min(h.call.start_time);
            released.push(h.call.clone());
            relogged.push(HandledCall {
                fate: CallFate::Retrying(error.clone()),
                ..h.logged()
            });
        }
        // The call log said posted; it is retried. Said so, or a replay
        // (which has no cursor to bring the call back) would take it for
        // done and its follow-ups would never be queued.
        if let Err(error) = call_log::record_calls(&relogged) {
            report.warnings.push(format!(
                "could not note in the call log that calls are retried: {}",
                describe(&error)
            ));
        }
        for r in results.iter_mut() {
            let Some(error) = error_of(&r.call_key) else {
                continue;
            };
            // Counted as posted above; it is retried instead.
            if let CallFate::Settled(Outcome::Posted(_)) = &r.fate {
                report.posted = report.posted.saturating_sub(1);
            }
            report.retrying += 1;
            r.fate = CallFate::Retrying(error.clone());
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
