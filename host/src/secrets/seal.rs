//! Sealing one secret with AES-256-GCM (`guest_support::sealing`, shared
//! with the Spin provider) and opening it again: a fresh nonce per value,
//! the tenant and name as associated data, the key's fingerprint checked
//! first.

use super::{MasterKey, SecretsError};
use crate::config::Secret;
use crate::storage::SealedSecret;
use guest_support::sealing::NONCE_LEN;
use rand::TryRngCore;
use rand::rngs::OsRng;
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
    let mut nonce = [0; NONCE_LEN];
    OsRng
        .try_fill_bytes(&mut nonce)
        .map_err(|e| SecretsError::Rotation(format!("no random nonce: {e}")))?;
    let aad = associated_data(tenant, name);
    let ciphertext = key
        .cipher
        .seal(&nonce, &aad, value.expose().as_bytes())
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
    let aad = associated_data(&row.tenant, &row.name);
    let plain = key
        .cipher
        .open(&row.nonce, &aad, &row.ciphertext)
        .map_err(|_| tampered())?;
    String::from_utf8(plain)
        .map(Secret::new)
        .map_err(|_| tampered())
}
