//! # guest-support
//!
//! What every ConnectZero stage component shares, so each stage crate holds
//! only its own logic:
//!
//! - [`bindings`]: Rust bindings of the shared imports (`types`,
//!   `credentials`, `wasi:keyvalue`). Stage crates map their own
//!   `wit_bindgen::generate!` onto these with `with:`, so one Rust type exists
//!   per WIT type.
//! - [`http`]: a small blocking HTTP client over `wasi:http/outgoing-handler`.
//! - [`api`]: an authenticated JSON client for 3CX and HighLevel that turns
//!   HTTP failures into typed [`StageError`]s and retries once on a 401.
//! - [`budget`]: a HighLevel location's request budget kept in a shared
//!   store (Spin replicas), and HighLevel's numbers the host reads too.
//! - [`config`]: settings from `wasi:config/store` (Spin variables).
//! - [`kv`]: JSON values in the tenant's key-value bucket.
//! - [`layout`]: the key-value layout's version, checked (and migrated)
//!   before every tick.
//! - [`outcomes`]: what became of a call for good, its words and its
//!   ledger text.
//! - [`policy`]: the tenant's logging policy (plain types, also used by the host).
//! - [`routing`]: which tenant on a shared 3CX takes a call (plain types, also used by the host).
//! - [`serve`]: `wasi:http/incoming-handler` plumbing for HTTP components.
//! - [`queue`]: durable job queues (attach and trigger retries).
//! - [`redact`]: what may appear in logs (phone numbers masked), for
//!   both runtimes' log lines.
//! - [`recordings`]: where a call's recording stands, as the call log and
//!   workflows write it.
//! - [`insights`]: 3CX's call insights: the tenant's settings, where a
//!   call's stand, the bounds on their texts.
//! - [`retention`]: forgetting per-call state past its horizon.
//! - `webhook` (feature `webhook`): the shared-secret and `x-wh-signature`
//!   checks of HighLevel's calls.
//! - [`time`]: timestamps in milliseconds and RFC 3339.
//! - [`triggers`]: the workflow triggers and their keys.
//! - [`legs`]: whether a person picked a call leg up, and whether a call
//!   went to voicemail.
//! - [`settings`]: parsing and checks of tenant settings both runtimes
//!   read (plain types, also used by the host).
//! - [`protocol`]: the exactly-once protocol's decisions (claims, call
//!   completeness, cursor movement), shared with the model checker.
//! - [`review`]: the park reason of a call left for review (also used by
//!   the host).
//! - [`install_tenants`]: the tenants HighLevel installs create on Spin
//!   (their ids, the cap on those waiting for settings).
//! - [`installs`]: OAuth install states' limits and the client key they
//!   count by (also used by the host).
//! - [`oauth`]: token exchanges without I/O (what is sent, how answers
//!   and refusals are read, renewal, which installs are kept), for the
//!   host's token source and the Spin provider alike.
//! - `sealing` (feature `sealing`): AES-256-GCM sealing of secrets at
//!   rest, for the host's secrets store and the Spin provider's tokens.
//! - [`tenancy`]: many tenants in one Spin app: the settings a tenant may
//!   set, its key namespace, its tick lease (the tenancy provider's rules).
//! - [`wit_settings`]: the logging policy and the route as WIT records
//!   ([`settings_conversions!`], for the host's binding too).
//!
//! It depends on `wit-bindgen`, the `wasi` crate and plain Rust crates:
//! never on a stage, the runtime, the host or wasmtime, so both runtimes
//! and every component can use it.

#![deny(missing_docs)]

pub mod api;
pub mod budget;
pub mod config;
pub mod http;
pub mod insights;
pub mod install_tenants;
pub mod installs;
pub mod kv;
pub mod layout;
pub mod legs;
pub mod oauth;
pub mod outcomes;
pub mod policy;
pub mod protocol;
pub mod queue;
pub mod recordings;
pub mod redact;
pub mod retention;
pub mod review;
pub mod routing;
#[cfg(feature = "sealing")]
pub mod sealing;
pub mod serve;
pub mod settings;
pub mod tenancy;
pub mod time;
pub mod triggers;
pub mod waits;
#[cfg(feature = "webhook")]
pub mod webhook;
pub mod wit_settings;

/// Generated bindings of the `host-provided` world in `wit/worlds.wit`.
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "connectzero:pipeline/host-provided",
        pub_export_macro: false,
        generate_unused_types: true,
        generate_all,
    });
}

pub use bindings::connectzero::matcher::types::{Service, StageError, UpstreamError};

/// The `wasi` crate (WASI 0.2.4 bindings), re-exported for [`stage_bindings!`].
pub use wasi;

/// Generate a stage component's bindings for a world of `wit/worlds.wit`
/// (or, for `pure`, the matcher contract's `match-stage`),
/// reusing the shared Rust types of [`bindings`] and the `wasi` crate so every
/// stage speaks the same types.
///
/// wit-bindgen refuses remappings a world does not use, so the first word
/// names which imports the world has:
/// - `http_kv`: `wasi:http`, `wasi:keyvalue/store`, `credentials`
/// - `http`: `wasi:http`, `credentials`
/// - `http_queue`: `http_kv` plus `wasi:keyvalue/atomics` (durable queues)
/// - `ledger`: `wasi:keyvalue/store` and `atomics`
/// - `pure`: only the shared types and the read-only `directory` (the
///   matcher contract's world, named in full: `connectzero:matcher/match-stage`)
///
/// ```text
/// guest_support::stage_bindings!(http_kv "poll-stage");
/// ```
#[macro_export]
macro_rules! stage_bindings {
    (http_kv $world:literal) => {
        wit_bindgen::generate!({
            path: "../../wit",
            world: $world,
            with: {
                "connectzero:pipeline/types@0.1.0": ::guest_support::bindings::connectzero::pipeline::types,
                "connectzero:matcher/types@0.1.0": ::guest_support::bindings::connectzero::matcher::types,
                "connectzero:pipeline/credentials@0.1.0": ::guest_support::bindings::connectzero::pipeline::credentials,
                "wasi:keyvalue/store@0.2.0-draft2": ::guest_support::bindings::wasi::keyvalue::store,
                "wasi:http/types@0.2.4": ::guest_support::wasi::http::types,
                "wasi:http/outgoing-handler@0.2.4": ::guest_support::wasi::http::outgoing_handler,
                "wasi:io/error@0.2.4": ::guest_support::wasi::io::error,
                "wasi:io/poll@0.2.4": ::guest_support::wasi::io::poll,
                "wasi:io/streams@0.2.4": ::guest_support::wasi::io::streams,
                "wasi:clocks/monotonic-clock@0.2.4": ::guest_support::wasi::clocks::monotonic_clock,
            },
        });
    };
    (http_queue $world:literal) => {
        wit_bindgen::generate!({
            path: "../../wit",
            world: $world,
            with: {
                "connectzero:pipeline/types@0.1.0": ::guest_support::bindings::connectzero::pipeline::types,
                "connectzero:matcher/types@0.1.0": ::guest_support::bindings::connectzero::matcher::types,
                "connectzero:pipeline/credentials@0.1.0": ::guest_support::bindings::connectzero::pipeline::credentials,
                "wasi:keyvalue/store@0.2.0-draft2": ::guest_support::bindings::wasi::keyvalue::store,
                "wasi:keyvalue/atomics@0.2.0-draft2": ::guest_support::bindings::wasi::keyvalue::atomics,
                "wasi:http/types@0.2.4": ::guest_support::wasi::http::types,
                "wasi:http/outgoing-handler@0.2.4": ::guest_support::wasi::http::outgoing_handler,
                "wasi:io/error@0.2.4": ::guest_support::wasi::io::error,
                "wasi:io/poll@0.2.4": ::guest_support::wasi::io::poll,
                "wasi:io/streams@0.2.4": ::guest_support::wasi::io::streams,
                "wasi:clocks/monotonic-clock@0.2.4": ::guest_support::wasi::clocks::monotonic_clock,
            },
        });
    };
    (http $world:literal) => {
        wit_bindgen::generate!({
            path: "../../wit",
            world: $world,
            with: {
                "connectzero:pipeline/types@0.1.0": ::guest_support::bindings::connectzero::pipeline::types,
                "connectzero:matcher/types@0.1.0": ::guest_support::bindings::connectzero::matcher::types,
                "connectzero:pipeline/credentials@0.1.0": ::guest_support::bindings::connectzero::pipeline::credentials,
                "wasi:http/types@0.2.4": ::guest_support::wasi::http::types,
                "wasi:http/outgoing-handler@0.2.4": ::guest_support::wasi::http::outgoing_handler,
                "wasi:io/error@0.2.4": ::guest_support::wasi::io::error,
                "wasi:io/poll@0.2.4": ::guest_support::wasi::io::poll,
                "wasi:io/streams@0.2.4": ::guest_support::wasi::io::streams,
                "wasi:clocks/monotonic-clock@0.2.4": ::guest_support::wasi::clocks::monotonic_clock,
            },
        });
    };
    (ledger $world:literal) => {
        wit_bindgen::generate!({
            path: "../../wit",
            world: $world,
            with: {
                "connectzero:pipeline/types@0.1.0": ::guest_support::bindings::connectzero::pipeline::types,
                "connectzero:matcher/types@0.1.0": ::guest_support::bindings::connectzero::matcher::types,
                "wasi:keyvalue/store@0.2.0-draft2": ::guest_support::bindings::wasi::keyvalue::store,
                "wasi:keyvalue/atomics@0.2.0-draft2": ::guest_support::bindings::wasi::keyvalue::atomics,
            },
        });
    };
    (pure $world:literal) => {
        wit_bindgen::generate!({
            path: "../../wit",
            world: $world,
            with: {
                "connectzero:matcher/types@0.1.0": ::guest_support::bindings::connectzero::matcher::types,
                "connectzero:matcher/directory@0.1.0": ::guest_support::bindings::connectzero::matcher::directory,
            },
        });
    };
}
