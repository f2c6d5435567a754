//! What happens around a posted call: recordings (stage 7) and workflow
//! triggers (stage 8a), including `call.started` from 3CX active calls.

use super::record::initial_recording_status;
use super::{Handled, Pipeline, Tenant, TickReport, describe};
use crate::bindings::attach::exports::connectzero::pipeline::attach::{AttachJob, AttachOutcome};
use crate::bindings::dedup::exports::connectzero::pipeline::dedup::Outcome;
use crate::bindings::matcher::exports::connectzero::pipeline::matcher::MatchOutcome;
use crate::bindings::poll::exports::connectzero::pipeline::poll::ActiveCall;
use crate::bindings::trigger::exports::connectzero::pipeline::trigger::{CallEvent, EventKind};
use crate::bindings::types::{Call, CallLeg, Direction, DnKind, Party};

/// Most attach jobs and trigger events worked per tick, so one busy
/// tenant's backlog cannot make its ticks arbitrarily long.
const FOLLOW_UP_BATCH: u32 = 50;

impl Pipeline {
    /// Queue the recording and the `call.ended` / `missed-call` events of
    /// the calls just posted.
    pub(super) async fn after_post(
        &self,
        tenant: &Tenant,
        handled: &[Handled],
    ) -> anyhow::Result<()> {
        self.after_post_with(tenant, handled, true).await
    }

    /// [`Self::after_post`]; with `triggers` false only the recordings are
    /// queued: a backfill's calls are history, and workflows would act on
    /// them as if they had just happened (`connectzero backfill
    /// --with-triggers` turns them on).
    pub(super) async fn after_post_with(
        &self,
        tenant: &Tenant,
        handled: &[Handled],
        triggers: bool,
    ) -> anyhow::Result<()> {
        let posted: Vec<(&Handled, &String)> = handled
            .iter()
            .filter_map(|h| match &h.outcome {
                Ok(Outcome::Posted(id)) => Some((h, id)),
                _ => None,
            })
            .collect();
        if posted.is_empty() {
            return Ok(());
        }
        let jobs: Vec<AttachJob> = posted
            .iter()
            .filter(|(h, _)| initial_recording_status(h) == "pending")
            .map(|(h, id)| AttachJob {
                call: h.call.clone(),
                message_id: (*id).clone(),
                contact_id: h.contact_id.clone().unwrap_or_default(),
                conversation_id: h.conversation_id.clone().unwrap_or_default(),
            })
            .collect();
        if !jobs.is_empty()
            && let Err(error) = self.attach_enqueue(tenant, &jobs).await?
        {
            // The calls stay logged; their recordings are not queued.
            tracing::error!(tenant = tenant.id(), error = %describe(&error), "could not queue recordings");
            for job in &jobs {
                self.storage.set_recording(
                    tenant.id(),
                    &job.call.key,
                    &format!("gave-up: {}", describe(&error)),
                )?;
            }
        }
        if !triggers {
            return Ok(());
        }
        let events: Vec<CallEvent> = posted
            .iter()
            .flat_map(|(h, id)| {
                let missed = !h.call.answered && matches!(h.call.direction, Direction::Inbound);
                let kinds = if missed {
                    vec![EventKind::CallEnded, EventKind::MissedCall]
                } else {
                    vec![EventKind::CallEnded]
                };
                let recording = initial_recording_status(h);
                kinds.into_iter().map(move |kind| {
                    event(
                        kind,
                        &h.call,
                        h.contact_id.clone(),
                        Some((*id).clone()),
                        recording,
                    )
                    .for_user(h.user_id.clone())
                })
            })
            .collect();
        if let Err(error) = self.trigger_enqueue(tenant, &events).await? {
            tracing::error!(tenant = tenant.id(), error = %describe(&error), "could not queue trigger events");
        }
        Ok(())
    }

    /// Every tick: `call.started` for new active calls, then due recordings
    /// and due trigger deliveries.
    pub(super) async fn follow_up(
        &self,
        tenant: &Tenant,
        report: &mut TickReport,
    ) -> anyhow::Result<()> {
        self.calls_started(tenant, report).await?;
        self.work_queues(tenant, report).await
    }

    /// Work due recording jobs and due trigger deliveries, at most
    /// `FOLLOW_UP_BATCH` of each.
    pub(super) async fn work_queues(
        &self,
        tenant: &Tenant,
        report: &mut TickReport,
    ) -> anyhow::Result<()> {
        match self.attach_process_due(tenant, FOLLOW_UP_BATCH).await? {
            Ok(reports) => {
                for r in reports {
                    let status = match &r.outcome {
                        AttachOutcome::Attached(_) => {
                            report.attached += 1;
                            "attached".to_string()
                        }
                        AttachOutcome::GaveUp(reason) => {
                            report.attach_gave_up += 1;
                            tracing::warn!(tenant = tenant.id(), call = %r.call_key, %reason, "gave up on the recording; the call stays logged without audio");
                            format!("gave-up: {reason}")
                        }
                        AttachOutcome::NoRecording => "none".to_string(),
                        AttachOutcome::Pending(_) => {
                            crate::metrics::attach_retry(tenant.id());
                            if let Some(error) = &r.last_error {
                                tracing::info!(tenant = tenant.id(), call = %r.call_key, error = %describe(error), "recording not attached yet; retrying");
                            }
                            continue;
                        }
                    };
                    self.storage
                        .set_recording(tenant.id(), &r.call_key, &status)?;
                }
            }
            Err(error) => {
                tracing::warn!(tenant = tenant.id(), error = %describe(&error), "recording queue unavailable")
            }
        }
        match self.trigger_deliver_due(tenant, FOLLOW_UP_BATCH).await? {
            Ok(reports) => {
                for r in reports {
                    report.triggers_delivered += r.delivered as usize;
                    if r.delivered > 0 {
                        let key = trigger_key(r.kind);
                        self.storage.add_trigger_deliveries(
                            tenant.id(),
                            &r.call_key,
                            key,
                            r.delivered,
                        )?;
                    }
                    if let Some(error) = &r.last_error {
                        tracing::warn!(tenant = tenant.id(), call = %r.call_key, error = %describe(error), retry_at = ?r.retry_at, "trigger delivery failed");
                    }
                }
            }
            Err(error) => {
                tracing::warn!(tenant = tenant.id(), error = %describe(&error), "trigger queue unavailable")
            }
        }
        Ok(())
    }

    /// Queue `call.started` for active calls this process has not seen yet.
    async fn calls_started(&self, tenant: &Tenant, report: &mut TickReport) -> anyhow::Result<()> {
        let active = match self.active_calls(tenant).await? {
            Ok(active) => active,
            Err(error) => {
                tracing::debug!(tenant = tenant.id(), error = %describe(&error), "active calls unavailable");
                return Ok(());
            }
        };
        let new: Vec<Call> = {
            let seen = tenant
                .started_seen
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            active
                .iter()
                .map(active_to_call)
                .filter(|c| !seen.contains(&c.key))
                // A call another tenant on the same 3CX takes starts no
                // workflow here: the same route as its history, on what
                // the active call tells (`super::active_route_facts`).
                .filter(|c| {
                    tenant.route.as_ref().is_none_or(|route| {
                        route.decide(&super::active_route_facts(c))
                            == guest_support::routing::RouteDecision::Take
                    })
                })
                .collect()
        };
        if new.is_empty() {
            return Ok(());
        }
        let matches = self.match_calls(tenant, &new).await?;
        let events: Vec<CallEvent> = new
            .iter()
            .zip(matches)
            .map(|(call, matched)| {
                let contact = match matched {
                    Ok(MatchOutcome::Matched(m)) => Some(m.contact.id),
                    _ => None,
                };
                event(EventKind::CallStarted, call, contact, None, "none")
            })
            .collect();
        match self.trigger_enqueue(tenant, &events).await? {
            Ok(()) => {
                report.calls_started += events.len();
                let mut seen = tenant
                    .started_seen
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                // Only calls still active need remembering.
                seen.retain(|k| {
                    new.iter().any(|c| &c.key == k) || active.iter().any(|a| k == &active_key(a))
                });
                seen.extend(new.iter().map(|c| c.key.clone()));
            }
            Err(error) => {
                tracing::warn!(tenant = tenant.id(), error = %describe(&error), "could not queue call.started")
            }
        }
        Ok(())
    }
}

/// The trigger key of an event kind.
pub fn trigger_key(kind: EventKind) -> &'static str {
    match kind {
        EventKind::CallStarted => "call.started",
        EventKind::CallEnded => "call.ended",
        EventKind::MissedCall => "missed-call",
        EventKind::MissedCallRecovered => "missed-call.recovered",
    }
}

fn active_key(active: &ActiveCall) -> String {
    format!("3cx-active:{}@{}", active.id, active.established_at)
}

/// An active call as a one-leg call, so the matcher can find its contact.
///
/// [ASSUMED] (3CX NOTES §4): `Caller`/`Callee` are free text such as
/// "101 Alice Smith" or "+14155550101"; the first word is the number, and a
/// short all-digit number is an extension.
fn active_to_call(active: &ActiveCall) -> Call {
    let party = |text: &str| {
        let number = text.split_whitespace().next().unwrap_or("").to_string();
        let is_extension =
            !number.is_empty() && number.len() <= 5 && number.chars().all(|c| c.is_ascii_digit());
        let name = text[text.find(&number).map_or(0, |i| i + number.len())..].trim();
        Party {
            extension: is_extension.then(|| number.clone()),
            external: !is_extension,
            display_name: (!name.is_empty()).then(|| name.to_string()),
            owner: None,
            kind: if is_extension {
                DnKind::Extension
            } else {
                DnKind::ExternalLine
            },
            number,
        }
    };
    let (caller, callee) = (party(&active.caller), party(&active.callee));
    let direction = match (caller.external, callee.external) {
        (true, _) => Direction::Inbound,
        (false, true) => Direction::Outbound,
        (false, false) => Direction::Internal,
    };
    let leg = CallLeg {
        leg_id: active.id,
        start_time: active.established_at,
        end_time: active.established_at,
        direction,
        answered: false,
        duration_secs: 0,
        caller: caller.clone(),
        callee: callee.clone(),
        recording: None,
    };
    Call {
        key: active_key(active),
        legs: vec![leg],
        direction,
        answered: false,
        start_time: active.established_at,
        end_time: active.established_at,
        duration_secs: 0,
        caller,
        callee,
        answered_by: None,
        route: Vec::new(),
        missed_reason: None,
    }
}

/// A trigger event for `call`.
fn event(
    kind: EventKind,
    call: &Call,
    contact_id: Option<String>,
    message_id: Option<String>,
    recording: &str,
) -> CallEvent {
    let outside = match call.direction {
        Direction::Inbound => Some(&call.caller),
        Direction::Outbound => call.legs.iter().map(|l| &l.callee).find(|p| p.external),
        Direction::Internal => None,
    };
    let handler = call.answered_by.as_ref().or_else(|| {
        [&call.callee, &call.caller]
            .into_iter()
            .find(|p| !p.external)
    });
    CallEvent {
        kind,
        call_key: call.key.clone(),
        contact_id,
        message_id,
        direction: call.direction,
        phone: outside.map(|p| p.number.clone()).unwrap_or_default(),
        answered: call.answered,
        duration_secs: call.duration_secs,
        started_at: call.start_time,
        ended_at: (!matches!(kind, EventKind::CallStarted)).then_some(call.end_time),
        extension: handler.and_then(|p| p.extension.clone()),
        extension_owner: handler.and_then(|p| p.owner.clone()),
        recording_status: recording.to_string(),
        crm_user_id: None,
        // The missed reason rides on `missed-call` and on the `call.ended`
        // of a missed call; `call.started` knows none yet.
        missed_reason: (!matches!(kind, EventKind::CallStarted))
            .then_some(call.missed_reason)
            .flatten(),
    }
}

/// Naming the CRM user the post stage logged the call for (as the Spin
/// app's `components/app/src/events.rs`).
trait ForUser {
    fn for_user(self, user_id: Option<String>) -> Self;
}

impl ForUser for CallEvent {
    fn for_user(mut self, user_id: Option<String>) -> Self {
        self.crm_user_id = user_id;
        self
    }
}
