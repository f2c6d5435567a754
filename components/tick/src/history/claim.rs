//! Claiming calls in the ledger: one chunk at a time, at most
//! `max-calls` new ones per tick, the cursor held before the calls left
//! for the next tick.

use super::settle::finish;
use super::{count, short_answer};
use crate::connectzero::pipeline::dedup;
use crate::describe;
use crate::exports::connectzero::pipeline::tick::TickReport;
use crate::options::Options;
use crate::timing::time;
use guest_support::bindings::connectzero::pipeline::types::{Call, CallOutcome, StageError};

/// What the ledger answers for `chunk`, one per call: a dedup component
/// answering fewer is broken, and the calls it left out are neither
/// claimed nor lost (`Claim::Unanswered`).
pub(super) fn claim(options: &Options, chunk: &[Call]) -> Result<Vec<Claim>, StageError> {
    let claims = time("dedup", "claim-calls", || {
        dedup::claim_calls(chunk, &options.worker, options.claim_lease_ms)
    })?;
    let answered = claims.len();
    Ok(claims
        .into_iter()
        .map(Claim::from)
        .chain((answered..chunk.len()).map(|_| Claim::Unanswered(short_answer("dedup"))))
        .collect())
}

/// The ledger's answer for one call, or none.
pub(super) enum Claim {
    /// This worker owns the call now.
    Claimed,
    /// Handled before, with this outcome.
    Done(CallOutcome),
    /// Another worker holds it.
    InFlight,
    /// The dedup component gave no answer for it: not claimed, retried.
    Unanswered(StageError),
}

impl From<dedup::Claim> for Claim {
    fn from(claim: dedup::Claim) -> Self {
        match claim {
            dedup::Claim::Claimed => Claim::Claimed,
            dedup::Claim::Done(outcome) => Claim::Done(outcome),
            dedup::Claim::InFlight => Claim::InFlight,
        }
    }
}

/// Claim at most `max-calls` new calls, oldest first, in chunks of that
/// size: calls already done (the overlap window re-reads them every tick)
/// do not count, and calls past the bound are not claimed at all (claimed
/// extras of the last chunk are released). The cursor is held before the
/// first call left for the next tick, so a tenant with a large backlog
/// works through it a bounded batch per tick. `Err` when the first claim
/// failed.
pub(super) fn claim_bounded(
    options: &Options,
    mut calls: Vec<Call>,
    report: &mut TickReport,
    hold_cursor_at: &mut i64,
) -> Result<Vec<Call>, StageError> {
    let bound = options.max_calls;
    calls.sort_by_key(|c| c.start_time);
    let mut rest = calls.into_iter().peekable();
    let mut mine: Vec<Call> = Vec::new();
    while mine.len() < bound && rest.peek().is_some() {
        let chunk: Vec<Call> = rest.by_ref().take(bound).collect();
        let claims = match claim(options, &chunk) {
            Ok(claims) => claims,
            Err(error) if mine.is_empty() => return Err(error),
            Err(error) => {
                // Work what is claimed; the rest waits for the next tick.
                report.warnings.push(format!(
                    "could not claim more calls this tick: {}",
                    describe(&error)
                ));
                *hold_cursor_at = (*hold_cursor_at).min(chunk[0].start_time);
                break;
            }
        };
        for (call, claim) in chunk.into_iter().zip(claims) {
            match claim {
                Claim::Claimed => mine.push(call),
                Claim::Done(_) => report.duplicates += 1,
                Claim::InFlight => {
                    report.in_flight += 1;
                    *hold_cursor_at = (*hold_cursor_at).min(call.start_time);
                }
                // Not claimed: the cursor waits before it, as for a call
                // in flight elsewhere, and the next tick asks again.
                Claim::Unanswered(error) => {
                    report.retrying += 1;
                    report
                        .warnings
                        .push(format!("call {}: {}", call.key, describe(&error)));
                    *hold_cursor_at = (*hold_cursor_at).min(call.start_time);
                }
            }
        }
    }
    let extra = if mine.len() > bound {
        mine.split_off(bound)
    } else {
        Vec::new()
    };
    let deferred: Vec<Call> = extra.iter().cloned().chain(rest).collect();
    if let Some(first) = deferred.iter().map(|c| c.start_time).min() {
        report.deferred = count(deferred.len());
        *hold_cursor_at = (*hold_cursor_at).min(first);
    }
    if !extra.is_empty() {
        finish(options, &[], &extra, report);
    }
    Ok(mine)
}
