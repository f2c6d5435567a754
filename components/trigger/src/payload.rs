//! The JSON a workflow receives: what a workflow author needs to filter
//! and act on, with stable camelCase names (this is the trigger's sample
//! payload in the marketplace listing).

use crate::exports::connectzero::pipeline::trigger::{CallEvent, EventKind};
use guest_support::bindings::connectzero::pipeline::types::{Direction, MissedReason};
use guest_support::recordings::RecordingState;
use guest_support::time::format_rfc3339_ms;
use serde_json::{Value, json};

use crate::recovery::Recovered;

/// The trigger key of an event kind, as registered in the marketplace.
pub fn trigger_key(kind: EventKind) -> &'static str {
    guest_support::triggers::TriggerKind::from(kind).key()
}

fn direction(event: &CallEvent) -> &'static str {
    match event.direction {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
        Direction::Internal => "internal",
    }
}

fn owner(event: &CallEvent) -> Option<Value> {
    event.extension_owner.as_ref().map(|o| {
        json!({
            "extension": o.extension,
            "name": format!("{} {}", o.first_name, o.last_name).trim(),
            "email": o.email,
        })
    })
}

/// The `missed-call.recovered` event for the missed call `r` closed by
/// `by` (the answered `call-ended` event): both call keys, so a workflow
/// can find the task it opened for the missed call, and who called back.
pub fn recovered_json(by: &CallEvent, r: &Recovered) -> Value {
    json!({
        "event": trigger_key(EventKind::MissedCallRecovered),
        "callId": r.missed.call_key,
        "missedCallId": r.missed.call_key,
        "missedMessageId": r.missed.message_id,
        "recoveredByCallId": by.call_key,
        "recoveredByMessageId": by.message_id,
        "contactId": by.contact_id.clone().or_else(|| r.missed.contact_id.clone()),
        "phone": by.phone,
        "direction": direction(by),
        "missedAt": format_rfc3339_ms(r.missed.missed_at),
        "recoveredAt": format_rfc3339_ms(by.started_at),
        "timeToCallbackSeconds": r.time_to_callback_secs,
        "extension": by.extension,
        "extensionOwner": owner(by),
        "userId": by.crm_user_id,
    })
}

/// The `call.insights` event: the call's ids and 3CX's insights, as the
/// tenant's settings let them through (a setting turned off, or nothing
/// from 3CX, is `null`).
pub fn insights_json(event: &CallEvent) -> Value {
    let insights = event.insights.as_ref();
    json!({
        "event": trigger_key(EventKind::CallInsights),
        "callId": event.call_key,
        "contactId": event.contact_id,
        "messageId": event.message_id,
        "direction": direction(event),
        "phone": event.phone,
        "startedAt": format_rfc3339_ms(event.started_at),
        "userId": event.crm_user_id,
        "summary": insights.and_then(|i| i.summary.clone()),
        "sentimentScore": insights.and_then(|i| i.sentiment_score),
        "transcriptExcerpt": insights.and_then(|i| i.transcript_excerpt.clone()),
    })
}

/// The event as JSON.
pub fn to_json(event: &CallEvent) -> Value {
    if matches!(event.kind, EventKind::CallInsights) {
        return insights_json(event);
    }
    let direction = direction(event);
    let owner = owner(event);
    json!({
        "event": trigger_key(event.kind),
        "callId": event.call_key,
        "contactId": event.contact_id,
        "messageId": event.message_id,
        "direction": direction,
        "phone": event.phone,
        "answered": event.answered,
        "callStatus": if matches!(event.kind, EventKind::CallStarted) { "in-progress" } else if event.answered { "answered" } else { "missed" },
        "durationSeconds": event.duration_secs,
        "startedAt": format_rfc3339_ms(event.started_at),
        "endedAt": event.ended_at.map(format_rfc3339_ms),
        "extension": event.extension,
        "extensionOwner": owner,
        "userId": event.crm_user_id,
        "recordingStatus": RecordingState::from(event.recording_status.clone()).workflow_text(),
        "missedReason": event.missed_reason.map(missed_reason),
    })
}

/// The stable name of a missed reason in payloads (the WIT case name).
pub fn missed_reason(reason: MissedReason) -> &'static str {
    match reason {
        MissedReason::AbandonedInIvr => "abandoned-in-ivr",
        MissedReason::AbandonedInQueue => "abandoned-in-queue",
        MissedReason::NoAnswer => "no-answer",
        MissedReason::OutOfHours => "out-of-hours",
        MissedReason::EndedByRule => "ended-by-rule",
        MissedReason::Busy => "busy",
    }
}
