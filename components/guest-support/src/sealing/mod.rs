//! Sealing secrets at rest with AES-256-GCM, for both runtimes: the
//! bundled host's secrets store (rows in SQLite) and the Spin provider's
//! token cache (entries in the key-value store).
//!
//! The caller chooses the associated data (what the value is bound to, so
//! a value copied under another name does not open) and brings a fresh
//! random nonce per value from its platform's random source: the host's
//! operating system, or `wasi:random` in a component. Nothing here does
//! I/O or keeps state beyond the key.

pub mod store_key;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

/// A key's length in bytes (AES-256).
pub const KEY_LEN: usize = 32;

/// A nonce's length in bytes (GCM's 96 bits).
pub const NONCE_LEN: usize = 12;

/// Why a value could not be sealed or opened. Deliberately without
/// detail: which byte failed is of no use and could help an attacker.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The key is not 32 bytes.
    #[error("a sealing key must be {KEY_LEN} bytes")]
    BadKey,
    /// The value was sealed with another key or for other associated
    /// data, or it was changed or cut.
    #[error("the sealed value does not open with this key")]
    DoesNotOpen,
    /// The cipher refused to seal (the value is beyond GCM's limit).
    #[error("the value could not be sealed")]
    CannotSeal,
}

/// A key ready to seal and open values. Neither `Debug` nor `Clone`: the
/// key stays where it was made.
pub struct SealingKey(Aes256Gcm);

impl SealingKey {
    /// The key in `bytes`, exactly [`KEY_LEN`] of them.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        Aes256Gcm::new_from_slice(bytes)
            .map(Self)
            .map_err(|_| SealError::BadKey)
    }

    /// `plaintext` sealed under `nonce` for `associated`: the ciphertext
    /// with its tag. A nonce must never be used twice with one key.
    pub fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        associated: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let payload = Payload {
            msg: plaintext,
            aad: associated,
        };
        self.0
            .encrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| SealError::CannotSeal)
    }

    /// The plaintext of `ciphertext` sealed under `nonce` for
    /// `associated`.
    pub fn open(
        &self,
        nonce: &[u8],
        associated: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        if nonce.len() != NONCE_LEN {
            return Err(SealError::DoesNotOpen);
        }
        let payload = Payload {
            msg: ciphertext,
            aad: associated,
        };
        self.0
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| SealError::DoesNotOpen)
    }

    /// [`SealingKey::seal`] framed as one value: the nonce, then the
    /// ciphertext.
    pub fn seal_framed(
        &self,
        nonce: &[u8; NONCE_LEN],
        associated: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let mut framed = nonce.to_vec();
        framed.extend(self.seal(nonce, associated, plaintext)?);
        Ok(framed)
    }

    /// Open a value made by [`SealingKey::seal_framed`].
    pub fn open_framed(&self, associated: &[u8], framed: &[u8]) -> Result<Vec<u8>, SealError> {
        if framed.len() < NONCE_LEN {
            return Err(SealError::DoesNotOpen);
        }
        let (nonce, ciphertext) = framed.split_at(NONCE_LEN);
        self.open(nonce, associated, ciphertext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SealingKey {
        SealingKey::from_bytes(&[byte; KEY_LEN]).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_associated_data_only() {
        let sealed = key(1)
            .seal_framed(&[7; NONCE_LEN], b"crm", b"refresh-token-123")
            .unwrap();
        assert!(
            !sealed
                .windows(b"refresh-token-123".len())
                .any(|w| w == b"refresh-token-123"),
            "the value must not appear in clear"
        );
        assert_eq!(
            key(1).open_framed(b"crm", &sealed).unwrap(),
            b"refresh-token-123"
        );
        assert_eq!(
            key(2).open_framed(b"crm", &sealed),
            Err(SealError::DoesNotOpen)
        );
        assert_eq!(
            key(1).open_framed(b"pbx", &sealed),
            Err(SealError::DoesNotOpen)
        );
        let mut changed = sealed.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert_eq!(
            key(1).open_framed(b"crm", &changed),
            Err(SealError::DoesNotOpen)
        );
        assert_eq!(
            key(1).open_framed(b"crm", &sealed[..5]),
            Err(SealError::DoesNotOpen)
        );
        assert_eq!(
            key(1).open(&[7; 5], b"crm", &sealed[NONCE_LEN..]),
            Err(SealError::DoesNotOpen)
        );
    }

    #[test]
    fn a_key_is_exactly_32_bytes() {
        assert_eq!(
            SealingKey::from_bytes(&[1; 16]).err(),
            Some(SealError::BadKey)
        );
        assert_eq!(
            SealingKey::from_bytes(&[1; 33]).err(),
            Some(SealError::BadKey)
        );
    }
}
