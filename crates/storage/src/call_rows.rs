//! The call log: one row per call with what became of it (posted,
//! skipped, parked, retrying), its recording and the workflow deliveries,
//! as the status page, the demo and the metrics read it.

use crate::Storage;
use rusqlite::{OptionalExtension, params};

/// Add a call-log row, or update the columns a later outcome changes
/// (the delivery counts in `triggers` only ever grow through
/// `add_trigger_deliveries`).
const CALL_UPSERT: &str = "INSERT INTO calls (tenant, call_key, direction, caller, callee, outcome, detail, rule, contact_id, ended_at_ms, handled_at_ms, recording, triggers, insights)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
     ON CONFLICT (tenant, call_key) DO UPDATE SET
         outcome = excluded.outcome, detail = excluded.detail, rule = excluded.rule,
         contact_id = excluded.contact_id, handled_at_ms = excluded.handled_at_ms,
         recording = excluded.recording";

/// One call's outcome, as the host recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    /// Tenant id.
    pub tenant: String,
    /// The call's key (`3cx:<call id>@<start ms>`).
    pub call_key: String,
    /// "inbound", "outbound" or "internal".
    pub direction: String,
    /// Caller number as 3CX reported it.
    pub caller: String,
    /// Callee number as 3CX reported it.
    pub callee: String,
    /// "posted", "skipped", "parked" or "retrying".
    pub outcome: String,
    /// Message id, skip reason, park reason or last error.
    pub detail: String,
    /// The rule that matched, when one did.
    pub rule: Option<String>,
    /// The CRM contact, when matched or created.
    pub contact_id: Option<String>,
    /// End of the call in 3CX, ms since the epoch.
    pub ended_at_ms: i64,
    /// When the host recorded this outcome, ms since the epoch.
    pub handled_at_ms: i64,
    /// "none", "pending", "attached" or "gave-up: <reason>".
    pub recording: String,
    /// Workflow triggers delivered for the call, e.g. "call.ended×1".
    pub triggers: String,
    /// Where 3CX's insights of the call stand: "none", "pending",
    /// "written" or "gave-up: <reason>" (set by `set_insights` once the
    /// row exists; an upsert never changes it).
    pub insights: String,
}

impl Storage {
    /// Record (or update) a call's outcome.
    pub fn record_call(&self, record: &CallRecord) -> rusqlite::Result<()> {
        self.record_calls(std::slice::from_ref(record))
    }

    /// Delete up to `max` of `tenant`'s call-log rows handled before
    /// `before_ms`, oldest first, keeping parked and retrying calls (an
    /// operator still has to settle them, or a retry is on its way).
    /// Returns how many went.
    pub fn prune_calls(&self, tenant: &str, before_ms: i64, max: usize) -> rusqlite::Result<usize> {
        self.lock()?.execute(
            "DELETE FROM calls WHERE rowid IN (
                 SELECT rowid FROM calls
                 WHERE tenant = ?1 AND handled_at_ms < ?2 AND outcome NOT IN ('parked', 'retrying')
                 ORDER BY handled_at_ms LIMIT ?3)",
            params![tenant, before_ms, max as i64],
        )
    }

    /// How many calls `tenant`'s call log holds.
    pub fn call_count(&self, tenant: &str) -> rusqlite::Result<i64> {
        self.lock()?.query_row(
            "SELECT count(*) FROM calls WHERE tenant = ?1",
            params![tenant],
            |r| r.get(0),
        )
    }

    /// Record (or update) many calls' outcomes in one transaction (one
    /// commit: the retention benchmark writes days of calls at once).
    pub fn record_calls(&self, records: &[CallRecord]) -> rusqlite::Result<()> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            {
                let mut upsert = tx.prepare_cached(CALL_UPSERT)?;
                for r in records {
                    upsert.execute(params![
                        r.tenant,
                        r.call_key,
                        r.direction,
                        r.caller,
                        r.callee,
                        r.outcome,
                        r.detail,
                        r.rule,
                        r.contact_id,
                        r.ended_at_ms,
                        r.handled_at_ms,
                        r.recording,
                        r.triggers,
                        r.insights
                    ])?;
                }
            }
            tx.commit()
        })
    }

    /// Set a call's recording status.
    pub fn set_recording(
        &self,
        tenant: &str,
        call_key: &str,
        status: &str,
    ) -> rusqlite::Result<()> {
        self.write(|conn| {
            conn.execute(
                "UPDATE calls SET recording = ?3 WHERE tenant = ?1 AND call_key = ?2",
                params![tenant, call_key, status],
            )
        })?;
        Ok(())
    }

    /// Set where a call's 3CX insights stand.
    pub fn set_insights(&self, tenant: &str, call_key: &str, status: &str) -> rusqlite::Result<()> {
        self.write(|conn| {
            conn.execute(
                "UPDATE calls SET insights = ?3 WHERE tenant = ?1 AND call_key = ?2",
                params![tenant, call_key, status],
            )
        })?;
        Ok(())
    }

    /// Note `count` deliveries of trigger `key` for a call.
    pub fn add_trigger_deliveries(
        &self,
        tenant: &str,
        call_key: &str,
        key: &str,
        count: u32,
    ) -> rusqlite::Result<()> {
        let entry = format!("{key}×{count}");
        self.write(|conn| {
            conn.execute(
                "UPDATE calls SET triggers = CASE WHEN triggers = '' THEN ?3 ELSE triggers || ' ' || ?3 END
                 WHERE tenant = ?1 AND call_key = ?2",
                params![tenant, call_key, entry],
            )
        })?;
        Ok(())
    }

    /// The recorded outcome of one call, if any.
    pub fn call_outcome(&self, tenant: &str, call_key: &str) -> rusqlite::Result<Option<String>> {
        self.lock()?
            .query_row(
                "SELECT outcome FROM calls WHERE tenant = ?1 AND call_key = ?2",
                params![tenant, call_key],
                |r| r.get(0),
            )
            .optional()
    }

    /// Every recorded call of `tenant`, oldest call first.
    pub fn calls(&self, tenant: &str) -> rusqlite::Result<Vec<CallRecord>> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {RECORD_COLUMNS} FROM calls WHERE tenant = ?1 ORDER BY ended_at_ms, call_key"
        ))?;
        let rows = stmt.query_map(params![tenant], record_from_row)?;
        rows.collect()
    }
}

/// A `calls` row read with [`RECORD_COLUMNS`], as a [`CallRecord`].
pub(crate) fn record_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CallRecord> {
    Ok(CallRecord {
        tenant: r.get(0)?,
        call_key: r.get(1)?,
        direction: r.get(2)?,
        caller: r.get(3)?,
        callee: r.get(4)?,
        outcome: r.get(5)?,
        detail: r.get(6)?,
        rule: r.get(7)?,
        contact_id: r.get(8)?,
        ended_at_ms: r.get(9)?,
        handled_at_ms: r.get(10)?,
        recording: r.get(11)?,
        triggers: r.get(12)?,
        insights: r.get(13)?,
    })
}

/// The columns [`record_from_row`] reads, in its order.
pub(crate) const RECORD_COLUMNS: &str = "tenant, call_key, direction, caller, callee, outcome, detail, rule, contact_id, ended_at_ms, handled_at_ms, recording, triggers, insights";
