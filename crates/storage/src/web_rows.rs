//! Tables of the status page (`connectzero::web`): per-tenant settings saved on
//! the page, and retry requests for parked calls. Also the read-only
//! queries the page shows (calls today by outcome, calls needing
//! attention, recordings).
//!
//! Kept apart from the tenants' own configuration on purpose: the page
//! stores overrides, applied on top of whatever configures the tenant, so
//! the configuration file (or another tenant store) stays the source of
//! everything the page does not edit.

use super::{CallRecord, Storage};
use crate::call_rows::{RECORD_COLUMNS, record_from_row};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use guest_support::protocol::CURSOR_KEY;

/// What asking to retry a parked call found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryRequest {
    /// Queued: the next tick of the tenant releases it.
    Queued,
    /// Not queued: the call is not parked (any more). Holds its current
    /// outcome, or `None` when there is no such call.
    NotParked(Option<String>),
}

/// Calls and recordings of one tenant, as the status page shows them.
#[derive(Clone, Debug, Default)]
pub struct CallSummary {
    /// `(outcome, count)` of calls handled since the given time.
    pub outcomes: Vec<(String, i64)>,
    /// Recordings waiting for 3CX to finalise them.
    pub recordings_pending: i64,
    /// Recordings given up on (all time).
    pub recordings_gave_up: i64,
}

impl Storage {
    /// The settings saved on the status page for `tenant` (JSON) and when.
    pub fn web_settings(&self, tenant: &str) -> rusqlite::Result<Option<(String, i64)>> {
        self.lock()?
            .query_row(
                "SELECT settings, updated_at_ms FROM web_settings WHERE tenant = ?1",
                params![tenant],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
    }

    /// Save the status page's settings for `tenant`; `None` removes them
    /// (the configuration applies again).
    pub fn set_web_settings(
        &self,
        tenant: &str,
        settings: Option<&str>,
        now_ms: i64,
    ) -> rusqlite::Result<()> {
        let conn = self.lock()?;
        match settings {
            Some(json) => conn.execute(
                "INSERT INTO web_settings (tenant, settings, updated_at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant) DO UPDATE SET settings = excluded.settings,
                     updated_at_ms = excluded.updated_at_ms",
                params![tenant, json, now_ms],
            )?,
            None => conn.execute(
                "DELETE FROM web_settings WHERE tenant = ?1",
                params![tenant],
            )?,
        };
        Ok(())
    }

    /// Ask for the parked call `call_key` to be retried. Only a call the
    /// log shows as parked is queued, and it stops showing as parked in
    /// the same transaction, so a second request (a double click, two
    /// admins) finds nothing to queue: the call is retried once.
    pub fn request_retry(
        &self,
        tenant: &str,
        call_key: &str,
        now_ms: i64,
    ) -> rusqlite::Result<RetryRequest> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = tx.execute(
            "UPDATE calls SET outcome = 'retrying',
                 detail = 'retry requested on the status page (was: ' || detail || ')'
             WHERE tenant = ?1 AND call_key = ?2 AND outcome = 'parked'",
            params![tenant, call_key],
        )?;
        if changed == 0 {
            let outcome: Option<String> = tx
                .query_row(
                    "SELECT outcome FROM calls WHERE tenant = ?1 AND call_key = ?2",
                    params![tenant, call_key],
                    |r| r.get(0),
                )
                .optional()?;
            return Ok(RetryRequest::NotParked(outcome));
        }
        tx.execute(
            "INSERT INTO web_retries (tenant, call_key, requested_at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (tenant, call_key) DO NOTHING",
            params![tenant, call_key, now_ms],
        )?;
        tx.commit()?;
        Ok(RetryRequest::Queued)
    }

    /// Up to `max` calls of `tenant` whose retry is due at `now_ms`,
    /// longest waiting first.
    pub fn pending_retries(
        &self,
        tenant: &str,
        now_ms: i64,
        max: usize,
    ) -> rusqlite::Result<Vec<String>> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(
            "SELECT call_key FROM web_retries WHERE tenant = ?1 AND requested_at_ms <= ?2
             ORDER BY requested_at_ms LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![tenant, now_ms, max as i64], |r| r.get(0))?;
        rows.collect()
    }

    /// A retry that did not settle the call: try it again at `at_ms`,
    /// behind the requests already due, so it cannot hold them up.
    pub fn defer_retry(&self, tenant: &str, call_key: &str, at_ms: i64) -> rusqlite::Result<()> {
        self.lock()?.execute(
            "UPDATE web_retries SET requested_at_ms = ?3 WHERE tenant = ?1 AND call_key = ?2",
            params![tenant, call_key, at_ms],
        )?;
        Ok(())
    }

    /// A retry that cannot run (the call is gone from 3CX, say): the call
    /// is parked again with `reason`, so the page shows it and offers
    /// Retry, instead of staying "retrying" with nothing on its way.
    pub fn park_again(&self, tenant: &str, call_key: &str, reason: &str) -> rusqlite::Result<()> {
        self.lock()?.execute(
            "UPDATE calls SET outcome = 'parked', detail = ?3
             WHERE tenant = ?1 AND call_key = ?2 AND outcome = 'retrying'",
            params![tenant, call_key, reason],
        )?;
        Ok(())
    }

    /// A retry request is settled (the call ran, or cannot run): take it
    /// off the list.
    pub fn retry_done(&self, tenant: &str, call_key: &str) -> rusqlite::Result<()> {
        self.lock()?.execute(
            "DELETE FROM web_retries WHERE tenant = ?1 AND call_key = ?2",
            params![tenant, call_key],
        )?;
        Ok(())
    }

    /// One call of `tenant`'s call log.
    pub fn call_record(
        &self,
        tenant: &str,
        call_key: &str,
    ) -> rusqlite::Result<Option<CallRecord>> {
        self.lock()?
            .query_row(
                &format!("SELECT {RECORD_COLUMNS} FROM calls WHERE tenant = ?1 AND call_key = ?2"),
                params![tenant, call_key],
                record_from_row,
            )
            .optional()
    }

    /// Calls handled since `since_ms` by outcome, and the recordings.
    pub fn call_summary(&self, tenant: &str, since_ms: i64) -> rusqlite::Result<CallSummary> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare(
            "SELECT outcome, COUNT(*) FROM calls WHERE tenant = ?1 AND handled_at_ms >= ?2
             GROUP BY outcome ORDER BY outcome",
        )?;
        let outcomes = stmt
            .query_map(params![tenant, since_ms], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let (recordings_pending, recordings_gave_up) = conn.query_row(
            "SELECT COALESCE(SUM(recording = 'pending'), 0),
                    COALESCE(SUM(recording LIKE 'gave-up%'), 0)
             FROM calls WHERE tenant = ?1",
            params![tenant],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(CallSummary {
            outcomes,
            recordings_pending,
            recordings_gave_up,
        })
    }

    /// The newest `limit` calls of `tenant` matching `filter`, newest
    /// handled first.
    pub fn recent_calls(
        &self,
        tenant: &str,
        filter: CallFilter,
        limit: usize,
    ) -> rusqlite::Result<Vec<CallRecord>> {
        let condition = match filter {
            CallFilter::All => "1",
            CallFilter::NeedsAttention => "outcome IN ('parked', 'retrying')",
            CallFilter::Recordings => {
                "(recording = 'pending' OR recording LIKE 'gave-up%' OR insights = 'pending' OR insights LIKE 'gave-up%')"
            }
        };
        let conn = self.lock()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {RECORD_COLUMNS} FROM calls WHERE tenant = ?1 AND {condition}
             ORDER BY handled_at_ms DESC, call_key LIMIT ?2"
        ))?;
        let rows = stmt.query_map(
            params![tenant, i64::try_from(limit).unwrap_or(i64::MAX)],
            record_from_row,
        )?;
        rows.collect()
    }

    /// The poll cursor of `tenant` (ms), if it has polled.
    pub fn poll_cursor(&self, tenant: &str) -> rusqlite::Result<Option<i64>> {
        Ok(self
            .kv_get(tenant, CURSOR_KEY)?
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }
}

/// Which calls [`Storage::recent_calls`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallFilter {
    /// Every call.
    All,
    /// Parked calls and calls waiting to be retried.
    NeedsAttention,
    /// Calls whose recording, or 3CX's insights, are pending or were
    /// given up.
    Recordings,
}

/// Whether `key` names a call (`3cx:<call id>@<start ms>`, or
/// `3cx-segment:<leg id>@<start ms>` for a segment 3CX gave no call id),
/// as opposed to an unreadable row (`3cx-row:…`), which has no ledger entry.
pub fn is_call_key(key: &str) -> bool {
    let Some(rest) = key
        .strip_prefix("3cx:")
        .or_else(|| key.strip_prefix("3cx-segment:"))
    else {
        return false;
    };
    rest.split_once('@').is_some_and(|(id, start)| {
        [id, start]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parked_call(db: &Storage, key: &str) {
        db.record_call(&CallRecord {
            tenant: "t".into(),
            call_key: key.into(),
            direction: "inbound".into(),
            caller: "+1".into(),
            callee: "101".into(),
            outcome: "parked".into(),
            detail: "HighLevel answered 422".into(),
            rule: None,
            contact_id: None,
            ended_at_ms: 1,
            handled_at_ms: 2,
            recording: "none".into(),
            triggers: String::new(),
            insights: "none".into(),
        })
        .unwrap();
    }

    #[test]
    fn a_parked_call_is_queued_once_and_settled_once() {
        let db = Storage::in_memory().unwrap();
        let key = "3cx:77@5000";
        parked_call(&db, key);
        let done = br#"{"state":"done","call":"3cx:77@5000","outcome":"parked:HighLevel answered 422","at":9}"#;
        db.kv_set("t", "ledger/1@5000", done).unwrap();
        db.kv_set("t", "ledger/2@6000", done).unwrap();
        let other = br#"{"state":"done","call":"3cx:78@5000","outcome":"parked:x","at":9}"#;
        db.kv_set("t", "ledger/3@5000", other).unwrap();
        db.kv_set("t", CURSOR_KEY, b"90000").unwrap();

        assert_eq!(
            db.request_retry("t", key, 10).unwrap(),
            RetryRequest::Queued
        );
        assert_eq!(
            db.request_retry("t", key, 11).unwrap(),
            RetryRequest::NotParked(Some("retrying".into()))
        );
        assert_eq!(
            db.request_retry("t", "3cx:1@1", 11).unwrap(),
            RetryRequest::NotParked(None)
        );
        assert_eq!(
            db.pending_retries("t", 20, 10).unwrap(),
            vec![key.to_string()]
        );

        // Queueing a retry changes neither the ledger nor the cursor: the
        // replay reads the call alone (`Pipeline::replay_call`).
        assert_eq!(db.poll_cursor("t").unwrap(), Some(90000));
        assert_eq!(db.kv_get("t", "ledger/2@6000").unwrap().unwrap(), done);
        assert_eq!(db.kv_get("t", "ledger/3@5000").unwrap().unwrap(), other);
        // Deferred: not due until then, and behind the due ones.
        db.defer_retry("t", key, 500).unwrap();
        assert!(db.pending_retries("t", 20, 10).unwrap().is_empty());
        assert_eq!(
            db.pending_retries("t", 500, 10).unwrap(),
            vec![key.to_string()]
        );
        db.retry_done("t", key).unwrap();
        assert!(db.pending_retries("t", 500, 10).unwrap().is_empty());
        assert_eq!(
            db.call_record("t", key)
                .unwrap()
                .map(|r| r.outcome)
                .as_deref(),
            Some("retrying")
        );
    }

    #[test]
    fn call_keys_are_told_from_unreadable_rows() {
        assert!(is_call_key("3cx:77@5000"));
        assert!(is_call_key("3cx-segment:5@1000"));
        assert!(!is_call_key("3cx-row:424242"));
        assert!(!is_call_key("3cx:77@5000 and more"));
    }

    #[test]
    fn saved_settings_round_trip_and_can_be_removed() {
        let db = Storage::in_memory().unwrap();
        assert_eq!(db.web_settings("t").unwrap(), None);
        db.set_web_settings("t", Some("{}"), 5).unwrap();
        assert_eq!(db.web_settings("t").unwrap(), Some(("{}".into(), 5)));
        db.set_web_settings("t", None, 6).unwrap();
        assert_eq!(db.web_settings("t").unwrap(), None);
    }
}
