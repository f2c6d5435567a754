//! The HighLevel OAuth install (HighLevel NOTES §2).
//!
//! 1. `GET /t/{tenant}/oauth/install` answers 302 to HighLevel's authorize
//!    page with the app's `client_id`, the one `redirect_uri` of every
//!    tenant (`<public url>/oauth/callback`; the tenant's own
//!    `/t/{tenant}/oauth/callback` with `oauth.per_tenant_redirect`), the
//!    scopes and a random `state`. Only a hash of the state is stored,
//!    with the tenant, the redirect URI and an expiry (default 10
//!    minutes): the state is what names the tenant, and nobody can make
//!    one up.
//! 2. The installer picks the sub-account and consents on HighLevel; no
//!    CRM password ever reaches this host.
//! 3. HighLevel sends the browser to `GET /oauth/callback?code=…&state=…`
//!    (or the older `GET /t/{tenant}/oauth/callback?…`, which keeps
//!    working). The state must be known, unused and unexpired (else 400,
//!    and the code is not exchanged); it is consumed on first
//!    presentation, and completes only the tenant it was issued for (at a
//!    per-tenant URL, only if that is the URL's tenant). The code is
//!    exchanged with the redirect URI stored with the state. An install started from the
//!    marketplace listing arrives with a `code` and no `state` (NOTES.md
//!    §8): its code is exchanged and the grant kept only when its token is
//!    for this tenant's location (else 403, the tenant's grant untouched);
//!    an agency-level token with no location is refused. The code is exchanged at
//!    `POST /oauth/token`, the tokens are stored encrypted and the
//!    tenant's "needs re-authorisation" mark is cleared
//!    ([`crate::credentials::Credentials::install`]); waiting calls post on
//!    the next tick.

mod marketplace;
mod urls;

pub(super) use marketplace::marketplace_callback;
pub use urls::{authorize_url, redirect_path};

use super::{HttpError, ServerState, unknown_tenant};
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
use urls::{redirect_uri, tenant_callback};

/// How long an install link is valid unless the tenant sets
/// `oauth.state_ttl_secs` (the Spin app's too).
const DEFAULT_STATE_TTL_SECS: u64 = (guest_support::installs::STATE_TTL_MS / 1000) as u64;

/// One install at a time in this process, exchange and keep together: two
/// callbacks at once would otherwise store their grants in either order,
/// and the one issued first could be kept last (HighLevel may have revoked
/// it by then). The exchange runs outside the tenant's refresh lock, so
/// this is what orders installs.
static INSTALLS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    let credentials = crate::credentials::of(tenant);
    let store = credentials.store().ok_or_else(no_store)?;
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
    let credentials = crate::credentials::of(tenant);
    let store = credentials.store().ok_or_else(no_store)?;
    let Some(state_value) = query.state.clone().filter(|s| !s.is_empty()) else {
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
        // HighLevel handed the code to this URL, so it redeems only with
        // it (whatever URL this tenant's install links name now).
        let redirect_uri = tenant_callback(&tenant.config, headers)?;
        tracing::info!(tenant = %id, "HighLevel marketplace install (no state): binding by location");
        return redeem(tenant, &code, &redirect_uri).await;
    };
    let (owner, redirect_uri, expires_at_ms) = claim_state(store.storage(), &state_value, &again)?;
    if owner != id {
        return Err(bad_request(format!(
            "this state was issued for another tenant, not {id:?}; {again}"
        )));
    }
    redeem_claimed(tenant, query, &redirect_uri, expires_at_ms, &again).await
}

/// Consumes a presented state (single use: a second presentation is
/// refused whatever happens next): the tenant it was issued for, the
/// redirect URI its authorize request named and its expiry.
fn claim_state(
    storage: &crate::storage::Storage,
    state_value: &str,
    again: &str,
) -> Result<(String, String, i64), HttpError> {
    let claim = storage
        .oauth_state_claim(&state_hash(state_value), now_ms())
        .map_err(|e| internal("(install state)", &e))?;
    match claim {
        StateClaim::Unknown => Err(bad_request(format!(
            "unknown state: this host did not issue it (forged, or from another host); {again}"
        ))),
        StateClaim::Used => Err(bad_request(format!(
            "this install link was already used; {again}"
        ))),
        StateClaim::Claimed {
            tenant,
            redirect_uri,
            expires_at_ms,
        } => Ok((tenant, redirect_uri, expires_at_ms)),
    }
}

/// The rest of a callback whose state was claimed for `tenant`: refused
/// once expired or when HighLevel refused; else the code is exchanged
/// with the redirect URI the authorize request named (HighLevel, as RFC
/// 6749 §4.1.3, redeems a code only with it) and the grant kept.
async fn redeem_claimed(
    tenant: &Tenant,
    query: Callback,
    redirect_uri: &str,
    expires_at_ms: i64,
    again: &str,
) -> Result<(), HttpError> {
    if now_ms() >= expires_at_ms {
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
    if let Some(error) = query.error {
        return Err(bad_request(format!(
            "HighLevel did not authorise the install ({error}); {again}"
        )));
    }
    let Some(code) = query.code.filter(|c| !c.is_empty()) else {
        return Err(bad_request(format!("the callback has no code; {again}")));
    };
    redeem(tenant, &code, redirect_uri).await
}

/// A state presented at the one redirect URL of every tenant
/// (`/oauth/callback`): the state names the tenant it was issued for,
/// which alone may complete it. Returns that tenant's id.
pub(super) async fn finish_shared(
    state: &ServerState,
    state_value: &str,
    query: Callback,
) -> Result<String, HttpError> {
    let generic = "start the install again from its link, /t/<tenant>/oauth/install";
    // Every tenant of a host keeps its states in the one database: any
    // tenant's store reaches them.
    let Some(store) = state
        .tenants
        .values()
        .find_map(|t| crate::credentials::of(t).store().cloned())
    else {
        return Err(no_store());
    };
    let (owner, redirect_uri, expires_at_ms) = claim_state(store.storage(), state_value, generic)?;
    let Some(tenant) = state.tenants.get(&owner) else {
        return Err(bad_request(format!(
            "the tenant this install was started for is not served by this host now; {generic}"
        )));
    };
    let again = format!("start again at /t/{owner}/oauth/install");
    redeem_claimed(tenant, query, &redirect_uri, expires_at_ms, &again).await?;
    Ok(owner)
}

/// Exchanges `code` and keeps the grant for `tenant` (see
/// `Credentials::install` for which grants it refuses).
async fn redeem(tenant: &Tenant, code: &str, redirect_uri: &str) -> Result<(), HttpError> {
    let _one_at_a_time = INSTALLS.lock().await;
    let id = tenant.id();
    crate::credentials::of(tenant)
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
