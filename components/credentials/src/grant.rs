//! The token endpoints.
//!
//! - 3CX: client-credentials grant at `POST /connect/token` (3CX NOTES §1).
//! - HighLevel: refresh-token grant at `POST /oauth/token` (operationId
//!   `get-access-token`); the refresh token rotates on every use.

use crate::settings::Settings;
use guest_support::api::{ApiClient, service_name};
use guest_support::http::{self, HttpMethod, Request};
use guest_support::{Service, StageError};
use serde::Deserialize;

/// A token endpoint's answer.
#[derive(Deserialize)]
pub struct Granted {
    /// The bearer token.
    pub access_token: String,
    /// Lifetime as the service states it.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// HighLevel's rotated refresh token.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// HighLevel: the location the grant is for.
    #[serde(default, rename = "locationId")]
    pub location_id: Option<String>,
}

/// Client-credentials grant for the 3CX API client.
pub fn pbx_token(settings: &Settings) -> Result<Granted, StageError> {
    let missing: Vec<&str> = [
        ("pbx_base_url", &settings.pbx_base_url),
        ("pbx_client_id", &settings.pbx_client_id),
        ("pbx_client_secret", &settings.pbx_client_secret),
    ]
    .into_iter()
    .filter(|(_, value)| value.is_empty())
    .map(|(name, _)| name)
    .collect();
    if !missing.is_empty() {
        return Err(StageError::InvalidSettings(format!(
            "no 3CX token without {}: set them for this component (the Update Call Record action is given none on purpose)",
            missing.join(", ")
        )));
    }
    let form = [
        ("client_id", settings.pbx_client_id.as_str()),
        ("client_secret", settings.pbx_client_secret.as_str()),
        ("grant_type", "client_credentials"),
    ];
    let hint = format!(
        "3CX refused API client {:?}: check its Client ID and API key under Admin > Integrations > API, and that XAPI access is enabled",
        settings.pbx_client_id
    );
    request(
        Service::Pbx,
        &settings.pbx_base_url,
        "/connect/token",
        &form,
        &hint,
    )
}

/// Refresh-token grant for the HighLevel location.
pub fn crm_token(settings: &Settings, refresh_token: &str) -> Result<Granted, StageError> {
    let form = [
        ("client_id", settings.crm_client_id.as_str()),
        ("client_secret", settings.crm_client_secret.as_str()),
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("user_type", "Location"),
    ];
    let hint = "HighLevel refused the refresh token: the app was uninstalled or the grant revoked; re-install the app for this location and set crm_refresh_token";
    request(
        Service::Crm,
        &settings.crm_base_url,
        "/oauth/token",
        &form,
        hint,
    )
}

/// Authorization-code grant: the end of an OAuth install.
pub fn crm_install(
    settings: &Settings,
    code: &str,
    redirect_uri: &str,
) -> Result<Granted, StageError> {
    let form = [
        ("client_id", settings.crm_client_id.as_str()),
        ("client_secret", settings.crm_client_secret.as_str()),
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("user_type", "Location"),
    ];
    let hint = "HighLevel refused the install's authorization code: it is single-use and short-lived, so start the install again";
    request(
        Service::Crm,
        &settings.crm_base_url,
        "/oauth/token",
        &form,
        hint,
    )
}

/// A 3CX token's lifetime (`guest_support::waits`, shared with the host).
pub fn pbx_lifetime_secs(expires_in: Option<u64>) -> u64 {
    guest_support::waits::pbx_token_lifetime_secs(expires_in)
}

/// A HighLevel token's lifetime (`guest_support::waits`).
pub fn crm_lifetime_secs(expires_in: Option<u64>) -> u64 {
    guest_support::waits::crm_token_lifetime_secs(expires_in)
}

fn request(
    service: Service,
    base_url: &str,
    path: &str,
    form: &[(&str, &str)],
    hint: &str,
) -> Result<Granted, StageError> {
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencoding::encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let response = http::send(&Request {
        method: HttpMethod::Post,
        url: format!("{base_url}{path}"),
        headers: vec![
            (
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            ("accept".into(), "application/json".into()),
        ],
        body: body.into_bytes(),
    })
    .map_err(StageError::Network)?;
    // A refused grant is 400 (OAuth `invalid_grant`/`invalid_client`) or
    // 401: both mean the credentials, so both read as unauthorized.
    let status = if response.status == 400 {
        401
    } else {
        response.status
    };
    let checked = ApiClient::new(service, base_url).check(http::Response { status, ..response });
    let response = checked.map_err(|error| with_hint(error, hint))?;
    serde_json::from_slice(&response.body).map_err(|e| {
        StageError::InvalidData(format!(
            "the {} token endpoint's answer is not a token response: {e}",
            service_name(service)
        ))
    })
}

fn with_hint(error: StageError, hint: &str) -> StageError {
    match error {
        StageError::Unauthorized(mut e) => {
            e.message = format!("{hint} ({})", e.message);
            StageError::Unauthorized(e)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbx_lifetimes_accept_minutes_and_seconds() {
        assert_eq!(pbx_lifetime_secs(Some(60)), 3600);
        assert_eq!(pbx_lifetime_secs(Some(3600)), 3600);
        assert_eq!(pbx_lifetime_secs(None), 3600);
        assert_eq!(crm_lifetime_secs(None), 86_399);
        let cap = guest_support::waits::MAX_TOKEN_LIFETIME_SECS;
        assert_eq!(crm_lifetime_secs(Some(u64::MAX)), cap);
        assert_eq!(pbx_lifetime_secs(Some(u64::MAX)), cap);
    }
}
