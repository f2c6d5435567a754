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
//!   OAuth install for that tenant ([`oauth`]).
//! - `GET /oauth/callback` (and `/oauth/install`): the app's one redirect
//!   URL for a marketplace listing; the grant goes to the tenant of the
//!   location HighLevel granted, created when none names it
//!   ([`oauth::marketplace`]).
//! - `GET /healthz`.
//! - `/admin/tenants...`: the tenants kept in the app's store ([`tenants`]).
//!
//! One app serves the tenant its variables configure, any number kept in
//! its key-value store, or both: the tenancy provider (`components/tenancy`)
//! gives each its own keys and settings, and [`driver`] ticks them all.
//!
//! - [`settings`]: the selected tenant's settings (`wasi:config`).
//! - [`report`]: a tick's report as JSON.
//!
//! The tick itself is the `tick` component (`components/tick`), composed
//! in with the stages: the same orchestration the bundled host runs.
//!
//! The Spin entry point: it depends on `guest-support` and on the
//! interfaces its world imports (the tick, the trigger stage, the install),
//! never on the host or a stage's crate.

pub mod driver;
pub mod oauth;
pub mod report;
pub mod settings;
pub mod subscription;
pub mod tenants;

use guest_support::serve::{self, Incoming};
use guest_support::wasi::http::types::{IncomingRequest, ResponseOutparam};
use serde_json::json;

wit_bindgen::generate!({
    path: "../../wit",
    world: "connectzero:pipeline/app",
    with: {
        "connectzero:pipeline/types@0.1.0": guest_support::bindings::connectzero::pipeline::types,
        "connectzero:matcher/types@0.1.0": guest_support::bindings::connectzero::matcher::types,
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
    if path == "/admin/tenants" || path.starts_with("/admin/tenants/") {
        return plain(tenants::admin(request));
    }
    if let Some((tenant, _)) = tenant_route
        && let Err((status, message)) = tenants::select_for_route(tenant)
    {
        return plain((status, json!({"error": message})));
    }
    match (request.method.as_str(), path, tenant_route) {
        ("GET", "/healthz", _) => plain((200, json!({"status": "ok"}))),
        ("POST", "/tick", _) => plain(driver::tick(request)),
        ("POST", _, Some((_, "triggers/subscription"))) => plain(subscription::handle(request)),
        ("GET", _, Some((tenant, "oauth/install"))) => {
            oauth::install(request, oauth::Flow::Tenant(tenant))
        }
        ("GET", _, Some((tenant, "oauth/callback"))) => oauth::callback(request, tenant),
        ("GET", "/oauth/install", _) => oauth::marketplace::install(request),
        ("GET", "/oauth/callback", _) => oauth::marketplace::callback(request),
        _ => plain((
            404,
            json!({"error": format!("no route {} {path}: use POST /tick, POST /t/<tenant>/triggers/subscription, GET /t/<tenant>/oauth/install, GET /oauth/install, /admin/tenants or GET /healthz", request.method)}),
        )),
    }
}

/// Readable text of a stage error.
pub use guest_support::api::describe;

// Exported only when building the component (see the stage crates).
#[cfg(target_arch = "wasm32")]
export!(App);

#[cfg(test)]
mod tests {
    use super::*;

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
