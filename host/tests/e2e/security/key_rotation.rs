//! `keys rotate`: a crash at any step leaves a database that starts and
//! reads every secret, and no rotation runs under a running host.

use anyhow::Context;
use connectzero::config::Secret;
use connectzero::secrets::{self, HostLock, default_key_file, old_key_file, open_store};
use connectzero::storage::Storage;
use std::path::{Path, PathBuf};

const VALUES: [(&str, &str, &str); 2] = [
    ("t1", "pbx.client_secret", "first-secret-value"),
    ("t2", "crm.refresh_token", "second-secret-value"),
];

/// A database with two secrets under a key file, rotated once; returns
/// the database, the key file and the new key's id.
fn rotated(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf, String)> {
    let db = dir.join("cz.db");
    let storage = Storage::open(&db)?;
    let store = open_store(&storage, &db, None)?;
    for (tenant, name, value) in VALUES {
        store.put(tenant, &[(name, &Secret::new(value))])?;
    }
    let key_file = default_key_file(&db);
    let rotation = secrets::rotate(&storage, &db, &key_file)?;
    Ok((db, key_file, rotation.new_key_id))
}

fn staged(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_os_string();
    name.push(".new");
    PathBuf::from(name)
}

/// The database opens, with `key_id`, and reads every secret.
fn starts_and_reads_everything(db: &Path, key_id: &str) -> anyhow::Result<()> {
    let storage = Storage::open(db)?;
    let store = open_store(&storage, db, None).context("the database starts")?;
    assert_eq!(store.key_id(), key_id);
    for (tenant, name, value) in VALUES {
        assert_eq!(
            store
                .get(tenant, name)?
                .context("the secret is stored")?
                .expose(),
            value
        );
    }
    Ok(())
}

/// The committed rotation, crashed between its two renames: the key file
/// gone, the old one beside it, the new one staged. Before, the next start
/// failed (renaming the missing key file) and every tenant stopped.
#[test]
fn a_rotation_cut_between_its_renames_is_finished_at_the_next_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (db, key_file, new_key) = rotated(dir.path())?;
    std::fs::rename(&key_file, staged(&key_file))?;
    assert!(!key_file.exists() && old_key_file(&key_file).exists());
    starts_and_reads_everything(&db, &new_key)?;
    assert!(key_file.exists() && !staged(&key_file).exists());
    Ok(())
}

/// Committed, no rename yet: the staged key is the database's.
#[test]
fn a_rotation_cut_after_its_commit_is_finished_at_the_next_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (db, key_file, new_key) = rotated(dir.path())?;
    std::fs::rename(&key_file, staged(&key_file))?;
    std::fs::rename(old_key_file(&key_file), &key_file)?;
    starts_and_reads_everything(&db, &new_key)?;
    Ok(())
}

/// Cut before its commit: the staged key was never used and goes.
#[test]
fn a_rotation_cut_before_its_commit_leaves_the_old_key() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("cz.db");
    let storage = Storage::open(&db)?;
    let store = open_store(&storage, &db, None)?;
    for (tenant, name, value) in VALUES {
        store.put(tenant, &[(name, &Secret::new(value))])?;
    }
    let key_file = default_key_file(&db);
    // The new key a rotation staged before it was cut (any other key).
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere)?;
    let (_, other_key, _) = rotated(&elsewhere)?;
    std::fs::copy(&other_key, staged(&key_file))?;
    starts_and_reads_everything(&db, store.key_id())?;
    assert!(!staged(&key_file).exists());
    Ok(())
}

/// Before, `keys rotate` re-encrypted under a running host, which went on
/// writing (rotated refresh tokens) with the old key it held in memory.
#[test]
fn no_rotation_while_a_host_holds_the_database() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (db, key_file, _) = rotated(dir.path())?;
    let storage = Storage::open(&db)?;
    let running = HostLock::shared(&db)?;
    let error = secrets::rotate(&storage, &db, &key_file)
        .unwrap_err()
        .to_string();
    assert!(error.contains("a host is running"), "{error}");
    drop(running);
    secrets::rotate(&storage, &db, &key_file).context("rotates once the host is gone")?;
    Ok(())
}

/// Before, any command opening the secrets (`doctor`, `tenant add`) while
/// a rotation ran took its staged key for a leftover and deleted it: the
/// rotation then committed secrets under a key that existed nowhere.
#[test]
fn a_running_rotations_staged_key_is_left_alone() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (db, key_file, key_id) = rotated(dir.path())?;
    std::fs::copy(&key_file, staged(&key_file))?;
    let rotation = HostLock::exclusive(&db)?;
    let storage = Storage::open(&db)?;
    let error = open_store(&storage, &db, None).unwrap_err().to_string();
    assert!(error.contains("key rotation is running"), "{error}");
    assert!(
        staged(&key_file).exists(),
        "the running rotation's key is kept"
    );
    drop(rotation);
    std::fs::remove_file(staged(&key_file))?;
    starts_and_reads_everything(&db, &key_id)?;
    Ok(())
}
