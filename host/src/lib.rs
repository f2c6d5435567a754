//! # connectzero — the bundled host
//!
//! The operator's side around the runtime (`connectzero-runtime`, whose
//! modules are re-exported here under their old paths): the 3CX and
//! HighLevel connectors the runtime reaches through traits
//! ([`credentials`], [`directory`], [`connect`]), secrets at rest, the HTTP
//! server (OAuth install, Update Call Record, status page, `/metrics`),
//! the doctor and diagnostics, backfill and replay, and the CLI
//! (`src/cli/`). The dev kit (demo, bench, test bed, simulators) is the
//! default feature `devkit`. Storage and configuration are their own
//! crates (`connectzero-storage`, `connectzero-config`).

#![deny(missing_docs)]

pub use connectzero_runtime::allowance;
pub mod attribution;
pub use connectzero_config::authority;
pub mod backfill;
#[cfg(feature = "devkit")]
pub mod bench;
pub use connectzero_config as config;
pub use connectzero_runtime::bindings;
pub use connectzero_runtime::call_log;
pub use connectzero_runtime::clock;
pub use connectzero_runtime::config_store;
pub mod connect;
pub mod credentials;
#[cfg(feature = "devkit")]
pub mod demo;
pub mod diagnostics;
pub mod directory;
pub mod doctor;
pub mod dry_run;
pub use connectzero_runtime::engine;
pub use connectzero_runtime::kv;
pub mod location;
pub mod metrics;
pub mod probe;
pub use connectzero_runtime::names;
pub use connectzero_runtime::outbound;
pub use connectzero_runtime::pipeline;
pub use connectzero_runtime::ratelimit;
pub use connectzero_runtime::redact;
pub use connectzero_runtime::report;
pub use connectzero_runtime::scheduler;
pub mod secrets;
pub mod server;
pub mod setup;
pub use connectzero_runtime::state;
pub use connectzero_runtime::telemetry;
pub use connectzero_storage as storage;
pub mod tenants;
#[cfg(feature = "devkit")]
pub mod testbed;
pub mod upstream;
pub mod verify;
pub mod web;

#[cfg(test)]
mod architecture_tests;
