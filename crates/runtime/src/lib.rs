//! # connectzero-runtime: the runtime at the centre of the bundled host
//!
//! Runs the composed pipeline for each tenant on wasmtime: loads and
//! pre-instantiates the components once ([`engine`], their bytes bundled
//! by the build script), keeps warm instances per tenant, gives each
//! invocation a store holding only its grants ([`state`]), and runs the
//! tick ([`pipeline`]) on the [`scheduler`]. Each host capability is its
//! own module with its view of the store, its `HasData` marker and its
//! `add_to_linker`, in the manner of wasmtime's WASI crates: key-value
//! ([`kv`]), configuration ([`config_store`]), outbound HTTP
//! ([`outbound`], with the location's request budget in [`ratelimit`]),
//! credentials ([`credentials`]), the contact directory ([`directory`]) and
//! the call log ([`call_log`]).
//!
//! It owns the invocation's state (store, allowance, warm pools); the
//! tenants' data lives in storage (`connectzero-storage`), their settings
//! in configuration (`connectzero-config`). It may not depend on the
//! operator features (status page, metrics, doctor, backfill, CLI) or on
//! how tokens and contacts are fetched: those sit on top and reach it
//! through traits ([`credentials::TokenSource`],
//! [`directory::ContactDirectory`], [`telemetry::Telemetry`],
//! [`scheduler::TickObserver`]).

#![deny(missing_docs)]

pub mod allowance;
pub use connectzero_config::authority;
pub mod bindings;
pub mod call_log;
pub mod clock;
pub use connectzero_config as config;
pub mod config_store;
pub mod credentials;
pub mod directory;
pub mod engine;
pub mod kv;
pub mod names;
pub mod outbound;
pub mod pipeline;
pub use connectzero_ratelimit as ratelimit;
pub use guest_support::redact;
pub mod quiet;
pub mod report;
pub mod scheduler;
pub mod state;
pub use connectzero_storage as storage;
pub mod telemetry;
