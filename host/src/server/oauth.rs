//! The HighLevel OAuth install (HighLevel NOTES §2).
//!
//! 1. `GET /t/{tenant}/oauth/install` answers 302 to HighLevel's authorize
//!    page with the app's `client_id`, this tenant's `redirect_uri`, the
//!    scopes and a random `state`. Only a hash of the state is stored,
//!    with the tenant and an expiry (default 10 minutes).
//! 2. The installer picks the sub-account and consents on HighLevel; no
//!    CRM password ever reaches this host.
//! 3. HighLevel sends the browser to `GET /t/{tenant}/oauth/callback?code=…
//!    &state=…`. The state must be known, unused, unexpired and issued for
//!    this tenant (else 400, and the code is not exchanged); it is
//!    consumed on first presentation. An install started from the
//!    marketplace listing arrives with a `code` and no `state` (NOTES.md
//!    §8): its code is exchanged and the grant kept only when its token is
//!    for this tenant's location (else 403, the tenant's grant untouched);
//!    an agency-level token with no location is refused. The code is exchanged at
//!    `POST /oauth/token`, the tokens are stored encrypted and the
//!    tenant's "needs re-authorisation" mark is cleared
//!    ([`crate::credentials::Credentials::install`]); waiting calls post on
//!    the next tick.

use super::{HttpError, ServerState, unknown_tenant};
use crate::config::TenantConfig;
use crate::credentials::InstallError;
use crate::pipeline::Tenant;
use crate::storage::StateClaim;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// How long an install link is valid unless the tenant sets
/// `oauth.state_ttl_secs` (the Spin app's too).
const DEFAULT_STATE_TTL_SECS: u64 = (guest_support::installs::STATE_TTL_MS / 1000) as u64;

/// One install at a time in this process, exchange and keep together: two
/// callbacks at once would otherwise store their grants in either order,
/// and the one issued first could be kept last (HighLevel may have revoked
/// it by then). The exchange runs outside the tenant's refresh lock, so
/// this is what orders installs.
static INSTALLS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Scopes ConnectZero uses (HighLevel NOTES §2.5): contact search and
/// creation, conversations and call messages (with recordings), and
/// `workflows.readonly` for the workflow triggers and action, and
/// `users.readonly` to name the CRM user of each call (optional: without
/// it calls are posted without a user, `components/post/src/users.rs`).
const DEFAULT_SCOPES: [&str; 8] = [
    "contacts.readonly",
    "contacts.write",
    "conversations.readonly",
    "conversations.write",
    "conversations/message.readonly",
    "conversations/message.write",
    "workflows.readonly",
    "users.readonly",
];

/// HighLevel's authorize page (NOTES §2.1, newest doc revision: `/v2/`).
const DEFAULT_AUTHORIZE_URL: &str = "https://marketplace.gohighlevel.com/v2/oauth/chooselocation";

/// The authorize URL the installer is sent to.
///
/// [ASSUMED] (NOTES §2.1): HighLevel documents `response_type`,
/// `redirect_uri`, `client_id` and `scope`, but not `state`. Standard
/// OAuth (RFC 6749 §4.1.2) has the server send `state` back unchanged,
/// and the callback depends on that: if HighLevel ever drops it, every
/// callback is refused as "missing state", never accepted unchecked.
pub fn authorize_url(config: &TenantConfig, redirect_uri: &str, state: &str) -> String {
    let base = config
        .settings
        .oauth
        .authorize_url
        .as_deref()
        .unwrap_or(DEFAULT_AUTHORIZE_URL);
    let scope = match &config.settings.oauth.scopes {
        Some(scopes) => scopes.join(" "),
        None => DEFAULT_SCOPES.join(" "),
    };
    let separator = if base.contains('?') { '&' } else { '?' };
    format!(
        "{base}{separator}response_type=code&client_id={}&redirect_uri={}&scope={}&state={}",
        urlencoding::encode(&config.crm.client_id),
        urlencoding::encode(redirect_uri),
        urlencoding::encode(&scope),
        urlencoding::encode(state),
    )
}

/// `GET /t/{tenant}/oauth/install`.
pub(super) async fn install(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<String>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let Some(tenant) = state.tenants.get(&id) else {
        return unknown_tenant(&id).into_response();
    };
    let client = super::client::client_key(&headers, peer.map(|axum::Extension(info)| info.0));
    match start_install(tenant, &headers, &client) {
        Ok(location) => (
            StatusCode::FOUND,
            [
                (header::LOCATION, location),
                // The link carries a single-use state: never cache it.
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

fn start_install(tenant: &Tenant, headers: &HeaderMap, client: &str) -> Result<String, HttpError> {
    let store = tenant.credentials.store().ok_or_else(no_store)?;
    let redirect_uri = redirect_uri(&tenant.config, headers)?;
    let state_value = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let ttl_ms = tenant
        .config
        .settings
        .oauth
        .state_ttl_secs
        .unwrap_or(DEFAULT_STATE_TTL_SECS)
        .saturating_mul(1000);
    let now = now_ms();
    let hash = state_hash(&state_value);
    let issue = crate::storage::StateIssue {
        state_hash: &hash,
        tenant: tenant.id(),
        client,
        redirect_uri: &redirect_uri,
        expires_at_ms: now.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX)),
    };
    match store
        .storage()
        .oauth_state_insert(&issue, now)
        .map_err(|e| internal(tenant.id(), &e))?
    {
        crate::storage::StateAdmission::Issued => {}
        crate::storage::StateAdmission::Busy { retry_in_ms } => {
            return Err(HttpError(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many installs of this tenant are pending: try again in {} minutes, or finish one already started",
                    (retry_in_ms / 60_000).max(1)
                ),
            ));
        }
    }
    tracing::info!(tenant = %tenant.id(), "HighLevel install started");
    Ok(authorize_url(&tenant.config, &redirect_uri, &state_value))
}

/// Query of the callback: HighLevel's answer to the authorize request.
#[derive(Deserialize)]
pub(super) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /t/{tenant}/oauth/callback`.
pub(super) async fn callback(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<String>,
    Query(query): Query<Callback>,
    headers: HeaderMap,
) -> Response {
    let Some(tenant) = state.tenants.get(&id) else {
        return unknown_tenant(&id).into_response();
    };
    match finish_install(tenant, query, &headers).await {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!(
                "ConnectZero is authorised for tenant {id} (HighLevel location {}). Calls waiting for it post within a poll interval. You can close this window.\n",
                tenant.config.crm.location_id
            ),
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(tenant = %id, reason = %error.1, "HighLevel install callback refused");
            error.into_response()
        }
    }
}

async fn finish_install(
    tenant: &Tenant,
    query: Callback,
    headers: &HeaderMap,
) -> Result<(), HttpError> {
    let id = tenant.id();
    let again = format!("start again at /t/{id}/oauth/install");
    let store = tenant.credentials.store().ok_or_else(no_store)?;
    let Some(state_value) = query.state.filter(|s| !s.is_empty()) else {
        // An install started from the marketplace listing carries no
        // state (NOTES.md §8). Nothing vouches for the request, so the
        // grant vouches for itself: `Credentials::install` keeps it only
        // if its token is for this tenant's own location, so a code from
        // another location (forged, or the wrong sub-account picked) never
        // replaces this tenant's grant.
        if let Some(error) = query.error {
            return Err(bad_request(format!(
                "HighLevel did not authorise the install ({error}); {again}"
            )));
        }
        let Some(code) = query.code.filter(|c| !c.is_empty()) else {
            return Err(bad_request(format!("the callback has no code; {again}")));
        };
        let redirect_uri = redirect_uri(&tenant.config, headers)?;
        tracing::info!(tenant = %id, "HighLevel marketplace install (no state): binding by location");
        return redeem(tenant, &code, &redirect_uri).await;
    };
    let now = now_ms();
    let claim = store
        .storage()
        .oauth_state_claim(&state_hash(&state_value), now)
        .map_err(|e| internal(id, &e))?;
    let redirect_uri = match claim {
        StateClaim::Unknown => {
            return Err(bad_request(format!(
                "unknown state: this host did not issue it (forged, or from another host); {again}"
            )));
        }
        StateClaim::Used => {
            return Err(bad_request(format!(
                "this install link was already used; {again}"
            )));
        }
        StateClaim::Claimed { tenant: owner, .. } if owner != id => {
            return Err(bad_request(format!(
                "this state was issued for another tenant, not {id:?}; {again}"
            )));
        }
        StateClaim::Claimed { expires_at_ms, .. } if now >= expires_at_ms => {
            return Err(bad_request(format!(
                "this install link expired; links are valid for {} minutes: {again}",
                tenant
                    .config
                    .settings
                    .oauth
                    .state_ttl_secs
                    .unwrap_or(DEFAULT_STATE_TTL_SECS)
                    / 60
            )));
        }
        StateClaim::Claimed { redirect_uri, .. } => redirect_uri,
    };
    if let Some(error) = query.error {
        return Err(bad_request(format!(
            "HighLevel did not authorise the install ({error}); {again}"
        )));
    }
    let Some(code) = query.code.filter(|c| !c.is_empty()) else {
        return Err(bad_request(format!("the callback has no code; {again}")));
    };
    redeem(tenant, &code, &redirect_uri).await
}

/// Exchanges `code` and keeps the grant for `tenant` (see
/// `Credentials::install` for which grants it refuses).
async fn redeem(tenant: &Tenant, code: &str, redirect_uri: &str) -> Result<(), HttpError> {
    let _one_at_a_time = INSTALLS.lock().await;
    let id = tenant.id();
    tenant
        .credentials
        .install(code, redirect_uri)
        .await
        .map_err(|e| match e {
            InstallError::Store(_) => internal(id, &e),
            InstallError::NoStore => no_store(),
            InstallError::Refused(_) => HttpError(StatusCode::BAD_GATEWAY, e.to_string()),
            // The answer goes to whoever presented the code: it names
            // no location (the tenant's would tell a stranger which
            // sub-account this host serves); the operator's log does.
            InstallError::WrongLocation { .. } => {
                tracing::warn!(tenant = %id, refused = %e, "HighLevel install for another location refused; the tenant's grant is unchanged");
                HttpError(
                    StatusCode::FORBIDDEN,
                    format!(
                        "the app was installed in another sub-account than this tenant's; the tenant's grant is unchanged: install it from the tenant's own sub-account (tenant {id})"
                    ),
                )
            }
            InstallError::NoLocation => HttpError(StatusCode::FORBIDDEN, e.to_string()),
        })
}

/// `<public url>/t/<tenant>/oauth/callback`; without a configured public
/// URL, the request's `Host` (plain http is only assumed for loopback).
fn redirect_uri(config: &TenantConfig, headers: &HeaderMap) -> Result<String, HttpError> {
    Ok(format!(
        "{}/t/{}/oauth/callback",
        public_base(config, headers)?,
        config.id
    ))
}

/// The host's public base URL as `config` sets it (`oauth.public_url`),
/// else from the request's `Host`.
fn public_base(config: &TenantConfig, headers: &HeaderMap) -> Result<String, HttpError> {
    let base = match &config.settings.oauth.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| !h.is_empty())
                .ok_or_else(|| {
                    bad_request(format!(
                        "the request has no Host header: set oauth.public_url for tenant {}",
                        config.id
                    ))
                })?;
            let plain = format!("http://{host}");
            if crate::config::check_base_url(&plain).is_ok() {
                plain
            } else {
                format!("https://{host}")
            }
        }
    };
    Ok(base)
}

/// `GET /oauth/callback`: one redirect URL for every tenant, as a
/// marketplace listing has (NOTES.md §8: its installs carry no `state`).
/// The code is exchanged with the host's HighLevel app, and the grant kept
/// by the one tenant whose configured location is the token's; refused
/// when none or several are, or for an agency token. Install links from
/// `/t/{tenant}/oauth/install` keep coming back to their tenant's URL.
pub(super) async fn marketplace_callback(
    State(state): State<Arc<ServerState>>,
    Query(query): Query<Callback>,
    headers: HeaderMap,
) -> Response {
    match bind_marketplace_install(&state, query, &headers).await {
        Ok(tenant) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!(
                "ConnectZero is authorised for tenant {tenant}. Calls waiting for it post within a poll interval. You can close this window.\n"
            ),
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(reason = %error.1, "HighLevel marketplace callback refused");
            error.into_response()
        }
    }
}

async fn bind_marketplace_install(
    state: &ServerState,
    query: Callback,
    headers: &HeaderMap,
) -> Result<String, HttpError> {
    if query.state.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(bad_request(
            "this URL takes marketplace installs, which carry no state; an install link from /t/<tenant>/oauth/install comes back to /t/<tenant>/oauth/callback".into(),
        ));
    }
    if let Some(error) = query.error {
        return Err(bad_request(format!(
            "HighLevel did not authorise the install ({error}); start it again"
        )));
    }
    let Some(code) = query.code.filter(|c| !c.is_empty()) else {
        return Err(bad_request("the callback has no code".into()));
    };
    let mut tenants: Vec<&Arc<Tenant>> = state.tenants.values().collect();
    tenants.sort_by(|a, b| a.id().cmp(b.id()));
    let Some(exchanger) = tenants.first() else {
        return Err(HttpError(
            StatusCode::NOT_FOUND,
            "this host serves no tenants".into(),
        ));
    };
    let app = &exchanger.config.crm.client_id;
    if tenants.iter().any(|t| &t.config.crm.client_id != app) {
        return Err(bad_request(
            "the tenants of this host use several HighLevel apps: give each app's listing its tenant's redirect URL, /t/<tenant>/oauth/callback".into(),
        ));
    }
    let redirect_uri = format!(
        "{}/oauth/callback",
        public_base(&exchanger.config, headers)?
    );
    let _one_at_a_time = INSTALLS.lock().await;
    let grant = exchanger
        .credentials
        .exchange_code(&code, &redirect_uri)
        .await
        .map_err(|e| HttpError(StatusCode::BAD_GATEWAY, e.to_string()))?;
    let Some(location) = grant.location_id.clone() else {
        return Err(HttpError(
            StatusCode::FORBIDDEN,
            InstallError::NoLocation.to_string(),
        ));
    };
    let serving: Vec<&&Arc<Tenant>> = tenants
        .iter()
        .filter(|t| t.config.crm.location_id == location)
        .collect();
    let tenant = match serving.as_slice() {
        [only] => only,
        [] => {
            tracing::warn!(%location, "HighLevel install for a location no tenant serves");
            return Err(HttpError(
                StatusCode::FORBIDDEN,
                "no tenant of this host serves the sub-account the app was installed in: add the tenant first (connectzero tenant add), then install again".into(),
            ));
        }
        _ => {
            return Err(HttpError(
                StatusCode::CONFLICT,
                "several tenants of this host serve the sub-account the app was installed in: install from /t/<tenant>/oauth/install for the one it is for".into(),
            ));
        }
    };
    let id = tenant.id().to_string();
    tracing::info!(tenant = %id, "HighLevel marketplace install (no state): bound by location");
    tenant
        .credentials
        .keep_grant(grant)
        .await
        .map_err(|e| match e {
            InstallError::NoStore => no_store(),
            other => internal(&id, &other),
        })?;
    Ok(id)
}

/// States are stored hashed: a copy of the database does not hold a link
/// that could still complete an install.
fn state_hash(state: &str) -> String {
    Sha256::digest(state.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn bad_request(message: String) -> HttpError {
    HttpError(StatusCode::BAD_REQUEST, message)
}

fn no_store() -> HttpError {
    HttpError(
        StatusCode::SERVICE_UNAVAILABLE,
        "this host keeps no encrypted secrets store, so it cannot complete an install; run `connectzero run`".into(),
    )
}

fn internal(tenant: &str, error: &dyn std::fmt::Display) -> HttpError {
    tracing::error!(%tenant, %error, "the OAuth install failed");
    HttpError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the install could not be stored; the host log has the details".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_stored_as_hashes() {
        let hash = state_hash("abc");
        assert_eq!(hash.len(), 64);
        assert_ne!(hash, "abc");
    }
}
