//! The token endpoints, over `wasi:http`: the requests and the reading of
//! their answers are `guest_support::oauth`'s (shared with the bundled
//! host); this module only sends them.
//!
//! - 3CX: client-credentials grant at `POST /connect/token` (3CX NOTES §1).
//! - HighLevel: refresh-token grant at `POST /oauth/token` (operationId
//!   `get-access-token`); the refresh token rotates on every use.

use crate::settings::Settings;
use guest_support::StageError;
use guest_support::http::{self, HttpMethod, Request};
use guest_support::oauth::{TokenAnswer, TokenGrant, pbx_refused_hint, read_answer};

/// Client-credentials grant for the 3CX API client.
pub fn pbx_token(settings: &Settings) -> Result<TokenAnswer, StageError> {
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
    let grant = TokenGrant::PbxClientCredentials {
        client_id: &settings.pbx_client_id,
        client_secret: &settings.pbx_client_secret,
    };
    request(
        &grant,
        &settings.pbx_base_url,
        &pbx_refused_hint(&settings.pbx_client_id),
    )
}

/// Refresh-token grant for the HighLevel location.
pub fn crm_token(settings: &Settings, refresh_token: &str) -> Result<TokenAnswer, StageError> {
    let grant = TokenGrant::CrmRefresh {
        client_id: &settings.crm_client_id,
        client_secret: &settings.crm_client_secret,
        refresh_token,
    };
    let hint = "HighLevel refused the refresh token: the app was uninstalled or the grant revoked; re-install the app for this location and set crm_refresh_token";
    request(&grant, &settings.crm_base_url, hint)
}

/// Authorization-code grant: the end of an OAuth install.
pub fn crm_install(
    settings: &Settings,
    code: &str,
    redirect_uri: &str,
) -> Result<TokenAnswer, StageError> {
    let grant = TokenGrant::CrmInstall {
        client_id: &settings.crm_client_id,
        client_secret: &settings.crm_client_secret,
        code,
        redirect_uri,
    };
    let hint = "HighLevel refused the install's authorization code: it is single-use and short-lived, so start the install again";
    request(&grant, &settings.crm_base_url, hint)
}

fn request(grant: &TokenGrant, base_url: &str, hint: &str) -> Result<TokenAnswer, StageError> {
    let response = http::send(&Request {
        method: HttpMethod::Post,
        url: grant.url(base_url),
        headers: vec![
            (
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            ("accept".into(), "application/json".into()),
        ],
        body: grant.form_body().into_bytes(),
    })
    .map_err(guest_support::budget::request_error)?;
    let retry_after = response
        .header("retry-after")
        .and_then(guest_support::waits::retry_after_secs);
    read_answer(
        grant.service(),
        response.status,
        retry_after,
        &response.body,
        hint,
    )
    .map_err(|refusal| refusal.error)
}
