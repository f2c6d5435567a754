//! # connectzero — the host
//!
//! Runs the pipeline's WASI 0.2 stage components on wasmtime: loads and
//! pre-instantiates them once ([`engine`]), gives each invocation a fresh
//! store with only its grants ([`state`], [`kv`], [`outbound`],
//! [`credentials`], [`directory`]), drives each tenant's calls through the
//! stages ([`pipeline`], [`scheduler`]) and keeps state in embedded SQLite
//! ([`storage`]).

#![deny(missing_docs)]

pub mod allowance;
pub mod attribution;
pub mod authority;
pub mod backfill;
#[cfg(feature = "devkit")]
pub mod bench;
pub mod bindings;
pub mod call_log;
pub mod clock;
pub mod config;
pub mod config_store;
pub mod credentials;
#[cfg(feature = "devkit")]
pub mod demo;
pub mod diagnostics;
pub mod directory;
pub mod doctor;
pub mod dry_run;
pub mod engine;
pub mod kv;
pub mod location;
pub mod metrics;
pub mod names;
pub mod outbound;
pub mod pipeline;
pub mod ratelimit;
pub mod redact;
pub mod report;
pub mod scheduler;
pub mod secrets;
pub mod server;
pub mod state;
pub use connectzero_storage as storage;
pub mod telemetry;
pub mod tenants;
#[cfg(feature = "devkit")]
pub mod testbed;
pub mod upstream;
pub mod verify;
pub mod web;

#[cfg(test)]
mod architecture_tests;
