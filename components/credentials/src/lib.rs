//! # credentials-provider: tokens for runtimes without the ConnectZero host
//!
//! The bundled host implements `connectzero:pipeline/credentials` natively.
//! Spin has no such interface, so on Spin this component is composed (wac)
//! in front of every stage that imports it: the stages stay byte-for-byte
//! the same binaries on both runtimes.
//!
//! - [`settings`]: client ids and secrets from `wasi:config/store`.
//! - [`sealed`]: AES-256-GCM for what is kept in the key-value store.
//! - [`grant`]: the token endpoints (3CX client credentials, HighLevel
//!   refresh-token rotation and the install's code exchange).
//! - [`cache`]: the shared token cache, the refresh lease and the grants
//!   installs keep (`crm-install`: exchange the code once, keep the grant
//!   in the tenant chosen after).
//!
//! A Spin-side provider: it depends on `guest-support` and its world's
//! imports, never on the host, whose native credentials it stands in for.

pub mod cache;
pub mod grant;
pub mod sealed;
pub mod settings;

use guest_support::bindings::connectzero::pipeline::types::{Service, StageError};

wit_bindgen::generate!({
    path: "../../wit",
    world: "connectzero:pipeline/credentials-provider",
    with: {
        "connectzero:pipeline/types@0.1.0": guest_support::bindings::connectzero::pipeline::types,
        "connectzero:matcher/types@0.1.0": guest_support::bindings::connectzero::matcher::types,
        "wasi:keyvalue/store@0.2.0-draft2": guest_support::bindings::wasi::keyvalue::store,
        "wasi:keyvalue/atomics@0.2.0-draft2": guest_support::bindings::wasi::keyvalue::atomics,
        "wasi:config/store@0.2.0-draft-2024-09-27": guest_support::bindings::wasi::config::store,
        "wasi:http/types@0.2.4": guest_support::wasi::http::types,
        "wasi:http/outgoing-handler@0.2.4": guest_support::wasi::http::outgoing_handler,
        "wasi:io/error@0.2.4": guest_support::wasi::io::error,
        "wasi:io/poll@0.2.4": guest_support::wasi::io::poll,
        "wasi:io/streams@0.2.4": guest_support::wasi::io::streams,
        "wasi:clocks/monotonic-clock@0.2.4": guest_support::wasi::clocks::monotonic_clock,
    },
});

struct Provider;

impl exports::connectzero::pipeline::credentials::Guest for Provider {
    fn access_token(service: Service) -> Result<String, StageError> {
        let settings = settings::Settings::load()?;
        cache::access_token(&settings, service)
    }

    fn token_rejected(service: Service, token: String) {
        // Best effort: if forgetting fails, the next call still gets a 401
        // and reports it again.
        if let Ok(settings) = settings::Settings::load() {
            let _ = cache::forget(&settings, service, &token);
        }
    }
}

impl exports::connectzero::pipeline::crm_install::Guest for Provider {
    type Grant = cache::Exchanged;

    fn exchange(
        code: String,
        redirect_uri: String,
    ) -> Result<exports::connectzero::pipeline::crm_install::Grant, StageError> {
        let settings = settings::Settings::load()?;
        let exchanged = cache::exchange(&settings, &code, &redirect_uri)?;
        Ok(exports::connectzero::pipeline::crm_install::Grant::new(
            exchanged,
        ))
    }

    fn keep(grant: exports::connectzero::pipeline::crm_install::Grant) -> Result<(), StageError> {
        let settings = settings::Settings::load()?;
        cache::keep(&settings, grant.into_inner())
    }
}

impl exports::connectzero::pipeline::crm_install::GuestGrant for cache::Exchanged {
    fn grantee(&self) -> exports::connectzero::pipeline::crm_install::Grantee {
        use exports::connectzero::pipeline::crm_install::Grantee;
        match self.location_id() {
            Some(location) => Grantee::Location(location.to_string()),
            None => Grantee::Company,
        }
    }
}

// Exported only when building the component (see the stage crates).
#[cfg(target_arch = "wasm32")]
export!(Provider);
