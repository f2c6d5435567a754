//! The host's side of `connectzero:pipeline/call-log`: what the composed
//! tick writes down about each call goes into the call log (SQLite table
//! `calls`, read by the status page and the demo), the metrics and the
//! log. The tick calls it before the ledger records the calls, so a crash
//! in between re-runs them rather than leaving them unrecorded.

use crate::bindings::tick::connectzero::pipeline::call_log::{
    DeliveryCount, HandledCall, Host, RecordingUpdate,
};
use crate::bindings::types::{CallFate, CallOutcome, Direction, StageError, UnreadableRow};
use crate::names::{describe, direction_name, fate_words, rule_name};
use crate::state::StoreData;
use crate::storage::CallRecord;
use guest_support::recordings::RecordingState;

impl Host for StoreData {
    fn record_calls(
        &mut self,
        calls: Vec<HandledCall>,
    ) -> wasmtime::Result<Result<(), StageError>> {
        // Database time is the host's, not the component's.
        let _work = self.allowance.credited();
        let written = calls
            .iter()
            .try_for_each(|call| record(&self.kv.storage, &self.kv.namespace, call));
        Ok(self.written(
            "write the call log; the calls run again after their claims expire",
            written,
        ))
    }

    fn record_unreadable(
        &mut self,
        rows: Vec<UnreadableRow>,
    ) -> wasmtime::Result<Result<(), StageError>> {
        let _work = self.allowance.credited();
        let written = park_unreadable(&self.kv.storage, &self.kv.namespace, &rows);
        Ok(self.written("park unreadable 3CX rows", written))
    }

    fn record_recordings(
        &mut self,
        updates: Vec<RecordingUpdate>,
    ) -> wasmtime::Result<Result<(), StageError>> {
        let _work = self.allowance.credited();
        let written = updates.iter().try_for_each(|u| {
            self.kv.storage.set_recording(
                &self.kv.namespace,
                &u.call_key,
                &RecordingState::from(u.status.clone()).log_text(),
            )
        });
        Ok(self.written("note recordings", written))
    }

    fn record_deliveries(
        &mut self,
        counts: Vec<DeliveryCount>,
    ) -> wasmtime::Result<Result<(), StageError>> {
        let _work = self.allowance.credited();
        let written = counts.iter().try_for_each(|c| {
            self.kv.storage.add_trigger_deliveries(
                &self.kv.namespace,
                &c.call_key,
                &c.trigger,
                c.count,
            )
        });
        Ok(self.written("note trigger deliveries", written))
    }
}

impl StoreData {
    /// The component's answer for a call log write: a database failure is
    /// logged here in full and answered as a storage error (the component
    /// sees no host detail).
    fn written<E: Into<anyhow::Error>>(
        &self,
        what: &str,
        written: Result<(), E>,
    ) -> Result<(), StageError> {
        written.map_err(|error| {
            let error: anyhow::Error = error.into();
            tracing::error!(tenant = %self.kv.namespace, error = %format!("{error:#}"), "could not {what}");
            StageError::Storage("the host could not write its call log".into())
        })
    }
}

/// Park rows 3CX sent that could not be read, each under `3cx-row:<id>`.
pub fn park_unreadable(
    storage: &crate::storage::Storage,
    tenant: &str,
    rows: &[UnreadableRow],
) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    for row in rows {
        let key = match row.leg_id {
            Some(id) => format!("3cx-row:{id}"),
            None => format!("3cx-row:unknown:{}", row.reason),
        };
        if storage.call_outcome(tenant, &key)?.is_none() {
            tracing::warn!(tenant, row = %key, reason = %row.reason, "parked an unreadable 3CX call-history row");
        }
        storage.record_call(&CallRecord {
            tenant: tenant.to_string(),
            call_key: key,
            direction: "unknown".into(),
            caller: String::new(),
            callee: String::new(),
            outcome: "parked".into(),
            detail: row.reason.clone(),
            rule: None,
            contact_id: None,
            ended_at_ms: now,
            handled_at_ms: now,
            recording: "none".into(),
            triggers: String::new(),
        })?;
    }
    Ok(())
}

/// Write one handled call down: metrics, a log line, its call log row.
fn record(storage: &crate::storage::Storage, tenant: &str, h: &HandledCall) -> anyhow::Result<()> {
    if matches!(h.fate, CallFate::DoneBefore(_) | CallFate::InFlight) {
        // Not handled by this run (the WIT says the call log never
        // receives these): the ledger holds the call; nothing to write.
        return Ok(());
    }
    let (outcome, detail) = fate_words(&h.fate);
    let posted = matches!(h.fate, CallFate::Settled(CallOutcome::Posted(_)));
    if posted {
        crate::telemetry::sink().call_posted(tenant, h.call.end_time);
    }
    // Numbers are personal data: only ever logged masked.
    let (caller, callee) = (
        crate::redact::phone(&h.call.caller.number),
        crate::redact::phone(&h.call.callee.number),
    );
    match &h.fate {
        CallFate::Settled(CallOutcome::Parked(reason)) => {
            tracing::warn!(tenant, call = %h.call.key, %caller, %callee, reason = %crate::redact::text(reason), "call parked")
        }
        CallFate::Retrying(error) => {
            tracing::warn!(tenant, call = %h.call.key, %caller, %callee, error = %crate::redact::text(&describe(error)), "call will be retried")
        }
        _ => {
            tracing::info!(tenant, call = %h.call.key, direction = direction_name(h.call.direction), %caller, %callee, outcome, rule = h.rule.map(rule_name), "call handled")
        }
    }
    let callee = match h.call.direction {
        Direction::Outbound => h
            .call
            .legs
            .iter()
            .map(|l| &l.callee)
            .find(|p| p.external)
            .unwrap_or(&h.call.callee),
        _ => &h.call.callee,
    };
    storage.record_call(&CallRecord {
        tenant: tenant.to_string(),
        call_key: h.call.key.clone(),
        direction: direction_name(h.call.direction).into(),
        caller: h.call.caller.number.clone(),
        callee: callee.number.clone(),
        outcome: outcome.into(),
        detail,
        rule: h.rule.map(|r| rule_name(r).to_string()),
        contact_id: h.contact_id.clone(),
        ended_at_ms: h.call.end_time,
        handled_at_ms: chrono::Utc::now().timestamp_millis(),
        recording: RecordingState::initial(
            posted,
            h.call.legs.iter().any(|l| l.recording.is_some()),
        )
        .log_text(),
        triggers: String::new(),
    })?;
    Ok(())
}
