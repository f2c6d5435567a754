//! Tokens as the token endpoints answer them and as they are kept: reading
//! an answer (and whether a refusal means the grant is gone), lifetimes
//! and renewal times, the stored access token's encoding, and the cache.

use super::names::*;
use super::{CachedToken, TokenResponse};
use crate::bindings::types::{Service, StageError};
use crate::config::Secret;
use crate::secrets::{SecretStore, SecretsError};
use crate::upstream::{message_of, network_error, retry_after, status_error};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
/// Tokens are renewed this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// [ASSUMED] (HighLevel NOTES §2.2: the error body for a revoked refresh
/// token is undocumented): OAuth servers answer `invalid_grant` (RFC 6749
/// §5.2); node-oauth2-server, which the simulator follows, words it
/// "Invalid grant: …". Anything else (e.g. "Invalid client") is not a
/// revoked grant and stays an ordinary retryable refusal. `body` is the
/// token endpoint's raw error body.
fn is_revoked_grant(body: &str) -> bool {
    let body = body.to_ascii_lowercase();
    body.contains("invalid_grant") || body.contains("invalid grant")
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The stored access token's value: `<expires at ms> <token>`.
pub(super) fn encode_access(token: &Secret, lifetime: Duration) -> Secret {
    let expires_at = now_ms() + lifetime.as_millis() as i64;
    Secret::new(format!("{expires_at} {}", token.expose()))
}

/// The stored access token, if there is one that is not due for renewal.
pub(super) fn stored_access_token(
    store: &SecretStore,
    tenant: &str,
) -> Result<Option<CachedToken>, SecretsError> {
    let Some(stored) = store.get(tenant, CRM_ACCESS_TOKEN)? else {
        return Ok(None);
    };
    let Some((expires_at, token)) = stored.expose().split_once(' ') else {
        return Ok(None);
    };
    let Ok(expires_at) = expires_at.parse::<i64>() else {
        return Ok(None);
    };
    let left = Duration::from_millis(u64::try_from(expires_at - now_ms()).unwrap_or(0));
    if left <= REFRESH_MARGIN {
        return Ok(None);
    }
    Ok(Some(CachedToken {
        value: Secret::new(token),
        renew_at: renew_at(left),
    }))
}

/// Read a token endpoint's answer; 400/401 become `unauthorized` with `hint`.
pub(super) async fn read_token(
    service: Service,
    response: reqwest::Response,
    hint: &str,
) -> Result<TokenResponse, StageError> {
    read_token_checked(service, response, hint)
        .await
        .map_err(|(error, _)| error)
}

/// [`read_token`], also telling whether the refusal says the grant is
/// gone ([`is_revoked_grant`] of the raw body: `message_of` would prefer
/// `error_description` and hide an `"error": "invalid_grant"`).
pub(super) async fn read_token_checked(
    service: Service,
    response: reqwest::Response,
    hint: &str,
) -> Result<TokenResponse, (StageError, bool)> {
    let status = response.status().as_u16();
    let retry = retry_after(&response);
    let body = crate::upstream::capped_text(response)
        .await
        .map_err(|e| (network_error(service, &e), false))?;
    if status == 200 {
        return serde_json::from_str(&body).map_err(|e| {
            let error = StageError::InvalidData(format!(
                "the token endpoint's answer is not a token response: {e}"
            ));
            (error, false)
        });
    }
    let revoked = matches!(status, 400 | 401) && is_revoked_grant(&body);
    let message = format!("{hint} ({})", message_of(&body));
    let status = if status == 400 { 401 } else { status };
    Err((status_error(service, status, retry, message), revoked))
}

/// A 3CX token's lifetime: one reading for both runtimes
/// (`guest_support::waits`).
pub(super) fn pbx_lifetime(expires_in: Option<u64>) -> Duration {
    Duration::from_secs(guest_support::waits::pbx_token_lifetime_secs(expires_in))
}

/// A HighLevel access token's lifetime (`guest_support::waits`).
pub(super) fn crm_lifetime(expires_in: Option<u64>) -> Duration {
    Duration::from_secs(guest_support::waits::crm_token_lifetime_secs(expires_in))
}

pub(super) fn renew_at(lifetime: Duration) -> Instant {
    Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN)
}

pub(super) fn fresh(cached: &Mutex<Option<CachedToken>>) -> Option<String> {
    lock(cached)
        .as_ref()
        .filter(|t| Instant::now() < t.renew_at)
        .map(|t| t.value.expose().to_string())
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn only_invalid_grant_answers_count_as_revoked() {
        assert!(is_revoked_grant(
            r#"{"statusCode":400,"message":"Invalid grant: refresh token is invalid"}"#
        ));
        assert!(is_revoked_grant(
            r#"{"error":"invalid_grant","error_description":"Invalid refresh token"}"#
        ));
        assert!(!is_revoked_grant(
            r#"{"statusCode":401,"message":"Invalid client: client is invalid"}"#
        ));
    }

    #[test]
    fn no_expires_in_overflows_the_refresh_schedule() {
        for expires_in in [
            Some(u64::MAX),
            Some(u64::MAX / 1000),
            Some(299),
            Some(0),
            None,
        ] {
            let (pbx, crm) = (pbx_lifetime(expires_in), crm_lifetime(expires_in));
            assert!(pbx.as_secs() <= guest_support::waits::MAX_TOKEN_LIFETIME_SECS);
            assert!(crm.as_secs() <= guest_support::waits::MAX_TOKEN_LIFETIME_SECS);
            // Neither the refresh time nor the stored expiry overflows.
            let _ = renew_at(pbx);
            let _ = encode_access(&Secret::new("t"), crm);
        }
    }

    #[test]
    fn pbx_token_lifetimes_accept_minutes_and_seconds() {
        assert_eq!(pbx_lifetime(Some(60)), Duration::from_secs(3600));
        assert_eq!(pbx_lifetime(Some(3600)), Duration::from_secs(3600));
        assert_eq!(pbx_lifetime(None), Duration::from_secs(3600));
    }
}
