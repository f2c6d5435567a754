//! Access tokens for components (`connectzero:pipeline/credentials`).
//!
//! The host holds each tenant's secrets and hands components short-lived
//! bearer tokens only. Refreshes are serialised per tenant and service:
//! 3CX allows one active token per API client (a second request logs the
//! first out) and HighLevel refresh tokens are single-use, so two
//! concurrent refreshes would break either.

use crate::bindings::host_provided::connectzero::pipeline::credentials;
use crate::bindings::types::{Service, StageError};
use crate::config::{Secret, TenantConfig};
use crate::state::StoreData;
use crate::upstream::{message_of, network_error, retry_after, status_error};
use serde::Deserialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tokens are renewed this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Lifetime assumed for a configured HighLevel access token of unknown age.
const UNKNOWN_TOKEN_LIFETIME: Duration = Duration::from_secs(60 * 60);

#[derive(Clone)]
struct CachedToken {
    value: Secret,
    renew_at: Instant,
}

/// One tenant's token source for 3CX and HighLevel.
pub struct Credentials {
    http: reqwest::Client,
    pbx: PbxSource,
    crm: CrmSource,
}

struct PbxSource {
    base_url: String,
    client_id: String,
    client_secret: Secret,
    cached: Mutex<Option<CachedToken>>,
    refresh: tokio::sync::Mutex<()>,
}

struct CrmSource {
    base_url: String,
    client_id: String,
    client_secret: Secret,
    location_id: String,
    cached: Mutex<Option<CachedToken>>,
    refresh_token: Mutex<Secret>,
    refresh: tokio::sync::Mutex<()>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

impl Credentials {
    /// Token sources for `tenant`.
    pub fn new(http: reqwest::Client, tenant: &TenantConfig) -> Self {
        let crm_cached = tenant.crm.access_token.clone().map(|value| CachedToken {
            value,
            renew_at: Instant::now() + UNKNOWN_TOKEN_LIFETIME,
        });
        Self {
            http,
            pbx: PbxSource {
                base_url: tenant.pbx.base_url.trim_end_matches('/').to_string(),
                client_id: tenant.pbx.client_id.clone(),
                client_secret: tenant.pbx.client_secret.clone(),
                cached: Mutex::new(None),
                refresh: tokio::sync::Mutex::new(()),
            },
            crm: CrmSource {
                base_url: tenant.crm.base_url.trim_end_matches('/').to_string(),
                client_id: tenant.crm.client_id.clone(),
                client_secret: tenant.crm.client_secret.clone(),
                location_id: tenant.crm.location_id.clone(),
                cached: Mutex::new(crm_cached),
                refresh_token: Mutex::new(tenant.crm.refresh_token.clone()),
                refresh: tokio::sync::Mutex::new(()),
            },
        }
    }

    /// A valid bearer token for `service`, fetching one when needed.
    pub async fn access_token(&self, service: Service) -> Result<String, StageError> {
        let (cached, refresh) = match service {
            Service::Pbx => (&self.pbx.cached, &self.pbx.refresh),
            Service::Crm => (&self.crm.cached, &self.crm.refresh),
        };
        if let Some(token) = fresh(cached) {
            return Ok(token);
        }
        let _guard = refresh.lock().await;
        // Another task may have refreshed while we waited for the lock.
        if let Some(token) = fresh(cached) {
            return Ok(token);
        }
        let token = match service {
            Service::Pbx => self.fetch_pbx_token().await?,
            Service::Crm => self.refresh_crm_token().await?,
        };
        let value = token.value.expose().to_string();
        *lock(cached) = Some(token);
        Ok(value)
    }

    /// Forget `token` after the service answered 401 to it.
    pub fn token_rejected(&self, service: Service, token: &str) {
        let cached = match service {
            Service::Pbx => &self.pbx.cached,
            Service::Crm => &self.crm.cached,
        };
        let mut slot = lock(cached);
        if slot.as_ref().is_some_and(|t| t.value.expose() == token) {
            *slot = None;
        }
    }

    /// Client credentials grant at `POST /connect/token` (3CX NOTES §1).
    async fn fetch_pbx_token(&self) -> Result<CachedToken, StageError> {
        let pbx = &self.pbx;
        let form = [
            ("client_id", pbx.client_id.as_str()),
            ("client_secret", pbx.client_secret.expose()),
            ("grant_type", "client_credentials"),
        ];
        let response = self
            .http
            .post(format!("{}/connect/token", pbx.base_url))
            .form(&form)
            .send()
            .await
            .map_err(|e| network_error(Service::Pbx, &e))?;
        let hint = format!(
            "3CX refused API client {:?}: check its Client ID and API key under Admin > Integrations > API, and that XAPI access is enabled",
            pbx.client_id
        );
        let token = read_token(Service::Pbx, response, &hint).await?;
        Ok(CachedToken {
            value: Secret::new(token.access_token),
            renew_at: renew_at(pbx_lifetime(token.expires_in)),
        })
    }

    /// Refresh-token grant at `POST /oauth/token` (operationId
    /// `get-access-token`). The refresh token rotates: the new one replaces
    /// the old before the new access token is used.
    async fn refresh_crm_token(&self) -> Result<CachedToken, StageError> {
        let crm = &self.crm;
        let refresh_token = lock(&crm.refresh_token).clone();
        let form = [
            ("client_id", crm.client_id.as_str()),
            ("client_secret", crm.client_secret.expose()),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("user_type", "Location"),
        ];
        let response = self
            .http
            .post(format!("{}/oauth/token", crm.base_url))
            .form(&form)
            .send()
            .await
            .map_err(|e| network_error(Service::Crm, &e))?;
        let hint = format!(
            "HighLevel refused the refresh token of location {}: the app was uninstalled or the grant revoked; re-install the app for this location",
            crm.location_id
        );
        let token = read_token(Service::Crm, response, &hint).await?;
        if let Some(rotated) = token.refresh_token {
            *lock(&crm.refresh_token) = Secret::new(rotated);
        }
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(86_399));
        Ok(CachedToken {
            value: Secret::new(token.access_token),
            renew_at: renew_at(lifetime),
        })
    }
}

/// Read a token endpoint's answer; 400/401 become `unauthorized` with `hint`.
async fn read_token(
    service: Service,
    response: reqwest::Response,
    hint: &str,
) -> Result<TokenResponse, StageError> {
    let status = response.status().as_u16();
    let retry = retry_after(&response);
    let body = response
        .text()
        .await
        .map_err(|e| network_error(service, &e))?;
    if status == 200 {
        return serde_json::from_str(&body).map_err(|e| {
            StageError::InvalidData(format!(
                "the token endpoint's answer is not a token response: {e}"
            ))
        });
    }
    let message = format!("{hint} ({})", message_of(&body));
    let status = if status == 400 { 401 } else { status };
    Err(status_error(service, status, retry, message))
}

/// [ASSUMED] (3CX NOTES §1): `expires_in` is seconds from 20.0.9 on and was
/// minutes before, when a 60-minute token said `60`. No real token lives
/// under five minutes, so a value below 300 is read as minutes.
fn pbx_lifetime(expires_in: Option<u64>) -> Duration {
    match expires_in {
        Some(v) if v < 300 => Duration::from_secs(v * 60),
        Some(v) => Duration::from_secs(v),
        None => Duration::from_secs(3600),
    }
}

fn renew_at(lifetime: Duration) -> Instant {
    Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN)
}

fn fresh(cached: &Mutex<Option<CachedToken>>) -> Option<String> {
    lock(cached)
        .as_ref()
        .filter(|t| Instant::now() < t.renew_at)
        .map(|t| t.value.expose().to_string())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl credentials::Host for StoreData {
    async fn access_token(
        &mut self,
        service: Service,
    ) -> wasmtime::Result<Result<String, StageError>> {
        let Some(credentials) = self.tenant.credentials.clone() else {
            return Ok(Err(StageError::InvalidSettings(
                "this component was not granted credentials".into(),
            )));
        };
        Ok(credentials.access_token(service).await)
    }

    fn token_rejected(&mut self, service: Service, token: String) -> wasmtime::Result<()> {
        if let Some(credentials) = &self.tenant.credentials {
            credentials.token_rejected(service, &token);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbx_token_lifetimes_accept_minutes_and_seconds() {
        assert_eq!(pbx_lifetime(Some(60)), Duration::from_secs(3600));
        assert_eq!(pbx_lifetime(Some(3600)), Duration::from_secs(3600));
        assert_eq!(pbx_lifetime(None), Duration::from_secs(3600));
    }
}
