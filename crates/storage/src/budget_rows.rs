//! HighLevel request budgets shared by every process on the database: one
//! row per limiter key (CRM, app, location), changed in one `BEGIN
//! IMMEDIATE` transaction per request so two hosts never hand out the
//! same slot. What the budget decides is `connectzero-ratelimit`'s; this
//! keeps the values.

use super::Storage;
use guest_support::budget::Window;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

/// One location's budget as stored (table `rate_budgets`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BudgetRow {
    /// The burst window, as the Spin replicas keep it (stored as its JSON).
    pub window: Window,
    /// No request before this (ms since the epoch; 0 when not blocked).
    pub blocked_until_ms: i64,
    /// Requests per hour of the last day: (slot start ms, requests).
    pub hours: Vec<(i64, u32)>,
}

impl Storage {
    /// Read the budget under `key` (a default one when absent or
    /// unreadable), let `change` alter it and write it back, in one
    /// transaction that holds the database's write lock throughout.
    ///
    /// The commit is not waited onto disk (`synchronous = NORMAL` for this
    /// transaction only): a budget lost to a power cut costs at most one
    /// interval's caution, while an fsync per CRM request would cost every
    /// request a disk flush (docs/DECISIONS.md, "shared request budget").
    pub fn budget_update(
        &self,
        key: &str,
        change: impl FnOnce(&mut BudgetRow),
    ) -> rusqlite::Result<()> {
        // Back to FULL when the guard drops, however this ends; not
        // counted as unsynced (`durability`): a lost budget leaves nothing
        // outside the host wrong.
        let mut guard = self.normal()?;
        let conn = &mut guard.conn;
        {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let stored: Option<(String, i64, String)> = tx
                .query_row(
                    "SELECT burst_window, blocked_until_ms, hours FROM rate_budgets WHERE key = ?1",
                    params![key],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            // A row this code cannot read (written by hand, say) starts
            // afresh: the worst is one interval's worth of requests too many.
            let mut row =
                stored.map_or_else(BudgetRow::default, |(window, blocked, hours)| BudgetRow {
                    window: serde_json::from_str(&window).unwrap_or_default(),
                    blocked_until_ms: blocked,
                    hours: serde_json::from_str(&hours).unwrap_or_default(),
                });
            change(&mut row);
            let window = serde_json::to_string(&row.window).unwrap_or_default();
            let hours = serde_json::to_string(&row.hours).unwrap_or_default();
            tx.execute(
                "INSERT INTO rate_budgets (key, burst_window, blocked_until_ms, hours) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO UPDATE SET burst_window = excluded.burst_window,
                     blocked_until_ms = excluded.blocked_until_ms, hours = excluded.hours",
                params![key, window, row.blocked_until_ms, hours],
            )?;
            tx.commit()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_is_kept_per_key_and_read_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let db = Storage::open(&dir.path().join("cz.db")).unwrap();
        db.budget_update("crm app a", |row| {
            row.window.starts = vec![1, 2, 3];
            row.blocked_until_ms = 9;
            row.hours = vec![(1, 3)];
        })
        .unwrap();
        // Another process's view of the file sees it.
        let other = Storage::open(&dir.path().join("cz.db")).unwrap();
        let mut seen = BudgetRow::default();
        other
            .budget_update("crm app a", |row| seen = row.clone())
            .unwrap();
        assert_eq!(seen.window.starts, vec![1, 2, 3]);
        assert_eq!((seen.blocked_until_ms, &seen.hours), (9, &vec![(1, 3)]));
        other
            .budget_update("crm app b", |row| seen = row.clone())
            .unwrap();
        assert_eq!(seen, BudgetRow::default(), "per key");
        // Every other write is still waited onto disk.
        let full: i64 = db
            .lock()
            .unwrap()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(full, 2, "synchronous = FULL");
    }
}
