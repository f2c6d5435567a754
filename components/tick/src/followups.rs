//! What happens around the posted calls: their recordings (attach) and
//! workflow triggers (trigger), `call.started` from 3CX's active calls,
//! and working the due queue entries.

use crate::connectzero::matcher::matcher::{self, MatchOutcome};
use crate::connectzero::pipeline::attach::{self, AttachJob, AttachOutcome};
use crate::connectzero::pipeline::call_log::{self, DeliveryCount, RecordingUpdate};
use crate::connectzero::pipeline::poll;
use crate::connectzero::pipeline::post;
use crate::connectzero::pipeline::trigger::{self, CallEvent, EventKind};
use crate::describe;
use crate::events::{ForUser, active_to_call, event, kinds_after_post, trigger_key};
use crate::exports::connectzero::pipeline::tick::TickReport;
use crate::facts::active_route_facts;
use crate::history::{Handled, count};
use crate::options::Options;
use crate::timing::time;
use guest_support::bindings::connectzero::pipeline::types::CallOutcome as Outcome;
use guest_support::bindings::connectzero::pipeline::types::{
    Call, CopyRequest, StageError, TenantSettings,
};
use guest_support::recordings::RecordingState;
use guest_support::routing::RouteDecision;
use guest_support::{kv, retention};

/// Key of the active calls whose `call.started` is already queued.
const STARTED_KEY: &str = "tick/started";

/// Most attach jobs and trigger events worked per tick, so one busy
/// tenant's backlog cannot make its ticks arbitrarily long.
const FOLLOW_UP_BATCH: u32 = 50;

/// Whether any leg of `call` has a recording.
fn has_recording(call: &Call) -> bool {
    call.legs.iter().any(|l| l.recording.is_some())
}

/// Queue the recordings of the calls just posted, and (when `triggers`)
/// their `call.ended` / `missed-call` events. A backfill's calls are
/// history: workflows would act on them as if they had just happened, so
/// it queues triggers only when asked.
///
/// Returns the keys of the posted calls whose follow-ups could not be
/// queued, each with the error that stopped it: they must not be recorded
/// as done (the caller retries them).
pub fn after_post(
    options: &Options,
    handled: &[Handled],
    triggers: bool,
    report: &mut TickReport,
) -> Vec<(String, StageError)> {
    let s = &options.settings;
    let posted: Vec<(&Handled, &String)> = handled
        .iter()
        .filter_map(|h| match &h.outcome {
            Ok(Outcome::Posted(id)) => Some((h, id)),
            _ => None,
        })
        .collect();
    let mut unqueued = Vec::new();
    if posted.is_empty() {
        return unqueued;
    }
    let jobs: Vec<AttachJob> = posted
        .iter()
        .filter(|(h, _)| has_recording(&h.call))
        .map(|(h, id)| AttachJob {
            call: h.call.clone(),
            message_id: (*id).clone(),
            contact_id: h.contact_id.clone().unwrap_or_default(),
            conversation_id: h.conversation_id.clone().unwrap_or_default(),
        })
        .collect();
    if !jobs.is_empty()
        && let Err(error) = time("attach", "enqueue", || attach::enqueue(s, &jobs))
    {
        // Not done yet: the calls are retried, and queued then (the queue
        // ignores a job it already holds).
        report.warnings.push(format!(
            "could not queue recordings; the calls are retried: {}",
            describe(&error)
        ));
        unqueued.extend(jobs.iter().map(|job| (job.call.key.clone(), error.clone())));
    }
    if !triggers {
        return unqueued;
    }
    // Insights end in a workflow trigger: a backfill's calls, which raise
    // none unless asked, get none either.
    unqueued.extend(crate::insights::after_post(options, &posted, report));
    let events: Vec<CallEvent> = posted
        .iter()
        .flat_map(|(h, id)| {
            let recording = RecordingState::initial(true, has_recording(&h.call));
            kinds_after_post(&h.call).into_iter().map(move |kind| {
                event(
                    kind,
                    &h.call,
                    h.contact_id.clone(),
                    Some((*id).clone()),
                    recording.clone(),
                )
                .for_user(h.user_id.clone())
            })
        })
        .collect();
    if let Err(error) = time("trigger", "enqueue", || trigger::enqueue(s, &events)) {
        report.warnings.push(format!(
            "could not queue trigger events; the calls are retried: {}",
            describe(&error)
        ));
        unqueued.extend(
            posted
                .iter()
                .map(|(h, _)| (h.call.key.clone(), error.clone())),
        );
    }
    // One error per call: the first that stopped it.
    let mut seen = std::collections::BTreeSet::new();
    unqueued.retain(|(key, _)| seen.insert(key.clone()));
    unqueued
}

/// Queue `call.started` for the active calls. The trigger queue ignores
/// events already queued, so seeing a call on every tick is harmless; the
/// set of active calls already queued (`tick/started`, only calls still
/// active, so it stays small) saves matching them again. Two workers
/// writing it at once can only forget a call, which costs one more match.
pub fn calls_started(
    options: &Options,
    listed: Option<Vec<poll::ActiveCall>>,
    report: &mut TickReport,
) {
    let s = &options.settings;
    // The list the poll read this tick; asked again only when the poll
    // failed. 3CX's active calls are a nicety: when they cannot be read,
    // the history part still runs.
    let active = match listed {
        Some(active) => active,
        None => match time("poll", "active-calls", || poll::active_calls(s)) {
            Ok(active) => active,
            Err(_) => return,
        },
    };
    let Ok(bucket) = kv::open() else {
        return;
    };
    let seen: Vec<String> = kv::get_json(&bucket, STARTED_KEY)
        .ok()
        .flatten()
        .unwrap_or_default();
    let active: Vec<Call> = active.iter().map(active_to_call).collect();
    let still_active: Vec<String> = active.iter().map(|c| c.key.clone()).collect();
    let new: Vec<Call> = active
        .into_iter()
        .filter(|c| !seen.contains(&c.key))
        // A call another tenant on the same 3CX takes starts no workflow
        // here: the same route as its history, on what the active call
        // tells.
        .filter(|c| {
            options
                .route
                .as_ref()
                .is_none_or(|route| route.decide(&active_route_facts(c)) == RouteDecision::Take)
        })
        .collect();
    if new.is_empty() {
        if still_active.len() != seen.len() {
            let _ = kv::set_json(&bucket, STARTED_KEY, &still_active);
        }
        return;
    }
    let matches = time("match", "match-calls", || {
        matcher::match_calls(&s.into(), &new)
    });
    let events: Vec<CallEvent> = new
        .iter()
        .enumerate()
        .map(|(i, call)| {
            let contact = match matches.get(i) {
                Some(Ok(MatchOutcome::Matched(m))) => Some(m.contact.id.clone()),
                _ => None,
            };
            event(
                EventKind::CallStarted,
                call,
                contact,
                None,
                RecordingState::None,
            )
        })
        .collect();
    match time("trigger", "enqueue", || trigger::enqueue(s, &events)) {
        Ok(()) => {
            report.calls_started += count(events.len());
            let _ = kv::set_json(&bucket, STARTED_KEY, &still_active);
        }
        Err(error) => report.warnings.push(format!(
            "could not queue call.started: {}",
            describe(&error)
        )),
    }
}

/// Work due recording jobs and due trigger deliveries, at most
/// `FOLLOW_UP_BATCH` of each. True when any job was worked.
pub fn work_queues(options: &Options, report: &mut TickReport) -> bool {
    let s = &options.settings;
    // Whether any job was worked: more may be due behind it, whatever its
    // outcome counted (a job finding no recording counts nothing).
    let mut worked = false;
    match time("attach", "process-due", || {
        attach::process_due(s, FOLLOW_UP_BATCH)
    }) {
        Ok(reports) => {
            worked |= !reports.is_empty();
            let mut ended = Vec::new();
            for r in reports {
                let status = match &r.outcome {
                    AttachOutcome::Attached(_) => {
                        report.attached += 1;
                        RecordingState::Attached
                    }
                    AttachOutcome::GaveUp(reason) => {
                        report.attach_gave_up += 1;
                        report.warnings.push(format!(
                            "gave up on the recording of {}; the call stays logged without audio: {reason}",
                            r.call_key
                        ));
                        RecordingState::GaveUp(reason.clone())
                    }
                    AttachOutcome::NoRecording => RecordingState::None,
                    AttachOutcome::Pending(_) => {
                        report.attach_pending += 1;
                        // Not final in 3CX yet is normal; a failed attempt
                        // (a refused upload, say) is worth seeing before
                        // the job gives up.
                        if let Some(error) = &r.last_error {
                            report.warnings.push(format!(
                                "recording of {} not attached yet, retrying: {}",
                                r.call_key,
                                describe(error)
                            ));
                        }
                        continue;
                    }
                };
                ended.push(RecordingUpdate {
                    call_key: r.call_key,
                    status: status.into(),
                });
            }
            if !ended.is_empty() {
                note(report, "recordings", call_log::record_recordings(&ended));
            }
        }
        Err(error) => report
            .warnings
            .push(format!("recording queue unavailable: {}", describe(&error))),
    }
    match time("trigger", "deliver-due", || {
        trigger::deliver_due(s, FOLLOW_UP_BATCH)
    }) {
        Ok(reports) => {
            worked |= !reports.is_empty();
            let mut counts = Vec::new();
            for r in reports {
                report.triggers_delivered += r.delivered;
                if r.delivered > 0 {
                    counts.push(DeliveryCount {
                        call_key: r.call_key.clone(),
                        trigger: trigger_key(r.kind).to_string(),
                        count: r.delivered,
                    });
                }
                if let Some(error) = &r.last_error {
                    report.warnings.push(format!(
                        "trigger delivery for {} failed: {}",
                        r.call_key,
                        describe(error)
                    ));
                }
            }
            if !counts.is_empty() {
                note(report, "deliveries", call_log::record_deliveries(&counts));
            }
        }
        Err(error) => report
            .warnings
            .push(format!("trigger queue unavailable: {}", describe(&error))),
    }
    worked |= crate::insights::work(options, FOLLOW_UP_BATCH, report);
    forget_old_calls(options, report);
    worked
}

/// One step of the retention sweep (`guest_support::retention`): a page
/// of keys per tick, so per-call state stops growing without any tick
/// doing more than a page of work.
fn forget_old_calls(options: &Options, report: &mut TickReport) {
    let overlap_ms = i64::from(options.settings.overlap_window_secs) * 1000;
    let swept = time("retention", "sweep", || {
        let bucket = kv::open()?;
        retention::sweep(
            &bucket,
            guest_support::time::now_ms(),
            options.state_retention_days,
            overlap_ms,
        )
    });
    match swept {
        Ok(swept) => report.pruned += swept.pruned,
        Err(error) => report.warnings.push(format!(
            "could not forget old calls' state this tick (retried next tick): {}",
            describe(&error)
        )),
    }
}

/// A call log that could not take a follow-up's result: the work is done
/// (the queue records it), only the call log's column lags; say so.
fn note(report: &mut TickReport, what: &str, written: Result<(), StageError>) {
    if let Err(error) = written {
        report.warnings.push(format!(
            "the call log did not take the {what}: {}",
            describe(&error)
        ));
    }
}

/// Carry out operators' requests to log posted calls on one more contact
/// with the number (`post.post-copies`). A request that fails for now
/// stays with the runtime, which sends it again next tick.
pub fn copies(settings: &TenantSettings, requests: &[CopyRequest], report: &mut TickReport) {
    if requests.is_empty() {
        return;
    }
    let answers = time("post", "post-copies", || {
        post::post_copies(settings, requests)
    });
    for (request, answer) in requests.iter().zip(answers) {
        match answer {
            Ok(_) => report.copies_settled += 1,
            Err(error) => {
                crate::note_rate_limit(report, &error);
                report.warnings.push(format!(
                    "could not log call {} on contact {} yet; tried again next tick: {}",
                    request.call_key,
                    request.contact_id,
                    describe(&error)
                ));
            }
        }
    }
}
