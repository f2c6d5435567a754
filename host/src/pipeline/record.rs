//! What the host writes down about each call: its outcome in the call log,
//! and rows 3CX sent that could not be read.

use super::{Handled, Pipeline, Tenant, describe, direction_name, rule_name};
use crate::bindings::dedup::exports::connectzero::pipeline::dedup::Outcome;
use crate::bindings::poll::exports::connectzero::pipeline::poll::PollBatch;
use crate::bindings::types::Direction;
use crate::storage::CallRecord;

impl Pipeline {
    pub(super) fn park_rejected_rows(
        &self,
        tenant: &Tenant,
        batch: &PollBatch,
    ) -> anyhow::Result<()> {
        let now = chrono::Utc::now().timestamp_millis();
        for row in &batch.rejected {
            let key = match row.leg_id {
                Some(id) => format!("3cx-row:{id}"),
                None => format!("3cx-row:unknown:{}", row.reason),
            };
            if self.storage.call_outcome(tenant.id(), &key)?.is_none() {
                tracing::warn!(tenant = tenant.id(), row = %key, reason = %row.reason, "parked an unreadable 3CX call-history row");
            }
            self.storage.record_call(&CallRecord {
                tenant: tenant.id().to_string(),
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

    pub(super) fn record(&self, tenant: &Tenant, h: &Handled) -> anyhow::Result<()> {
        let (outcome, detail) = match &h.outcome {
            Ok(Outcome::Posted(id)) => ("posted", id.clone()),
            Ok(Outcome::Skipped(reason)) => ("skipped", reason.clone()),
            Ok(Outcome::Parked(reason)) => ("parked", reason.clone()),
            Err(error) => ("retrying", describe(error)),
        };
        crate::metrics::call_recorded(tenant.id(), &h.outcome, h.call.end_time);
        // Numbers are personal data: only ever logged masked.
        let (caller, callee) = (
            crate::redact::phone(&h.call.caller.number),
            crate::redact::phone(&h.call.callee.number),
        );
        match &h.outcome {
            Ok(Outcome::Parked(reason)) => {
                tracing::warn!(tenant = tenant.id(), call = %h.call.key, %caller, %callee, reason = %crate::redact::text(reason), "call parked")
            }
            Err(error) => {
                tracing::warn!(tenant = tenant.id(), call = %h.call.key, %caller, %callee, error = %crate::redact::text(&describe(error)), "call will be retried")
            }
            Ok(_) => {
                tracing::info!(tenant = tenant.id(), call = %h.call.key, direction = direction_name(h.call.direction), %caller, %callee, outcome, rule = h.rule.map(rule_name), "call handled")
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
        self.storage.record_call(&CallRecord {
            tenant: tenant.id().to_string(),
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
            recording: initial_recording_status(h).into(),
            triggers: String::new(),
        })?;
        Ok(())
    }
}

/// "pending" for a posted call with a recording (the attach stage takes
/// over), otherwise "none".
pub(super) fn initial_recording_status(h: &Handled) -> &'static str {
    let posted = matches!(h.outcome, Ok(Outcome::Posted(_)));
    if posted && h.call.legs.iter().any(|l| l.recording.is_some()) {
        "pending"
    } else {
        "none"
    }
}
