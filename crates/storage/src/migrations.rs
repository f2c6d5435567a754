//! The database's schema as numbered migrations, the only place it is
//! written down. A database records how far it got in SQLite's
//! `user_version`; at start-up the missing steps run in one transaction,
//! in order, and the version moves with them, so a crash mid-way leaves
//! the database as it was.
//!
//! Rules for a new step (`docs/OPERATIONS.md`, "Upgrades"):
//! - append it; never edit a released one (databases already ran it);
//! - it must work on a database that has its change already (a build
//!   between releases may have made it): `IF NOT EXISTS`, or
//!   [`Change::AddColumn`], which looks first;
//! - mark it `rewrites_data` when it changes or deletes rows: a copy of
//!   the database is taken before it runs;
//! - keep what the previous release reads: during a rolling upgrade (two
//!   hosts on one database) the older one still runs. Add columns with
//!   defaults and new tables; drop or rename only a release later.
//!
//! A database newer than this binary (a later release migrated it) is
//! worked on only when every step it has beyond this binary's said the
//! release before it can still work on the database
//! ([`Migration::older_releases_read`]; the database keeps the lowest
//! version that can, in `schema_compat`), so a host restarted on the
//! previous release during a rolling upgrade still starts. Otherwise it is
//! refused with a message saying so, never half-read.

use anyhow::{Context, bail};
use rusqlite::{Connection, TransactionBehavior};
use std::path::{Path, PathBuf};

/// One migration step.
pub struct Migration {
    /// The schema version it leads to (1, 2, …, in order).
    pub version: u32,
    /// What it does, for the log and `docs/OPERATIONS.md`.
    pub name: &'static str,
    /// Whether it changes or deletes existing rows (then a copy of the
    /// database is taken first).
    pub rewrites_data: bool,
    /// Whether the release before it can still work on the database after
    /// it (it only adds tables, columns with defaults, indexes).
    pub older_releases_read: bool,
    /// The change.
    pub change: Change,
}

/// What a step changes.
pub enum Change {
    /// Statements run as they are (`CREATE … IF NOT EXISTS`, …).
    Sql(&'static str),
    /// A column added to `table`, unless it is there already.
    AddColumn {
        /// The table.
        table: &'static str,
        /// The column's name.
        column: &'static str,
        /// Its type and default, as in `ALTER TABLE … ADD COLUMN`.
        definition: &'static str,
    },
}

mod steps;
pub use steps::MIGRATIONS;

/// The schema version this binary writes.
pub fn latest() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// What [`migrate`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    /// The version the database had.
    pub from: u32,
    /// The version it has now.
    pub to: u32,
    /// The copy taken before a step that rewrites data, if any.
    pub backup: Option<PathBuf>,
}

/// Bring the database on `conn` (stored at `path`, `None` in memory) to
/// [`latest`]: see the module docs.
pub fn migrate(conn: &mut Connection, path: Option<&Path>) -> anyhow::Result<Migrated> {
    migrate_with(conn, path, MIGRATIONS)
}

/// [`migrate`] with its own list of steps (tests).
pub fn migrate_with(
    conn: &mut Connection,
    path: Option<&Path>,
    steps: &[Migration],
) -> anyhow::Result<Migrated> {
    let latest = steps.last().map_or(0, |m| m.version);
    let from = version(conn)?;
    if from > latest {
        refuse_unreadable(conn, from, latest, path)?;
        return Ok(Migrated {
            from,
            to: from,
            backup: None,
        });
    }
    let mut done = Migrated {
        from,
        to: from,
        backup: None,
    };
    if from == latest {
        return Ok(done);
    }
    // A copy before anything rewrites rows; outside the transaction (SQLite
    // cannot copy inside one). A database of version 0 may hold data too
    // (releases before versions). Another process migrating at the same
    // moment takes its own copy, under its own name.
    if let Some(path) = path
        && has_tables(conn)?
        && steps.iter().any(|m| m.version > from && m.rewrites_data)
    {
        let backup = backup_path(path, from);
        conn.execute("VACUUM INTO ?1", [backup.to_string_lossy()])
            .with_context(|| {
                format!(
                    "copying the database to {} before migrating it",
                    backup.display()
                )
            })?;
        done.backup = Some(backup);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Another process may have migrated while this one waited.
    let from = version(&tx)?;
    if from > latest {
        refuse_unreadable(&tx, from, latest, path)?;
        done.to = from;
        return Ok(done);
    }
    for step in steps.iter().filter(|m| m.version > from) {
        apply(&tx, step).with_context(|| {
            format!(
                "migrating the database to version {} ({}); nothing was changed",
                step.version, step.name
            )
        })?;
        tracing::info!(
            version = step.version,
            step = step.name,
            "database migrated"
        );
    }
    // The lowest release version that can still work on the database.
    let readable_by = steps
        .iter()
        .filter(|m| !m.older_releases_read)
        .map(|m| m.version)
        .max()
        .unwrap_or(0);
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_compat (
             id          INTEGER PRIMARY KEY CHECK (id = 1),
             readable_by INTEGER NOT NULL
         );",
    )?;
    tx.execute(
        "INSERT INTO schema_compat (id, readable_by) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET readable_by = excluded.readable_by",
        [readable_by],
    )?;
    tx.pragma_update(None, "user_version", latest)?;
    tx.commit()?;
    done.to = latest;
    Ok(done)
}

/// Whether the database holds any table (a new file holds none).
fn has_tables(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table'")?
        .exists([])
}

fn version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// A database of version `found`, newer than this binary's `latest`: fine
/// when the release that migrated it said this one can still work on it.
fn refuse_unreadable(
    conn: &Connection,
    found: u32,
    latest: u32,
    path: Option<&Path>,
) -> anyhow::Result<()> {
    let readable_by: Option<u32> = conn
        .query_row(
            "SELECT readable_by FROM schema_compat WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .ok();
    if readable_by.is_some_and(|r| r <= latest) {
        return Ok(());
    }
    let name = path.map_or("the database".into(), |p| p.display().to_string());
    bail!(
        "{name} has schema version {found}, newer than this binary's {latest}, and a later ConnectZero release changed it in a way this one cannot read: run that release (or newer). Restoring the copy taken before the upgrade is a last resort: calls handled since would be posted again (docs/OPERATIONS.md, \"Upgrades\")"
    );
}

fn apply(tx: &rusqlite::Transaction<'_>, step: &Migration) -> rusqlite::Result<()> {
    match &step.change {
        Change::Sql(sql) => tx.execute_batch(sql),
        Change::AddColumn {
            table,
            column,
            definition,
        } => {
            let exists = tx
                .prepare(&format!(
                    "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
                ))?
                .exists([column])?;
            if !exists {
                tx.execute(
                    &format!("ALTER TABLE {table} ADD COLUMN {column} {definition}"),
                    [],
                )?;
            }
            Ok(())
        }
    }
}

/// `<database>.before-v<N>.<ms>-<pid>.bak`: a name of its own per process
/// and moment (`VACUUM INTO` refuses an existing file).
fn backup_path(path: &Path, from: u32) -> PathBuf {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    PathBuf::from(format!(
        "{}.before-v{}.{ms}-{}.bak",
        path.display(),
        from + 1,
        std::process::id()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(conn: &Connection) -> Vec<String> {
        let mut statement = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .unwrap();
        statement
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn versions_are_numbered_in_order() {
        for (i, step) in MIGRATIONS.iter().enumerate() {
            assert_eq!(step.version as usize, i + 1, "{}", step.name);
        }
    }

    #[test]
    fn a_new_database_gets_every_step_and_a_second_run_changes_nothing() {
        let mut conn = Connection::open_in_memory().unwrap();
        let done = migrate(&mut conn, None).unwrap();
        assert_eq!((done.from, done.to), (0, latest()));
        assert_eq!(version(&conn).unwrap(), latest());
        for table in [
            "kv",
            "calls",
            "oauth_states",
            "web_sessions",
            "refresh_leases",
            "rate_budgets",
        ] {
            assert!(tables(&conn).contains(&table.to_string()), "{table}");
        }
        let again = migrate(&mut conn, None).unwrap();
        assert_eq!((again.from, again.to), (latest(), latest()));
    }

    #[test]
    fn a_release_8fe53d6_database_keeps_its_rows_and_gains_the_new_column() {
        let mut conn = Connection::open_in_memory().unwrap();
        // Version 0 with the baseline's tables, as that release left it.
        let Change::Sql(baseline) = MIGRATIONS[0].change else {
            panic!("the baseline is SQL");
        };
        conn.execute_batch(baseline).unwrap();
        conn.execute(
            "INSERT INTO oauth_states (state_hash, tenant, redirect_uri, expires_at_ms) VALUES ('h', 't', 'r', 5)",
            [],
        )
        .unwrap();
        migrate(&mut conn, None).unwrap();
        let client: String = conn
            .query_row(
                "SELECT client FROM oauth_states WHERE state_hash = 'h'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(client, "");
    }

    #[test]
    fn a_database_a_newer_release_only_added_to_is_worked_on_as_it_is() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, None).unwrap();
        conn.pragma_update(None, "user_version", latest() + 1)
            .unwrap();
        let done = migrate(&mut conn, None).unwrap();
        assert_eq!((done.from, done.to), (latest() + 1, latest() + 1));
        assert_eq!(version(&conn).unwrap(), latest() + 1);
    }

    #[test]
    fn a_database_from_a_newer_release_is_refused_and_left_alone() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, None).unwrap();
        // The later release's step was one older releases cannot read.
        conn.pragma_update(None, "user_version", latest() + 1)
            .unwrap();
        conn.execute("UPDATE schema_compat SET readable_by = ?1", [latest() + 1])
            .unwrap();
        let error = migrate(&mut conn, Some(Path::new("/var/lib/cz.db"))).unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains("newer than this binary"), "{text}");
        assert!(text.contains("/var/lib/cz.db"), "{text}");
        assert_eq!(version(&conn).unwrap(), latest() + 1);
    }

    const REWRITE: &[Migration] = &[
        Migration {
            version: 1,
            name: "a table",
            rewrites_data: false,
            older_releases_read: true,
            change: Change::Sql("CREATE TABLE IF NOT EXISTS t (v INTEGER);"),
        },
        Migration {
            version: 2,
            name: "doubles every value",
            rewrites_data: true,
            older_releases_read: false,
            change: Change::Sql("UPDATE t SET v = v * 2;"),
        },
        Migration {
            version: 3,
            name: "fails",
            rewrites_data: false,
            older_releases_read: true,
            change: Change::Sql("UPDATE no_such_table SET v = 1;"),
        },
    ];

    #[test]
    fn a_step_that_rewrites_rows_is_preceded_by_a_copy_and_a_failure_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cz.db");
        let mut conn = Connection::open(&path).unwrap();
        migrate_with(&mut conn, Some(&path), &REWRITE[..1]).unwrap();
        conn.execute("INSERT INTO t (v) VALUES (21)", []).unwrap();

        // Steps 2 and 3 in one go: 3 fails, so 2 is undone too.
        let error = migrate_with(&mut conn, Some(&path), REWRITE).unwrap_err();
        assert!(
            format!("{error:#}").contains("version 3 (fails)"),
            "{error:#}"
        );
        let v: i64 = conn.query_row("SELECT v FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(v, 21);
        assert_eq!(version(&conn).unwrap(), 1);
        // The copy was taken before, and holds the rows as they were.
        let backups = copies(dir.path());
        assert_eq!(backups.len(), 1, "{backups:?}");
        let copy = Connection::open(&backups[0]).unwrap();
        let v: i64 = copy.query_row("SELECT v FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(v, 21);

        // Without the failing step: migrated, a second copy beside the first.
        let done = migrate_with(&mut conn, Some(&path), &REWRITE[..2]).unwrap();
        assert_eq!(copies(dir.path()).len(), 2);
        assert!(done.backup.is_some_and(|b| b.exists()));
        let v: i64 = conn.query_row("SELECT v FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(v, 42);
    }

    /// The copies taken in `dir`.
    fn copies(dir: &Path) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.to_string_lossy().contains(".before-v2.")
                    && p.extension().is_some_and(|e| e == "bak")
            })
            .collect();
        found.sort();
        found
    }

    #[test]
    fn a_database_of_a_release_before_versions_is_copied_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cz.db");
        let mut conn = Connection::open(&path).unwrap();
        // Version 0, with rows: as release 8fe53d6 leaves it.
        conn.execute_batch("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (21);")
            .unwrap();
        let done = migrate_with(&mut conn, Some(&path), &REWRITE[..2]).unwrap();
        assert!(done.backup.is_some(), "{done:?}");
        // A new, empty database needs no copy.
        let fresh = dir.path().join("fresh.db");
        let mut conn = Connection::open(&fresh).unwrap();
        let done = migrate_with(&mut conn, Some(&fresh), &REWRITE[..2]).unwrap();
        assert_eq!(done.backup, None);
    }

    #[test]
    fn steps_that_do_not_rewrite_rows_take_no_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cz.db");
        let mut conn = Connection::open(&path).unwrap();
        migrate_with(&mut conn, Some(&path), &MIGRATIONS[..1]).unwrap();
        let done = migrate(&mut conn, Some(&path)).unwrap();
        assert_eq!(done.backup, None);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
