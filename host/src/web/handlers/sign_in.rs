//! Signing in with the admin token (`GET`/`POST /admin/login`) and out
//! (`POST /admin/logout`), with server-side sessions.

use super::admission::{ClientKey, admitted, check_csrf, signed_in};
use super::{AppState, page, storage_failed};
use crate::web::PAGE_PATH;
use crate::web::auth::session_cookie;
use crate::web::templates;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
pub(super) async fn login_form(State(state): AppState, headers: HeaderMap) -> Response {
    match &state.options.token {
        None => page(StatusCode::SERVICE_UNAVAILABLE, templates::disabled()),
        Some(token) if token.bearer_in(&headers) || signed_in(&state, &headers) => {
            Redirect::to(PAGE_PATH).into_response()
        }
        Some(_) => page(StatusCode::OK, templates::login(None)),
    }
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    token: String,
}

/// Whether the request reached the proxy in front of us over HTTPS.
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

pub(super) async fn login(
    State(state): AppState,
    client: Option<Extension<ClientKey>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(token) = &state.options.token else {
        return page(StatusCode::SERVICE_UNAVAILABLE, templates::disabled());
    };
    // Held clients were refused by `guard_tokens` before reading the form.
    if !token.matches(&form.token) {
        let client = client.map(|Extension(ClientKey(c))| c).unwrap_or_default();
        state.throttle.failed(&client, std::time::Instant::now());
        tracing::warn!("status page: a sign-in with a wrong admin token");
        return page(
            StatusCode::UNAUTHORIZED,
            templates::login(Some(
                "That is not the admin token: paste the value of CONNECTZERO_ADMIN_TOKEN.",
            )),
        );
    }
    let (id, hash) = token.new_session();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let expires = now_ms + crate::web::auth::SESSION_LIFETIME.as_millis() as i64;
    if let Err(error) = state
        .server
        .pipeline
        .storage()
        .session_start(&hash, expires, now_ms)
    {
        return storage_failed(error);
    }
    let cookie = session_cookie(Some(&id), over_https(&headers));
    ([(header::SET_COOKIE, cookie)], Redirect::to(PAGE_PATH)).into_response()
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn logout(
    State(state): AppState,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let token = match admitted(&state, &headers, true) {
        Ok(token) => token,
        Err(response) => return *response,
    };
    if let Err(response) = check_csrf(token, &form.csrf) {
        return *response;
    }
    // Ended on the server: a copy of the cookie no longer signs anyone in.
    if let Some(id) = crate::web::auth::session_in(&headers)
        && let Err(error) = state
            .server
            .pipeline
            .storage()
            .session_end(&token.session_hash(&id))
    {
        return storage_failed(error);
    }
    let cookie = session_cookie(None, over_https(&headers));
    ([(header::SET_COOKIE, cookie)], Redirect::to("/admin/login")).into_response()
}
