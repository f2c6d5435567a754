//! One tick: poll → dedup → match → post → record → attach → trigger.
//!
//! The same steps, in the same order and with the same failure rules, as
//! the bundled host's `host/src/pipeline`: a call that fails for a reason
//! that may pass (network, 5xx, 429, refused credentials) is released in
//! the ledger and the cursor is held before it, so the next tick retries
//! it; a call that can never succeed as it is is parked with its reason.

use crate::connectzero::pipeline::dedup::{self, Claim, Completion, Outcome};
use crate::connectzero::pipeline::matcher::{self, MatchOutcome};
use crate::connectzero::pipeline::post::{self, PostJob, PostOutcome, Target};
use crate::connectzero::pipeline::trigger::{self, CallEvent};
use crate::connectzero::pipeline::{attach, poll};
use crate::events::{ForUser, active_to_call, event, kinds_after_post};
use crate::settings::AppSettings;
use guest_support::bindings::connectzero::pipeline::types::{
    Call, Direction, MatchRule, NoMatchPolicy, StageError,
};
use guest_support::kv;
use guest_support::policy::{self, CallDirection, CallFacts, Decision};
use guest_support::review::{ReviewPlace, needs_review_reason};
use guest_support::routing::{RouteDecision, RouteFacts};
use serde::Serialize;

/// Key of the active calls whose `call.started` is queued.
const STARTED_KEY: &str = "app/started";

/// Most attach jobs and trigger events worked per tick (as the host).
const FOLLOW_UP_BATCH: u32 = 50;

/// What one tick did, answered as JSON.
#[derive(Serialize, Default, Debug)]
pub struct TickReport {
    /// Calls read from 3CX (including ones already handled).
    pub polled: usize,
    /// Calls posted.
    pub posted: usize,
    /// Calls deliberately not posted.
    pub skipped: usize,
    /// Calls parked for an operator.
    pub parked: usize,
    /// Calls that failed for now and will be retried.
    pub retrying: usize,
    /// Calls already handled.
    pub duplicates: usize,
    /// Calls another instance is handling.
    pub in_flight: usize,
    /// History rows that could not be read (parked with their reason).
    pub rejected_rows: usize,
    /// Recordings attached.
    pub attached: usize,
    /// Recording jobs still waiting.
    pub attach_pending: usize,
    /// Trigger deliveries made.
    pub triggers_delivered: usize,
    /// `call.started` events queued.
    pub calls_started: usize,
    /// Why the history part could not run, when it could not.
    pub error: Option<String>,
}

/// A claimed call's fate.
struct Handled {
    call: Call,
    outcome: Result<Outcome, StageError>,
    contact_id: Option<String>,
    conversation_id: Option<String>,
    /// The CRM user the call was logged for (`posted.user-id`).
    user_id: Option<String>,
}

/// Run one tick as `worker`.
pub fn run(settings: &AppSettings, worker: &str) -> TickReport {
    let mut report = TickReport::default();
    calls_started(settings, &mut report);
    if let Err(error) = sync_history(settings, worker, &mut report) {
        report.error = Some(crate::describe(&error));
    }
    follow_up(settings, &mut report);
    report
}

fn sync_history(
    settings: &AppSettings,
    worker: &str,
    report: &mut TickReport,
) -> Result<(), StageError> {
    let s = &settings.tenant;
    let batch = poll::fetch(s)?;
    report.polled = batch.calls.len();
    report.rejected_rows = batch.rejected.len();
    park_rejected_rows(&batch.rejected)?;
    if batch.calls.is_empty() {
        return poll::commit(s, batch.high_water);
    }
    let claims = dedup::claim_calls(&batch.calls, worker, settings.claim_lease_ms)?;
    let mut mine = Vec::new();
    let mut hold_cursor_at = batch.high_water;
    for (call, claim) in batch.calls.into_iter().zip(claims) {
        match claim {
            Claim::Claimed => mine.push(call),
            Claim::Done(_) => report.duplicates += 1,
            Claim::InFlight => {
                report.in_flight += 1;
                hold_cursor_at = hold_cursor_at.min(call.start_time);
            }
        }
    }
    let handled = process(settings, mine);
    let mut completions = Vec::new();
    let mut released = Vec::new();
    for h in &handled {
        match &h.outcome {
            Ok(outcome) => {
                match outcome {
                    Outcome::Posted(_) => report.posted += 1,
                    Outcome::Skipped(_) => report.skipped += 1,
                    Outcome::Parked(reason) => {
                        report.parked += 1;
                        eprintln!("connectzero: call {} parked: {reason}", h.call.key);
                    }
                }
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
            }
            Err(error) => {
                report.retrying += 1;
                eprintln!(
                    "connectzero: call {} will be retried: {}",
                    h.call.key,
                    crate::describe(error)
                );
                hold_cursor_at = hold_cursor_at.min(h.call.start_time);
                released.push(h.call.clone());
            }
        }
    }
    // Follow-ups are queued before the ledger records the calls as done,
    // as the host does (`host/src/pipeline/mod.rs`): a crash in between
    // re-runs the calls rather than losing their recordings and triggers.
    after_post(settings, &handled);
    if !completions.is_empty() {
        dedup::complete(&completions)?;
    }
    if !released.is_empty() {
        dedup::release(&released, worker)?;
    }
    poll::commit(s, hold_cursor_at)
}

/// Match and post the claimed calls.
fn process(settings: &AppSettings, calls: Vec<Call>) -> Vec<Handled> {
    if calls.is_empty() {
        return Vec::new();
    }
    let s = &settings.tenant;
    let mut handled = Vec::with_capacity(calls.len());
    // Routing first, as the host: a call another tenant takes costs no
    // directory lookup and no CRM request here.
    let calls: Vec<Call> = match &settings.route {
        None => calls,
        Some(route) => calls
            .into_iter()
            .filter_map(|call| match route.decide(&route_facts(&call)) {
                RouteDecision::Take => Some(call),
                RouteDecision::Elsewhere(reason) => {
                    handled.push(Handled::done(call, Outcome::Skipped(reason)));
                    None
                }
            })
            .collect(),
    };
    let matches = if calls.is_empty() {
        Vec::new()
    } else {
        matcher::match_calls(s, &calls)
    };
    let mut jobs = Vec::new();
    for (call, matched) in calls.into_iter().zip(matches) {
        let decision = match (&settings.policy, &matched) {
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
        let calls: Vec<Call> = jobs.iter().map(|j| j.call.clone()).collect();
        let posted = post::post_calls(s, &jobs);
        for (call, result) in calls.into_iter().zip(posted) {
            handled.push(match result {
                Ok(PostOutcome::Posted(p)) => Handled {
                    contact_id: Some(p.contact_id),
                    conversation_id: Some(p.conversation_id),
                    user_id: p.user_id,
                    ..Handled::done(call, Outcome::Posted(p.message_id))
                },
                Ok(PostOutcome::NeedsReview(candidates)) => {
                    // The host's text, except where the call waits: Spin
                    // has no status page.
                    let reason = needs_review_reason(
                        candidates.iter().map(|c| c.id.as_str()),
                        ReviewPlace::KeyValueStore,
                    );
                    Handled::done(call, Outcome::Parked(reason))
                }
                Err(error) => Handled::failed(call, error),
            });
        }
    }
    handled.sort_by_key(|h| h.call.start_time);
    handled
}

/// What routing looks at in a call from 3CX's history, derived by
/// `RouteFacts::of_call` (as the host's `host/src/pipeline/mod.rs`,
/// `route_facts`).
fn route_facts(call: &Call) -> RouteFacts {
    RouteFacts::of_call(
        matches!(call.direction, Direction::Inbound),
        &call.callee.number,
        call.callee.extension.as_deref(),
        extensions(call),
    )
}

/// What routing looks at in an active call (`active_to_call`): the same,
/// except that an inbound call whose `Callee` text names no DID has an
/// unknown DID (`RouteFacts::of_active_call`), so `call.started` by DID
/// needs the DID in 3CX's active-call text. As the host's `host/src/pipeline/mod.rs`.
fn active_route_facts(call: &Call) -> RouteFacts {
    RouteFacts::of_active_call(
        matches!(call.direction, Direction::Inbound),
        &call.callee.number,
        call.callee.extension.as_deref(),
        extensions(call),
    )
}

/// Each leg's caller and callee DN, in leg order.
fn extensions(call: &Call) -> impl Iterator<Item = Option<&str>> {
    call.legs.iter().flat_map(|leg| {
        [
            leg.caller.extension.as_deref(),
            leg.callee.extension.as_deref(),
        ]
    })
}

/// The facts the logging policy decides on; the same derivation as the
/// host's (`host/src/pipeline/mod.rs`, `policy_facts`).
fn policy_facts(call: &Call, outcome: &MatchOutcome) -> CallFacts {
    let outside_e164 = match outcome {
        MatchOutcome::Matched(m) if !matches!(m.rule, MatchRule::ExtensionOwner) => {
            Some(m.matched_on.clone())
        }
        MatchOutcome::Unmatched(number) if number.starts_with('+') => Some(number.clone()),
        _ => {
            let outside = match call.direction {
                Direction::Inbound => Some(&call.caller),
                Direction::Outbound => call.legs.iter().map(|l| &l.callee).find(|p| p.external),
                Direction::Internal => None,
            };
            outside.and_then(|p| policy::canonical_e164(&p.number))
        }
    };
    CallFacts {
        direction: match call.direction {
            Direction::Inbound => CallDirection::Inbound,
            Direction::Outbound => CallDirection::Outbound,
            Direction::Internal => CallDirection::Internal,
        },
        answered: call.answered,
        duration_secs: call.duration_secs,
        start_ms: call.start_time,
        outside_e164,
        voicemail: guest_support::legs::reached_voicemail(call),
    }
}

/// Queue the recordings and the `call.ended` / `missed-call` events of the
/// calls just posted.
fn after_post(settings: &AppSettings, handled: &[Handled]) {
    let s = &settings.tenant;
    let mut jobs = Vec::new();
    let mut events: Vec<CallEvent> = Vec::new();
    for h in handled {
        let Ok(Outcome::Posted(message_id)) = &h.outcome else {
            continue;
        };
        let has_recording = h.call.legs.iter().any(|l| l.recording.is_some());
        if has_recording {
            jobs.push(attach::AttachJob {
                call: h.call.clone(),
                message_id: message_id.clone(),
                contact_id: h.contact_id.clone().unwrap_or_default(),
                conversation_id: h.conversation_id.clone().unwrap_or_default(),
            });
        }
        let recording = if has_recording { "pending" } else { "none" };
        for kind in kinds_after_post(&h.call) {
            events.push(
                event(
                    kind,
                    &h.call,
                    h.contact_id.clone(),
                    Some(message_id.clone()),
                    recording,
                )
                .for_user(h.user_id.clone()),
            );
        }
    }
    if !jobs.is_empty()
        && let Err(error) = attach::enqueue(s, &jobs)
    {
        eprintln!(
            "connectzero: could not queue recordings: {}",
            crate::describe(&error)
        );
    }
    if !events.is_empty()
        && let Err(error) = trigger::enqueue(s, &events)
    {
        eprintln!(
            "connectzero: could not queue trigger events: {}",
            crate::describe(&error)
        );
    }
}

/// Queue `call.started` for the active calls. The trigger queue ignores
/// events already queued, so seeing a call on every tick is harmless; the
/// set of active calls already queued (`app/started`, only calls still
/// active, so it stays small) saves matching them again. Two instances
/// writing it at once can only forget a call, which costs one more match.
fn calls_started(settings: &AppSettings, report: &mut TickReport) {
    let s = &settings.tenant;
    let Ok(active) = poll::active_calls(s) else {
        return;
    };
    let Ok(bucket) = kv::open() else {
        return;
    };
    let seen: Vec<String> = kv::get_json(&bucket, STARTED_KEY)
        .ok()
        .flatten()
        .unwrap_or_default();
    let active: Vec<Call> = active.iter().map(active_to_call).collect();
    let new: Vec<&Call> = active
        .iter()
        .filter(|c| !seen.contains(&c.key))
        // A call another tenant on the same 3CX takes starts no workflow
        // here: the same route as its history, on what the active call
        // tells (as the host).
        .filter(|c| {
            settings
                .route
                .as_ref()
                .is_none_or(|route| route.decide(&active_route_facts(c)) == RouteDecision::Take)
        })
        .collect();
    let still_active: Vec<String> = active.iter().map(|c| c.key.clone()).collect();
    if new.is_empty() {
        if still_active.len() != seen.len() {
            let _ = kv::set_json(&bucket, STARTED_KEY, &still_active);
        }
        return;
    }
    let calls: Vec<Call> = new.iter().map(|c| (*c).clone()).collect();
    let matches = matcher::match_calls(s, &calls);
    let events: Vec<CallEvent> = calls
        .iter()
        .zip(matches)
        .map(|(call, matched)| {
            let contact = match matched {
                Ok(MatchOutcome::Matched(m)) => Some(m.contact.id),
                _ => None,
            };
            event(trigger::EventKind::CallStarted, call, contact, None, "none")
        })
        .collect();
    match trigger::enqueue(s, &events) {
        Ok(()) => {
            report.calls_started += events.len();
            let _ = kv::set_json(&bucket, STARTED_KEY, &still_active);
        }
        Err(error) => eprintln!(
            "connectzero: could not queue call.started: {}",
            crate::describe(&error)
        ),
    }
}

/// Due recordings and trigger deliveries.
fn follow_up(settings: &AppSettings, report: &mut TickReport) {
    let s = &settings.tenant;
    match attach::process_due(s, FOLLOW_UP_BATCH) {
        Ok(reports) => {
            for r in reports {
                match r.outcome {
                    attach::AttachOutcome::Attached(_) => report.attached += 1,
                    attach::AttachOutcome::Pending(_) => report.attach_pending += 1,
                    attach::AttachOutcome::GaveUp(reason) => eprintln!(
                        "connectzero: gave up on the recording of {}; the call stays logged without audio: {reason}",
                        r.call_key
                    ),
                    attach::AttachOutcome::NoRecording => {}
                }
            }
        }
        Err(error) => eprintln!(
            "connectzero: recording queue unavailable: {}",
            crate::describe(&error)
        ),
    }
    match trigger::deliver_due(s, FOLLOW_UP_BATCH) {
        Ok(reports) => {
            for r in reports {
                report.triggers_delivered += r.delivered as usize;
                if let Some(error) = &r.last_error {
                    eprintln!(
                        "connectzero: trigger delivery for {} failed: {}",
                        r.call_key,
                        crate::describe(error)
                    );
                }
            }
        }
        Err(error) => eprintln!(
            "connectzero: trigger queue unavailable: {}",
            crate::describe(&error)
        ),
    }
}

/// Keep unreadable history rows, with their reason, under `app/parked/`.
fn park_rejected_rows(rows: &[poll::RejectedRow]) -> Result<(), StageError> {
    if rows.is_empty() {
        return Ok(());
    }
    let bucket = kv::open()?;
    for row in rows {
        let key = match row.leg_id {
            Some(id) => format!("app/parked/3cx-row:{id}"),
            None => format!("app/parked/3cx-row:unknown:{}", row.reason),
        };
        if !bucket.exists(&key).unwrap_or(false) {
            eprintln!(
                "connectzero: parked an unreadable 3CX call-history row: {}",
                row.reason
            );
        }
        kv::set_json(&bucket, &key, &row.reason)?;
    }
    Ok(())
}

impl Handled {
    fn done(call: Call, outcome: Outcome) -> Self {
        Self {
            call,
            outcome: Ok(outcome),
            contact_id: None,
            conversation_id: None,
            user_id: None,
        }
    }

    fn failed(call: Call, error: StageError) -> Self {
        let outcome = if crate::parks(&error) {
            Ok(Outcome::Parked(crate::describe(&error)))
        } else {
            Err(error)
        };
        Self {
            call,
            outcome,
            contact_id: None,
            conversation_id: None,
            user_id: None,
        }
    }
}
