//! What the status page's charts read (`connectzero::web::charts`): a
//! tenant's calls of a recent window, by hour. Both queries are bounded
//! by the `calls_by_handled_at (tenant, handled_at_ms)` index to the
//! window, and the latencies also by a row limit, so a busy tenant's page
//! stays cheap.

use super::Storage;
use rusqlite::params;

/// One hour of the window, as the charts read it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HourRows {
    /// `(outcome, calls)` handled in the hour, by outcome name.
    pub outcomes: Vec<(String, i64)>,
    /// Hang-up → handled, ms, of each call posted in the hour (at most
    /// the limit given for the whole window, newest first).
    pub latencies_ms: Vec<i64>,
}

/// A tenant's calls per hour: [`Storage::calls_by_hour`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallsByHour {
    /// Start of the first hour, ms since the epoch.
    pub start_ms: i64,
    /// One entry per hour, oldest first.
    pub hours: Vec<HourRows>,
    /// Whether posted calls beyond the latency limit were left out (the
    /// oldest ones): the percentiles then describe the newest only.
    pub latencies_truncated: bool,
}

const HOUR_MS: i64 = 3_600_000;

impl Storage {
    /// `tenant`'s calls handled in the `hours` hours starting at
    /// `start_ms`, by hour: calls per outcome, and the hang-up → handled
    /// latency of at most `max_latencies` posted calls (the newest).
    /// Rows of other kinds than calls (unreadable 3CX rows, `3cx-row:…`)
    /// are left out of the latencies: they have no real hang-up time.
    pub fn calls_by_hour(
        &self,
        tenant: &str,
        start_ms: i64,
        hours: usize,
        max_latencies: usize,
    ) -> rusqlite::Result<CallsByHour> {
        let end_ms = start_ms.saturating_add(HOUR_MS.saturating_mul(hours as i64));
        let mut out = CallsByHour {
            start_ms,
            hours: vec![HourRows::default(); hours],
            latencies_truncated: false,
        };
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(
            "SELECT (handled_at_ms - ?2) / 3600000 AS hour, outcome, COUNT(*)
             FROM calls WHERE tenant = ?1 AND handled_at_ms >= ?2 AND handled_at_ms < ?3
             GROUP BY hour, outcome ORDER BY hour, outcome",
        )?;
        let rows = stmt.query_map(params![tenant, start_ms, end_ms], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get(2)?))
        })?;
        for row in rows {
            let (hour, outcome, calls) = row?;
            if let Some(slot) = usize::try_from(hour)
                .ok()
                .and_then(|h| out.hours.get_mut(h))
            {
                slot.outcomes.push((outcome, calls));
            }
        }
        let mut stmt = conn.prepare_cached(
            "SELECT handled_at_ms, ended_at_ms, call_key FROM calls
             WHERE tenant = ?1 AND handled_at_ms >= ?2 AND handled_at_ms < ?3 AND outcome = 'posted'
             ORDER BY handled_at_ms DESC LIMIT ?4",
        )?;
        // One more than asked tells whether any were left out.
        let limit = i64::try_from(max_latencies.saturating_add(1)).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![tenant, start_ms, end_ms, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for (n, row) in rows.enumerate() {
            let (handled, ended, key) = row?;
            if n == max_latencies {
                out.latencies_truncated = true;
                break;
            }
            if !crate::is_call_key(&key) {
                continue;
            }
            let hour = (handled - start_ms) / HOUR_MS;
            if let Some(slot) = usize::try_from(hour)
                .ok()
                .and_then(|h| out.hours.get_mut(h))
            {
                slot.latencies_ms.push((handled - ended).max(0));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CallRecord;

    fn call(key: &str, outcome: &str, ended: i64, handled: i64) -> CallRecord {
        CallRecord {
            tenant: "t1".into(),
            call_key: key.into(),
            direction: "inbound".into(),
            caller: "+1".into(),
            callee: "101".into(),
            outcome: outcome.into(),
            detail: String::new(),
            rule: None,
            contact_id: None,
            ended_at_ms: ended,
            handled_at_ms: handled,
            recording: "none".into(),
            triggers: String::new(),
            insights: "none".into(),
        }
    }

    #[test]
    fn calls_are_counted_per_hour_and_outcome_within_the_window_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = Storage::open(&dir.path().join("charts.db")).unwrap();
        let start = 10 * HOUR_MS;
        db.record_calls(&[
            call("3cx:1@1", "posted", start + 1_000, start + 3_000),
            call("3cx:2@1", "posted", start + 2_000, start + 2_500),
            call("3cx:3@1", "skipped", start, start + HOUR_MS + 5),
            call("3cx:4@1", "posted", start - 9_000, start - 1),
            call("3cx:5@1", "posted", start, start + 2 * HOUR_MS),
            call("3cx-row:x", "posted", 0, start + 10),
        ])
        .unwrap();
        let by_hour = db.calls_by_hour("t1", start, 2, 100).unwrap();
        assert_eq!(by_hour.hours.len(), 2);
        assert_eq!(by_hour.hours[0].outcomes, vec![("posted".to_string(), 3)]);
        let mut latencies = by_hour.hours[0].latencies_ms.clone();
        latencies.sort_unstable();
        assert_eq!(latencies, vec![500, 2_000]);
        assert_eq!(by_hour.hours[1].outcomes, vec![("skipped".to_string(), 1)]);
        assert!(!by_hour.latencies_truncated);

        let limited = db.calls_by_hour("t1", start, 2, 1).unwrap();
        assert!(limited.latencies_truncated);
        assert_eq!(limited.hours[0].latencies_ms.len(), 1);
    }

    #[test]
    fn both_queries_read_the_window_through_the_handled_at_index() {
        let dir = tempfile::tempdir().unwrap();
        let db = Storage::open(&dir.path().join("plan.db")).unwrap();
        let conn = db.lock().unwrap();
        for query in [
            "SELECT (handled_at_ms - 0) / 3600000 AS hour, outcome, COUNT(*) FROM calls
             WHERE tenant = 't' AND handled_at_ms >= 0 AND handled_at_ms < 1 GROUP BY hour, outcome",
            "SELECT handled_at_ms FROM calls
             WHERE tenant = 't' AND handled_at_ms >= 0 AND handled_at_ms < 1 AND outcome = 'posted'
             ORDER BY handled_at_ms DESC LIMIT 5",
        ] {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {query}")).unwrap();
            let plan: Vec<String> = stmt
                .query_map([], |r| r.get(3))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(
                plan.iter().any(|step| step.contains("calls_by_handled_at")),
                "{plan:?}"
            );
        }
    }
}
