//! Secrets at rest: every stored secret (3CX client secret, HighLevel
//! client secret, refresh and access tokens) is sealed with AES-256-GCM
//! (the RustCrypto `aes-gcm` crate) before it reaches SQLite.
//!
//! - one master key per database ([`MasterKey`]: `CONNECTZERO_KEY` or the
//!   key file `<database>.key`, created 0600 on first run);
//! - a fresh random 96-bit nonce per stored value;
//! - the tenant id and the secret's name as associated data, so a sealed
//!   value copied to another tenant or field does not decrypt;
//! - the key's fingerprint stored with each value, so a wrong key is
//!   reported as a wrong key, and [`rotate`] re-encrypts everything under
//!   a new key in one transaction.
//!
//! Errors name the tenant, the secret's name and the key's source, never a
//! secret value.

mod key;

pub use key::{KEY_ENV, KeySource, MasterKey, default_key_file};

use crate::config::Secret;
use crate::storage::{SealedSecret, Storage};
use aes_gcm::aead::{Aead, AeadCore, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a secret could not be stored or read, or a key not loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The key's text is not a 32-byte base64 key.
    #[error(
        "the secrets key in {source_name} is not valid: {why}; it must be the base64 of 32 random bytes (e.g. `openssl rand -base64 32`)"
    )]
    BadKey {
        /// Where the key came from.
        source_name: String,
        /// What is wrong with it.
        why: String,
    },
    /// The key file could not be read or created.
    #[error("secrets key file {}: {why}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        why: String,
    },
    /// The key file is readable or writable by group or others.
    #[error(
        "secrets key file {} has mode {mode:o}, so other users can read it; run `chmod 600 {}` (and check who may have copied it)",
        path.display(), path.display()
    )]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A secret was sealed with another key than the one loaded.
    #[error(
        "secret {name:?} of tenant {tenant:?} was encrypted with key {stored_key} but the key from {source_name} is {current_key}: start with the key this database was created with (its key file, or {KEY_ENV})"
    )]
    WrongKey {
        /// Tenant id.
        tenant: String,
        /// Secret name.
        name: String,
        /// Fingerprint stored with the value.
        stored_key: String,
        /// Fingerprint of the loaded key.
        current_key: String,
        /// Where the loaded key came from.
        source_name: String,
    },
    /// The database's secrets were sealed with another key than the one
    /// loaded (checked at start-up).
    #[error(
        "the secrets in this database were encrypted with key {stored_key} but the key from {source_name} is {current_key}: start with the key file this database was created with (after `keys rotate`, the new one; the previous is kept as `.key.old`), or set {KEY_ENV} to that key"
    )]
    DatabaseKeyMismatch {
        /// Fingerprint stored with the secrets.
        stored_key: String,
        /// Fingerprint of the loaded key.
        current_key: String,
        /// Where the loaded key came from.
        source_name: String,
    },
    /// The value does not decrypt under the right key: changed on disk.
    #[error(
        "secret {name:?} of tenant {tenant:?} does not decrypt although the key matches: the database row was altered; store the secret again (re-install, or put it in the config)"
    )]
    Tampered {
        /// Tenant id.
        tenant: String,
        /// Secret name.
        name: String,
    },
    /// A secret is neither configured nor stored.
    #[error(
        "tenant {tenant:?}: {name} is neither in the configuration nor stored: add it to the configuration once (it is then stored encrypted, and may be removed from the file)"
    )]
    Missing {
        /// Tenant id.
        tenant: String,
        /// Secret name (the configuration key).
        name: String,
    },
    /// The database holds secrets but their key file is gone.
    #[error(
        "the database holds secrets encrypted with key {stored_key}, but key file {} does not exist: restore it from a backup (or set {KEY_ENV}); a new key would not open them", path.display()
    )]
    KeyFileMissing {
        /// The expected key file.
        path: PathBuf,
        /// Fingerprint stored with the secrets.
        stored_key: String,
    },
    /// The database failed.
    #[error("secrets storage: {0}")]
    Storage(#[from] rusqlite::Error),
    /// `keys rotate` cannot write a new key where the key comes from.
    #[error("{0}")]
    Rotation(String),
}

/// The encrypted secrets of every tenant in one database; cheap to clone.
#[derive(Clone)]
pub struct SecretStore {
    storage: Storage,
    key: Arc<MasterKey>,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStore")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl SecretStore {
    /// Secrets in `storage`, sealed with `key`.
    pub fn new(storage: Storage, key: MasterKey) -> Self {
        Self {
            storage,
            key: Arc::new(key),
        }
    }

    /// The database the secrets live in.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The key's fingerprint.
    pub fn key_id(&self) -> &str {
        self.key.id()
    }

    /// The secret `name` of `tenant`, if stored.
    pub fn get(&self, tenant: &str, name: &str) -> Result<Option<Secret>, SecretsError> {
        match self.storage.secret_get(tenant, name)? {
            Some(row) => open(&self.key, &row).map(Some),
            None => Ok(None),
        }
    }

    /// Store `values` of `tenant` (name, value) in one transaction.
    pub fn put(&self, tenant: &str, values: &[(&str, &Secret)]) -> Result<(), SecretsError> {
        let rows = self.seal_all(tenant, values)?;
        self.storage.secrets_put(&rows, false)?;
        Ok(())
    }

    /// Store `values` of `tenant` and clear its "needs re-authorisation"
    /// mark in the same transaction (a completed OAuth install).
    pub fn put_authorised(
        &self,
        tenant: &str,
        values: &[(&str, &Secret)],
    ) -> Result<(), SecretsError> {
        let rows = self.seal_all(tenant, values)?;
        self.storage.secrets_put(&rows, true)?;
        Ok(())
    }

    /// Forget the secret `name` of `tenant`.
    pub fn delete(&self, tenant: &str, name: &str) -> Result<(), SecretsError> {
        self.storage.secret_delete(tenant, name)?;
        Ok(())
    }

    fn seal_all(
        &self,
        tenant: &str,
        values: &[(&str, &Secret)],
    ) -> Result<Vec<SealedSecret>, SecretsError> {
        values
            .iter()
            .map(|(name, value)| seal(&self.key, tenant, name, value))
            .collect()
    }
}

/// Associated data: binds a sealed value to its tenant and name. The
/// version prefix leaves room for another format later.
fn associated_data(tenant: &str, name: &str) -> Vec<u8> {
    format!("connectzero/secret/v1\0{tenant}\0{name}").into_bytes()
}

fn seal(
    key: &MasterKey,
    tenant: &str,
    name: &str,
    value: &Secret,
) -> Result<SealedSecret, SecretsError> {
    // A fresh random nonce per value: 2^-32 collision bound holds far past
    // any number of secrets one deployment stores.
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let aad = associated_data(tenant, name);
    let ciphertext = key
        .cipher
        .encrypt(
            &nonce,
            Payload {
                msg: value.expose().as_bytes(),
                aad: &aad,
            },
        )
        .map_err(|_| SecretsError::Rotation("AES-GCM refused to encrypt".into()))?;
    Ok(SealedSecret {
        tenant: tenant.to_string(),
        name: name.to_string(),
        key_id: key.id().to_string(),
        nonce: nonce.to_vec(),
        ciphertext,
    })
}

fn open(key: &MasterKey, row: &SealedSecret) -> Result<Secret, SecretsError> {
    if row.key_id != key.id() {
        return Err(SecretsError::WrongKey {
            tenant: row.tenant.clone(),
            name: row.name.clone(),
            stored_key: row.key_id.clone(),
            current_key: key.id().to_string(),
            source_name: key.source().to_string(),
        });
    }
    let tampered = || SecretsError::Tampered {
        tenant: row.tenant.clone(),
        name: row.name.clone(),
    };
    if row.nonce.len() != 12 {
        return Err(tampered());
    }
    let aad = associated_data(&row.tenant, &row.name);
    let plain = key
        .cipher
        .decrypt(
            Nonce::from_slice(&row.nonce),
            Payload {
                msg: &row.ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| tampered())?;
    String::from_utf8(plain)
        .map(Secret::new)
        .map_err(|_| tampered())
}

/// What [`rotate`] did.
#[derive(Debug)]
pub struct Rotation {
    /// Secrets re-encrypted.
    pub secrets: usize,
    /// Fingerprint of the old key.
    pub old_key_id: String,
    /// Fingerprint of the new key.
    pub new_key_id: String,
    /// Where the old key file was kept.
    pub old_key_file: PathBuf,
}

/// The previous key file kept by [`rotate`]: `<key file>.old`.
pub fn old_key_file(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_os_string();
    name.push(".old");
    PathBuf::from(name)
}

fn new_key_file(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_os_string();
    name.push(".new");
    PathBuf::from(name)
}

/// Re-encrypt every secret in `storage` under a new random key and make
/// it the key in `key_file`; the old key file is kept as `<key
/// file>.old`. Stop the hosts using the database first: they hold the old
/// key in memory.
///
/// Order, so that a crash at any point loses nothing: the new key is
/// written to `<key file>.new` (0600, synced); one SQLite transaction
/// re-encrypts every row; then the files are renamed. A crash before the
/// commit leaves the old key in force; after it, the next start finds the
/// `.new` file matching the rows and finishes the renames
/// ([`finish_interrupted_rotation`]).
pub fn rotate(
    storage: &Storage,
    database: &Path,
    key_file: &Path,
) -> Result<Rotation, SecretsError> {
    // Running hosts hold the old key in memory and would write secrets
    // under it after the rotation: refused while any holds the database.
    let _alone = HostLock::exclusive(database)?;
    if std::env::var_os(KEY_ENV).is_some() {
        return Err(SecretsError::Rotation(format!(
            "{KEY_ENV} is set, and a new key cannot be written into it: unset it and rotate the key file, or re-encrypt with a key file and move that key into {KEY_ENV} afterwards"
        )));
    }
    finish_interrupted_rotation(storage, key_file)?;
    refuse_missing_key_file(storage, key_file)?;
    let old = MasterKey::load_file(key_file)?;
    let staged = new_key_file(key_file);
    // A leftover from a rotation that failed before its commit.
    let _ = std::fs::remove_file(&staged);
    let (new, encoded) = MasterKey::generate(KeySource::File(key_file.to_path_buf()));
    key::write_key_file(&staged, &encoded)?;
    // The staged key must be on disk before secrets are sealed with it.
    sync_directory_of(&staged)?;
    let rewritten = storage.secrets_rewrite(|row| {
        let value = open(&old, row)?;
        seal(&new, &row.tenant, &row.name, &value)
    });
    let secrets = match rewritten {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            return Err(e);
        }
    };
    let old_file = old_key_file(key_file);
    swap_in(key_file, &staged, &old_file)?;
    tracing::info!(secrets, old_key = %old.id(), new_key = %new.id(), "rotated the secrets key");
    Ok(Rotation {
        secrets,
        old_key_id: old.id().to_string(),
        new_key_id: new.id().to_string(),
        old_key_file: old_file,
    })
}

/// Put the staged key in place, keeping the current one as `old_file`.
/// Each step may be the last before a crash; run again, it finishes what
/// is left (the first rename done: only the second is left). The
/// directory is synced after, so a power cut cannot undo the renames.
fn swap_in(key_file: &Path, staged: &Path, old_file: &Path) -> Result<(), SecretsError> {
    let io = |path: &Path, e: std::io::Error| SecretsError::KeyFile {
        path: path.to_path_buf(),
        why: e.to_string(),
    };
    if std::fs::symlink_metadata(key_file).is_ok() {
        std::fs::rename(key_file, old_file).map_err(|e| io(key_file, e))?;
    }
    std::fs::rename(staged, key_file).map_err(|e| io(staged, e))?;
    sync_directory_of(key_file)
}

/// Make the directory entries of `file`'s directory durable (a created or
/// renamed key file survives a power cut, as the database commit does).
pub(crate) fn sync_directory_of(file: &Path) -> Result<(), SecretsError> {
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SecretsError::KeyFile {
            path: dir.to_path_buf(),
            why: e.to_string(),
        })
}

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

/// A missing key file is only created afresh for a database with no
/// secrets yet; otherwise a new key would silently replace the lost one.
fn refuse_missing_key_file(storage: &Storage, key_file: &Path) -> Result<(), SecretsError> {
    if std::fs::symlink_metadata(key_file).is_ok() {
        return Ok(());
    }
    match storage.secret_key_ids()?.into_iter().next() {
        Some(stored_key) => Err(SecretsError::KeyFileMissing {
            path: key_file.to_path_buf(),
            stored_key,
        }),
        None => Ok(()),
    }
}

/// Complete a rotation that committed its transaction but crashed before
/// renaming the key files: if `<key file>.new` exists and the stored
/// secrets use its key, it becomes the key file; if they do not, it is a
/// leftover of a rotation that never committed and is removed.
pub fn finish_interrupted_rotation(storage: &Storage, key_file: &Path) -> Result<(), SecretsError> {
    let staged = new_key_file(key_file);
    if !staged.exists() {
        return Ok(());
    }
    let new = MasterKey::load_file(&staged)?;
    if storage.secret_key_ids()?.iter().any(|id| id == new.id()) {
        tracing::warn!(key_file = %key_file.display(), "finishing an interrupted key rotation");
        swap_in(key_file, &staged, &old_key_file(key_file))?;
    } else {
        let _ = std::fs::remove_file(&staged);
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> SecretStore {
        let (key, _) = MasterKey::generate(KeySource::Env);
        SecretStore::new(Storage::in_memory().unwrap(), key)
    }

    #[test]
    fn values_round_trip_with_a_fresh_nonce_each_time() {
        let store = store();
        let value = Secret::new("refresh-token-value");
        store.put("t1", &[("crm.refresh_token", &value)]).unwrap();
        let first = store
            .storage()
            .secret_get("t1", "crm.refresh_token")
            .unwrap()
            .unwrap();
        store.put("t1", &[("crm.refresh_token", &value)]).unwrap();
        let second = store
            .storage()
            .secret_get("t1", "crm.refresh_token")
            .unwrap()
            .unwrap();
        assert_ne!(first.nonce, second.nonce);
        assert_ne!(first.ciphertext, second.ciphertext);
        assert_eq!(store.get("t1", "crm.refresh_token").unwrap(), Some(value));
        assert_eq!(store.get("t2", "crm.refresh_token").unwrap(), None);
    }

    #[test]
    fn a_rotation_that_crashed_after_its_commit_is_finished_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cz.db");
        let storage = Storage::open(&db).unwrap();
        let key_file = default_key_file(&db);
        let old = open_store(&storage, &db, None).unwrap();
        old.put("t", &[("n", &Secret::new("v"))]).unwrap();
        // What `rotate` does up to its commit, without the renames.
        let (new, encoded) = MasterKey::generate(KeySource::File(key_file.clone()));
        key::write_key_file(&new_key_file(&key_file), &encoded).unwrap();
        storage
            .secrets_rewrite(|row| seal(&new, &row.tenant, &row.name, &open(&old.key, row)?))
            .unwrap();

        let reopened = open_store(&storage, &db, None).unwrap();
        assert_eq!(reopened.key_id(), new.id());
        assert_eq!(reopened.get("t", "n").unwrap(), Some(Secret::new("v")));
        assert!(!new_key_file(&key_file).exists());
        assert!(old_key_file(&key_file).exists());
    }

    #[test]
    fn a_value_moved_to_another_tenant_or_name_does_not_open() {
        let store = store();
        store
            .put("t1", &[("crm.refresh_token", &Secret::new("v"))])
            .unwrap();
        let row = store
            .storage()
            .secret_get("t1", "crm.refresh_token")
            .unwrap()
            .unwrap();
        let moved = SealedSecret {
            tenant: "t2".into(),
            ..row.clone()
        };
        let renamed = SealedSecret {
            name: "crm.access_token".into(),
            ..row
        };
        store
            .storage()
            .secrets_put(&[moved, renamed], false)
            .unwrap();
        assert!(matches!(
            store.get("t2", "crm.refresh_token"),
            Err(SecretsError::Tampered { .. })
        ));
        assert!(matches!(
            store.get("t1", "crm.access_token"),
            Err(SecretsError::Tampered { .. })
        ));
    }
}
