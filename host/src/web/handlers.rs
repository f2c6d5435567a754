//! The page's HTTP handlers.

use super::auth::{AdminToken, session_cookie};
use super::settings::SettingsForm;
use super::status::TenantStatus;
use super::templates::{self, Notice, TenantPage};
use super::{PAGE_PATH, WebOptions, live};
use crate::pipeline::Tenant;
use crate::server::ServerState;
use crate::storage::{RetryRequest, is_call_key};
use axum::Extension;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::Markup;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;

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

/// The token when the request may see the page; otherwise the answer.
/// A browser without a session is sent to sign in; a POST without one is
/// refused (its form data would be lost by a redirect anyway).
fn admitted<'a>(
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
fn signed_in(state: &WebState, headers: &HeaderMap) -> bool {
    let (Some(token), Some(id)) = (&state.options.token, super::auth::session_in(headers)) else {
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
/// [`super::auth::SignInThrottle::ATTEMPTS`] wrong ones it is refused
/// (429) for the window, so the token cannot be guessed through any route.
async fn guard_tokens(
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
struct ClientKey(String);

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

/// Checks the CSRF token of a POST form.
fn check_csrf(token: &AdminToken, presented: &str) -> Result<(), Refused> {
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
pub(super) fn admitted_tenant_post<'a>(
    state: &'a WebState,
    headers: &HeaderMap,
    csrf: &str,
    id: &str,
) -> Result<(&'a AdminToken, &'a Arc<Tenant>), Refused> {
    let token = admitted(state, headers, true)?;
    check_csrf(token, csrf)?;
    Ok((token, tenant_of(state, id)?))
}

fn tenant_of<'a>(state: &'a WebState, id: &str) -> Result<&'a Arc<Tenant>, Refused> {
    state.server.tenants.get(id).ok_or_else(|| {
        let id = maud::html! { (id) }.into_string();
        let body = format!(
            "<!DOCTYPE html><p>No tenant {id} on this host: check the tenant id in the URL. \
             <a href=\"{PAGE_PATH}\">All tenants</a></p>"
        );
        Box::new((StatusCode::NOT_FOUND, Html(body)).into_response())
    })
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

async fn login_form(State(state): AppState, headers: HeaderMap) -> Response {
    match &state.options.token {
        None => page(StatusCode::SERVICE_UNAVAILABLE, templates::disabled()),
        Some(token) if token.bearer_in(&headers) || signed_in(&state, &headers) => {
            Redirect::to(PAGE_PATH).into_response()
        }
        Some(_) => page(StatusCode::OK, templates::login(None)),
    }
}

#[derive(Deserialize)]
struct LoginForm {
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

async fn login(
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
    let expires = now_ms + super::auth::SESSION_LIFETIME.as_millis() as i64;
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
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
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
    if let Some(id) = super::auth::session_in(&headers)
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

/// What the tenant page's address may ask it to say (after a redirect).
#[derive(Deserialize, Default)]
struct PageQuery {
    notice: Option<String>,
    call: Option<String>,
}

fn notice_for(query: &PageQuery) -> Option<Notice> {
    // Only a call key is echoed: a crafted link cannot put other words
    // into the page's notice.
    let call = query
        .call
        .as_deref()
        .filter(|c| is_call_key(c))
        .unwrap_or("?");
    let text = match query.notice.as_deref()? {
        "saved" => "Settings saved; they take effect from the next poll.".to_string(),
        "reset" => "Saved settings removed: the configuration's values apply from the next poll."
            .to_string(),
        "retry" => format!("Call {call} will be retried on the next poll."),
        "assigned" => {
            format!("Call {call} is assigned; it is posted to that contact on the next poll.")
        }
        "copy" => format!("Call {call} is logged on that contact too on the next poll."),
        "placed" => format!("Placed call {call} in the 3CX simulator."),
        _ => return None,
    };
    Some(Notice { ok: true, text })
}

/// Render the tenant page with `notice`, the settings form and its errors.
pub(super) fn render_tenant(
    state: &WebState,
    token: &AdminToken,
    tenant: &Tenant,
    notice: Option<Notice>,
    form: Option<(SettingsForm, Vec<super::FieldError>)>,
    status_code: StatusCode,
) -> Response {
    let status = match TenantStatus::read(state.server.pipeline.storage(), tenant) {
        Ok(status) => status,
        Err(error) => return storage_failed(error),
    };
    let (form, errors) =
        form.unwrap_or_else(|| (SettingsForm::showing(&status.effective), Vec::new()));
    let demo = state
        .options
        .demo
        .as_ref()
        .map(|d| d.kinds())
        .unwrap_or_default();
    page(
        status_code,
        templates::tenant(&TenantPage {
            status: &status,
            csrf: token.csrf(),
            notice,
            form,
            errors,
            demo,
        }),
    )
}

async fn tenant_page(
    State(state): AppState,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let token = match admitted(&state, &headers, false) {
        Ok(token) => token,
        Err(response) => return *response,
    };
    let tenant = match tenant_of(&state, &id) {
        Ok(tenant) => tenant,
        Err(response) => return *response,
    };
    render_tenant(
        &state,
        token,
        tenant,
        notice_for(&query),
        None,
        StatusCode::OK,
    )
}

/// The tenant page again, saying why a form was refused.
pub(super) fn refused(
    state: &WebState,
    token: &AdminToken,
    tenant: &Tenant,
    status: StatusCode,
    text: String,
) -> Response {
    render_tenant(
        state,
        token,
        tenant,
        Some(Notice { ok: false, text }),
        None,
        status,
    )
}

pub(super) fn back_to(id: &str, query: &str) -> Response {
    Redirect::to(&format!(
        "{PAGE_PATH}/t/{}?{query}",
        urlencoding::encode(id)
    ))
    .into_response()
}

async fn save_settings(
    State(state): AppState,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<SettingsForm>,
) -> Response {
    let (token, tenant) = match admitted_tenant_post(&state, &headers, &form.csrf, &id) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let storage = state.server.pipeline.storage();
    let now = chrono::Utc::now().timestamp_millis();
    if form.reset.is_some() {
        if let Err(error) = storage.set_web_settings(&id, None, now) {
            return storage_failed(error);
        }
        live::changed();
        tracing::info!(tenant = %id, "status page: saved settings removed");
        return back_to(&id, "notice=reset");
    }
    match form.validate() {
        Ok(saved) => {
            if let Err(error) = saved.save(storage, &id, now) {
                return storage_failed(error);
            }
            live::changed();
            tracing::info!(tenant = %id, settings = ?saved, "status page: settings saved");
            back_to(&id, "notice=saved")
        }
        Err(errors) => render_tenant(
            &state,
            token,
            tenant,
            None,
            Some((form, errors)),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    }
}

#[derive(Deserialize)]
struct RetryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    call_key: String,
}

async fn retry(
    State(state): AppState,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<RetryForm>,
) -> Response {
    let (token, tenant) = match admitted_tenant_post(&state, &headers, &form.csrf, &id) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let key = form.call_key.trim();
    // Rows 3CX sent unreadable have no ledger entry to release: they are
    // read again from 3CX while inside the overlap window.
    if !is_call_key(key) {
        let notice = Notice {
            ok: false,
            text: format!(
                "{key} is not a call that can be retried: only parked calls (3cx:…) can."
            ),
        };
        return render_tenant(
            &state,
            token,
            tenant,
            Some(notice),
            None,
            StatusCode::BAD_REQUEST,
        );
    }
    let now = chrono::Utc::now().timestamp_millis();
    match state.server.pipeline.storage().request_retry(&id, key, now) {
        Ok(RetryRequest::Queued) => {
            live::changed();
            tracing::info!(tenant = %id, call = %key, "status page: retry of a parked call queued");
            back_to(
                &id,
                &format!("notice=retry&call={}", urlencoding::encode(key)),
            )
        }
        Ok(RetryRequest::NotParked(outcome)) => {
            let text = match outcome {
                Some(outcome) => format!(
                    "Call {key} is not parked (it is {outcome}), so there is nothing to retry: each parked call is retried once per request."
                ),
                None => format!("There is no call {key} for tenant {id}."),
            };
            render_tenant(
                &state,
                token,
                tenant,
                Some(Notice { ok: false, text }),
                None,
                StatusCode::CONFLICT,
            )
        }
        Err(error) => storage_failed(error),
    }
}

#[derive(Deserialize)]
struct DemoForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    kind: String,
}

async fn demo_call(
    State(state): AppState,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<DemoForm>,
) -> Response {
    let (token, tenant) = match admitted_tenant_post(&state, &headers, &form.csrf, &id) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let Some(demo) = &state.options.demo else {
        return (
            StatusCode::NOT_FOUND,
            "demo calls exist only in `connectzero demo`",
        )
            .into_response();
    };
    match demo.place(&form.kind) {
        Ok((key, _)) => back_to(
            &id,
            &format!("notice=placed&call={}", urlencoding::encode(&key)),
        ),
        Err(error) => render_tenant(
            &state,
            token,
            tenant,
            Some(Notice {
                ok: false,
                text: format!("{error:#}"),
            }),
            None,
            StatusCode::BAD_REQUEST,
        ),
    }
}
