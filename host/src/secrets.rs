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
mod open;
mod rotate;
mod seal;

pub use key::{KEY_ENV, KeySource, MasterKey, default_key_file};
pub use open::{HostLock, open_store, open_store_held};
pub use rotate::{Rotation, finish_interrupted_rotation, old_key_file, rotate};

use crate::config::Secret;
use crate::storage::{SealedSecret, Storage};
use seal::{open, seal};
use std::path::PathBuf;
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
