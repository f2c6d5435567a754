//! `POST /oauth/token` (operationId `get-access-token`, apps/oauth.json).
//!
//! Form-urlencoded `GetAccessCodebodyDto`; no `Authorization`, no `Version`
//! header; never rate limited nor hit by injected faults. Error messages
//! follow the node-oauth2-server wording [ASSUMED; HighLevel does not
//! document them]:
//! - missing required field / bad `grant_type` value → 422 `UnprocessableDTO`;
//! - wrong `client_id`/`client_secret` → 401 `UnauthorizedDTO`
//!   "Invalid client: client is invalid";
//! - unknown, used or revoked code / refresh token → 400
//!   "Invalid grant: authorization code is invalid" /
//!   "Invalid grant: refresh token is invalid";
//! - a code redeemed with another `redirect_uri` than it was handed to →
//!   400 "Invalid request: `redirect_uri` is invalid" (the code stays
//!   unused);
//! - `client_credentials` or `user_type=Company` → 400 (not simulated).

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::routing::post;
use axum::{Json, Router};

use super::AppState;
use crate::highlevel::auth::GrantError;
use crate::highlevel::dto::TokenResponse;
use crate::highlevel::error::ApiError;

const GRANT_TYPES: [&str; 3] = ["authorization_code", "refresh_token", "client_credentials"];

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/oauth/token", post(token))
}

/// operationId `get-access-token`.
async fn token(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<TokenResponse>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Err(ApiError::bad_request(
            "Invalid request: content must be application/x-www-form-urlencoded",
        ));
    }
    let form = parse_form(&body);
    let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());

    let mut problems: Vec<String> = ["client_id", "client_secret", "grant_type"]
        .into_iter()
        .filter(|name| field(name).is_none())
        .map(|name| format!("{name} should not be empty"))
        .collect();
    if let Some(grant) = field("grant_type").filter(|g| !GRANT_TYPES.contains(g)) {
        problems.push(format!(
            "grant_type must be one of the following values: {} (got {grant})",
            GRANT_TYPES.join(", ")
        ));
    }
    if let Some(user_type) = field("user_type").filter(|u| !["Company", "Location"].contains(u)) {
        problems.push(format!(
            "user_type must be one of the following values: Company, Location (got {user_type})"
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::Unprocessable(problems));
    }

    let config = &app.config;
    if field("client_id") != Some(config.client_id.as_str())
        || field("client_secret") != Some(config.client_secret.as_str())
    {
        return Err(ApiError::Unauthorized(
            "Invalid client: client is invalid".to_owned(),
        ));
    }
    if field("user_type") == Some("Company") {
        return Err(ApiError::bad_request(
            "Company tokens are not supported by the simulator",
        ));
    }

    let lifetime = Duration::from_secs(config.access_token_lifetime_secs);
    let mut state = app.lock();
    let redeemed = match field("grant_type") {
        Some("authorization_code") => {
            let code = field("code").ok_or_else(|| {
                ApiError::bad_request("Invalid request: missing parameter: `code`")
            })?;
            state
                .tokens
                .redeem_code(code, field("redirect_uri"), lifetime)
        }
        Some("refresh_token") => {
            let refresh = field("refresh_token").ok_or_else(|| {
                ApiError::bad_request("Invalid request: missing parameter: `refresh_token`")
            })?;
            state.tokens.redeem_refresh(refresh, lifetime)
        }
        _ => {
            return Err(ApiError::bad_request(
                "Unsupported grant type: `grant_type` is invalid",
            ));
        }
    };
    let (location_id, pair) = redeemed.map_err(|err| {
        ApiError::bad_request(match err {
            GrantError::InvalidCode => "Invalid grant: authorization code is invalid",
            GrantError::InvalidRefreshToken => "Invalid grant: refresh token is invalid",
            GrantError::RedirectUriMismatch => "Invalid request: `redirect_uri` is invalid",
        })
    })?;
    Ok(Json(TokenResponse {
        access_token: pair.access_token,
        token_type: "Bearer",
        expires_in: pair.expires_in,
        refresh_token: pair.refresh_token,
        scope: state.granted_scopes.clone(),
        // An agency-level grant is a Company token with no location
        // (NOTES.md §8); the code remembers which one it was.
        user_type: if location_id.is_empty() {
            "Company"
        } else {
            "Location"
        },
        location_id: Some(location_id).filter(|l| !l.is_empty()),
        company_id: config.company_id.clone(),
        user_id: state.user_id.clone(),
        is_bulk_installation: false,
    }))
}

/// Decodes `application/x-www-form-urlencoded` (`+` is a space).
fn parse_form(body: &[u8]) -> HashMap<String, String> {
    let decode = |s: &str| {
        let spaced = s.replace('+', " ");
        urlencoding::decode(&spaced)
            .map(|c| c.into_owned())
            .unwrap_or(spaced)
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

#[cfg(test)]
mod unit {
    use super::parse_form;

    #[test]
    fn form_decoding() {
        let form = parse_form(b"grant_type=refresh_token&refresh_token=a%2Bb+c&empty=");
        assert_eq!(form["grant_type"], "refresh_token");
        assert_eq!(form["refresh_token"], "a+b c");
        assert_eq!(form["empty"], "");
    }
}
