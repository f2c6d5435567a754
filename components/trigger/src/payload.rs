//! The JSON a workflow receives: what a workflow author needs to filter
//! and act on, with stable camelCase names (this is the trigger's sample
//! payload in the marketplace listing).

use crate::exports::connectzero::pipeline::trigger::{CallEvent, EventKind};
use guest_support::bindings::connectzero::pipeline::types::Direction;
use guest_support::time::format_rfc3339_ms;
use serde_json::{Value, json};

/// The trigger key of an event kind, as registered in the marketplace.
pub fn trigger_key(kind: EventKind) -> &'static str {
    match kind {
        EventKind::CallStarted => "call.started",
        EventKind::CallEnded => "call.ended",
        EventKind::MissedCall => "missed-call",
    }
}

/// The event as JSON.
pub fn to_json(event: &CallEvent) -> Value {
    let direction = match event.direction {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
        Direction::Internal => "internal",
    };
    let owner = event.extension_owner.as_ref().map(|o| {
        json!({
            "extension": o.extension,
            "name": format!("{} {}", o.first_name, o.last_name).trim(),
            "email": o.email,
        })
    });
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
        "recordingStatus": event.recording_status,
    })
}
