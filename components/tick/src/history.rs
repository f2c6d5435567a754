//! The calls 3CX has finished: poll, claim (at most `max-calls` new ones),
//! route, match, apply the logging policy, post, write down in the call
//! log, queue the follow-ups, complete or release in the ledger, and move
//! the cursor.
//!
//! Nothing is dropped: a call that fails for a reason that may pass
//! (network, 5xx, 429, refused credentials) is released in the ledger and
//! the cursor is held before it, so the next tick retries it; a call that
//! can never succeed as it is is parked with its reason.

use crate::connectzero::matcher::matcher::{self, MatchOutcome};
use crate::connectzero::pipeline::call_log::{self, Fate, HandledCall};
use crate::connectzero::pipeline::dedup::{self, Completion, Outcome};
use crate::connectzero::pipeline::poll;
use crate::connectzero::pipeline::post::{self, PostJob, PostOutcome, Target};
use crate::exports::connectzero::pipeline::tick::{CallResult, TickReport};
use crate::facts::{policy_facts, route_facts};
use crate::options::Options;
use crate::timing::time;
use crate::{describe, followups, note_rate_limit, parks};
use guest_support::bindings::connectzero::pipeline::types::UnreadableRow;
use guest_support::bindings::connectzero::pipeline::types::{
    Call, Direction, MatchRule, NoMatchPolicy, StageError, TenantSettings,
};
use guest_support::policy::Decision;
use guest_support::routing::RouteDecision;

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
pub fn sync(options: &Options, report: &mut TickReport) -> Result<(), StageError> {
    let s = &options.settings;
    let batch = time("poll", "fetch", || poll::fetch(s))?;
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
            if lost.finished {
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
    }
    Ok(())
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
                    results.push(result_of(call, "done", outcome));
                }
                Claim::InFlight => {
                    report.in_flight += 1;
                    results.push(result_of(
                        call,
                        "in-flight",
                        "another worker holds the call".into(),
                    ));
                }
                Claim::Unanswered(error) => {
                    report.retrying += 1;
                    results.push(result_of(call, "retrying", describe(&error)));
                }
            }
        }
        let Processed { handled, lost } = process(options, mine);
        for (call, lost) in lost {
            if lost.finished {
                report.duplicates += 1;
                results.push(result_of(&call, "done", lost.why));
            } else {
                report.in_flight += 1;
                results.push(result_of(&call, "in-flight", lost.why));
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
        .map(|c| result_of(c, "retrying", describe(error)))
        .collect()
}

/// What the ledger answers for `chunk`, one per call: a dedup component
/// answering fewer is broken, and the calls it left out are neither
/// claimed nor lost (`Claim::Unanswered`).
fn claim(options: &Options, chunk: &[Call]) -> Result<Vec<Claim>, StageError> {
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
enum Claim {
    /// This worker owns the call now.
    Claimed,
    /// Handled before, with this outcome.
    Done(String),
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
fn claim_bounded(
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

/// What became of a claimed call at the moment of posting.
enum Renewed {
    /// The claim was still this worker's and was renewed; the post stage's
    /// answer.
    Posted(Result<PostOutcome, StageError>),
    /// Another worker took the call over (this tick ran past the lease) or
    /// finished it: not posted, and neither completed nor released here.
    Lost(LostClaim),
}

/// Renew the call's claim with compare-and-swap (claiming again: only
/// this worker's own claim, or a free leg, answers `claimed`), then post
/// it. A tick slowed by rate limits can outlive its lease; without this a
/// call another worker took over meanwhile would be posted twice.
fn renew_and_post(options: &Options, job: &PostJob) -> Renewed {
    let renewal = time("dedup", "renew", || {
        dedup::claim_calls(
            std::slice::from_ref(&job.call),
            &options.worker,
            options.claim_lease_ms,
        )
    });
    match renewal.map(|mut claims| claims.pop()) {
        Ok(Some(dedup::Claim::Claimed)) => {
            let mut answer = time("post", "post-calls", || {
                post::post_calls(&options.settings, std::slice::from_ref(job))
            });
            Renewed::Posted(answer.pop().unwrap_or_else(|| Err(short_answer("post"))))
        }
        Ok(Some(dedup::Claim::Done(outcome))) => Renewed::Lost(LostClaim {
            why: format!("another worker finished the call: {outcome}"),
            finished: true,
        }),
        Ok(Some(dedup::Claim::InFlight)) => Renewed::Lost(LostClaim {
            why: "another worker took the call over after the claim lease".into(),
            finished: false,
        }),
        Ok(None) => Renewed::Posted(Err(short_answer("dedup"))),
        Err(error) => Renewed::Posted(Err(error)),
    }
}

/// A claim that passed to another worker before the call was posted.
pub struct LostClaim {
    /// Why, for the report.
    why: String,
    /// The other worker finished the call: nothing holds the cursor.
    finished: bool,
}

/// The claimed calls after routing, matching, policy and posting.
struct Processed {
    /// One per call this worker settles, oldest first.
    handled: Vec<Handled>,
    /// Calls whose claim passed to another worker before they were posted:
    /// theirs to settle; the cursor waits before those not finished yet.
    lost: Vec<(Call, LostClaim)>,
}

/// Route, match, apply the policy and post the claimed calls.
fn process(options: &Options, calls: Vec<Call>) -> Processed {
    let mut lost = Vec::new();
    if calls.is_empty() {
        return Processed {
            handled: Vec::new(),
            lost,
        };
    }
    let s = &options.settings;
    let mut handled = Vec::with_capacity(calls.len());
    // Routing first: a call another tenant on the same 3CX takes costs no
    // directory lookup and no CRM request here.
    let calls: Vec<Call> = match &options.route {
        None => calls,
        Some(route) => {
            let dids = recorded_dids(s, route, &calls, guest_support::time::now_ms());
            calls
                .into_iter()
                .filter_map(|call| {
                    let did = match dids.get(&call.key) {
                        None | Some(DidRead::None) => None,
                        Some(DidRead::Known(did)) => Some(did.as_str()),
                        // Routed without its DID, the call could go to the
                        // wrong tenant for good (each tenant on the 3CX
                        // decides alone): it waits, or is parked.
                        Some(DidRead::Wait(why)) => {
                            handled.push(Handled::failed(call, did_unread(why)));
                            return None;
                        }
                        Some(DidRead::Park(why)) => {
                            handled.push(Handled::done(call, Outcome::Parked(why.clone())));
                            return None;
                        }
                    };
                    match route.decide(&route_facts(&call, did)) {
                        RouteDecision::Take => Some(call),
                        RouteDecision::Elsewhere(reason) => {
                            handled.push(Handled::done(call, Outcome::Skipped(reason)));
                            None
                        }
                    }
                })
                .collect()
        }
    };
    let mut matches = if calls.is_empty() {
        Vec::new()
    } else {
        time("match", "match-calls", || {
            matcher::match_calls(&s.into(), &calls)
        })
    };
    // A batch stage answers once per input; a replacement that does not is
    // broken, and guessing which answer is whose could post a call to the
    // wrong contact: the unanswered calls are retried (after the fix).
    matches.resize_with(calls.len(), || Err(short_answer("match")));
    let mut jobs = Vec::new();
    for (call, matched) in calls.into_iter().zip(matches) {
        let decision = match (&options.policy, &matched) {
            (Some(policy), Ok(outcome)) => Some(policy.decide(&policy_facts(&call, outcome))),
            _ => None,
        };
        if let Some(Decision::Ignore(reason)) = decision {
            handled.push(Handled::done(call, Outcome::Skipped(reason)));
            continue;
        }
        match matched {
            Ok(MatchOutcome::Matched(m)) => jobs.push(PostJob {
                call,
                ambiguous: !m.also_matching.is_empty(),
                target: Target::Contact(m.contact),
                rule: Some(m.rule),
                also_matching: m.also_matching,
            }),
            Ok(MatchOutcome::Unmatched(number)) => {
                let create = decision == Some(Decision::LogAndCreateContact)
                    || matches!(s.no_match_policy, NoMatchPolicy::CreateContact);
                if create && number.starts_with('+') {
                    jobs.push(PostJob {
                        call,
                        target: Target::CreateContact(number),
                        rule: None,
                        ambiguous: false,
                        also_matching: Vec::new(),
                    });
                } else {
                    handled.push(Handled::done(call, Outcome::Skipped("no-match".into())));
                }
            }
            Ok(MatchOutcome::Skipped(reason)) => {
                handled.push(Handled::done(call, Outcome::Skipped(reason)))
            }
            Err(error) => handled.push(Handled::failed(call, error)),
        }
    }
    if !jobs.is_empty() {
        let targets: Vec<(Call, Option<MatchRule>, Option<String>)> = jobs
            .iter()
            .map(|j| {
                let contact = match &j.target {
                    Target::Contact(c) => Some(c.id.clone()),
                    Target::CreateContact(_) => None,
                };
                (j.call.clone(), j.rule, contact)
            })
            .collect();
        let posted: Vec<Renewed> = jobs
            .iter()
            .map(|job| renew_and_post(options, job))
            .collect();
        for ((call, rule, contact), renewed) in targets.into_iter().zip(posted) {
            let result = match renewed {
                Renewed::Posted(result) => result,
                Renewed::Lost(why) => {
                    lost.push((call, why));
                    continue;
                }
            };
            let mut h = match result {
                Ok(PostOutcome::Posted(p)) => Handled {
                    contact_id: Some(p.contact_id),
                    conversation_id: Some(p.conversation_id),
                    user_id: p.user_id,
                    ..Handled::done(call, Outcome::Posted(p.message_id))
                },
                Ok(PostOutcome::NeedsReview(candidates)) => {
                    let reason = guest_support::review::needs_review_reason(
                        candidates.iter().map(|c| c.id.as_str()),
                        options.review_place,
                    );
                    Handled::done(call, Outcome::Parked(reason))
                }
                Err(error) => Handled {
                    contact_id: contact,
                    ..Handled::failed(call, error)
                },
            };
            h.rule = rule;
            handled.push(h);
        }
    }
    handled.sort_by_key(|h| h.call.start_time);
    Processed { handled, lost }
}

/// Write the handled calls down in the call log, count them, queue the
/// follow-ups of the posted ones, then record them in the ledger (complete,
/// or release to retry). Follow-ups are queued before the ledger records
/// the calls as done: a crash in between re-runs the calls (the post stage
/// finds its message, the queues ignore repeats) instead of leaving done
/// calls whose follow-ups were never queued.
fn settle(
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
        let (outcome, detail) = match &h.outcome {
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
                    Outcome::Posted(id) => {
                        report.posted += 1;
                        ("posted", id.clone())
                    }
                    Outcome::Skipped(reason) => {
                        report.skipped += 1;
                        ("skipped", reason.clone())
                    }
                    Outcome::Parked(reason) => {
                        report.parked += 1;
                        ("parked", reason.clone())
                    }
                }
            }
            Err(error) => {
                report.retrying += 1;
                note_rate_limit(report, error);
                *hold_cursor_at = (*hold_cursor_at).min(h.call.start_time);
                released.push(h.call.clone());
                ("retrying", describe(error))
            }
        };
        results.push(CallResult {
            call_key: h.call.key.clone(),
            outcome: outcome.to_string(),
            detail,
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
            if r.outcome == "posted" {
                report.posted = report.posted.saturating_sub(1);
            }
            report.retrying += 1;
            r.outcome = "retrying".into();
            r.detail = format!(
                "posted as {}; its follow-ups are queued on the next try",
                r.detail
            );
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
fn finish(
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

/// Park the rows 3CX sent that could not be read, in the call log.
fn record_unreadable(rows: &[UnreadableRow]) -> Result<(), StageError> {
    if rows.is_empty() {
        return Ok(());
    }
    call_log::record_unreadable(rows)
}

/// How long after a call ends 3CX may take to list its recording with the
/// DID; a call whose recording is still not listed then is parked, never
/// routed without its DID (another tenant could read it a moment later and
/// take the call too, or leave it). Every tenant on the 3CX applies the
/// same rule, so they agree on each call: its recording's DID, or no DID
/// only when the listed, final recording names none.
const DID_WAIT_MS: i64 = 10 * 60 * 1000;

/// What routing may use of a call's recording.
enum DidRead {
    /// The recording names this DID.
    Known(String),
    /// No DID to read: the listed, final recording names none.
    None,
    /// Not yet known (the recording is not listed yet, or 3CX failed):
    /// the call is tried again next tick.
    Wait(String),
    /// Cannot be known: the call is parked with this reason (Retry on the
    /// status page once fixed).
    Park(String),
}

/// The DIDs of the inbound calls that have a recording, by call key, read
/// from the recordings (`poll::recording-dids`) when the route lists DIDs.
fn recorded_dids(
    s: &TenantSettings,
    route: &guest_support::routing::Route,
    calls: &[Call],
    now_ms: i64,
) -> std::collections::HashMap<String, DidRead> {
    let mut dids = std::collections::HashMap::new();
    if !route.routes_by_did() {
        return dids;
    }
    let wanted: Vec<(&Call, i32)> = calls
        .iter()
        .filter(|c| matches!(c.direction, Direction::Inbound))
        .filter_map(|c| {
            let id = c
                .legs
                .iter()
                .find_map(|l| l.recording.as_ref().map(|r| r.id))?;
            Some((c, id))
        })
        .collect();
    if wanted.is_empty() {
        return dids;
    }
    let ids: Vec<i32> = wanted.iter().map(|(_, id)| *id).collect();
    let found = time("poll", "recording-dids", || poll::recording_dids(s, &ids));
    let waited = |call: &Call| now_ms.saturating_sub(call.end_time) >= DID_WAIT_MS;
    for (call, id) in wanted {
        let read = match &found {
            Ok(found) => match found.iter().find(|(listed, _)| *listed == id) {
                Some((_, Some(did))) => DidRead::Known(did.clone()),
                Some((_, None)) => DidRead::None,
                None if waited(call) => DidRead::Park(format!(
                    "3CX still does not list the call's recording {id}, whose DID decides which tenant takes the call; Retry once it does"
                )),
                None => DidRead::Wait(format!(
                    "3CX does not list the call's recording {id} yet; its DID decides which tenant takes the call"
                )),
            },
            Err(StageError::Forbidden(e)) => DidRead::Park(format!(
                "the call's DID cannot be read: 3CX refuses reading recordings ({}); give the API client the System Owner role, or route by queues, then Retry",
                e.message
            )),
            // An outage says nothing about the recording: wait it out (the
            // cursor holds before the call), however long it lasts.
            Err(e) => DidRead::Wait(describe(e)),
        };
        dids.insert(call.key.clone(), read);
    }
    dids
}

/// The retryable error of a call waiting for its DID.
fn did_unread(why: &str) -> StageError {
    StageError::Upstream(guest_support::UpstreamError {
        service: guest_support::Service::Pbx,
        status: 503,
        message: why.to_string(),
    })
}

/// The error of a call a batch stage gave no answer for.
fn short_answer(stage: &str) -> StageError {
    StageError::InvalidSettings(format!(
        "the {stage} component answered fewer results than it was given calls: replace it"
    ))
}

fn result_of(call: &Call, outcome: &str, detail: String) -> CallResult {
    CallResult {
        call_key: call.key.clone(),
        outcome: outcome.to_string(),
        detail,
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

    /// The call as the call log takes it.
    fn logged(&self) -> HandledCall {
        HandledCall {
            call: self.call.clone(),
            fate: match &self.outcome {
                Ok(Outcome::Posted(id)) => Fate::Posted(id.clone()),
                Ok(Outcome::Skipped(reason)) => Fate::Skipped(reason.clone()),
                Ok(Outcome::Parked(reason)) => Fate::Parked(reason.clone()),
                Err(error) => Fate::Retrying(error.clone()),
            },
            rule: self.rule,
            contact_id: self.contact_id.clone(),
            conversation_id: self.conversation_id.clone(),
            user_id: self.user_id.clone(),
        }
    }
}
