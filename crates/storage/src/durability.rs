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
//! notices through `PRAGMA data_version`.

use super::Storage;
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// What a database's handles share about its unsynced commits.
#[derive(Debug, Default)]
pub(crate) struct SyncState {
    /// The WAL file. `None` when commits never wait for a disk (an
    /// in-memory database) or the database is not in WAL mode; deferred
    /// handles then write as the others do.
    wal: Option<PathBuf>,
    /// Deferred commits made through this process's connection, counted
    /// while the connection is still held, so anything that read one sees
    /// it counted.
    written: AtomicU64,
    /// `written` as it was when the last sync began.
    synced: AtomicU64,
    /// `PRAGMA data_version` (changed by other connections' commits) as
    /// it was when the last sync began.
    seen_version: AtomicI64,
    /// One sync at a time: a sync that waited for another finds its
    /// writes covered by it and returns at once.
    syncing: Mutex<()>,
}

impl SyncState {
    /// The state of a database whose connection is `conn`.
    pub(crate) fn of(conn: &Connection) -> rusqlite::Result<Self> {
        let journal: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        let wal = match conn.path() {
            Some(path) if !path.is_empty() && journal.eq_ignore_ascii_case("wal") => {
                Some(PathBuf::from(format!("{path}-wal")))
            }
            _ => None,
        };
        Ok(Self {
            wal,
            seen_version: AtomicI64::new(data_version(conn)?),
            ..Self::default()
        })
    }
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "data_version", |r| r.get(0))
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

    /// Run `write` on the connection; on a deferred handle of a database
    /// on disk, with `synchronous = NORMAL` and counted as unsynced.
    pub(crate) fn write<T>(
        &self,
        write: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let mut conn = self.lock();
        if !self.deferred || self.sync.wal.is_none() {
            return write(&mut conn);
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let result = write(&mut conn);
        // Counted before the connection is released, failed or not (a
        // failed write costs at most one needless sync).
        self.sync.written.fetch_add(1, Ordering::SeqCst);
        // Every other write keeps its fsync.
        let restored = conn.pragma_update(None, "synchronous", "FULL");
        result.and_then(|value| restored.map(|()| value))
    }

    /// Whether every commit made so far, by this process or another, is
    /// certainly on disk already. `false` when that cannot be told
    /// without waiting (the connection is busy): [`Storage::sync`] then
    /// finds out.
    pub fn nothing_to_sync(&self) -> bool {
        if self.sync.wal.is_none() {
            return true;
        }
        let state = &self.sync;
        if state.written.load(Ordering::SeqCst) > state.synced.load(Ordering::SeqCst) {
            return false;
        }
        let Ok(conn) = self.conn.try_lock() else {
            return false;
        };
        data_version(&conn).is_ok_and(|v| v == state.seen_version.load(Ordering::SeqCst))
    }

    /// Wait until every commit made so far, by this process or another,
    /// is on disk: one `fsync` of the WAL, or none when an earlier sync
    /// already covered them. Blocks; an error means the disk refused, and
    /// nothing that depends on the commits may leave.
    pub fn sync(&self) -> std::io::Result<()> {
        let state = &self.sync;
        let Some(wal) = &state.wal else {
            return Ok(());
        };
        let _one_at_a_time = state
            .syncing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let target = state.written.load(Ordering::SeqCst);
        let version = data_version(&self.lock()).map_err(std::io::Error::other)?;
        if target <= state.synced.load(Ordering::SeqCst)
            && version == state.seen_version.load(Ordering::SeqCst)
        {
            return Ok(());
        }
        match std::fs::File::open(wal) {
            Ok(file) => file.sync_data()?,
            // No WAL yet: nothing was ever committed to it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        state.synced.fetch_max(target, Ordering::SeqCst);
        state.seen_version.store(version, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synchronous(db: &Storage) -> i64 {
        db.lock()
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn deferred_writes_are_unsynced_until_a_sync_and_the_others_wait_for_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let db = Storage::open(&dir.path().join("cz.db")).unwrap();
        assert!(db.nothing_to_sync());
        // A write of the host's own waits for the disk at its commit.
        db.kv_set("t", "host", b"1").unwrap();
        assert!(db.nothing_to_sync());
        db.deferred().kv_set("t", "ledger/1", b"claimed").unwrap();
        assert!(!db.nothing_to_sync(), "a deferred write awaits a sync");
        // The connection is back to waiting for the disk.
        assert_eq!(synchronous(&db), 2, "synchronous = FULL");
        db.sync().unwrap();
        assert!(db.nothing_to_sync());
        assert_eq!(db.kv_get("t", "ledger/1").unwrap().as_deref(), Some(&b"claimed"[..]));
        // Every deferred write counts, the call log's too.
        let deferred = db.deferred();
        assert!(deferred.kv_compare_and_swap("t", "k", None, b"a").unwrap());
        deferred.sync().unwrap();
        assert!(db.nothing_to_sync());
        deferred.kv_increment("t", "n", 1).unwrap();
        assert!(!db.nothing_to_sync());
    }

    #[test]
    fn another_connections_commits_need_a_sync_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cz.db");
        let ours = Storage::open(&path).unwrap();
        let theirs = Storage::open(&path).unwrap();
        theirs.deferred().kv_set("t", "ledger/1", b"sending").unwrap();
        assert!(
            !ours.nothing_to_sync(),
            "another process's unsynced commit is seen"
        );
        ours.sync().unwrap();
        assert!(ours.nothing_to_sync());
    }

    #[test]
    fn an_in_memory_database_has_nothing_to_sync() {
        let db = Storage::in_memory().unwrap();
        db.deferred().kv_set("t", "k", b"v").unwrap();
        assert!(db.nothing_to_sync());
        db.sync().unwrap();
    }
}
