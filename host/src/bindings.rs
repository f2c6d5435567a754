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
        path: "../wit",
        world: "connectzero:pipeline/host-provided",
        imports: {
            "connectzero:pipeline/credentials.access-token": async | trappable,
            "connectzero:pipeline/directory": async | trappable,
            default: trappable,
        },
        with: {
            "wasi:keyvalue/store.bucket": crate::kv::BucketHandle,
            "wasi:keyvalue/atomics.cas": crate::kv::CasHandle,
        },
    });
}

pub use host_provided::connectzero::pipeline::types;

// The logging policy and the route as WIT records: the one mapping, shared
// with the guests (`guest_support::wit_settings`).
guest_support::settings_conversions!(crate::bindings::host_provided::connectzero::pipeline::types);

/// Generate the typed export bindings of one stage world. The `with`
/// entries must name exactly the interfaces the world imports (bindgen
/// rejects unused ones), so each world lists its own.
macro_rules! stage_world {
    ($module:ident, $world:literal, { $($with:tt)* }) => {
        #[doc = concat!("Bindings of the `", $world, "` world.")]
        #[allow(missing_docs)]
        pub mod $module {
            wasmtime::component::bindgen!({
                path: "../wit",
                world: $world,
                exports: { default: async },
                with: {
                    "connectzero:pipeline/types": crate::bindings::host_provided::connectzero::pipeline::types,
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

stage_world!(matcher, "connectzero:pipeline/match-stage", {
    "connectzero:pipeline/directory": crate::bindings::host_provided::connectzero::pipeline::directory,
});
http_world!(trigger, "connectzero:pipeline/trigger-stage", {
    "wasi:keyvalue": crate::bindings::host_provided::wasi::keyvalue,
});

/// Bindings of the composed tick (`tick-host`): the tick export the host
/// calls, and the `call-log` import it implements (`crate::call_log`).
#[allow(missing_docs)]
pub mod tick {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "connectzero:pipeline/tick-host",
        exports: { default: async },
        imports: { default: trappable },
        with: {
            "connectzero:pipeline/types": crate::bindings::host_provided::connectzero::pipeline::types,
            "connectzero:pipeline/credentials": crate::bindings::host_provided::connectzero::pipeline::credentials,
            "connectzero:pipeline/directory": crate::bindings::host_provided::connectzero::pipeline::directory,
            "wasi:keyvalue": crate::bindings::host_provided::wasi::keyvalue,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}
