//! The page's HTTP handlers.
//!
//! The router and its layers live here; the routes' handlers are in the
//! submodules: who is admitted (`admission`), signing in and out
//! (`sign_in`) and the tenant page with its forms (`tenant`).

mod admission;
mod sign_in;
mod tenant;

pub(super) use admission::admitted_tenant_post;
pub(super) use tenant::refused;

use super::status::TenantStatus;
use super::templates;
use super::{PAGE_PATH, WebOptions};
use crate::pipeline::Tenant;
use crate::server::ServerState;
use admission::{admitted, guard_tokens};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::Markup;
use sign_in::{login, login_form, logout};
use std::sync::Arc;
use tenant::{demo_call, retry, save_settings, tenant_page};
/// Largest form accepted: the settings form is a few hundred bytes.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The server's state and the page's options.
pub(super) struct WebState {
    pub server: Arc<ServerState>,
    pub options: WebOptions,
    /// Wrong admin tokens, per client address.
    pub throttle: super::auth::SignInThrottle,
}

pub(super) type AppState = State<Arc<WebState>>;

/// An answer that ends a request early (boxed: a `Response` is large).
type Refused = Box<Response>;

pub(super) fn routes(state: Arc<WebState>) -> Router {
    Router::new()
        .route(PAGE_PATH, get(overview))
        .route("/admin/login", get(login_form).post(login))
        .route("/admin/logout", post(logout))
        .route("/metrics", get(metrics))
        .route("/admin/t/{tenant}", get(tenant_page))
        .route("/admin/t/{tenant}/settings", post(save_settings))
        .route("/admin/t/{tenant}/retry", post(retry))
        .route("/admin/t/{tenant}/review", post(super::review::assign))
        .route("/admin/t/{tenant}/copy", post(super::shared::ask))
        .route("/admin/t/{tenant}/demo-call", post(demo_call))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard_tokens,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// No caching (pages show live status and carry the CSRF token), no
/// framing, no scripts at all, forms only to this host, no referrer.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn page(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// `GET /metrics`: the tenants' counters, for a bearer of the admin token
/// or the scrapers' token only (they name tenants and their volumes).
async fn metrics(State(state): AppState, headers: HeaderMap) -> Response {
    let tokens = [&state.options.token, &state.options.metrics_token];
    let admitted = tokens
        .into_iter()
        .flatten()
        .any(|token| token.bearer_in(&headers));
    if !admitted {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            format!(
                "/metrics needs `Authorization: Bearer <token>` with the admin token or {}: set one and give it to the scraper (Prometheus: `authorization: {{credentials_file: ...}}`)\n",
                super::METRICS_TOKEN_ENV
            ),
        )
            .into_response();
    }
    let text = crate::metrics::encode(
        state.server.pipeline.storage(),
        state.server.tenants.keys().map(String::as_str),
    );
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

pub(super) fn storage_failed(error: rusqlite::Error) -> Response {
    tracing::error!(%error, "status page: the database failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html("<!DOCTYPE html><p>The database failed; the host log has the details.</p>"),
    )
        .into_response()
}

async fn overview(State(state): AppState, headers: HeaderMap) -> Response {
    let token = match admitted(&state, &headers, false) {
        Ok(token) => token,
        Err(response) => return *response,
    };
    let storage = state.server.pipeline.storage();
    let mut tenants: Vec<&Arc<Tenant>> = state.server.tenants.values().collect();
    tenants.sort_by(|a, b| a.id().cmp(b.id()));
    let mut rows = Vec::with_capacity(tenants.len());
    for tenant in tenants {
        match TenantStatus::read(storage, tenant) {
            Ok(status) => rows.push(status),
            Err(error) => return storage_failed(error),
        }
    }
    let now = chrono::Utc::now().timestamp_millis();
    page(
        StatusCode::OK,
        templates::overview(&rows, token.csrf(), now),
    )
}

pub(super) fn back_to(id: &str, query: &str) -> Response {
    Redirect::to(&format!(
        "{PAGE_PATH}/t/{}?{query}",
        urlencoding::encode(id)
    ))
    .into_response()
}
