//! Tokens as the token endpoints answer them and as they are kept: reading
//! an answer (and whether a refusal means the grant is gone), lifetimes
//! and renewal times, the stored access token's encoding, and the cache.

use super::CachedToken;
use super::names::*;
use crate::bindings::types::{Service, StageError};
use crate::config::Secret;
use crate::secrets::{SecretStore, SecretsError};
use crate::upstream::{network_error, retry_after};
use guest_support::oauth::{self, TokenAnswer, TokenGrant, renew_after_secs, still_usable};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// The access token stored under `name` (`<expires at ms> <token>`) and
/// the milliseconds it has left, if it has not expired.
pub(super) fn stored_token(
    store: &SecretStore,
    tenant: &str,
    name: &str,
) -> Result<Option<(Secret, i64)>, SecretsError> {
    let Some(stored) = store.get(tenant, name)? else {
        return Ok(None);
    };
    let Some((expires_at, token)) = stored.expose().split_once(' ') else {
        return Ok(None);
    };
    let Ok(expires_at) = expires_at.parse::<i64>() else {
        return Ok(None);
    };
    let left_ms = expires_at.saturating_sub(now_ms());
    Ok((left_ms > 0).then(|| (Secret::new(token), left_ms)))
}

/// The access token stored under `name`, if there is one that is not due
/// for renewal.
pub(super) fn stored_fresh(
    store: &SecretStore,
    tenant: &str,
    name: &str,
) -> Result<Option<CachedToken>, SecretsError> {
    Ok(stored_token(store, tenant, name)?
        .filter(|(_, left_ms)| still_usable(*left_ms))
        .map(|(value, left_ms)| CachedToken::lasting(value, Duration::from_millis(left_ms as u64))))
}

/// The stored HighLevel access token, if there is one that is not due for
/// renewal.
pub(super) fn stored_access_token(
    store: &SecretStore,
    tenant: &str,
) -> Result<Option<CachedToken>, SecretsError> {
    stored_fresh(store, tenant, CRM_ACCESS_TOKEN)
}

/// Send `grant` to its endpoint under `base_url` and read the answer
/// (`guest_support::oauth::read_answer`, shared with the Spin provider);
/// a refusal carries `hint` and whether the grant is gone.
pub(super) async fn exchange(
    http: &reqwest::Client,
    grant: &TokenGrant<'_>,
    base_url: &str,
    hint: &str,
) -> Result<TokenAnswer, oauth::Refusal> {
    let service = grant.service().into();
    let response = http
        .post(grant.url(base_url))
        .form(&grant.form())
        .send()
        .await
        .map_err(|e| refusal(network_error(service, &e)))?;
    let status = response.status().as_u16();
    let retry = retry_after(&response);
    let body = crate::upstream::capped_text(response)
        .await
        .map_err(|e| refusal(network_error(service, &e)))?;
    oauth::read_answer(grant.service(), status, retry, body.as_bytes(), hint)
}

/// A failure that says nothing about the grant.
fn refusal(error: StageError) -> oauth::Refusal {
    oauth::Refusal {
        error: (&error).into(),
        revoked: false,
    }
}

/// A token's lifetime as `service` stated it in `answer` (one reading for
/// both runtimes, `guest_support::waits`).
pub(super) fn lifetime(answer: &TokenAnswer, service: Service) -> Duration {
    Duration::from_secs(answer.lifetime_secs(service.into()))
}

pub(super) fn renew_at(lifetime: Duration) -> Instant {
    Instant::now() + Duration::from_secs(renew_after_secs(lifetime.as_secs()))
}

impl CachedToken {
    /// `value`, valid for `lifetime` from now and renewed a margin before.
    pub(super) fn lasting(value: Secret, lifetime: Duration) -> Self {
        Self {
            value,
            renew_at: renew_at(lifetime),
            expires_at: Instant::now() + lifetime,
        }
    }
}

/// Whether `token` has more than `margin` left before it expires.
pub(super) fn fresh_enough(token: &CachedToken, margin: Duration) -> bool {
    token.expires_at > Instant::now() + margin
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
    fn no_expires_in_overflows_the_refresh_schedule() {
        for expires_in in [
            "18446744073709551615",
            "18446744073709551",
            "299",
            "0",
            "null",
        ] {
            let body = format!(r#"{{"access_token":"t","expires_in":{expires_in}}}"#);
            let answer =
                oauth::read_answer(guest_support::Service::Pbx, 200, None, body.as_bytes(), "h")
                    .unwrap_or_else(|_| panic!("{body}"));
            let (pbx, crm) = (
                lifetime(&answer, Service::Pbx),
                lifetime(&answer, Service::Crm),
            );
            assert!(pbx.as_secs() <= guest_support::waits::MAX_TOKEN_LIFETIME_SECS);
            assert!(crm.as_secs() <= guest_support::waits::MAX_TOKEN_LIFETIME_SECS);
            // Neither the refresh time nor the stored expiry overflows.
            let _ = renew_at(pbx);
            let _ = encode_access(&Secret::new("t"), crm);
        }
    }
}
