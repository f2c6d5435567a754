//! Host-side bindings generated from `wit/`.
//!
//! `host_provided` holds the traits of everything the host implements
//! natively (key-value, credentials, directory). `tick` is the composed
//! pipeline the scheduler runs (and the `call-log` import the host
//! implements); the stages the host also invokes on their own (match,
//! trigger) get a module with the typed `…Pre` that instantiates them.
//! Shared types are mapped onto `host_provided` so one Rust type exists per
//! WIT type.

/// What the host implements for components.
#[allow(missing_docs)]
pub mod host_provided {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "connectzero:pipeline/host-provided",
        imports: {
            "connectzero:pipeline/credentials.access-token": async | trappable,
            "connectzero:matcher/directory": async | trappable,
            default: trappable,
        },
        with: {
            "wasi:keyvalue/store.bucket": crate::bindings::kv_handles::BucketHandle,
            "wasi:keyvalue/atomics.cas": crate::bindings::kv_handles::CasHandle,
        },
    });
}

pub use host_provided::connectzero::pipeline::types;

/// The host's side of the `wasi:keyvalue` resources (`crate::kv` works
/// them): declared here, with the bindings that name them, so the
/// bindings depend on nothing of the capabilities.
pub mod kv_handles {
    /// An open bucket: the tenant namespace it maps to.
    pub struct BucketHandle {
        pub(crate) namespace: String,
    }

    /// A compare-and-swap handle: the value seen when it was created.
    pub struct CasHandle {
        pub(crate) namespace: String,
        pub(crate) key: String,
        pub(crate) expected: Option<Vec<u8>>,
    }
}

// The logging policy and the route as WIT records: the one mapping, shared
// with the guests (`guest_support::wit_settings`).
guest_support::settings_conversions!(crate::bindings::host_provided::connectzero::pipeline::types);

// Stage errors cross to `guest_support`'s binding of the same WIT types so
// that their wording (`guest_support::api::describe`) and the mapping of
// an HTTP answer to one (`guest_support::api::status_error`) are written
// once for both runtimes.
mod errors {
    use super::types::{Service, StageError, UpstreamError};

    impl From<Service> for guest_support::Service {
        fn from(service: Service) -> Self {
            match service {
                Service::Pbx => Self::Pbx,
                Service::Crm => Self::Crm,
            }
        }
    }

    impl From<guest_support::Service> for Service {
        fn from(service: guest_support::Service) -> Self {
            match service {
                guest_support::Service::Pbx => Self::Pbx,
                guest_support::Service::Crm => Self::Crm,
            }
        }
    }

    fn upstream_to_guest(e: &UpstreamError) -> guest_support::UpstreamError {
        guest_support::UpstreamError {
            service: e.service.into(),
            status: e.status,
            message: e.message.clone(),
        }
    }

    fn upstream_from_guest(e: guest_support::UpstreamError) -> UpstreamError {
        UpstreamError {
            service: e.service.into(),
            status: e.status,
            message: e.message,
        }
    }

    impl From<&StageError> for guest_support::StageError {
        fn from(error: &StageError) -> Self {
            match error {
                StageError::Unauthorized(e) => Self::Unauthorized(upstream_to_guest(e)),
                StageError::Forbidden(e) => Self::Forbidden(upstream_to_guest(e)),
                StageError::RateLimited(secs) => Self::RateLimited(*secs),
                StageError::Upstream(e) => Self::Upstream(upstream_to_guest(e)),
                StageError::Network(m) => Self::Network(m.clone()),
                StageError::InvalidData(m) => Self::InvalidData(m.clone()),
                StageError::InvalidSettings(m) => Self::InvalidSettings(m.clone()),
                StageError::Storage(m) => Self::Storage(m.clone()),
                StageError::NotImplemented(m) => Self::NotImplemented(m.clone()),
            }
        }
    }

    impl From<guest_support::StageError> for StageError {
        fn from(error: guest_support::StageError) -> Self {
            use guest_support::StageError as G;
            match error {
                G::Unauthorized(e) => Self::Unauthorized(upstream_from_guest(e)),
                G::Forbidden(e) => Self::Forbidden(upstream_from_guest(e)),
                G::RateLimited(secs) => Self::RateLimited(secs),
                G::Upstream(e) => Self::Upstream(upstream_from_guest(e)),
                G::Network(m) => Self::Network(m),
                G::InvalidData(m) => Self::InvalidData(m),
                G::InvalidSettings(m) => Self::InvalidSettings(m),
                G::Storage(m) => Self::Storage(m),
                G::NotImplemented(m) => Self::NotImplemented(m),
            }
        }
    }
}

/// Generate the typed export bindings of one stage world. The `with`
/// entries must name exactly the interfaces the world imports (bindgen
/// rejects unused ones), so each world lists its own.
macro_rules! stage_world {
    ($module:ident, $world:literal, { $($with:tt)* }) => {
        #[doc = concat!("Bindings of the `", $world, "` world.")]
        #[allow(missing_docs)]
        pub mod $module {
            wasmtime::component::bindgen!({
                path: "../../wit",
                world: $world,
                exports: { default: async },
                with: {
                    "connectzero:pipeline/types": crate::bindings::host_provided::connectzero::pipeline::types,
                    "connectzero:matcher/types": crate::bindings::host_provided::connectzero::matcher::types,
                    $($with)*
                },
            });
        }
    };
}

/// `with` entries for worlds that import wasi:http and credentials.
macro_rules! http_world {
    ($module:ident, $world:literal, { $($with:tt)* }) => {
        stage_world!($module, $world, {
            "connectzero:pipeline/credentials": crate::bindings::host_provided::connectzero::pipeline::credentials,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            $($with)*
        });
    };
}

/// Bindings of the matcher contract's `match-stage` world
/// (`wit/matcher/matcher.wit`), which imports no pipeline interface.
#[allow(missing_docs)]
pub mod matcher {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "connectzero:matcher/match-stage",
        exports: { default: async },
        with: {
            "connectzero:matcher/types": crate::bindings::host_provided::connectzero::matcher::types,
            "connectzero:matcher/directory": crate::bindings::host_provided::connectzero::matcher::directory,
        },
    });
}

// The matcher reads only its part of the tenant's settings.
guest_support::matcher_settings_conversion!(
    crate::bindings::host_provided::connectzero::pipeline::types;
    crate::bindings::matcher::exports::connectzero::matcher::matcher
);
http_world!(trigger, "connectzero:pipeline/trigger-stage", {
    "wasi:keyvalue": crate::bindings::host_provided::wasi::keyvalue,
});

/// Bindings of the composed tick (`tick-host`): the tick export the host
/// calls, and the `call-log` import it implements (`crate::call_log`).
#[allow(missing_docs)]
pub mod tick {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "connectzero:pipeline/tick-host",
        exports: { default: async },
        imports: { default: trappable },
        with: {
            "connectzero:pipeline/types": crate::bindings::host_provided::connectzero::pipeline::types,
            "connectzero:matcher/types": crate::bindings::host_provided::connectzero::matcher::types,
            "connectzero:pipeline/credentials": crate::bindings::host_provided::connectzero::pipeline::credentials,
            "connectzero:matcher/directory": crate::bindings::host_provided::connectzero::matcher::directory,
            "wasi:keyvalue": crate::bindings::host_provided::wasi::keyvalue,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}
