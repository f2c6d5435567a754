//! Who may call the action: the shared-secret header, and HighLevel's
//! `x-wh-signature` whenever it is present. The checks are
//! `guest_support::webhook`'s (the app component's subscription route uses
//! them too); here they answer as [`ApiError`]s.

use crate::reply::ApiError;
use guest_support::webhook::{self, Refusal};
pub use guest_support::webhook::{SIGNATURE_HEADER, body_digest};

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        ApiError::new(refusal.status, refusal.message)
    }
}

/// Check the shared-secret header. Fails closed: with no secret configured
/// every call is refused (500, so the operator sees it is a set-up problem).
pub fn check_secret(
    header_name: &str,
    presented: Option<&str>,
    configured: Option<&str>,
) -> Result<(), ApiError> {
    Ok(webhook::check_secret(header_name, presented, configured)?)
}

/// Verify `signature` (base64 RSASSA-PKCS1-v1_5 with SHA-256) over the raw
/// `body` with the PEM public key `public_key_pem`.
pub fn verify_signature(
    public_key_pem: &str,
    body: &[u8],
    signature: &str,
) -> Result<(), ApiError> {
    Ok(webhook::verify_signature(public_key_pem, body, signature)?)
}
