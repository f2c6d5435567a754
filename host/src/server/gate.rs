//! What a request to a tenant's HighLevel endpoints must pass before any
//! body is read or any component instantiated: the tenant exists and the
//! request carries its shared secret (compared in constant time). The
//! handlers and the write-back component check again, with the body (the
//! `x-wh-signature`); this gate only makes the cheap refusal come first,
//! so an anonymous client cannot make the host read bodies or start
//! components. Update Call Record runs a component per call: at most
//! [`MAX_ACTIONS`] at once per host and [`MAX_ACTIONS_PER_TENANT`] per
//! tenant, so one tenant's callers cannot take every slot.

use super::{HttpError, ServerState, unknown_tenant};
use crate::pipeline::{MAX_ACTIONS, MAX_ACTIONS_PER_TENANT, Pipeline, Tenant};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use guest_support::webhook;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

/// Run the handler, then hold its answer until every write made so far is
/// on disk. The components HighLevel's calls run (write-back, trigger
/// subscriptions) write without waiting for the disk at commit
/// (`connectzero_storage`'s `durability`); an answer saying a change was
/// made must not outlive a power cut that loses the change.
pub(super) async fn answer_once_on_disk(
    State(state): State<Arc<ServerState>>,
    request: Request,
    next: Next,
) -> Response {
    let answer = next.run(request).await;
    match crate::outbound::on_disk_before_leaving(state.pipeline.storage()).await {
        Ok(()) => answer,
        Err(error) => {
            tracing::error!(%error, "the database could not be synced; answer held back");
            HttpError(
                StatusCode::SERVICE_UNAVAILABLE,
                "the host's database could not be synced to disk; try again later".into(),
            )
            .into_response()
        }
    }
}

/// A running invocation's slots, given back when it ends.
pub(super) struct ActionSlot {
    _host: OwnedSemaphorePermit,
    _tenant: OwnedSemaphorePermit,
}

/// The tenant of the path must exist and the request carry its secret.
pub(super) async fn require_secret(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<String>,
    request: Request,
    next: Next,
) -> Response {
    let Some(tenant) = state.tenants.get(&id) else {
        return unknown_tenant(&id).into_response();
    };
    let actions = &tenant.config.actions;
    let name = actions.header_name();
    let presented = request.headers().get(name).and_then(|v| v.to_str().ok());
    let configured = actions
        .secret
        .as_ref()
        .map(|s| s.expose())
        .filter(|s| !s.is_empty());
    if let Err(refusal) = webhook::check_secret(name, presented, configured) {
        return refused(refusal).into_response();
    }
    next.run(request).await
}

/// A slot for one Update Call Record invocation of `tenant`, or the
/// answer that says to come back: 429 with `Retry-After`, the one refusal
/// HighLevel retries [ASSUMED: its help centre says so of marketplace
/// webhooks, and says nothing of actions].
pub(super) fn action_slot(
    pipeline: &Pipeline,
    tenant: &Tenant,
) -> Result<ActionSlot, Box<Response>> {
    let busy = |what: String| {
        let mut response = HttpError(StatusCode::TOO_MANY_REQUESTS, what).into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        Box::new(response)
    };
    let tenant_slot = tenant.action_slots.clone().try_acquire_owned().map_err(|_| {
        busy(format!(
            "{MAX_ACTIONS_PER_TENANT} Update Call Record calls of this tenant are running already: try again in a moment"
        ))
    })?;
    let host_slot = pipeline.action_slots().clone().try_acquire_owned().map_err(|_| {
        busy(format!(
            "{MAX_ACTIONS} Update Call Record calls are running on this host already: try again in a moment"
        ))
    })?;
    Ok(ActionSlot {
        _host: host_slot,
        _tenant: tenant_slot,
    })
}

/// A webhook refusal as the HTTP error it is.
pub(super) fn refused(refusal: webhook::Refusal) -> HttpError {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpError(status, refusal.message)
}
