//! # connectzero-storage: the host's embedded SQLite database
//!
//! Embedded storage: one SQLite database in WAL mode.
//!
//! Holds the key-value data the components see through `wasi:keyvalue`
//! (ledger, cursors, caches), namespaced per tenant, and the host's own log
//! of call outcomes (what the demo and status views read).
//!
//! WAL lets readers run beside the single writer, and `BEGIN IMMEDIATE`
//! makes compare-and-swap atomic across every process sharing the file.
//!
//! It owns the schema and its migrations ([`migrations`]) and every row
//! the host keeps; it holds values, never decisions. It may depend on
//! SQLite and the components' plain rules (`guest-support`), never on the
//! host's runtime or operator features: secrets arrive sealed, settings
//! as JSON.

mod backfill_rows;
mod budget_rows;
mod call_rows;
mod chart_rows;
mod durability;
mod incident_rows;
mod lease_rows;
pub mod migrations;
mod review_rows;
mod secret_rows;
mod session_rows;
mod shared_rows;
mod tenant_rows;
mod web_rows;

pub use backfill_rows::ReplayOpen;
pub use budget_rows::BudgetRow;
pub use call_rows::CallRecord;
pub use chart_rows::{CallsByHour, HourRows};
pub use incident_rows::Incident;
pub use review_rows::{ReviewAssign, ReviewCall, ReviewCandidate};
pub use secret_rows::{SealedSecret, StateAdmission, StateClaim, StateIssue, TenantAuth};
pub use shared_rows::{COPIES_PER_TICK, CopyAsk, CopyState, SharedCall};
pub use tenant_rows::TenantRow;
pub use web_rows::{CallFilter, CallSummary, RetryRequest, is_call_key};

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How long a writer waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Write a key-value entry, replacing what is there.
const KV_UPSERT: &str = "INSERT INTO kv (namespace, key, value) VALUES (?1, ?2, ?3)
     ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value";

/// Read one key-value entry. Prepared once per connection (as the other
/// key-value statements): parsing SQL was a measurable part of each call.
const KV_SELECT: &str = "SELECT value FROM kv WHERE namespace = ?1 AND key = ?2";

/// Largest number of keys returned by one `list-keys` page.
pub const LIST_PAGE: usize = 1000;

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Storage {
    conn: Arc<Mutex<Connection>>,
    /// Which commits may still be off the disk (`durability`).
    sync: Arc<durability::SyncState>,
    /// Whether this handle's writes leave the wait for the disk to
    /// [`Storage::sync`] (a [`Storage::deferred`] handle).
    deferred: bool,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("deferred", &self.deferred)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Open (or create) the database at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening database {}", path.display()))?;
        Self::init(conn, Some(path))
    }

    /// A private in-memory database (tests, benchmarks).
    pub fn in_memory() -> anyhow::Result<Self> {
        Self::init(Connection::open_in_memory()?, None)
    }

    fn init(mut conn: Connection, path: Option<&Path>) -> anyhow::Result<Self> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: every commit is on disk before it returns. With WAL,
        // NORMAL may lose the last commits on a power cut (not on a crash
        // of the process), and some must never be lost: a rotated
        // HighLevel refresh token (the old one is already spent) is the
        // host's own write, made and kept at FULL. Components' writes (a
        // send marker before the CRM request, a ledger completion) go
        // through a deferred handle instead, made durable by one shared
        // sync before anything they lead to leaves the host
        // (`durability`: one fsync per request, not one per write).
        conn.pragma_update(None, "synchronous", "FULL")?;
        // The schema, brought to this release's version
        // (`migrations`: numbered steps, one transaction).
        migrations::migrate(&mut conn, path)?;
        let sync = durability::SyncState::of(&conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            sync: Arc::new(sync),
            deferred: false,
        })
    }

    /// The connection, at `synchronous = FULL`: when a NORMAL write could
    /// not put it back, this does, or fails (a host write must not
    /// silently skip its wait for the disk).
    fn lock(&self) -> rusqlite::Result<MutexGuard<'_, Connection>> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (statements are atomic), so a poisoned lock is still usable.
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.sync.restore_full(&conn)?;
        Ok(conn)
    }

    /// Value at `key`, if any.
    pub fn kv_get(&self, ns: &str, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
        self.lock()?
            .prepare_cached(KV_SELECT)?
            .query_row(params![ns, key], |r| r.get(0))
            .optional()
    }

    /// Write `value` at `key`.
    pub fn kv_set(&self, ns: &str, key: &str, value: &[u8]) -> rusqlite::Result<()> {
        self.write(|conn| {
            conn.prepare_cached(KV_UPSERT)?
                .execute(params![ns, key, value])
        })?;
        Ok(())
    }

    /// Write every `(key, value)` in one transaction (one commit, however
    /// many keys: the retention benchmark writes days of calls at once).
    pub fn kv_set_many(&self, ns: &str, entries: &[(String, Vec<u8>)]) -> rusqlite::Result<()> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(KV_UPSERT)?;
                for (key, value) in entries {
                    insert.execute(params![ns, key, value])?;
                }
            }
            tx.commit()
        })
    }

    /// Bytes the database holds in use and in its file (pages in use, and
    /// all pages including free ones SQLite will reuse).
    pub fn database_bytes(&self) -> rusqlite::Result<(u64, u64)> {
        let conn = self.lock()?;
        let pragma = |name: &str| -> rusqlite::Result<u64> {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
                .map(|v| v.max(0) as u64)
        };
        let page = pragma("page_size")?;
        let pages = pragma("page_count")?;
        let free = pragma("freelist_count")?;
        Ok(((pages - free) * page, pages * page))
    }

    /// Remove `key` (no error when absent).
    pub fn kv_delete(&self, ns: &str, key: &str) -> rusqlite::Result<()> {
        self.write(|conn| {
            conn.prepare_cached("DELETE FROM kv WHERE namespace = ?1 AND key = ?2")?
                .execute(params![ns, key])
        })?;
        Ok(())
    }

    /// How many keys start with `prefix` (an index range, not a scan of
    /// the namespace).
    pub fn kv_count_prefix(&self, ns: &str, prefix: &str) -> rusqlite::Result<i64> {
        // Keys starting with `prefix` sort from `prefix` up to `prefix`
        // followed by the highest character; SQLite compares text as bytes.
        let end = format!("{prefix}\u{10FFFF}");
        self.lock()?.query_row(
            "SELECT count(*) FROM kv WHERE namespace = ?1 AND key >= ?2 AND key < ?3",
            params![ns, prefix, end],
            |r| r.get(0),
        )
    }

    /// Jobs in `tenant`'s durable queue `queue` (one key per job, laid out
    /// by `guest_support::queue`).
    pub fn queued_jobs(&self, tenant: &str, queue: &str) -> rusqlite::Result<i64> {
        self.kv_count_prefix(tenant, &guest_support::queue::jobs_prefix(queue))
    }

    /// Keys after `cursor` (exclusive), in order, at most [`LIST_PAGE`].
    pub fn kv_list(&self, ns: &str, cursor: Option<&str>) -> rusqlite::Result<Vec<String>> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare(
            "SELECT key FROM kv WHERE namespace = ?1 AND key > ?2 ORDER BY key LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![ns, cursor.unwrap_or(""), LIST_PAGE as i64], |r| {
            r.get(0)
        })?;
        rows.collect()
    }

    /// Write `new` at `key` only if the current value is still `expected`
    /// (`None` = absent). Returns whether the swap happened.
    pub fn kv_compare_and_swap(
        &self,
        ns: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> rusqlite::Result<bool> {
        self.write(|conn| {
            // IMMEDIATE takes the write lock up front, so no other process
            // can change the key between our read and our write.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current = value_in(&tx, ns, key)?;
            if current.as_deref() != expected {
                return Ok(false);
            }
            tx.prepare_cached(KV_UPSERT)?
                .execute(params![ns, key, new])?;
            tx.commit()?;
            Ok(true)
        })
    }

    /// Add `delta` to the integer at `key` (absent counts as 0) atomically.
    pub fn kv_increment(&self, ns: &str, key: &str, delta: i64) -> Result<i64, String> {
        self.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current = value_in(&tx, ns, key)?;
            let value = match current {
                None => 0,
                Some(bytes) => match std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                {
                    Some(value) => value,
                    None => return Ok(Err(format!("value at {key:?} is not an integer"))),
                },
            };
            // guest-controlled delta, so overflow is an error, not a wrap.
            let Some(next) = value.checked_add(delta) else {
                return Ok(Err("overflow incrementing value".to_string()));
            };
            tx.execute(KV_UPSERT, params![ns, key, next.to_string().into_bytes()])?;
            tx.commit()?;
            Ok(Ok(next))
        })
        .map_err(|e| e.to_string())?
    }
}

/// The value at `key` as `tx` sees it (under the database's write lock,
/// for an IMMEDIATE transaction).
fn value_in(
    tx: &rusqlite::Transaction<'_>,
    ns: &str,
    key: &str,
) -> rusqlite::Result<Option<Vec<u8>>> {
    tx.prepare_cached(KV_SELECT)?
        .query_row(params![ns, key], |r| r.get(0))
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_handled_calls_leave_the_call_log_and_unsettled_ones_stay() {
        let db = Storage::in_memory().unwrap();
        let row = |key: &str, outcome: &str, at: i64| CallRecord {
            tenant: "t".into(),
            call_key: key.into(),
            direction: "inbound".into(),
            caller: "+15550100".into(),
            callee: "101".into(),
            outcome: outcome.into(),
            detail: String::new(),
            rule: None,
            contact_id: None,
            ended_at_ms: at,
            handled_at_ms: at,
            recording: "none".into(),
            triggers: String::new(),
            insights: "none".into(),
        };
        db.record_calls(&[
            row("3cx:1@1", "posted", 100),
            row("3cx:2@1", "skipped", 200),
            row("3cx:3@1", "parked", 100),
            row("3cx:4@1", "retrying", 100),
            row("3cx:5@1", "posted", 900),
        ])
        .unwrap();
        db.record_call(&CallRecord {
            tenant: "other".into(),
            ..row("3cx:1@1", "posted", 100)
        })
        .unwrap();
        // Oldest first, at most `max` at a time.
        assert_eq!(db.prune_calls("t", 500, 1).unwrap(), 1);
        assert!(db.call_outcome("t", "3cx:1@1").unwrap().is_none());
        assert_eq!(db.prune_calls("t", 500, 10).unwrap(), 1);
        assert_eq!(db.prune_calls("t", 500, 10).unwrap(), 0);
        for key in ["3cx:3@1", "3cx:4@1", "3cx:5@1"] {
            assert!(db.call_outcome("t", key).unwrap().is_some(), "{key}");
        }
        assert_eq!(db.call_count("other").unwrap(), 1);
    }

    #[test]
    fn a_database_file_syncs_every_commit_to_disk() {
        let dir = std::env::temp_dir().join(format!("cz-sync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = Storage::open(&dir.join("sync.db")).unwrap();
        let (mode, journal): (i64, String) = {
            let conn = db.lock().unwrap();
            (
                conn.pragma_query_value(None, "synchronous", |r| r.get(0))
                    .unwrap(),
                conn.pragma_query_value(None, "journal_mode", |r| r.get(0))
                    .unwrap(),
            )
        };
        // 2 is FULL (0 OFF, 1 NORMAL, 3 EXTRA).
        assert_eq!((mode, journal.as_str()), (2, "wal"));
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn compare_and_swap_only_writes_over_the_expected_value() {
        let db = Storage::in_memory().unwrap();
        assert!(db.kv_compare_and_swap("t1", "k", None, b"a").unwrap());
        assert!(!db.kv_compare_and_swap("t1", "k", None, b"b").unwrap());
        assert!(db.kv_compare_and_swap("t1", "k", Some(b"a"), b"c").unwrap());
        assert_eq!(db.kv_get("t1", "k").unwrap().as_deref(), Some(&b"c"[..]));
    }

    #[test]
    fn namespaces_do_not_see_each_other() {
        let db = Storage::in_memory().unwrap();
        db.kv_set("t1", "k", b"one").unwrap();
        assert_eq!(db.kv_get("t2", "k").unwrap(), None);
        assert_eq!(db.kv_list("t2", None).unwrap(), Vec::<String>::new());
        assert_eq!(db.kv_list("t1", None).unwrap(), vec!["k".to_string()]);
    }

    #[test]
    fn increment_starts_at_zero_and_refuses_overflow() {
        let db = Storage::in_memory().unwrap();
        assert_eq!(db.kv_increment("t", "n", 5), Ok(5));
        assert_eq!(db.kv_increment("t", "n", -2), Ok(3));
        assert!(
            db.kv_increment("t", "n", i64::MAX)
                .unwrap_err()
                .contains("overflow")
        );
        db.kv_set("t", "s", b"text").unwrap();
        assert!(db.kv_increment("t", "s", 1).is_err());
    }

    #[test]
    fn the_same_file_shares_state_between_connections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cz.db");
        let a = Storage::open(&path).unwrap();
        let b = Storage::open(&path).unwrap();
        assert!(a.kv_compare_and_swap("t", "claim", None, b"a").unwrap());
        assert!(!b.kv_compare_and_swap("t", "claim", None, b"b").unwrap());
    }
}
