//! Trigger events and the calls behind them, as `wit/stages.wit`'s
//! `call-event` documents them.

use crate::connectzero::pipeline::attach::InsightsJob;
use crate::connectzero::pipeline::poll::ActiveCall;
use crate::connectzero::pipeline::trigger::{CallEvent, EventKind};
use guest_support::bindings::connectzero::pipeline::types::{
    Call, CallInsights, CallLeg, Direction, DnKind, Party,
};

/// The ledger-independent key of an active call.
pub fn active_key(active: &ActiveCall) -> String {
    format!("3cx-active:{}@{}", active.id, active.established_at)
}

/// An active call as a one-leg call, so the matcher can find its contact.
///
/// [ASSUMED] (3CX NOTES §4): `Caller`/`Callee` are free text such as
/// "101 Alice Smith" or "+14155550101"; the first word is the number, and a
/// short all-digit number is an extension.
pub fn active_to_call(active: &ActiveCall) -> Call {
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

fn party(text: &str) -> Party {
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
}

/// A trigger event for `call`.
pub fn event(
    kind: EventKind,
    call: &Call,
    contact_id: Option<String>,
    message_id: Option<String>,
    recording: guest_support::recordings::RecordingState,
) -> CallEvent {
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
        phone: outside_number(call),
        answered: call.answered,
        duration_secs: call.duration_secs,
        started_at: call.start_time,
        ended_at: (!matches!(kind, EventKind::CallStarted)).then_some(call.end_time),
        extension: handler.and_then(|p| p.extension.clone()),
        extension_owner: handler.and_then(|p| p.owner.clone()),
        recording_status: recording.into(),
        crm_user_id: None,
        // The missed reason rides on `missed-call` and on the `call.ended`
        // of a missed call; `call.started` knows none yet.
        missed_reason: (!matches!(kind, EventKind::CallStarted))
            .then_some(call.missed_reason)
            .flatten(),
        insights: None,
    }
}

/// The outside number of a call (E.164 when it could be normalised), as
/// its events carry it.
pub fn outside_number(call: &Call) -> String {
    let outside = match call.direction {
        Direction::Inbound => Some(&call.caller),
        Direction::Outbound => call.legs.iter().map(|l| &l.callee).find(|p| p.external),
        Direction::Internal => None,
    };
    outside.map(|p| p.number.clone()).unwrap_or_default()
}

/// The `call.insights` event of a call whose insights were written.
pub fn insights_event(job: InsightsJob, insights: CallInsights) -> CallEvent {
    CallEvent {
        kind: EventKind::CallInsights,
        call_key: job.call_key,
        contact_id: Some(job.contact_id),
        message_id: Some(job.message_id),
        direction: job.direction,
        phone: job.phone,
        answered: false,
        duration_secs: 0,
        started_at: job.started_at,
        ended_at: None,
        extension: None,
        extension_owner: None,
        crm_user_id: job.crm_user_id,
        recording_status: guest_support::recordings::RecordingState::None.into(),
        missed_reason: None,
        insights: Some(insights),
    }
}

/// The events of a posted call: `call.ended`, plus `missed-call` for an
/// inbound call nobody answered.
pub fn kinds_after_post(call: &Call) -> Vec<EventKind> {
    if !call.answered && matches!(call.direction, Direction::Inbound) {
        vec![EventKind::CallEnded, EventKind::MissedCall]
    } else {
        vec![EventKind::CallEnded]
    }
}

/// The trigger key of an event kind, as HighLevel workflows name it.
pub fn trigger_key(kind: EventKind) -> &'static str {
    guest_support::triggers::TriggerKind::from(kind).key()
}

/// Naming the CRM user the post stage logged the call for.
pub trait ForUser {
    /// The event with `crm-user-id` set.
    fn for_user(self, user_id: Option<String>) -> Self;
}

impl ForUser for CallEvent {
    fn for_user(mut self, user_id: Option<String>) -> Self {
        self.crm_user_id = user_id;
        self
    }
}
