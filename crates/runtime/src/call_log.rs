//! The host's side of `connectzero:pipeline/call-log`: what the composed
//! tick writes down about each call goes into the call log (SQLite table
//! `calls`, read by the status page and the demo), the metrics and the
//! log. The tick calls it before the ledger records the calls, so a crash
//! in between re-runs them rather than leaving them unrecorded.

use crate::allowance::Allowance;
use crate::bindings::tick::connectzero::pipeline::call_log::{
    self, DeliveryCount, HandledCall, Host, InsightsUpdate, RecordingUpdate,
};
use crate::bindings::types::{CallFate, CallOutcome, Direction, StageError, UnreadableRow};
use crate::kv::KvCtx;
use crate::names::{describe, direction_name, fate_words, rule_name};
use crate::storage::CallRecord;
use guest_support::recordings::RecordingState;
use wasmtime::component::{HasData, Linker};

/// What the call log's functions work with during one call: the tenant's
/// namespace and the database, and the invocation's allowance (database
/// time is the host's, credited back to the component).
pub struct CallLogView<'a> {
    /// The tenant (its namespace) and the database.
    pub kv: &'a KvCtx,
    /// The invocation's time allowance.
    pub allowance: &'a Allowance,
}

/// The call log interface's [`HasData`]: its functions get a
/// [`CallLogView`].
pub struct CallLogGrant;

impl HasData for CallLogGrant {
    type Data<'a> = CallLogView<'a>;
}

/// Link `connectzero:pipeline/call-log`, with `view` picking its parts
/// out of the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> CallLogView<'_>,
) -> wasmtime::Result<()> {
    call_log::add_to_linker::<T, CallLogGrant>(linker, view)
}

impl Host for CallLogView<'_> {
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

    fn record_insights(
        &mut self,
        updates: Vec<InsightsUpdate>,
    ) -> wasmtime::Result<Result<(), StageError>> {
        let _work = self.allowance.credited();
        let written = updates.iter().try_for_each(|u| {
            let state = guest_support::insights::InsightsState::from(u.status.clone());
            if let guest_support::insights::InsightsState::GaveUp(why) = &state {
                tracing::warn!(tenant = %self.kv.namespace, call = %u.call_key, reason = %crate::redact::text(why), "gave up on 3CX's insights; the call stays posted");
            }
            self.kv
                .storage
                .set_insights(&self.kv.namespace, &u.call_key, &state.log_text())
        });
        Ok(self.written("note insights", written))
    }
}

impl CallLogView<'_> {
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
            insights: "none".into(),
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
        insights: "none".into(),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::{Call, CallLeg, DnKind, MatchRule, Party, RecordingState as Wit};
    use crate::storage::Storage;
    use std::time::Duration;

    fn party(number: &str, external: bool) -> Party {
        Party {
            number: number.into(),
            display_name: None,
            extension: (!external).then(|| number.into()),
            external,
            owner: None,
            kind: if external {
                DnKind::ExternalLine
            } else {
                DnKind::Extension
            },
        }
    }

    /// An outbound call from extension 101 through a queue to an outside
    /// number, recorded.
    fn outbound_call(key: &str) -> Call {
        let leg = |callee: Party| CallLeg {
            leg_id: 1,
            start_time: 1_000,
            end_time: 61_000,
            direction: Direction::Outbound,
            answered: true,
            duration_secs: 60,
            caller: party("101", false),
            callee,
            recording: Some(crate::bindings::types::RecordingRef { id: 7 }),
        };
        Call {
            key: key.into(),
            legs: vec![leg(party("800", false)), leg(party("+15551230000", true))],
            direction: Direction::Outbound,
            answered: true,
            start_time: 1_000,
            end_time: 61_000,
            duration_secs: 60,
            caller: party("101", false),
            callee: party("800", false),
            answered_by: None,
            route: Vec::new(),
            missed_reason: None,
        }
    }

    fn handled(key: &str, fate: CallFate) -> HandledCall {
        HandledCall {
            call: outbound_call(key),
            fate,
            rule: Some(MatchRule::CallerNumber),
            contact_id: Some("c1".into()),
            conversation_id: None,
            user_id: None,
        }
    }

    fn with_view<R>(storage: &Storage, f: impl FnOnce(&mut CallLogView<'_>) -> R) -> R {
        let kv = KvCtx {
            namespace: "acme".into(),
            storage: storage.clone(),
        };
        let allowance = Allowance::new(Duration::from_secs(30));
        f(&mut CallLogView {
            kv: &kv,
            allowance: &allowance,
        })
    }

    #[test]
    fn handled_calls_are_written_down_and_calls_this_run_did_not_handle_are_not() {
        let storage = Storage::in_memory().unwrap();
        let calls = vec![
            handled(
                "posted",
                CallFate::Settled(CallOutcome::Posted("m1".into())),
            ),
            handled("elsewhere", CallFate::InFlight),
            handled(
                "before",
                CallFate::DoneBefore(CallOutcome::Posted("m0".into())),
            ),
        ];
        with_view(&storage, |view| view.record_calls(calls).unwrap().unwrap());
        let rows = storage.calls("acme").unwrap();
        assert_eq!(rows.len(), 1, "only the call this run handled");
        let row = &rows[0];
        assert_eq!(
            (row.call_key.as_str(), row.outcome.as_str()),
            ("posted", "posted")
        );
        assert_eq!(row.direction, "outbound");
        // An outbound call is logged with the outside number it reached,
        // not the queue it started at.
        assert_eq!(row.callee, "+15551230000");
        assert_eq!(row.contact_id.as_deref(), Some("c1"));
        assert_eq!(
            row.recording,
            RecordingState::initial(true, true).log_text()
        );
        // Another tenant's log is untouched.
        assert!(storage.calls("other").unwrap().is_empty());
    }

    #[test]
    fn unreadable_rows_are_parked_under_their_leg_id() {
        let storage = Storage::in_memory().unwrap();
        let rows = vec![
            UnreadableRow {
                leg_id: Some(42),
                reason: "no start time".into(),
            },
            UnreadableRow {
                leg_id: None,
                reason: "not an object".into(),
            },
        ];
        with_view(&storage, |view| {
            view.record_unreadable(rows).unwrap().unwrap()
        });
        let parked = storage.calls("acme").unwrap();
        let keys: Vec<&str> = parked.iter().map(|r| r.call_key.as_str()).collect();
        assert!(keys.contains(&"3cx-row:42"), "{keys:?}");
        assert!(keys.contains(&"3cx-row:unknown:not an object"), "{keys:?}");
        assert!(parked.iter().all(|r| r.outcome == "parked"));
    }

    #[test]
    fn recordings_and_deliveries_update_the_logged_call() {
        let storage = Storage::in_memory().unwrap();
        with_view(&storage, |view| {
            let posted = CallFate::Settled(CallOutcome::Posted("m1".into()));
            view.record_calls(vec![handled("k", posted)])
                .unwrap()
                .unwrap();
            view.record_recordings(vec![RecordingUpdate {
                call_key: "k".into(),
                status: Wit::Attached,
            }])
            .unwrap()
            .unwrap();
            view.record_deliveries(vec![DeliveryCount {
                call_key: "k".into(),
                trigger: "call.ended".into(),
                count: 1,
            }])
            .unwrap()
            .unwrap();
        });
        let row = storage.calls("acme").unwrap().remove(0);
        assert_eq!(
            row.recording,
            RecordingState::from(Wit::Attached).log_text()
        );
        assert!(row.triggers.contains("call.ended"), "{}", row.triggers);
    }

    #[test]
    fn a_failed_write_is_a_storage_error_without_host_detail() {
        let storage = Storage::in_memory().unwrap();
        with_view(&storage, |view| {
            let failed: Result<(), anyhow::Error> = Err(anyhow::anyhow!(
                "disk I/O error at /var/lib/connectzero/secret-path.db"
            ));
            match view.written("write the call log", failed) {
                Err(StageError::Storage(message)) => {
                    assert!(!message.contains("/var/lib"), "{message}")
                }
                other => panic!("expected a storage error, got {other:?}"),
            }
        });
    }
}
