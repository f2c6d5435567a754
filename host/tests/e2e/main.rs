//! The end-to-end suite, one test binary: every module below drives the
//! real components (and, where it says so, the `connectzero` binary, the
//! real Spin CLI, `redis-server` or a headless browser) against the 3CX
//! and HighLevel simulators. One binary links the host once and compiles
//! the components once ([`common::runtime`]) for every test.
//!
//! Shared support: [`common`] (worlds, calls, the compiled runtime, and
//! the builders a test names its set-up with: [`common::options`] for a
//! tenant's options, [`common::call`] and [`common::leg`] for calls) and
//! [`binary`] (the `connectzero` binary as the CLI tests run it).
//!
//! Every test returns `anyhow::Result<()>`: set-up and I/O that fail end
//! it with `?` (and the step that failed, where that says more than the
//! error); what a test checks is an `assert!`.
//! `tests/memory.rs` stays a binary of its own: it measures the process's
//! peak memory, which other tests' allocations would disturb.

mod binary;
mod common;

mod ambiguity;
mod backfill;
mod chains;
mod chaos;
mod charts;
mod cli;
mod components;
mod diagnostics;
mod doctor;
mod exactly_once;
mod fairness;
mod followups;
mod init;
mod insights;
mod isolation;
mod marketplace;
mod monitoring;
mod oauth;
mod oauth_shared;
mod ops;
mod packaging;
mod partner;
mod pipeline;
mod policy;
mod quiet;
mod readme_walkthrough;
mod recovered;
mod redis;
mod retention;
mod routing;
mod sandbox;
mod secrets;
mod security;
mod shared_budget;
mod spin;
mod tenants;
mod upgrade;
mod users;
mod warm_matcher;
mod web;
mod write_back;
