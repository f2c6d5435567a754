//! # call-log-provider: where a tick writes down each call, on Spin
//!
//! The bundled host implements `connectzero:pipeline/call-log` natively
//! (its SQLite call log, the status page, metrics). Spin has neither, so
//! this component is composed (wac) into the tick there: outcomes worth an
//! operator's eye (parked, retrying) go to stderr, which Spin keeps as the
//! component's log, and unreadable 3CX rows are kept with their reason
//! under `app/parked/3cx-row:<id>` in the key-value store.
//!
//! A Spin-side provider: it depends on `guest-support` and its world's
//! imports, never on the host, whose call log it stands in for.

use guest_support::api::describe;
use guest_support::bindings::connectzero::pipeline::types::{
    CallFate, CallOutcome, StageError, UnreadableRow,
};
use guest_support::recordings::RecordingState;
use guest_support::{kv, redact};

wit_bindgen::generate!({
    path: "../../wit",
    world: "connectzero:pipeline/call-log-provider",
    with: {
        "connectzero:pipeline/types@0.1.0": guest_support::bindings::connectzero::pipeline::types,
        "connectzero:matcher/types@0.1.0": guest_support::bindings::connectzero::matcher::types,
        "wasi:keyvalue/store@0.2.0-draft2": guest_support::bindings::wasi::keyvalue::store,
    },
});

use exports::connectzero::pipeline::call_log::{
    DeliveryCount, Guest, HandledCall, InsightsUpdate, RecordingUpdate,
};

struct Provider;

impl Guest for Provider {
    fn record_calls(calls: Vec<HandledCall>) -> Result<(), StageError> {
        for call in &calls {
            if let Some(line) = log_line(call) {
                // Reasons and errors may quote a caller's number.
                eprintln!("{}", redact::text(&line));
            }
        }
        Ok(())
    }

    fn record_unreadable(rows: Vec<UnreadableRow>) -> Result<(), StageError> {
        let bucket = kv::open()?;
        for row in &rows {
            let key = parked_key(row);
            if !bucket.exists(&key).unwrap_or(false) {
                eprintln!(
                    "connectzero: parked an unreadable 3CX call-history row: {}",
                    redact::text(&row.reason)
                );
            }
            kv::set_json(&bucket, &key, &row.reason)?;
        }
        Ok(())
    }

    fn record_recordings(updates: Vec<RecordingUpdate>) -> Result<(), StageError> {
        // The recording queue keeps the state; only a give-up is news.
        for update in updates {
            let state = RecordingState::from(update.status);
            if matches!(state, RecordingState::GaveUp(_)) {
                eprintln!(
                    "connectzero: recording of {}: {}",
                    update.call_key,
                    redact::text(&state.log_text())
                );
            }
        }
        Ok(())
    }

    fn record_deliveries(_counts: Vec<DeliveryCount>) -> Result<(), StageError> {
        // The trigger queue keeps what was delivered; Spin has no call log
        // column to update.
        Ok(())
    }

    fn record_insights(updates: Vec<InsightsUpdate>) -> Result<(), StageError> {
        // The insights queue keeps the state (`insights/done/<call>`);
        // only a give-up is news.
        for update in updates {
            let state = guest_support::insights::InsightsState::from(update.status);
            if matches!(state, guest_support::insights::InsightsState::GaveUp(_)) {
                eprintln!(
                    "connectzero: 3CX insights of {}: {}",
                    update.call_key,
                    redact::text(&state.log_text())
                );
            }
        }
        Ok(())
    }
}

/// Where an unreadable row is kept.
pub fn parked_key(row: &UnreadableRow) -> String {
    match row.leg_id {
        Some(id) => format!("app/parked/3cx-row:{id}"),
        None => format!("app/parked/3cx-row:unknown:{}", row.reason),
    }
}

/// The log line of a call an operator should know about: parked or
/// retrying. Posted and skipped calls are in the CRM and the ledger.
pub fn log_line(call: &HandledCall) -> Option<String> {
    let key = &call.call.key;
    match &call.fate {
        CallFate::Settled(CallOutcome::Parked(reason)) => {
            Some(format!("connectzero: call {key} parked: {reason}"))
        }
        CallFate::Retrying(error) => Some(format!(
            "connectzero: call {key} will be retried: {}",
            describe(error)
        )),
        CallFate::Settled(CallOutcome::Posted(_) | CallOutcome::Skipped(_))
        | CallFate::DoneBefore(_)
        | CallFate::InFlight => None,
    }
}

// Exported only when building the component (see the stage crates).
#[cfg(target_arch = "wasm32")]
export!(Provider);
