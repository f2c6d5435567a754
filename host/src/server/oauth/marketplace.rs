//! One redirect URL for every tenant (`GET /oauth/callback`): an install
//! link's callback goes to the tenant its state names; a marketplace
//! install (no state) is bound to the tenant whose location its token is
//! for.
//!
//! The Spin app's route of the same path does the same for its tenants,
//! exchanging the code once and keeping the grant after (`crm-install`'s
//! `exchange` and `keep`, as [`exchange_code`] and [`keep_grant`] here),
//! and also creates a tenant, waiting for its settings, for a location no
//! tenant names (`components/app/src/oauth/marketplace.rs`). The host's
//! tenants come from its configuration and database, so it creates none:
//! such an install is refused (403).
//!
//! [`exchange_code`]: crate::credentials::Credentials::exchange_code
//! [`keep_grant`]: crate::credentials::Credentials::keep_grant

use super::urls::{SHARED_CALLBACK, public_base};
use super::{Callback, INSTALLS, bad_request, finish_shared, internal, no_store};
use crate::credentials::InstallError;
use crate::pipeline::Tenant;
use crate::server::{HttpError, ServerState};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
/// `GET /oauth/callback`: one redirect URL for every tenant. With a
/// `state` (an install link from `/t/{tenant}/oauth/install`), the tenant
/// the state was issued for completes it, as at its own URL. Without one
/// (a marketplace listing's install, NOTES.md §8), the code is exchanged
/// with the host's HighLevel app, and the grant kept by the one tenant
/// whose configured location is the token's; refused when none or
/// several are, or for an agency token.
pub(in crate::server) async fn marketplace_callback(
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
    if let Some(state_value) = query.state.clone().filter(|s| !s.is_empty()) {
        return finish_shared(state, &state_value, query).await;
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
        "{}{SHARED_CALLBACK}",
        public_base(&exchanger.config, headers)?
    );
    let _one_at_a_time = INSTALLS.lock().await;
    let grant = crate::credentials::of(exchanger)
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
    crate::credentials::of(tenant)
        .keep_grant(grant)
        .await
        .map_err(|e| match e {
            InstallError::NoStore => no_store(),
            other => internal(&id, &other),
        })?;
    Ok(id)
}
