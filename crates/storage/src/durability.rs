//! When a write reaches the disk: at its commit, or at the next sync
//! before anything leaves the host.
//!
//! The connection commits with `synchronous = FULL`: each commit waits
//! for the disk (an `fsync` of the WAL, 0.2–0.36 ms on the benchmark
//! machine). Components' writes do not need that. What the exactly-once
//! protocol needs is weaker: whatever led to a request, or to an answer,
//! is on disk before the request or the answer leaves the host. A write
//! made after the last thing that left can be lost to a power cut
//! without harm: the state on disk is then the state of a crash just
//! after that request (every process's, as a power cut stops them all),
//! which the protocol already survives (`docs/MODEL.md`). So a
//! [`Storage::deferred`] handle commits with `synchronous = NORMAL` (in
//! WAL mode a commit is then safe from a crash of the process, not yet
//! from a power cut), and [`Storage::sync`] makes every commit so far
//! durable with one `fsync` of the WAL, shared by every write made
//! before it, whichever tenant made it (issue 20: 13 `fsync`s per call
//! before, one per request now, and fewer when tenants share them).
//!
//! The fsync is of the WAL file, which holds every commit since the last
//! checkpoint (a checkpoint syncs the WAL before it copies it into the
//! database, and the database after). Syncing a file through any
//! descriptor flushes what every process wrote to it, so a sync also
//! covers another process's commits, which [`Storage::nothing_to_sync`]
//! notices through the connection's `PRAGMA data_version` (this
//! process's own deferred commits are counted instead: `data_version`
//! does not change with the connection's own).

use super::Storage;
use rusqlite::Connection;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// `data_version` as no connection ever reports it: a fresh handle syncs
/// once before its first request, so commits made before it opened (by a
/// process killed before its own sync) are on disk before anything that
/// read them leaves.
const NEVER_SEEN: i64 = i64::MIN;

/// What a database's handles share about its unsynced commits.
#[derive(Debug)]
pub(crate) struct SyncState {
    /// The WAL file. `None` when commits never wait for a disk (an
    /// in-memory database) or the database is not in WAL mode; deferred
    /// handles then write as the others do.
    wal: Option<Wal>,
    /// Deferred commits made through this process's connection, counted
    /// while the connection is still held, so anything that read one sees
    /// it counted. (The host's own NORMAL writes, the request budget, are
    /// not counted: losing them costs nothing that left.)
    written: AtomicU64,
    /// `written` as it was when the last completed sync began.
    synced: AtomicU64,
    /// The connection's `PRAGMA data_version` (which changes with every
    /// other process's commit) as it was when the last completed sync
    /// began.
    seen_version: Mutex<i64>,
    /// Syncs begun and finished, in order (one at a time): a caller that
    /// arrived while sync `n` ran is covered by sync `n + 1`.
    begun: AtomicU64,
    finished: AtomicU64,
    /// One sync at a time; a caller that waited here finds its commits
    /// covered by the sync that began after it arrived, and returns.
    syncing: Mutex<()>,
    /// Set when the disk refused a sync. Linux reports a failed write-back
    /// once and marks the pages clean: a later sync would succeed over
    /// lost commits. So every later sync fails too, until a restart
    /// (recovery reads the WAL back from disk), and the host reports
    /// itself not ready.
    refused: AtomicBool,
    /// Set when the connection could not be put back to
    /// `synchronous = FULL` after a NORMAL write; the next use of the
    /// connection puts it back before anything else.
    full_pending: AtomicBool,
}

/// The WAL file, and a descriptor of it kept open from the first sync on:
/// a write-back error is reported to every descriptor open when it
/// happened, so one opened afresh for each sync could miss an error
/// SQLite's own descriptor saw first.
#[derive(Debug)]
struct Wal {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl SyncState {
    /// The state of a database whose connection is `conn`.
    pub(crate) fn of(conn: &Connection) -> rusqlite::Result<Self> {
        let journal: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        let wal = match conn.path() {
            Some(path) if !path.is_empty() && journal.eq_ignore_ascii_case("wal") => {
                let path = PathBuf::from(format!("{path}-wal"));
                // Open now when SQLite has made it (the migrations wrote).
                let file = File::open(&path).ok();
                Some(Wal {
                    path,
                    file: Mutex::new(file),
                })
            }
            _ => None,
        };
        Ok(Self {
            wal,
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            seen_version: Mutex::new(NEVER_SEEN),
            begun: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            syncing: Mutex::new(()),
            refused: AtomicBool::new(false),
            full_pending: AtomicBool::new(false),
        })
    }

    /// The connection's `synchronous` as every handle expects it (FULL),
    /// if a NORMAL write could not put it back.
    pub(crate) fn restore_full(&self, conn: &Connection) -> rusqlite::Result<()> {
        if self.full_pending.load(Ordering::SeqCst) {
            set_synchronous(conn, "FULL")?;
            self.full_pending.store(false, Ordering::SeqCst);
        }
        Ok(())
    }

    fn refused_error(&self) -> std::io::Result<()> {
        if self.refused.load(Ordering::SeqCst) {
            return Err(std::io::Error::other(
                "an earlier sync of the database failed: nothing that depends on it may leave; \
                 check the disk and restart the host",
            ));
        }
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn set_synchronous(conn: &Connection, mode: &str) -> rusqlite::Result<()> {
    conn.pragma_update(None, "synchronous", mode)
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "data_version", |r| r.get(0))
}

/// Puts the connection back to `synchronous = FULL` when a NORMAL write
/// ends, however it ends (an error, a panic).
pub(crate) struct BackToFull<'a> {
    pub(crate) conn: MutexGuard<'a, Connection>,
    state: &'a SyncState,
}

impl Drop for BackToFull<'_> {
    fn drop(&mut self) {
        if let Err(error) = set_synchronous(&self.conn, "FULL") {
            // Every write of the host's own must keep waiting for the
            // disk: the next use of the connection tries again first.
            tracing::error!(%error, "could not put the database connection back to synchronous = FULL");
            self.state.full_pending.store(true, Ordering::SeqCst);
        }
    }
}

impl Storage {
    /// The same database, its writes not waiting for the disk at their
    /// commit: the key-value and call-log writes of components, which
    /// [`Storage::sync`] makes durable before anything they lead to
    /// leaves the host (the runtime's outbound requests and answers).
    /// The host's own writes (secrets, leases, settings) keep waiting.
    pub fn deferred(&self) -> Storage {
        Storage {
            deferred: true,
            ..self.clone()
        }
    }

    /// The connection at `synchronous = NORMAL` until the guard drops.
    pub(crate) fn normal(&self) -> rusqlite::Result<BackToFull<'_>> {
        let conn = self.lock()?;
        set_synchronous(&conn, "NORMAL")?;
        Ok(BackToFull {
            conn,
            state: &self.sync,
        })
    }

    /// Run `write` on the connection; on a deferred handle of a database
    /// on disk, with `synchronous = NORMAL` and counted as unsynced.
    pub(crate) fn write<T>(
        &self,
        write: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        if !self.deferred || self.sync.wal.is_none() {
            return write(&mut *self.lock()?);
        }
        let mut guard = self.normal()?;
        let result = write(&mut guard.conn);
        // Counted before the connection is released, failed or not (a
        // failed write costs at most one needless sync).
        self.sync.written.fetch_add(1, Ordering::SeqCst);
        result
    }

    /// Whether every commit made so far, by this process or another, is
    /// certainly on disk already. Takes the connection for a moment (to
    /// read `data_version`), as every key-value read does.
    pub fn nothing_to_sync(&self) -> bool {
        if self.sync.wal.is_none() {
            return true;
        }
        let state = &self.sync;
        if state.refused.load(Ordering::SeqCst)
            || state.written.load(Ordering::SeqCst) > state.synced.load(Ordering::SeqCst)
        {
            return false;
        }
        // Waiting here is no worse than a component's next key-value call,
        // which takes the same lock; handing off to a thread whenever the
        // lock was busy cost 5% of throughput across tenants.
        let Ok(conn) = self.lock() else {
            return false;
        };
        data_version(&conn).is_ok_and(|v| v == *lock(&state.seen_version))
    }

    /// Whether a sync has failed: nothing that depends on the database
    /// leaves any more, and the host should be restarted once the disk is
    /// fixed.
    pub fn sync_refused(&self) -> bool {
        self.sync.refused.load(Ordering::SeqCst)
    }

    /// Wait until every commit made so far, by this process or another,
    /// is on disk: one `fsync` of the WAL, shared by every caller that
    /// arrived before it began. Blocks. An error means the commits may not
    /// be on disk, and nothing that depends on them may leave; when the
    /// disk refused the fsync, every later sync fails too (restart the
    /// host once the disk is fixed).
    pub fn sync(&self) -> std::io::Result<()> {
        let state = &self.sync;
        let Some(wal) = &state.wal else {
            return Ok(());
        };
        let arrived = state.begun.load(Ordering::SeqCst);
        let _one_at_a_time = lock(&state.syncing);
        if state.finished.load(Ordering::SeqCst) > arrived {
            // A sync that began after this caller arrived has finished.
            return state.refused_error();
        }
        state.refused_error()?;
        let this = state.begun.fetch_add(1, Ordering::SeqCst) + 1;
        let target = state.written.load(Ordering::SeqCst);
        let version = data_version(&*self.lock().map_err(std::io::Error::other)?)
            .map_err(std::io::Error::other)?;
        if target > state.synced.load(Ordering::SeqCst) || version != *lock(&state.seen_version) {
            let mut file = lock(&wal.file);
            if file.is_none() {
                // Not being able to open it is not the disk refusing a
                // write: this sync fails, the next one tries again.
                *file = Some(File::open(&wal.path)?);
            }
            if let Some(file) = file.as_ref()
                && let Err(error) = file.sync_data()
            {
                state.refused.store(true, Ordering::SeqCst);
                tracing::error!(%error, "the disk refused to sync the database; nothing that depends on it leaves until a restart");
                return Err(error);
            }
            state.synced.fetch_max(target, Ordering::SeqCst);
            *lock(&state.seen_version) = version;
        }
        state.finished.store(this, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn synchronous(db: &Storage) -> i64 {
        db.lock()
            .unwrap()
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn deferred_writes_are_unsynced_until_a_sync_and_leave_the_connection_at_full() {
        let dir = tempfile::tempdir().unwrap();
        let db = Storage::open(&dir.path().join("cz.db")).unwrap();
        // What was committed before this handle opened is synced once.
        assert!(!db.nothing_to_sync());
        db.sync().unwrap();
        assert!(db.nothing_to_sync());
        db.deferred().kv_set("t", "ledger/1", b"claimed").unwrap();
        assert!(!db.nothing_to_sync(), "a deferred write awaits a sync");
        // The connection is back to waiting for the disk.
        assert_eq!(synchronous(&db), 2, "synchronous = FULL");
        // The file synced is SQLite's WAL, which holds the commit.
        let wal = dir.path().join("cz.db-wal");
        assert!(std::fs::metadata(&wal).unwrap().len() > 0);
        db.sync().unwrap();
        assert!(db.nothing_to_sync());
        assert_eq!(
            db.kv_get("t", "ledger/1").unwrap().as_deref(),
            Some(&b"claimed"[..])
        );
        // Every kind of deferred write counts, the call log's too.
        let deferred = db.deferred();
        assert!(deferred.kv_compare_and_swap("t", "k", None, b"a").unwrap());
        assert!(!db.nothing_to_sync());
        deferred.sync().unwrap();
        deferred.kv_increment("t", "n", 1).unwrap();
        assert!(!db.nothing_to_sync());
        deferred.sync().unwrap();
        deferred.kv_delete("t", "k").unwrap();
        assert!(!db.nothing_to_sync());
        assert_eq!(synchronous(&db), 2, "synchronous = FULL");
        // A refused write leaves the connection at FULL too.
        deferred.kv_set("t", "text", b"not a number").unwrap();
        assert!(deferred.kv_increment("t", "text", 1).is_err());
        assert_eq!(
            synchronous(&db),
            2,
            "synchronous = FULL after a refused write"
        );
    }

    #[test]
    fn another_connections_commits_need_a_sync_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cz.db");
        let ours = Storage::open(&path).unwrap();
        ours.sync().unwrap();
        let theirs = Storage::open(&path).unwrap();
        theirs
            .deferred()
            .kv_set("t", "ledger/1", b"sending")
            .unwrap();
        assert!(
            !ours.nothing_to_sync(),
            "another process's unsynced commit is seen"
        );
        ours.sync().unwrap();
        assert!(ours.nothing_to_sync());
    }

    #[test]
    fn a_wal_that_cannot_be_opened_fails_the_sync_and_the_next_one_tries_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cz.db");
        let opened = Storage::open(&path).unwrap();
        // The same database, its WAL looked for where it cannot be opened.
        let missing = dir.path().join("elsewhere").join("cz.db-wal");
        let db = Storage {
            sync: Arc::new(SyncState {
                wal: Some(Wal {
                    path: missing.clone(),
                    file: Mutex::new(None),
                }),
                ..SyncState::of(&Connection::open_in_memory().unwrap()).unwrap()
            }),
            ..opened
        };
        db.deferred().kv_set("t", "ledger/1", b"claimed").unwrap();
        assert!(db.sync().is_err());
        assert!(!db.nothing_to_sync());
        // Not a refusal of the disk: not sticky.
        assert!(!db.sync_refused());
        std::fs::create_dir_all(missing.parent().unwrap()).unwrap();
        std::fs::write(&missing, b"").unwrap();
        db.sync().unwrap();
        assert!(db.nothing_to_sync());
    }

    #[test]
    fn a_refused_sync_refuses_every_later_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = Storage::open(&dir.path().join("cz.db")).unwrap();
        db.deferred().kv_set("t", "ledger/1", b"claimed").unwrap();
        // What the disk refusing a write-back looks like to the host.
        db.sync.refused.store(true, Ordering::SeqCst);
        let error = db.sync().unwrap_err();
        assert!(error.to_string().contains("restart the host"), "{error}");
        assert!(db.sync_refused());
        assert!(!db.nothing_to_sync());
    }

    #[test]
    fn an_in_memory_database_has_nothing_to_sync() {
        let db = Storage::in_memory().unwrap();
        db.deferred().kv_set("t", "k", b"v").unwrap();
        assert!(db.nothing_to_sync());
        db.sync().unwrap();
    }
}
