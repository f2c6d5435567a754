//! Rows of `connectzero backfill` and `connectzero replay`
//! (`connectzero::backfill`): how far each backfill got, so a re-run resumes, and
//! releasing a parked call's ledger legs so a replay processes it again.

use super::Storage;
use guest_support::outcomes::CallOutcome;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

/// What [`Storage::reopen_for_replay`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayOpen {
    /// The call may be processed again: its parked ledger legs (if any;
    /// a retrying call has none) are released and the call log says
    /// "retrying" until the replay records the new outcome.
    Reopened {
        /// Ledger legs moved from parked to released.
        legs_released: usize,
        /// The call log's outcome before: "parked" or "retrying".
        was: String,
    },
    /// Not replayable; nothing was changed. `None` when the call log has
    /// no such call, else its outcome and detail (or the ledger's, when
    /// the ledger already holds another outcome for it).
    Refused(Option<(String, String)>),
}

impl Storage {
    /// The end of the part of the backfill of `tenant` from `since_ms`
    /// that is done, if a run recorded any.
    pub fn backfill_progress(&self, tenant: &str, since_ms: i64) -> rusqlite::Result<Option<i64>> {
        self.lock()?
            .query_row(
                "SELECT done_until_ms FROM backfill_progress WHERE tenant = ?1 AND since_ms = ?2",
                params![tenant, since_ms],
                |r| r.get(0),
            )
            .optional()
    }

    /// Record that the backfill of `tenant` from `since_ms` is done up to
    /// `done_until_ms`. Never moves backwards (a shorter run after a
    /// longer one keeps the longer one's progress).
    pub fn set_backfill_progress(
        &self,
        tenant: &str,
        since_ms: i64,
        done_until_ms: i64,
        now_ms: i64,
    ) -> rusqlite::Result<()> {
        self.lock()?.execute(
            "INSERT INTO backfill_progress (tenant, since_ms, done_until_ms, updated_at_ms)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant, since_ms) DO UPDATE SET
                 done_until_ms = MAX(done_until_ms, excluded.done_until_ms),
                 updated_at_ms = excluded.updated_at_ms",
            params![tenant, since_ms, done_until_ms, now_ms],
        )?;
        Ok(())
    }

    /// Forget the progress of the backfill of `tenant` from `since_ms`
    /// (`--restart`).
    pub fn clear_backfill_progress(&self, tenant: &str, since_ms: i64) -> rusqlite::Result<()> {
        self.lock()?.execute(
            "DELETE FROM backfill_progress WHERE tenant = ?1 AND since_ms = ?2",
            params![tenant, since_ms],
        )?;
        Ok(())
    }

    /// Make the call `call_key` of `tenant` processable again, for
    /// `connectzero replay`: only a call the call log shows as parked or
    /// retrying, and only if no ledger leg of it holds an outcome other
    /// than parked (a posted call is never reopened: it would post twice).
    /// In one transaction: parked legs become released and the call log
    /// says "retrying", so a replay that dies before recording its result
    /// can simply be run again.
    ///
    /// This is the one place the host writes the dedup
    /// component's ledger (`ledger/<leg>@<start ms>` holding
    /// `{"state":"done","call":…,"outcome":"parked:…"}`,
    /// `components/dedup/src/ledger.rs`); `host/tests/e2e/backfill.rs` replays a
    /// call parked by the real components, so a format change fails it.
    pub fn reopen_for_replay(
        &self,
        tenant: &str,
        call_key: &str,
        now_ms: i64,
    ) -> rusqlite::Result<ReplayOpen> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let logged: Option<(String, String)> = tx
            .query_row(
                "SELECT outcome, detail FROM calls WHERE tenant = ?1 AND call_key = ?2",
                params![tenant, call_key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((outcome, detail)) = logged else {
            return Ok(ReplayOpen::Refused(None));
        };
        if outcome != "parked" && outcome != "retrying" {
            return Ok(ReplayOpen::Refused(Some((outcome, detail))));
        }
        // The SQL filter only narrows the scan; each entry is then parsed.
        let needle = format!("\"call\":{}", serde_json::Value::from(call_key));
        let legs: Vec<(String, Vec<u8>)> = {
            let mut stmt = tx.prepare(
                "SELECT key, value FROM kv
                 WHERE namespace = ?1 AND key >= 'ledger/' AND key < 'ledger0'
                   AND instr(CAST(value AS TEXT), ?2) > 0",
            )?;
            let rows = stmt.query_map(params![tenant, needle], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut parked = Vec::new();
        for (key, value) in legs {
            let Ok(entry) = serde_json::from_slice::<serde_json::Value>(&value) else {
                continue;
            };
            if entry["state"] != "done" || entry["call"] != call_key {
                continue;
            }
            let ledger_outcome =
                CallOutcome::from_ledger_text(entry["outcome"].as_str().unwrap_or_default());
            if !matches!(ledger_outcome, CallOutcome::Parked(_)) {
                // The call log is behind the ledger: trust the ledger.
                return Ok(ReplayOpen::Refused(Some((
                    ledger_outcome.kind().into(),
                    ledger_outcome.detail().into(),
                ))));
            }
            parked.push(key);
        }
        let released = serde_json::json!({ "state": "released", "at": now_ms }).to_string();
        for key in &parked {
            tx.execute(
                "UPDATE kv SET value = ?3 WHERE namespace = ?1 AND key = ?2",
                params![tenant, key, released.as_bytes()],
            )?;
        }
        if outcome == "parked" {
            tx.execute(
                "UPDATE calls SET outcome = 'retrying',
                     detail = 'replay requested (was: ' || detail || ')'
                 WHERE tenant = ?1 AND call_key = ?2",
                params![tenant, call_key],
            )?;
        }
        tx.commit()?;
        Ok(ReplayOpen::Reopened {
            legs_released: parked.len(),
            was: outcome,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CallRecord;

    fn logged(db: &Storage, key: &str, outcome: &str) {
        db.record_call(&CallRecord {
            tenant: "t".into(),
            call_key: key.into(),
            direction: "inbound".into(),
            caller: "+1".into(),
            callee: "101".into(),
            outcome: outcome.into(),
            detail: "why".into(),
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
    fn progress_only_moves_forward_and_can_be_cleared() {
        let db = Storage::in_memory().unwrap();
        assert_eq!(db.backfill_progress("t", 10).unwrap(), None);
        db.set_backfill_progress("t", 10, 50, 1).unwrap();
        db.set_backfill_progress("t", 10, 30, 2).unwrap();
        assert_eq!(db.backfill_progress("t", 10).unwrap(), Some(50));
        assert_eq!(db.backfill_progress("t", 11).unwrap(), None);
        db.clear_backfill_progress("t", 10).unwrap();
        assert_eq!(db.backfill_progress("t", 10).unwrap(), None);
    }

    #[test]
    fn a_parked_call_is_reopened_once_and_a_posted_one_never() {
        let db = Storage::in_memory().unwrap();
        logged(&db, "3cx:7@5", "parked");
        let done = br#"{"state":"done","call":"3cx:7@5","outcome":"parked:HighLevel answered 422","at":9}"#;
        db.kv_set("t", "ledger/1@5", done).unwrap();
        assert_eq!(
            db.reopen_for_replay("t", "3cx:7@5", 10).unwrap(),
            ReplayOpen::Reopened {
                legs_released: 1,
                was: "parked".into()
            }
        );
        let leg: serde_json::Value =
            serde_json::from_slice(&db.kv_get("t", "ledger/1@5").unwrap().unwrap()).unwrap();
        assert_eq!(leg["state"], "released");
        // Now "retrying": a second replay may claim it, but there is
        // nothing left to release.
        assert_eq!(
            db.reopen_for_replay("t", "3cx:7@5", 11).unwrap(),
            ReplayOpen::Reopened {
                legs_released: 0,
                was: "retrying".into()
            }
        );

        logged(&db, "3cx:8@5", "posted");
        assert!(matches!(
            db.reopen_for_replay("t", "3cx:8@5", 12).unwrap(),
            ReplayOpen::Refused(Some((o, _))) if o == "posted"
        ));
        assert_eq!(
            db.reopen_for_replay("t", "3cx:9@5", 12).unwrap(),
            ReplayOpen::Refused(None)
        );

        // A log saying parked over a ledger saying posted: refused.
        logged(&db, "3cx:10@5", "parked");
        let posted = br#"{"state":"done","call":"3cx:10@5","outcome":"posted:m1","at":9}"#;
        db.kv_set("t", "ledger/2@5", posted).unwrap();
        assert!(matches!(
            db.reopen_for_replay("t", "3cx:10@5", 13).unwrap(),
            ReplayOpen::Refused(Some((o, d))) if o == "posted" && d == "m1"
        ));
        assert_eq!(db.kv_get("t", "ledger/2@5").unwrap().unwrap(), posted);
    }
}
