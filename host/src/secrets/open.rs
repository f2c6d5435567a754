//! Opening a database's secrets store for a process: the key checked
//! against the stored secrets, and the [`HostLock`] every running host
//! holds so no rotation starts under it.

use super::rotate::{finish_interrupted_rotation, new_key_file, refuse_missing_key_file};
use super::{KEY_ENV, MasterKey, SecretStore, SecretsError, default_key_file};
use crate::storage::Storage;
use std::path::{Path, PathBuf};
/// An advisory lock on `<database>.lock`: every running host holds it
/// shared for its lifetime, and `keys rotate` needs it alone. The
/// operating system drops it when the process ends, however it ends.
pub struct HostLock {
    _file: std::fs::File,
}

impl HostLock {
    /// Held shared by a host serving `database`, for as long as it runs.
    pub fn shared(database: &Path) -> Result<Self, SecretsError> {
        let file = Self::open(database)?;
        file.lock_shared().map_err(|e| SecretsError::KeyFile {
            path: lock_file(database),
            why: e.to_string(),
        })?;
        Ok(Self { _file: file })
    }

    /// Held alone, or refused while any host holds it.
    pub fn exclusive(database: &Path) -> Result<Self, SecretsError> {
        let file = Self::open(database)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(SecretsError::Rotation(format!(
                "a host is running on {}: stop every `connectzero run` using it first (they hold the current key in memory), then rotate",
                database.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(SecretsError::KeyFile {
                path: lock_file(database),
                why: e.to_string(),
            }),
        }
    }

    fn open(database: &Path) -> Result<std::fs::File, SecretsError> {
        let path = lock_file(database);
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| SecretsError::KeyFile {
                path,
                why: e.to_string(),
            })
    }
}

/// `<database>.lock`.
fn lock_file(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// [`open_store`] for a process that serves or changes `database`: the
/// store, and the shared [`HostLock`] it must hold while it runs, so no
/// `keys rotate` starts meanwhile. The lock is taken after the store is
/// open (finishing a cut rotation needs the database alone), then the
/// key is checked again: a rotation that slipped in between is refused.
pub fn open_store_held(
    storage: &Storage,
    database: &Path,
    key_file: Option<&Path>,
) -> Result<(SecretStore, HostLock), SecretsError> {
    let store = open_store(storage, database, key_file)?;
    let lock = HostLock::shared(database)?;
    if let Some(other) = storage
        .secret_key_ids()?
        .into_iter()
        .find(|id| id != store.key_id())
    {
        return Err(SecretsError::Rotation(format!(
            "the secrets key was rotated (to {other}) while this command started: start it again"
        )));
    }
    Ok((store, lock))
}

/// Open the secrets of `storage` with the key for `database`:
/// `CONNECTZERO_KEY`, else `key_file` (default `<database>.key`), created
/// on first run. Fails, naming the fix, if the key does not match the
/// stored secrets.
pub fn open_store(
    storage: &Storage,
    database: &Path,
    key_file: Option<&Path>,
) -> Result<SecretStore, SecretsError> {
    let key_file = key_file
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_key_file(database));
    if std::env::var_os(KEY_ENV).is_none() {
        if new_key_file(&key_file).exists() {
            // A staged key is a rotation cut short, or one running now
            // (it holds the database alone): finishing or removing it is
            // only safe with the database to ourselves.
            let _alone = HostLock::exclusive(database).map_err(|_| {
                SecretsError::Rotation(format!(
                    "a key rotation is running on {} (or one was cut short while a host holds the database): try again once it ends",
                    database.display()
                ))
            })?;
            finish_interrupted_rotation(storage, &key_file)?;
        }
        refuse_missing_key_file(storage, &key_file)?;
    }
    let key = MasterKey::load(&key_file)?;
    if let Some(other) = storage
        .secret_key_ids()?
        .into_iter()
        .find(|id| id != key.id())
    {
        return Err(SecretsError::DatabaseKeyMismatch {
            stored_key: other,
            current_key: key.id().to_string(),
            source_name: key.source().to_string(),
        });
    }
    Ok(SecretStore::new(storage.clone(), key))
}
