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

/// Verify `x-wh-signature` when present; required when a public key is
/// configured (`guest_support::webhook::check_signature`).
pub fn check_signature(
    configured_key: Option<&str>,
    body: &[u8],
    signature: Option<&str>,
) -> Result<(), ApiError> {
    Ok(webhook::check_signature(configured_key, body, signature)?)
}
