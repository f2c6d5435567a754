//! # app: the Spin entry point
//!
//! A `wasi:http` component that runs the pipeline on runtimes without the
//! ConnectZero host. wac composes it with the unchanged stage components
//! (and the credentials and directory providers) into one deployable
//! component; see `docs/DEPLOY.md`. Routes:
//!
//! - `POST /tick` (header `x-connectzero-tick-secret`): one tick of the
//!   pipeline, answered with what it did as JSON. A scheduler calls it —
//!   a Kubernetes CronJob on SpinKube, cron elsewhere.
//! - `POST /t/{tenant}/triggers/subscription`: HighLevel (un)registering a
//!   workflow trigger ([`subscription`]).
//! - `GET /t/{tenant}/oauth/install` and `/oauth/callback`: the HighLevel
//!   OAuth install ([`oauth`]).
//! - `GET /healthz`.
//!
//! - [`settings`]: the tenant's settings from Spin variables.
//! - [`tick`]: one tick, step for step the bundled host's.
//! - [`events`]: trigger events.

pub mod events;
pub mod oauth;
pub mod settings;
pub mod subscription;
pub mod tick;

use guest_support::bindings::connectzero::pipeline::types::StageError;
use guest_support::serve::{self, Incoming};
use guest_support::wasi::http::types::{IncomingRequest, ResponseOutparam};
use guest_support::webhook;
use serde_json::json;

wit_bindgen::generate!({
    path: "../../wit",
    world: "connectzero:pipeline/app",
    with: {
        "connectzero:pipeline/types@0.1.0": guest_support::bindings::connectzero::pipeline::types,
        "wasi:keyvalue/store@0.2.0-draft2": guest_support::bindings::wasi::keyvalue::store,
        "wasi:keyvalue/atomics@0.2.0-draft2": guest_support::bindings::wasi::keyvalue::atomics,
        "wasi:config/store@0.2.0-draft-2024-09-27": guest_support::bindings::wasi::config::store,
        "wasi:http/types@0.2.4": guest_support::wasi::http::types,
        "wasi:io/error@0.2.4": guest_support::wasi::io::error,
        "wasi:io/poll@0.2.4": guest_support::wasi::io::poll,
        "wasi:io/streams@0.2.4": guest_support::wasi::io::streams,
        "wasi:clocks/monotonic-clock@0.2.4": guest_support::wasi::clocks::monotonic_clock,
    },
});

/// Largest request body read (subscriptions are small JSON documents).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Header carrying the tick secret.
pub const TICK_SECRET_HEADER: &str = "x-connectzero-tick-secret";

struct App;

impl exports::wasi::http::incoming_handler::Guest for App {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let incoming = serve::read_request(&request, MAX_BODY_BYTES);
        let (status, headers, body) = route(&incoming);
        serve::send_json(out, status, headers, body.to_string().as_bytes());
    }
}

fn route(request: &Incoming) -> oauth::Answer {
    let path = request.path();
    let tenant_route = path
        .strip_prefix("/t/")
        .and_then(|rest| rest.split_once('/'));
    let plain = |(status, body): (u16, serde_json::Value)| (status, Vec::new(), body);
    match (request.method.as_str(), path, tenant_route) {
        ("GET", "/healthz", _) => plain((200, json!({"status": "ok"}))),
        ("POST", "/tick", _) => plain(tick_route(request)),
        ("POST", _, Some((_, "triggers/subscription"))) => plain(subscription::handle(request)),
        ("GET", _, Some((tenant, "oauth/install"))) => oauth::install(request, tenant),
        ("GET", _, Some((tenant, "oauth/callback"))) => oauth::callback(request, tenant),
        _ => plain((
            404,
            json!({"error": format!("no route {} {path}: use POST /tick, POST /t/<tenant>/triggers/subscription, GET /t/<tenant>/oauth/install or GET /healthz", request.method)}),
        )),
    }
}

fn tick_route(request: &Incoming) -> (u16, serde_json::Value) {
    let settings = match settings::AppSettings::load() {
        Ok(s) => s,
        Err(error) => return (500, json!({"error": describe(&error)})),
    };
    if let Err(refusal) = webhook::check_secret(
        TICK_SECRET_HEADER,
        request.header(TICK_SECRET_HEADER),
        Some(&settings.tick_secret),
    ) {
        return (refusal.status, json!({"error": refusal.message}));
    }
    let report = tick::run(&settings, &worker_id());
    (200, serde_json::to_value(report).unwrap_or_default())
}

/// A fresh worker name per request: the ledger's claims name it, so a
/// crashed request's claims expire after the lease instead of being
/// mistaken for this one's.
fn worker_id() -> String {
    #[cfg(target_arch = "wasm32")]
    let random = guest_support::wasi::random::random::get_random_u64();
    #[cfg(not(target_arch = "wasm32"))]
    let random = 0u64;
    format!("spin-{random:016x}")
}

/// Readable text of a stage error.
pub fn describe(error: &StageError) -> String {
    let service = |s| guest_support::api::service_name(s);
    match error {
        StageError::Unauthorized(e) => format!(
            "{} refused the credentials ({}): {}",
            service(e.service),
            e.status,
            e.message
        ),
        StageError::Forbidden(e) => format!(
            "{} denied access ({}): {} — check the API user's role and licence",
            service(e.service),
            e.status,
            e.message
        ),
        StageError::RateLimited(secs) => format!("rate limited; retrying after {secs} s"),
        StageError::Upstream(e) => format!(
            "{} answered {}: {}",
            service(e.service),
            e.status,
            e.message
        ),
        StageError::Network(m) => format!("network: {m}"),
        StageError::InvalidData(m) => format!("invalid data: {m}"),
        StageError::InvalidSettings(m) => format!("invalid settings: {m}"),
        StageError::Storage(m) => format!("storage: {m}"),
        StageError::NotImplemented(m) => format!("not implemented: {m}"),
    }
}

/// Whether a failed call is parked (it can never succeed as it is) rather
/// than retried: the host's rule (`host/src/pipeline/mod.rs`).
pub fn parks(error: &StageError) -> bool {
    match error {
        StageError::Upstream(e) => (400..500).contains(&e.status) && e.status != 408,
        StageError::InvalidData(_) | StageError::NotImplemented(_) => true,
        _ => false,
    }
}

// Exported only when building the component (see the stage crates).
#[cfg(target_arch = "wasm32")]
export!(App);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_park_and_transient_ones_retry() {
        use guest_support::{Service, UpstreamError};
        let upstream = |status| {
            StageError::Upstream(UpstreamError {
                service: Service::Crm,
                status,
                message: String::new(),
            })
        };
        assert!(parks(&upstream(422)));
        assert!(!parks(&upstream(408)));
        assert!(!parks(&upstream(503)));
        assert!(!parks(&StageError::RateLimited(3)));
        assert!(parks(&StageError::InvalidData("x".into())));
    }

    #[test]
    fn unknown_routes_name_the_known_ones() {
        let request = Incoming {
            method: "GET".into(),
            path_with_query: "/nope".into(),
            authority: None,
            headers: Vec::new(),
            body: Ok(Vec::new()),
        };
        let (status, _, body) = route(&request);
        assert_eq!(status, 404);
        assert!(body["error"].as_str().unwrap().contains("POST /tick"));
    }
}
