//! The axum router and the middleware every API request passes through.
//!
//! Order, outermost first:
//! 1. `trace`: a fresh `traceId` (UUID v4) per request, put in the request
//!    extensions for bodies that carry one and returned in an `x-trace-id`
//!    response header on every response [ASSUMED placement, NOTES.md §1].
//! 2. `record_request`: counted by `HighLevelSim::request_count`.
//! 3. API routes only (not `/oauth/token`): injected faults, then bearer auth
//!    (401 `UnauthorizedDTO`), then the rate limiter (429 + `X-RateLimit-*`
//!    headers), then the `Version` header check (400) [ASSUMED order].
//!    Hence 401s and injected faults carry no `X-RateLimit-*` headers (the
//!    location is unknown, or the request never reached the limiter), and a
//!    request with a bad `Version` still takes a token. The workflow trigger
//!    endpoint has no `Version` check (see `triggers`).

mod contact_update;
mod contacts;
mod conversations;
mod fields;
mod messages;
mod notes;
mod oauth;
mod tasks;
mod triggers;
mod upload;
mod users;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderValue, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};

use super::config::{HighLevelConfig, MessagesPage};
use super::error::{ApiError, INVALID_TOKEN};
use super::ids;
use super::model::Fault;
use super::ratelimit::Decision;
use super::state::{RequestRecord, State};
use crate::spec::{self, Referee, Violations};

/// `Version` required by contacts.json operations.
pub(crate) const CONTACTS_VERSION: &str = "2021-07-28";
/// `Version` required by conversations.json operations.
pub(crate) const CONVERSATIONS_VERSION: &str = "2021-04-15";

/// Shared by the handle and every handler.
#[derive(Clone)]
pub(crate) struct AppState {
    pub state: Arc<Mutex<State>>,
    pub config: Arc<HighLevelConfig>,
    pub base_url: Arc<str>,
}

impl AppState {
    /// Locks the state; a panic in another holder does not poison the simulator.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The per-request trace id (see the module docs).
#[derive(Clone, Debug)]
pub(crate) struct TraceId(pub String);

/// Who is calling: the location bound to the bearer token.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub location_id: String,
}

impl Caller {
    /// 403 unless `location_id` is the token's own location.
    pub(crate) fn ensure(&self, location_id: &str) -> Result<(), ApiError> {
        if self.location_id == location_id {
            Ok(())
        } else {
            Err(ApiError::wrong_location())
        }
    }

    /// 404 unless the contact exists, 403 unless it is in the caller's
    /// location (the contact sub-resources: notes, tasks).
    pub(crate) fn ensure_contact(
        &self,
        state: &super::state::State,
        contact_id: &str,
    ) -> Result<(), ApiError> {
        let contact = state
            .contact(contact_id)
            .ok_or_else(|| ApiError::NotFound("Contact not found".to_owned()))?;
        self.ensure(&contact.location_id)
    }

    /// A required `locationId` (400 when missing), which must be the caller's (403).
    pub(crate) fn require(&self, location_id: Option<&str>) -> Result<String, ApiError> {
        match location_id.map(str::trim).filter(|l| !l.is_empty()) {
            None => Err(ApiError::bad_request("locationId should not be empty")),
            Some(location_id) => {
                self.ensure(location_id)?;
                Ok(location_id.to_owned())
            }
        }
    }
}

/// Builds the full application.
pub(crate) fn router(app: AppState, violations: Violations) -> Router {
    let referee = Referee {
        spec: spec::highlevel(),
        violations,
        // Trigger execution URLs come from the trigger subscription
        // (docs/marketplace-modules, NOTES.md §5), not the app documents.
        unlisted: &["/workflows-marketplace/triggers/execute/"],
        // NOTES.md §8: the live API nests the page (`messages.messages`),
        // a shape the document lacks; the document's flat one is checked.
        live_shapes: match app.config.messages_page {
            MessagesPage::Nested => &[("get-messages", "/messages")],
            MessagesPage::Flat => &[],
        },
        // [ASSUMED] HighLevel's validation answers: 422 `UnprocessableDTO`
        // for a body, 400 `BadRequestDTO` for parameters (as the handlers).
        body_status: 422,
        refuse: |status, messages| match status {
            422 => ApiError::Unprocessable(messages).into_response(),
            _ => ApiError::bad_request(messages.join("; ")).into_response(),
        },
    };
    let contacts = contacts::routes()
        .merge(contact_update::routes())
        .merge(notes::routes())
        .merge(tasks::routes())
        .merge(users::routes())
        .route_layer(from_fn_with_state(CONTACTS_VERSION, require_version));
    let conversations = conversations::routes()
        .merge(messages::routes())
        .merge(upload::routes())
        .route_layer(from_fn_with_state(CONVERSATIONS_VERSION, require_version));
    // The trigger endpoint takes any `Version` (or none).
    let api = contacts
        .merge(conversations)
        .merge(triggers::routes())
        .route_layer(from_fn_with_state(app.clone(), rate_limit))
        .route_layer(from_fn_with_state(app.clone(), authenticate))
        .route_layer(from_fn_with_state(app.clone(), inject_faults));
    Router::new()
        .merge(oauth::routes())
        .merge(api)
        .fallback(not_found)
        .layer(from_fn_with_state(app.clone(), record_request))
        .layer(from_fn(read_whole_request))
        .layer(from_fn_with_state(referee, spec::referee))
        .layer(from_fn(trace))
        .with_state(app)
}

/// Largest request body read ahead (uploads stream and are not read ahead).
const READ_AHEAD_LIMIT: usize = 16 * 1024 * 1024;

/// Read the whole request before any handler or check answers. A real API
/// reads a request before answering it; answering first (an injected fault,
/// a 401, a 429) while the client is still sending makes the client's
/// HTTP stack fail the request as a broken connection, which would test a
/// fault HighLevel does not have. Uploads stream (their size can be large)
/// and declare their length, so the server cannot answer before their end.
async fn read_whole_request(req: Request, next: Next) -> Response {
    if req
        .uri()
        .path()
        .starts_with("/conversations/messages/upload")
    {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, READ_AHEAD_LIMIT).await {
        Ok(bytes) => next.run(Request::from_parts(parts, bytes.into())).await,
        Err(_) => ApiError::bad_request("the request body could not be read").into_response(),
    }
}

async fn trace(mut req: Request, next: Next) -> Response {
    let trace_id = ids::trace_id();
    req.extensions_mut().insert(TraceId(trace_id.clone()));
    let mut response = next.run(req).await;
    if let Ok(value) = HeaderValue::from_str(&trace_id) {
        response.headers_mut().insert("x-trace-id", value);
    }
    response
}

async fn record_request(AxumState(app): AxumState<AppState>, req: Request, next: Next) -> Response {
    app.lock().requests.push(RequestRecord {
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
    });
    next.run(req).await
}

async fn inject_faults(AxumState(app): AxumState<AppState>, req: Request, next: Next) -> Response {
    // A slow CRM answers late, and acts late: the request takes effect
    // only after the wait, as a request queued behind others would.
    let latency = {
        let path = req.uri().path();
        app.lock()
            .latency
            .iter()
            .find(|(prefix, _)| prefix.as_deref().is_none_or(|p| path.starts_with(p)))
            .map(|(_, wait)| *wait)
    };
    if let Some(wait) = latency {
        tokio::time::sleep(wait).await;
    }
    let fault = {
        let mut state = app.lock();
        let path = req.uri().path();
        let hit = state
            .faults
            .iter()
            .position(|(prefix, _)| prefix.as_deref().is_none_or(|p| path.starts_with(p)));
        hit.and_then(|i| state.faults.remove(i))
            .map(|(_, fault)| fault)
    };
    match fault {
        None => next.run(req).await,
        Some(Fault::ServerError) => ApiError::Internal.into_response(),
        Some(Fault::AnswerLost) => {
            let _ = next.run(req).await;
            ApiError::Internal.into_response()
        }
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            ApiError::TooManyRequests(retry_after_secs).into_response()
        }
        Some(Fault::Unprocessable(message)) => ApiError::unprocessable(message).into_response(),
        Some(Fault::Unauthorized) => {
            ApiError::Unauthorized(INVALID_TOKEN.to_owned()).into_response()
        }
    }
}

async fn authenticate(
    AxumState(app): AxumState<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let unauthorized = || ApiError::Unauthorized(INVALID_TOKEN.to_owned());
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned())
        .ok_or_else(unauthorized)?;
    let identity = app
        .lock()
        .tokens
        .authenticate(&token)
        .ok_or_else(unauthorized)?;
    req.extensions_mut().insert(Caller {
        location_id: identity.location_id,
    });
    Ok(next.run(req).await)
}

async fn rate_limit(AxumState(app): AxumState<AppState>, req: Request, next: Next) -> Response {
    let Some(caller) = req.extensions().get::<Caller>().cloned() else {
        return next.run(req).await;
    };
    let decision = app.lock().limiter.check(&caller.location_id);
    match decision {
        None => next.run(req).await,
        Some(Decision::Allowed(headers)) => {
            let mut response = next.run(req).await;
            headers.apply(response.headers_mut());
            response
        }
        Some(Decision::Limited {
            headers,
            retry_after_secs,
        }) => {
            let mut response = ApiError::TooManyRequests(Some(retry_after_secs)).into_response();
            headers.apply(response.headers_mut());
            response
        }
    }
}

/// 400 unless the `Version` header is exactly `expected` [ASSUMED status and
/// message: NOTES.md §6.2 says the behaviour is undocumented].
async fn require_version(
    AxumState(expected): AxumState<&'static str>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let version = req.headers().get("version").and_then(|v| v.to_str().ok());
    if version.map(str::trim) == Some(expected) {
        Ok(next.run(req).await)
    } else {
        Err(ApiError::bad_request(
            "Version header is missing or invalid",
        ))
    }
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound(format!("Cannot {} {}", req.method(), req.uri().path()))
}
