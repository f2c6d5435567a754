//! Sealing one secret with AES-256-GCM and opening it again: a fresh
//! nonce per value, the tenant and name as associated data, the key's
//! fingerprint checked first.

use super::{MasterKey, SecretsError};
use crate::config::Secret;
use crate::storage::SealedSecret;
use aes_gcm::aead::{Aead, AeadCore, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
/// Associated data: binds a sealed value to its tenant and name. The
/// version prefix leaves room for another format later.
fn associated_data(tenant: &str, name: &str) -> Vec<u8> {
    format!("connectzero/secret/v1\0{tenant}\0{name}").into_bytes()
}

pub(super) fn seal(
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

pub(super) fn open(key: &MasterKey, row: &SealedSecret) -> Result<Secret, SecretsError> {
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
