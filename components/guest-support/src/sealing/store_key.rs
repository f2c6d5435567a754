//! The app's `token_key`: what the Spin components seal in the key-value
//! store with (the credentials provider's tokens, the tenancy provider's
//! tenant secrets).
//!
//! Spin's key-value store is a file (or a service) outside the component's
//! control, so what is kept there is sealed with the `token_key` variable.
//! The caller's name for the value is the associated data, so a value
//! copied under another name does not open. Nonces come from
//! `wasi:random`.

use super::{NONCE_LEN, SealingKey};
use crate::StageError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The app's 256-bit `token_key`.
pub struct Key(SealingKey);

impl Key {
    /// Decode a base64 key of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, StageError> {
        let bad = || {
            StageError::InvalidSettings(
                "configuration \"token_key\" must be base64 of 32 random bytes (e.g. `openssl rand -base64 32`)"
                    .into(),
            )
        };
        let bytes = STANDARD.decode(text.trim()).map_err(|_| bad())?;
        SealingKey::from_bytes(&bytes).map(Self).map_err(|_| bad())
    }

    /// Seal `plaintext` for `name` with a fresh random nonce.
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> Result<Vec<u8>, StageError> {
        let nonce = random_nonce();
        self.seal_with_nonce(&nonce, name, plaintext)
    }

    /// Seal with the given nonce (tests only need determinism; callers use
    /// [`Self::seal`], since a nonce must never repeat under one key).
    pub fn seal_with_nonce(
        &self,
        nonce: &[u8; NONCE_LEN],
        name: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, StageError> {
        self.0
            .seal_framed(nonce, name.as_bytes(), plaintext)
            .map_err(|_| StageError::Storage("sealing a value failed".into()))
    }

    /// Open a value sealed for `name`. Fails when the key is different,
    /// the value was changed, or it belongs to another name.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, StageError> {
        self.0
            .open_framed(name.as_bytes(), sealed)
            .map_err(|_| unreadable(name))
    }
}

fn unreadable(name: &str) -> StageError {
    StageError::Storage(format!(
        "the stored {name:?} does not open with this token_key (was the key changed?)"
    ))
}

#[cfg(target_arch = "wasm32")]
fn random_nonce() -> [u8; NONCE_LEN] {
    let bytes = crate::wasi::random::random::get_random_bytes(NONCE_LEN as u64);
    let mut nonce = [0; NONCE_LEN];
    nonce.copy_from_slice(&bytes[..NONCE_LEN]);
    nonce
}

#[cfg(not(target_arch = "wasm32"))]
fn random_nonce() -> [u8; NONCE_LEN] {
    // Native builds are only unit tests; they use `seal_with_nonce`.
    unreachable!("seal() needs wasi:random; native callers use seal_with_nonce")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        Key::from_base64(&STANDARD.encode([byte; 32])).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_name_only() {
        let sealed = key(1)
            .seal_with_nonce(&[7; 12], "crm", b"refresh-token-123")
            .unwrap();
        assert!(
            !sealed
                .windows(b"refresh-token-123".len())
                .any(|w| w == b"refresh-token-123"),
            "the token must not appear in clear"
        );
        assert_eq!(key(1).open("crm", &sealed).unwrap(), b"refresh-token-123");
        assert!(key(2).open("crm", &sealed).is_err(), "another key");
        assert!(key(1).open("pbx", &sealed).is_err(), "another name");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key(1).open("crm", &tampered).is_err(), "a changed value");
        assert!(key(1).open("crm", &sealed[..5]).is_err(), "a cut value");
    }

    #[test]
    fn a_key_must_be_32_bytes_of_base64() {
        assert!(Key::from_base64(&STANDARD.encode([1; 16])).is_err());
        assert!(Key::from_base64("not base64!").is_err());
        let message = match Key::from_base64("x") {
            Err(StageError::InvalidSettings(m)) => m,
            _ => panic!("expected invalid settings"),
        };
        assert!(message.contains("token_key"), "{message}");
    }
}
