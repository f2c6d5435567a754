//! Calls posted to the first of several contacts with their number, and
//! operators' requests to log them on another of those contacts too.
//!
//! The post component keeps each such call's candidates and message under
//! `post/shared/<call key>`, and each copy's progress under
//! `post/shared/<call key>/copy/<contact id>`
//! (`components/post/src/copies.rs` owns both formats). The host owns the
//! requests, `post/also/<call key>`: the contacts an operator asked for,
//! each with its lease. A tick takes the requests not yet carried out
//! ([`Storage::pending_copies`]) under a lease, so of several hosts sharing
//! the database one at a time sends a copy, and a copy that failed for now
//! waits longer each time; the page shows each candidate's state.
//! `host/tests/e2e/ambiguity.rs` runs this through the real components.

mod listing;
mod requests;

use super::review_rows::ReviewCandidate;
use rusqlite::{OptionalExtension, params};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Most calls the page lists.
const LIMIT: i64 = 100;

/// Most copy requests one tick carries out (the rest wait a tick).
pub const COPIES_PER_TICK: usize = 20;

/// How long a tick holds a request it took: far longer than the HTTP
/// requests of one copy take, so another host never sends it meanwhile.
/// Doubled after each attempt that failed for now, up to [`MAX_LEASE_MS`].
const LEASE_MS: i64 = 2 * 60 * 1000;

/// The longest wait between attempts.
const MAX_LEASE_MS: i64 = 60 * 60 * 1000;

/// A call posted to one of several contacts with its number, as the page
/// shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedCall {
    /// The call's key.
    pub call_key: String,
    /// "inbound", "outbound" or "internal".
    pub direction: String,
    /// Calling number as 3CX reported it.
    pub caller: String,
    /// Called number.
    pub callee: String,
    /// When the call ended, ms since the epoch.
    pub ended_at_ms: i64,
    /// How the contact was chosen, in words.
    pub how: String,
    /// The contact the call was logged on.
    pub chosen: ReviewCandidate,
    /// The other contacts with the number and where each copy stands.
    pub others: Vec<(ReviewCandidate, CopyState)>,
}

/// Where a copy onto one more contact stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyState {
    /// Not asked for.
    None,
    /// Asked for; a tick logs it. `attempts`: ticks that took it and did
    /// not finish (failed for now, or still at it).
    Requested {
        /// Ticks that took the request so far.
        attempts: u32,
    },
    /// Logged as this message id.
    Logged(String),
    /// Could not be logged; the reason. Asking again tries again.
    Refused(String),
}

/// What asking for a copy found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyAsk {
    /// Asked for (the contact's name); the next tick logs it.
    Queued(String),
    /// Already asked for, or already logged there: nothing more to do.
    Already(String),
    /// The call was not posted to one of several contacts (or its state
    /// was forgotten): nothing to copy.
    NotShared,
    /// The contact is not one of the call's other contacts.
    NotACandidate,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shared {
    #[serde(default)]
    how: String,
    chosen: ReviewCandidate,
    #[serde(default)]
    others: Vec<ReviewCandidate>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CopyMarker {
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    refused: Option<String>,
}

/// `post/also/<call key>`, written only here.
#[derive(Default, serde::Serialize, Deserialize)]
struct Requests {
    /// The contacts asked for, in the order asked.
    contacts: Vec<String>,
    /// Leases of requests a tick took, by contact.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    leases: BTreeMap<String, Lease>,
}

/// A tick took a request: no other takes it before `until`.
#[derive(Clone, Copy, Default, serde::Serialize, Deserialize)]
struct Lease {
    /// ms since the epoch.
    until: i64,
    /// Ticks that took it so far.
    attempts: u32,
}

fn shared_key(call_key: &str) -> String {
    format!("post/shared/{call_key}")
}

fn requests_key(call_key: &str) -> String {
    format!("post/also/{call_key}")
}

fn marker_key(contact_id: &str, call_key: &str) -> String {
    format!("post/shared/{call_key}/copy/{contact_id}")
}

/// Reads a JSON value of the tenant's namespace inside `conn`.
fn kv_json<T: serde::de::DeserializeOwned>(
    conn: &rusqlite::Connection,
    tenant: &str,
    key: &str,
) -> rusqlite::Result<Option<T>> {
    let value: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM kv WHERE namespace = ?1 AND key = ?2",
            params![tenant, key],
            |r| r.get(0),
        )
        .optional()?;
    Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
}

fn state(
    conn: &rusqlite::Connection,
    tenant: &str,
    call_key: &str,
    contact_id: &str,
    requested: &Requests,
) -> rusqlite::Result<CopyState> {
    let marker = kv_json::<CopyMarker>(conn, tenant, &marker_key(contact_id, call_key))?;
    Ok(match marker {
        Some(CopyMarker {
            message_id: Some(id),
            ..
        }) => CopyState::Logged(id),
        Some(CopyMarker {
            refused: Some(why), ..
        }) => CopyState::Refused(why),
        _ if requested.contacts.iter().any(|c| c == contact_id) => CopyState::Requested {
            attempts: requested
                .leases
                .get(contact_id)
                .map_or(0, |lease| lease.attempts),
        },
        _ => CopyState::None,
    })
}

fn name(candidate: &ReviewCandidate) -> String {
    if candidate.name.is_empty() {
        candidate.id.clone()
    } else {
        candidate.name.clone()
    }
}

/// The lease of a request taken for the `attempts + 1`th time.
fn lease_ms(attempts: u32) -> i64 {
    LEASE_MS
        .saturating_mul(1_i64 << attempts.min(20))
        .min(MAX_LEASE_MS)
}

fn to_json(requests: &Requests) -> rusqlite::Result<Vec<u8>> {
    serde_json::to_vec(requests).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}
