//! The database release 8fe53d6 left behind, opened by this release: the
//! schema is migrated and not one row is lost or changed; a second start
//! changes nothing; the rotated key opens every secret; the recordings and
//! triggers still queued on that release's single queue indexes are found
//! by this release's queues; and the key-value layout is stamped without
//! touching what is there. A database from a later release is read or refused.

use super::copy_fixture;
use anyhow::Context;
use connectzero::storage::{Storage, migrations};
use guest_support::StageError;
use rusqlite::Connection;
use rusqlite::types::Value;
use std::collections::BTreeMap;

/// The demo tenant's namespace as the components see it.
struct Namespace<'a>(&'a Storage);

fn storage_error(e: rusqlite::Error) -> StageError {
    StageError::Storage(e.to_string())
}

impl guest_support::kv::Store for Namespace<'_> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StageError> {
        self.0.kv_get("demo", key).map_err(storage_error)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StageError> {
        self.0.kv_set("demo", key, value).map_err(storage_error)
    }
    fn delete(&self, key: &str) -> Result<(), StageError> {
        self.0.kv_delete("demo", key).map_err(storage_error)
    }
    fn swap(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> Result<bool, StageError> {
        self.0
            .kv_compare_and_swap("demo", key, expected, new)
            .map_err(storage_error)
    }
    fn list(&self, cursor: Option<&str>) -> Result<(Vec<String>, Option<String>), StageError> {
        let keys = self.0.kv_list("demo", cursor).map_err(storage_error)?;
        let next = keys.last().cloned();
        Ok((keys, next))
    }
}

/// Every row of every table, by table, as SQLite returns them (columns in
/// the order the old release created them, rows in rowid or key order).
fn rows(
    conn: &Connection,
    columns_of: impl Fn(&str) -> Option<Vec<String>>,
) -> anyhow::Result<BTreeMap<String, Vec<Vec<Value>>>> {
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )?
        .query_map([], |r| r.get(0))?
        .map(Result::unwrap)
        .collect();
    Ok(tables
        .into_iter()
        .filter_map(|table| {
            let columns = columns_of(&table)?;
            let sql = format!("SELECT {} FROM {table} ORDER BY 1, 2", columns.join(", "));
            let mut statement = conn.prepare(&sql).unwrap();
            let n = statement.column_count();
            let all = statement
                .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
                .unwrap()
                .map(Result::unwrap)
                .collect();
            Some((table, all))
        })
        .collect())
}

fn columns(conn: &Connection, table: &str) -> Vec<String> {
    conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn the_previous_releases_database_is_migrated_without_losing_a_row() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = copy_fixture(dir.path())?;

    let old = Connection::open(&db)?;
    let old_version: u32 = old.pragma_query_value(None, "user_version", |r| r.get(0))?;
    assert_eq!(old_version, 0, "the fixture predates schema versions");
    let old_columns: BTreeMap<String, Vec<String>> = [
        "kv",
        "calls",
        "secrets",
        "tenant_auth",
        "oauth_states",
        "backfill_progress",
        "tenants",
        "web_settings",
        "web_retries",
        "diagnostics_incidents",
    ]
    .iter()
    .map(|t| (t.to_string(), columns(&old, t)))
    .collect();
    let before = rows(&old, |t| old_columns.get(t).cloned())?;
    drop(old);
    // The fixture is a real run: calls, ledger entries and secrets.
    assert!(!before["calls"].is_empty(), "the fixture has no calls");
    assert!(before["kv"].len() > 10, "the fixture has no ledger");

    let storage = Storage::open(&db)?;
    let new = Connection::open(&db)?;
    let version: u32 = new.pragma_query_value(None, "user_version", |r| r.get(0))?;
    assert_eq!(version, migrations::latest());
    // Every row of every old table, every old column, unchanged.
    assert_eq!(rows(&new, |t| old_columns.get(t).cloned())?, before);
    // The new tables and columns exist.
    for table in ["web_sessions", "refresh_leases", "rate_budgets"] {
        assert!(!columns(&new, table).is_empty(), "{table}");
    }
    assert!(columns(&new, "oauth_states").contains(&"client".to_string()));

    // The host reads it: every call of the fixture's tenant is in its log.
    let tenant = match &before["calls"][0][0] {
        Value::Text(t) => t.clone(),
        other => panic!("tenant column {other:?}"),
    };
    assert_eq!(storage.call_count(&tenant)? as usize, before["calls"].len());

    // A second start (another host on the database) changes nothing.
    let again = Storage::open(&db)?;
    drop(again);
    assert_eq!(rows(&new, |t| old_columns.get(t).cloned())?, before);

    // The rotated key opens every secret, as sealed by that release.
    let secrets = connectzero::secrets::open_store(&storage, &db, None)?;
    for (name, value) in [
        ("pbx.client_secret", "fixture-pbx-secret"),
        ("crm.client_secret", "fixture-crm-secret"),
        ("actions.secret", "fixture-action-secret"),
    ] {
        let secret = secrets.get("acme", name)?.with_context(|| name)?;
        assert_eq!(secret.expose(), value, "{name}");
    }

    // The recordings and triggers the old release left queued (on its
    // single index per queue) are due on this release's queues: worked,
    // not lost. The fixture has at least one of each.
    let namespace = Namespace(&storage);
    for queue in ["attach", "trigger"] {
        let listed: Vec<String> = serde_json::from_slice(
            &storage
                .kv_get("demo", &format!("{queue}/index"))?
                .unwrap_or_else(|| b"[]".to_vec()),
        )?;
        assert!(!listed.is_empty(), "the fixture has no {queue} job queued");
        let mut due = guest_support::queue::Queue::new(&namespace, queue)
            .due::<serde_json::Value>(i64::MAX / 2, 100)?;
        due.sort();
        let mut listed = listed;
        listed.sort();
        assert_eq!(due, listed, "{queue}");
        for id in &due {
            let job = storage.kv_get("demo", &format!("{queue}/job/{id}"))?;
            assert!(job.is_some(), "{queue}/job/{id}");
        }
    }

    // The layout is stamped and the ledger left as it was. The old index
    // key stays (emptied: reading the queue moved its ids onto pages), so
    // an old worker still running can write to it.
    let ledger_before = storage.kv_count_prefix("demo", "ledger/")?;
    guest_support::layout::check(&namespace)?;
    let stamp: guest_support::layout::Stamp = serde_json::from_slice(
        &storage
            .kv_get("demo", guest_support::layout::STAMP_KEY)?
            .context("the key is set")?,
    )?;
    assert_eq!(stamp.version, guest_support::layout::LAYOUT_VERSION);
    assert_eq!(storage.kv_count_prefix("demo", "ledger/")?, ledger_before);
    assert!(storage.kv_get("demo", "attach/index")?.is_some());
    Ok(())
}

/// The schema version and layout version the newest fixture here is
/// upgraded to: release 8fe53d6's fixture checks every step after the
/// first (schema 2 to 6, layout 2); release e8d6582's (schema 6) step 7,
/// the call log's insights column.
const FIXTURES_COVER: (u32, u32) = (7, 2);

#[test]
fn a_schema_6_database_gains_the_insights_column_and_keeps_every_row() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("connectzero.db");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/upgrade/e8d6582/connectzero.db"),
        &db,
    )?;
    let old = Connection::open(&db)?;
    let old_version: u32 = old.pragma_query_value(None, "user_version", |r| r.get(0))?;
    assert_eq!(old_version, 6, "the fixture is of schema 6");
    let tables: Vec<String> = old
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let old_columns: BTreeMap<String, Vec<String>> = tables
        .iter()
        .map(|t| (t.clone(), columns(&old, t)))
        .collect();
    assert!(!old_columns["calls"].contains(&"insights".to_string()));
    let before = rows(&old, |t| old_columns.get(t).cloned())?;
    drop(old);
    assert_eq!(before["calls"].len(), 21, "the fixture's demo calls");

    let storage = Storage::open(&db)?;
    let new = Connection::open(&db)?;
    let version: u32 = new.pragma_query_value(None, "user_version", |r| r.get(0))?;
    assert_eq!(version, migrations::latest());
    // Every old row and column unchanged (schema_compat's row included:
    // the step leaves the database readable by the release before).
    assert_eq!(rows(&new, |t| old_columns.get(t).cloned())?, before);
    assert!(columns(&new, "calls").contains(&"insights".to_string()));
    // Every call handled before says its insights are none.
    let calls = storage.calls("demo")?;
    assert_eq!(calls.len(), 21);
    assert!(calls.iter().all(|c| c.insights == "none"), "{calls:?}");
    // A second start changes nothing.
    drop(Storage::open(&db)?);
    assert_eq!(rows(&new, |t| old_columns.get(t).cloned())?, before);
    Ok(())
}

#[test]
fn every_storage_change_has_a_fixture_from_the_release_before_it() -> anyhow::Result<()> {
    // A new schema step or layout version must come with a fixture made
    // by the release before it (fixtures/upgrade/<release>/make.sh, as the
    // 8fe53d6 one), replayed like this one; then raise FIXTURES_COVER.
    assert_eq!(
        (migrations::latest(), guest_support::layout::LAYOUT_VERSION),
        FIXTURES_COVER,
        "storage changed since the newest upgrade fixture: add one made by \
         the release before the change (docs/OPERATIONS.md, \"Upgrades\")"
    );
    Ok(())
}

#[test]
fn a_later_release_that_only_added_is_read_and_one_that_changed_more_is_refused()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = copy_fixture(dir.path())?;
    drop(Storage::open(&db)?);
    let conn = Connection::open(&db)?;
    // A later release added a step the previous one can still work with:
    // a host restarted on this release mid-rollout starts.
    conn.pragma_update(None, "user_version", migrations::latest() + 1)?;
    drop(Storage::open(&db).context("a database only added to is read")?);
    // Its step changed what this release reads: refused, saying so.
    conn.execute(
        "UPDATE schema_compat SET readable_by = ?1",
        [migrations::latest() + 1],
    )?;
    let error = Storage::open(&db).err().context("refused")?;
    let text = format!("{error:#}");
    assert!(text.contains("newer than this binary"), "{text}");
    assert!(text.contains("posted again"), "{text}");
    Ok(())
}
