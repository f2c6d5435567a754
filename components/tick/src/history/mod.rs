//! The calls 3CX has finished: poll, claim (at most `max-calls` new ones),
//! route, match, apply the logging policy, post, write down in the call
//! log, queue the follow-ups, complete or release in the ledger, and move
//! the cursor.
//!
//! Nothing is dropped: a call that fails for a reason that may pass
//! (network, 5xx, 429, refused credentials) is released in the ledger and
//! the cursor is held before it, so the next tick retries it; a call that
//! can never succeed as it is is parked with its reason.
//!
//! This module holds the entry points ([`sync`], [`run_calls`]) and a
//! handled call's record ([`Handled`]); each step has its own part:
//! `claim` (claiming a bounded batch), `dids` (reading the DIDs routing
//! needs), `process` (route, match, policy, post), `renew` (the claim
//! renewed right before a post) and `settle` (call log, follow-ups,
//! ledger).

mod claim;
mod dids;
mod process;
mod renew;
mod settle;

pub use renew::LostClaim;

use crate::connectzero::pipeline::call_log::{self, HandledCall};
use crate::connectzero::pipeline::poll;
use crate::exports::connectzero::pipeline::tick::{CallResult, TickReport};
use crate::options::Options;
use crate::timing::time;
use crate::{describe, parks};
use claim::{Claim, claim, claim_bounded};
use guest_support::bindings::connectzero::pipeline::types::{
    Call, CallFate, CallOutcome as Outcome, MatchRule, StageError,
};
use guest_support::bindings::connectzero::pipeline::types::{UnreadableRow, WindowRows};
use process::{Processed, process};
use settle::settle;

/// A claimed call's fate within one tick.
pub struct Handled {
    /// The call.
    pub call: Call,
    /// Its final outcome, or the error it is retried for.
    pub outcome: Result<Outcome, StageError>,
    /// The rule that matched its contact.
    pub rule: Option<MatchRule>,
    /// The contact it was posted to (or matched, when posting failed).
    pub contact_id: Option<String>,
    /// The conversation it was posted to.
    pub conversation_id: Option<String>,
    /// The CRM user the call was logged for (`posted.user-id`).
    pub user_id: Option<String>,
}

/// Poll, claim, match, post and settle the calls 3CX has finished. `Err`
/// when the history part could not run (the report's `error`).
pub fn sync(options: &Options, report: &mut TickReport) -> Result<Synced, StageError> {
    let s = &options.settings;
    let mut batch = time("poll", "fetch", || poll::fetch(s))?;
    let synced = Synced {
        active: std::mem::take(&mut batch.active),
        settled: batch.settled.take(),
    };
    report.polled = count(batch.calls.len());
    report.rejected_rows = count(batch.rejected.len());
    record_unreadable(&batch.rejected)?;
    let mut hold_cursor_at = batch.high_water;
    if !batch.calls.is_empty() {
        let mine = claim_bounded(options, batch.calls, report, &mut hold_cursor_at)?;
        let processed = process(options, mine);
        for (call, lost) in &processed.lost {
            report
                .warnings
                .push(format!("call {}: {}", call.key, lost.why));
            if lost.finished.is_some() {
                report.duplicates += 1;
            } else {
                report.in_flight += 1;
                hold_cursor_at = hold_cursor_at.min(call.start_time);
            }
        }
        settle(
            options,
            &processed.handled,
            report,
            true,
            &mut hold_cursor_at,
        )?;
    }
    if let Err(error) = time("poll", "commit", || poll::commit(s, hold_cursor_at)) {
        report.warnings.push(format!(
            "could not move the cursor; the calls will be re-read: {}",
            describe(&error)
        ));
        // The cursor did not move: the next tick must run to move it.
        return Ok(Synced {
            settled: None,
            ..synced
        });
    }
    Ok(synced)
}

/// What the history part leaves for the rest of the tick.
pub struct Synced {
    /// The calls in progress the poll read first.
    pub active: Vec<poll::ActiveCall>,
    /// The rows the poll read, when it left nothing for later
    /// (`poll-batch.settled`).
    pub settled: Option<WindowRows>,
}

/// Backfill and replay: `calls` (oldest first), `max-calls` at a time,
/// as a tick handles them, without the cursor and without `call.started`.
pub fn run_calls(
    options: &Options,
    mut calls: Vec<Call>,
    triggers: bool,
    report: &mut TickReport,
) -> Vec<CallResult> {
    calls.sort_by_key(|c| c.start_time);
    let mut results = Vec::with_capacity(calls.len());
    let mut unused_cursor = i64::MAX;
    let mut chunks = calls.chunks(options.max_calls);
    for chunk in chunks.by_ref() {
        let claims = match claim(options, chunk) {
            Ok(claims) => claims,
            Err(error) => {
                // Nothing of this chunk was claimed: all of it waits for
                // the next run.
                report.retrying += count(chunk.len());
                results.extend(all_retrying(chunk, &error));
                crate::fail(report, error);
                continue;
            }
        };
        let mut mine = Vec::new();
        for (call, claim) in chunk.iter().zip(claims) {
            match claim {
                Claim::Claimed => mine.push(call.clone()),
                Claim::Done(outcome) => {
                    report.duplicates += 1;
                    results.push(result_of(call, CallFate::DoneBefore(outcome)));
                }
                Claim::InFlight => {
                    report.in_flight += 1;
                    results.push(result_of(call, CallFate::InFlight));
                }
                Claim::Unanswered(error) => {
                    report.retrying += 1;
                    results.push(result_of(call, CallFate::Retrying(error)));
                }
            }
        }
        let Processed { handled, lost } = process(options, mine);
        for (call, lost) in lost {
            if let Some(outcome) = lost.finished {
                report.duplicates += 1;
                results.push(result_of(&call, CallFate::DoneBefore(outcome)));
            } else {
                report.in_flight += 1;
                results.push(result_of(&call, CallFate::InFlight));
            }
        }
        match settle(options, &handled, report, triggers, &mut unused_cursor) {
            Ok(settled) => results.extend(settled),
            Err(error) => {
                // The call log refused them: their claims expire and a
                // later run takes them again, as it takes the chunks not
                // reached.
                let rest: Vec<Call> = handled
                    .into_iter()
                    .map(|h| h.call)
                    .chain(chunks.flatten().cloned())
                    .collect();
                report.retrying += count(rest.len());
                results.extend(all_retrying(&rest, &error));
                crate::fail(report, error);
                break;
            }
        }
    }
    results
}

/// A "retrying" result for each of `calls`, failed for now with `error`.
pub fn all_retrying(calls: &[Call], error: &StageError) -> Vec<CallResult> {
    calls
        .iter()
        .map(|c| result_of(c, CallFate::Retrying(error.clone())))
        .collect()
}

/// Park the rows 3CX sent that could not be read, in the call log.
fn record_unreadable(rows: &[UnreadableRow]) -> Result<(), StageError> {
    if rows.is_empty() {
        return Ok(());
    }
    call_log::record_unreadable(rows)
}

/// The error of a call a batch stage gave no answer for.
fn short_answer(stage: &str) -> StageError {
    StageError::InvalidSettings(format!(
        "the {stage} component answered fewer results than it was given calls: replace it"
    ))
}

fn result_of(call: &Call, fate: CallFate) -> CallResult {
    CallResult {
        call_key: call.key.clone(),
        fate,
        contact_id: None,
        rule: None,
    }
}

/// A count for the report.
pub fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Handled {
    fn done(call: Call, outcome: Outcome) -> Self {
        Self {
            call,
            outcome: Ok(outcome),
            rule: None,
            contact_id: None,
            conversation_id: None,
            user_id: None,
        }
    }

    fn failed(call: Call, error: StageError) -> Self {
        let outcome = if parks(&error) {
            Ok(Outcome::Parked(describe(&error)))
        } else {
            Err(error)
        };
        Self {
            outcome,
            ..Self::done(call, Outcome::Skipped(String::new()))
        }
    }

    /// What became of it: settled, or retrying.
    fn fate(&self) -> CallFate {
        match &self.outcome {
            Ok(outcome) => CallFate::Settled(outcome.clone()),
            Err(error) => CallFate::Retrying(error.clone()),
        }
    }

    /// The call as the call log takes it.
    fn logged(&self) -> HandledCall {
        HandledCall {
            call: self.call.clone(),
            fate: self.fate(),
            rule: self.rule,
            contact_id: self.contact_id.clone(),
            conversation_id: self.conversation_id.clone(),
            user_id: self.user_id.clone(),
        }
    }
}
