//! The master key: where it comes from and how its file is protected.
//!
//! The key is 32 random bytes, written base64 in a file next to the
//! database (`<database>.key`, created on first run with mode 0600) or
//! given in the `CONNECTZERO_KEY` environment variable. A key file that
//! group or others can read is refused: anyone who can read it can read
//! every stored secret.

use super::SecretsError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use guest_support::sealing::{KEY_LEN, SealingKey};
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Environment variable that holds the key (base64 of 32 bytes); when set
/// it is used instead of the key file.
pub const KEY_ENV: &str = "CONNECTZERO_KEY";

/// Where a key came from, for messages (never the key itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The `CONNECTZERO_KEY` environment variable.
    Env,
    /// A key file.
    File(PathBuf),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Env => write!(f, "the {KEY_ENV} environment variable"),
            KeySource::File(path) => write!(f, "key file {}", path.display()),
        }
    }
}

/// A 256-bit key, ready to encrypt. Debug never shows the key.
pub struct MasterKey {
    pub(super) cipher: SealingKey,
    id: String,
    source: KeySource,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// The key in `bytes` (exactly 32).
    pub fn from_bytes(bytes: &[u8], source: KeySource) -> Result<Self, SecretsError> {
        if bytes.len() != KEY_LEN {
            return Err(bad_key(
                &source,
                &format!("it holds {} bytes, not {KEY_LEN}", bytes.len()),
            ));
        }
        let cipher = SealingKey::from_bytes(bytes)
            .map_err(|_| bad_key(&source, "it is not an AES-256 key"))?;
        Ok(Self {
            cipher,
            id: key_id(bytes),
            source,
        })
    }

    /// The key written base64 in `text` (surrounding whitespace ignored).
    fn from_base64(text: &str, source: KeySource) -> Result<Self, SecretsError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| bad_key(&source, "it is not base64"))?;
        Self::from_bytes(&bytes, source)
    }

    /// The key from `CONNECTZERO_KEY` when that is set, else from
    /// `key_file`, created with a fresh random key when absent.
    pub fn load(key_file: &Path) -> Result<Self, SecretsError> {
        match std::env::var(KEY_ENV) {
            Ok(text) => Self::from_base64(&text, KeySource::Env),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(bad_key(&KeySource::Env, "it is not base64"))
            }
            Err(std::env::VarError::NotPresent) => Self::load_file(key_file),
        }
    }

    /// The key in `key_file` (ignoring `CONNECTZERO_KEY`), created with a
    /// fresh random key and mode 0600 when the file does not exist.
    pub fn load_file(key_file: &Path) -> Result<Self, SecretsError> {
        match std::fs::symlink_metadata(key_file) {
            Ok(_) => Self::read_file(key_file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (key, encoded) = Self::generate(KeySource::File(key_file.to_path_buf()));
                write_key_file(key_file, &encoded)?;
                tracing::info!(key_file = %key_file.display(), key_id = %key.id, "created a new secrets key");
                Ok(key)
            }
            Err(e) => Err(key_file_error(key_file, &e)),
        }
    }

    /// Read an existing key file, refusing one that others can read.
    fn read_file(key_file: &Path) -> Result<Self, SecretsError> {
        check_permissions(key_file)?;
        let text = std::fs::read_to_string(key_file).map_err(|e| key_file_error(key_file, &e))?;
        Self::from_base64(&text, KeySource::File(key_file.to_path_buf()))
    }

    /// A fresh random key and its base64 text (for the key file).
    pub(super) fn generate(source: KeySource) -> (Self, String) {
        let mut bytes = [0; KEY_LEN];
        OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the operating system's random source works");
        let encoded = STANDARD.encode(bytes);
        let key = Self::from_bytes(&bytes, source).expect("a generated key has the right length");
        (key, encoded)
    }

    /// A short public fingerprint of the key (16 hex digits of a SHA-256
    /// over it): stored with every secret, so a wrong key is reported as
    /// such instead of as corrupt data.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the key came from.
    pub fn source(&self) -> &KeySource {
        &self.source
    }
}

/// Default key file for a database: `<database>.key` beside it.
pub fn default_key_file(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_os_string();
    name.push(".key");
    PathBuf::from(name)
}

fn key_id(bytes: &[u8]) -> String {
    // Domain-separated so the fingerprint is not a plain hash of the key.
    let digest = Sha256::new()
        .chain_update(b"connectzero key id\0")
        .chain_update(bytes)
        .finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Create `path` with `encoded` and mode 0600; fails if it already exists,
/// so a racing second process never overwrites the first one's key.
pub(super) fn write_key_file(path: &Path, encoded: &str) -> Result<(), SecretsError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| key_file_error(path, &e))?;
    file.write_all(encoded.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| key_file_error(path, &e))
}

/// Refuse a key file that group or others may read or write.
fn check_permissions(path: &Path) -> Result<(), SecretsError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| key_file_error(path, &e))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretsError::KeyFilePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    Ok(())
}

fn bad_key(source: &KeySource, why: &str) -> SecretsError {
    SecretsError::BadKey {
        source_name: source.to_string(),
        why: why.to_string(),
    }
}

fn key_file_error(path: &Path, error: &std::io::Error) -> SecretsError {
    SecretsError::KeyFile {
        path: path.to_path_buf(),
        why: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_new_key_file_is_created_0600_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = default_key_file(&dir.path().join("cz.db"));
        assert_eq!(path.file_name().unwrap(), "cz.db.key");
        let created = MasterKey::load_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "mode {mode:o}");
        let again = MasterKey::load_file(&path).unwrap();
        assert_eq!(created.id(), again.id());
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cz.db.key");
        MasterKey::load_file(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = MasterKey::load_file(&path).unwrap_err().to_string();
        assert!(error.contains("chmod 600"), "{error}");
        assert!(error.contains("644"), "{error}");
    }

    #[test]
    fn malformed_keys_are_named_without_their_content() {
        let error = MasterKey::from_base64("c2hvcnQ=", KeySource::Env)
            .unwrap_err()
            .to_string();
        assert!(error.contains(KEY_ENV), "{error}");
        assert!(error.contains("5 bytes"), "{error}");
        assert!(!error.contains("c2hvcnQ"), "{error}");
    }
}
