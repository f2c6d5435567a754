//! # The write-back stage — the Update Call Record workflow action
//!
//! A stand-alone `wasi:http` component (world `write-back-stage`).
//! HighLevel POSTs the action call to it; it checks the shared-secret
//! header (and `x-wh-signature` when present), refuses other locations,
//! validates notes, tags and sentiment, and writes them to the contact:
//! a note (`create-note`), tags (`add-tags`) and a sentiment custom field
//! (`update-contact`). Identical calls are applied once. See `README.md`.
//!
//! - [`handler`]: the checks and the apply, over the [`handler::Env`] trait.
//! - [`action`]: reading and validating the call.
//! - [`auth`]: the shared secret and the signature.
//! - [`settings`]: `wasi:config/store` keys and defaults.
//! - [`reply`]: errors and answers.
//! - `runtime` and `serve`: the imports and the HTTP plumbing.
//!
//! It depends on `guest-support` and on what the `write-back-stage` world
//! grants: never on the host, the runtime or a pipeline stage.

pub mod action;
pub mod auth;
pub mod handler;
pub mod reply;
mod runtime;
mod serve;
pub mod settings;

wit_bindgen::generate!({
    path: "../../wit",
    world: "connectzero:pipeline/write-back-stage",
    with: {
        "connectzero:pipeline/types@0.1.0": guest_support::bindings::connectzero::pipeline::types,
        "connectzero:matcher/types@0.1.0": guest_support::bindings::connectzero::matcher::types,
        "connectzero:pipeline/credentials@0.1.0": guest_support::bindings::connectzero::pipeline::credentials,
        "wasi:keyvalue/store@0.2.0-draft2": guest_support::bindings::wasi::keyvalue::store,
        "wasi:config/store@0.2.0-draft-2024-09-27": guest_support::bindings::wasi::config::store,
        "wasi:http/types@0.2.4": guest_support::wasi::http::types,
        "wasi:http/outgoing-handler@0.2.4": guest_support::wasi::http::outgoing_handler,
        "wasi:io/error@0.2.4": guest_support::wasi::io::error,
        "wasi:io/poll@0.2.4": guest_support::wasi::io::poll,
        "wasi:io/streams@0.2.4": guest_support::wasi::io::streams,
        "wasi:clocks/monotonic-clock@0.2.4": guest_support::wasi::clocks::monotonic_clock,
    },
});

use exports::wasi::http::incoming_handler::Guest;
use guest_support::wasi::http::types::{IncomingRequest, ResponseOutparam};

struct WriteBack;

impl Guest for WriteBack {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let request = serve::read_request(&request);
        let reply = handler::handle(&runtime::WasiEnv, &request);
        serve::send(out, reply);
    }
}

// Exported only when building the component: a native build (unit tests)
// would otherwise put WIT export names into the host linker's symbol list.
#[cfg(target_arch = "wasm32")]
export!(WriteBack);
