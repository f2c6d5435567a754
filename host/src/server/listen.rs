//! Accepting connections, bounded: in number, in the time a client may
//! take to send its headers, and in the time a request may take, so slow or
//! abusive clients can neither exhaust the host's sockets nor hold a handler
//! (and what it holds) open. Anyone on the internet can reach these
//! endpoints: HighLevel's webhooks and the OAuth callback must be public.

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tower_http::add_extension::AddExtension;
use tower_http::map_request_body::MapRequestBody;
use tower_http::timeout::{TimeoutBody, TimeoutLayer};

/// What one host's server allows.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open at once; the next waits in the kernel's backlog
    /// until one closes.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (each request on a
    /// kept-alive connection too), after which the connection is closed.
    pub header_timeout: Duration,
    /// Time a request has, body included, until its answer starts; then
    /// it is answered 408 and its connection closed.
    pub request_timeout: Duration,
    /// Longest pause while a request body arrives: a body that stalls
    /// longer fails, so whatever reads it (a component) stops waiting.
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(10),
        }
    }
}

/// A refusal (4xx, 5xx) closes its connection: its request's body may be
/// unread (refused before reading it, or never sent), and waiting for the
/// rest of it to keep the connection would hand the client the time the
/// limits take away.
async fn close_after_refusal(mut response: Response) -> Response {
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Serve `app` on `listener` within `limits` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
) -> anyhow::Result<()> {
    let app = app
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(axum::middleware::map_response(close_after_refusal));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        // A slot first: at the cap, connections wait unaccepted.
        let slot = slots.clone().acquire_owned().await?;
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors, a reset before accept: not fatal, but
                // retried at once it would spin; a moment's pause lets
                // connections close.
                tracing::warn!(%error, "could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Handlers that throttle by client address read it from here; a
        // body that stalls fails instead of holding its reader.
        let body_timeout = limits.body_timeout;
        let service = TowerToHyperService::new(MapRequestBody::new(
            AddExtension::new(app.clone(), ConnectInfo(peer)),
            move |body| TimeoutBody::new(body_timeout, body),
        ));
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(slot);
        });
    }
}
