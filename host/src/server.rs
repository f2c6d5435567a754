//! The host's HTTP endpoints for HighLevel.
//!
//! | route | what |
//! |---|---|
//! | `POST /t/{tenant}/actions/update-call-record` | the Update Call Record action: served by the write-back component (`wasi:http/incoming-handler`), which does its own checks |
//! | `POST /t/{tenant}/triggers/subscription` | a workflow trigger (un)registration, handed to the trigger component |
//! | `GET /t/{tenant}/oauth/install`, `GET /t/{tenant}/oauth/callback` | the HighLevel OAuth install ([`oauth`]) |
//! | `GET /oauth/callback` | the one redirect URL of every tenant: an install link's callback completes the tenant its `state` names; a marketplace install (no `state`) is bound to the tenant serving the token's location ([`oauth`]) |
//! | `GET /healthz` | `ok` |
//! | `GET /readyz` | `ready` once storage answers and the components are loaded, else 503 |
//! | `GET /metrics` | Prometheus metrics (see [`crate::metrics`], `docs/OPERATIONS.md`): served beside the status page by [`crate::web`], for token bearers only |
//! | `/admin…` | the status and settings page ([`crate::web`], merged beside these routes by the CLI, `host/src/cli/run.rs`; admin token) |
//!
//! Every error is JSON `{"error": "..."}` saying what is wrong. Both
//! tenant routes require the tenant's shared-secret header (compared in
//! constant time, before any body is read or component started: [`gate`])
//! and verify `x-wh-signature` whenever it is present. Connections are
//! bounded in number and time ([`listen`]).

pub mod client;
mod gate;
pub mod listen;
mod oauth;
mod subscription;

pub use oauth::{authorize_url, redirect_path};
pub use subscription::{HIGHLEVEL_WEBHOOK_KEY, TRIGGER_KEYS};

use crate::pipeline::{Pipeline, Tenant};
use anyhow::{Context, anyhow};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

/// Largest subscription body accepted (the action's limit is the component's).
const MAX_SUBSCRIPTION_BYTES: usize = 64 * 1024;

/// What the server needs: the pipeline and the tenants by id.
pub struct ServerState {
    /// Runs the components.
    pub pipeline: Arc<Pipeline>,
    /// The tenants, by id (the `{tenant}` path segment).
    pub tenants: HashMap<String, Arc<Tenant>>,
}

/// Serve the endpoints on `listener` until the task is dropped or fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ServerState>,
) -> anyhow::Result<()> {
    listen::serve(listener, router(state), listen::Limits::default())
        .await
        .context("serving HTTP")
}

/// The routes, for embedding in another server.
pub fn router(state: Arc<ServerState>) -> Router {
    // HighLevel's calls, behind the tenant's shared secret.
    let webhooks = Router::new()
        // Any method: the component answers 405 itself.
        .route(
            "/t/{tenant}/actions/update-call-record",
            any(update_call_record),
        )
        .route(
            "/t/{tenant}/triggers/subscription",
            post(subscription::subscription).layer(DefaultBodyLimit::max(MAX_SUBSCRIPTION_BYTES)),
        )
        // Their answers say a component's writes were made: they leave
        // only once those are on disk. (Layered first, so it runs inside
        // the secret's gate: a refused request costs no sync.)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gate::answer_once_on_disk,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gate::require_secret,
        ));
    Router::new()
        .merge(webhooks)
        .route("/t/{tenant}/oauth/install", get(oauth::install))
        .route("/t/{tenant}/oauth/callback", get(oauth::callback))
        .route("/oauth/callback", get(oauth::marketplace_callback))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Ready when the database answers and its syncs are not refused. The components are loaded before the
/// server starts (a `ServerState` holds the loaded pipeline), so a server
/// that answers at all has them.
async fn readyz(State(state): State<Arc<ServerState>>) -> Response {
    if state.pipeline.storage().sync_refused() {
        return HttpError(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the disk refused to sync the database; nothing that depends on it \
             leaves until the host is restarted (check the disk first)"
                .into(),
        )
        .into_response();
    }
    match state
        .pipeline
        .storage()
        .kv_get("connectzero-readyz", "probe")
    {
        Ok(_) => (StatusCode::OK, "ready: storage open, components loaded\n").into_response(),
        Err(error) => {
            tracing::warn!(error = %error, "not ready: the database does not answer");
            HttpError(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: the database does not answer ({error})"),
            )
            .into_response()
        }
    }
}

/// A refusal: status and a message saying what to fix.
#[derive(Debug)]
struct HttpError(StatusCode, String);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn unknown_tenant(id: &str) -> HttpError {
    HttpError(
        StatusCode::NOT_FOUND,
        format!("no tenant {id:?} on this host: check the tenant id in the URL"),
    )
}

async fn update_call_record(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let Some(tenant) = state.tenants.get(&id) else {
        return unknown_tenant(&id).into_response();
    };
    let slot = match gate::action_slot(&state.pipeline, tenant) {
        Ok(slot) => slot,
        Err(busy) => return *busy,
    };
    match run_write_back(&state.pipeline, tenant, request, slot).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(tenant = %id, error = %format!("{error:#}"), "the write-back component failed");
            HttpError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the write-back component failed; the host log has the details".into(),
            )
            .into_response()
        }
    }
}

/// Hand the request to a fresh instance of the write-back component and
/// stream back whatever it answers.
async fn run_write_back(
    pipeline: &Pipeline,
    tenant: &Tenant,
    mut request: Request,
    slot: gate::ActionSlot,
) -> anyhow::Result<Response> {
    // wasi:http wants an authority; HTTP/1.0 clients may send no Host.
    if !request.headers().contains_key(header::HOST) {
        request
            .headers_mut()
            .insert(header::HOST, HeaderValue::from_static("localhost"));
    }
    let request = request.map(|body| {
        body.map_err(|e| wasmtime_wasi_http::Error::InternalError(Some(e.to_string())))
    });
    let mut store = pipeline.write_back_store(tenant);
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let incoming = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, request)
        .map_err(anyhow::Error::from)?;
    let out = store
        .data_mut()
        .http()
        .new_response_outparam(sender)
        .map_err(anyhow::Error::from)?;
    let pre = pipeline.write_back_component().clone();
    // The component keeps running while its response body streams out.
    let task = tokio::spawn(async move {
        // Held until the component is done, body streamed out included.
        let _slot = slot;
        // However the component behaves and however slowly the client
        // sends or reads, the invocation (and the request body it holds,
        // which keeps the connection open) ends within the bound. It is
        // not stopped when the request is given up (the server's timeout,
        // the client gone): it may be writing to the CRM, and a write cut
        // in half would be made again by HighLevel's retry. A stalled body
        // ends it sooner (the server's body timeout).
        tokio::time::timeout(MAX_ACTION_TIME, async {
            // One allowance for the component's start functions and its
            // call together.
            crate::engine::within_allowance(&mut store, async |store| {
                let proxy = pre.instantiate_async(&mut *store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(store, incoming, out)
                    .await
            })
            .await
        })
        .await
        .unwrap_or_else(|_| {
            Err(wasmtime::Error::msg(format!(
                "the action ran longer than {} s and was stopped",
                MAX_ACTION_TIME.as_secs()
            )))
        })
    });
    match receiver.await {
        Ok(Ok(response)) => Ok(response.map(Body::new)),
        Ok(Err(code)) => Err(anyhow!("the component answered with error {code:?}")),
        Err(_) => Err(match task.await {
            Ok(Ok(())) => anyhow!("the component returned without a response"),
            Ok(Err(e)) => anyhow::Error::from(e).context("the component trapped"),
            Err(e) => anyhow::Error::from(e),
        }),
    }
}

/// Longest an Update Call Record invocation may run, its answer streamed
/// out included.
const MAX_ACTION_TIME: std::time::Duration = std::time::Duration::from_secs(60);
