//! Who may see the page and post its forms: the admin token or a signed-in
//! session, per-client throttling of wrong tokens, CSRF checks and the
//! tenant a form names.

use super::{AppState, Refused, WebState, page};
use crate::pipeline::Tenant;
use crate::web::PAGE_PATH;
use crate::web::auth::AdminToken;
use crate::web::templates;
use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::net::SocketAddr;
use std::sync::Arc;
/// The token when the request may see the page; otherwise the answer.
/// A browser without a session is sent to sign in; a POST without one is
/// refused (its form data would be lost by a redirect anyway).
pub(super) fn admitted<'a>(
    state: &'a WebState,
    headers: &HeaderMap,
    is_post: bool,
) -> Result<&'a AdminToken, Refused> {
    let Some(token) = &state.options.token else {
        return Err(Box::new(page(
            StatusCode::SERVICE_UNAVAILABLE,
            templates::disabled(),
        )));
    };
    if token.bearer_in(headers) || signed_in(state, headers) {
        Ok(token)
    } else if is_post {
        Err(Box::new(page(
            StatusCode::UNAUTHORIZED,
            templates::login(Some("Sign in first: this form needs the admin token.")),
        )))
    } else {
        Err(Box::new(Redirect::to("/admin/login").into_response()))
    }
}

/// Whether the request's session cookie names an open session.
pub(super) fn signed_in(state: &WebState, headers: &HeaderMap) -> bool {
    let (Some(token), Some(id)) = (&state.options.token, crate::web::auth::session_in(headers))
    else {
        return false;
    };
    let now = chrono::Utc::now().timestamp_millis();
    match state
        .server
        .pipeline
        .storage()
        .session_open(&token.session_hash(&id), now)
    {
        Ok(open) => open,
        Err(error) => {
            tracing::error!(%error, "status page: could not read sessions");
            false
        }
    }
}

/// Every request that presents a token (a bearer header, the sign-in
/// form) is throttled per client: once it sent
/// [`crate::web::auth::SignInThrottle::ATTEMPTS`] wrong ones it is refused
/// (429) for the window, so the token cannot be guessed through any route.
pub(super) async fn guard_tokens(
    State(state): AppState,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let bearer = request.headers().contains_key(header::AUTHORIZATION);
    let signing_in =
        request.method() == axum::http::Method::POST && request.uri().path() == "/admin/login";
    if !bearer && !signing_in {
        return next.run(request).await;
    }
    let client = crate::server::client::client_key(
        request.headers(),
        peer.map(|Extension(ConnectInfo(peer))| peer),
    );
    let now = std::time::Instant::now();
    if let Some(wait) = state.throttle.wait(&client, now) {
        tracing::warn!("status page: a token refused unread, too many wrong ones from one client");
        let minutes = wait.as_secs().div_ceil(60).max(1);
        return page(
            StatusCode::TOO_MANY_REQUESTS,
            templates::login(Some(&format!(
                "Too many wrong tokens from this address: try again in {minutes} minutes."
            ))),
        );
    }
    let tokens = [&state.options.token, &state.options.metrics_token];
    if bearer
        && !tokens
            .into_iter()
            .flatten()
            .any(|token| token.bearer_in(request.headers()))
    {
        state.throttle.failed(&client, now);
    }
    let mut request = request;
    request.extensions_mut().insert(ClientKey(client));
    next.run(request).await
}

/// The client behind a request that presented a token (set by
/// [`guard_tokens`]).
#[derive(Clone)]
pub(super) struct ClientKey(pub(super) String);

/// Checks the CSRF token of a POST form.
pub(super) fn check_csrf(token: &AdminToken, presented: &str) -> Result<(), Refused> {
    if token.csrf_matches(presented) {
        Ok(())
    } else {
        tracing::warn!("status page: refused a form without a valid CSRF token");
        Err(Box::new(page(
            StatusCode::FORBIDDEN,
            templates::login(Some(
                "That form did not come from this page (missing or stale CSRF token): reload the page and try again.",
            )),
        )))
    }
}

/// A tenant page's form POST: signed in, with this page's CSRF token, for
/// a tenant on this host — in that order, as every such form checks.
pub(in crate::web) fn admitted_tenant_post<'a>(
    state: &'a WebState,
    headers: &HeaderMap,
    csrf: &str,
    id: &str,
) -> Result<(&'a AdminToken, &'a Arc<Tenant>), Refused> {
    let token = admitted(state, headers, true)?;
    check_csrf(token, csrf)?;
    Ok((token, tenant_of(state, id)?))
}

pub(super) fn tenant_of<'a>(state: &'a WebState, id: &str) -> Result<&'a Arc<Tenant>, Refused> {
    state.server.tenants.get(id).ok_or_else(|| {
        let id = maud::html! { (id) }.into_string();
        let body = format!(
            "<!DOCTYPE html><p>No tenant {id} on this host: check the tenant id in the URL. \
             <a href=\"{PAGE_PATH}\">All tenants</a></p>"
        );
        Box::new((StatusCode::NOT_FOUND, Html(body)).into_response())
    })
}
