//! `keys rotate`: re-encrypting every secret under a new key, crash-safe,
//! and finishing a rotation that was cut short.

use super::seal::{open, seal};
use super::{HostLock, KEY_ENV, KeySource, MasterKey, SecretsError, key};
use crate::storage::Storage;
use std::path::{Path, PathBuf};
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

pub(super) fn new_key_file(key_file: &Path) -> PathBuf {
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

/// A missing key file is only created afresh for a database with no
/// secrets yet; otherwise a new key would silently replace the lost one.
pub(super) fn refuse_missing_key_file(
    storage: &Storage,
    key_file: &Path,
) -> Result<(), SecretsError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::secrets::{default_key_file, open_store};
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
}
