//! # ConnectZero simulators
//!
//! Loopback HTTP servers that behave like the two real APIs ConnectZero talks to,
//! following the OpenAPI documents and NOTES.md files in `../shared/specs/`
//! field for field:
//!
//! - [`threecx`]: the 3CX v20 XAPI (OAuth client credentials, `CallHistoryView`,
//!   `ReportCallLogData/Pbx.GetCallLogData`, `Users`, `Recordings`,
//!   `DownloadRecording` (streamed, with synthetic audio and broken
//!   downloads), `ActiveCalls`).
//! - [`highlevel`]: the HighLevel API v2 (OAuth token, contact search,
//!   contact updates, tags and notes, conversations, inbound/outbound call
//!   messages, uploads, workflow triggers and custom actions).
//!
//! Tests and the demo *script* them: make a call happen in 3CX, then read what
//! the CRM received. They are never used by production code paths.
//!
//! Both are refereed by [`spec`]: every request is checked against the
//! official OpenAPI documents (and refused when it breaks them), every
//! successful answer against its response schema, and a simulator dropped
//! with violations fails the test that caused them.
//!
//! They depend on HTTP and JSON crates and on the official documents in
//! `../shared/specs`: never on ConnectZero's runtime, host or components,
//! so they cannot share the client's assumptions.

#![deny(missing_docs)]

pub mod highlevel;
mod server;
pub mod spec;
pub mod threecx;
