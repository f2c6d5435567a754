//! Calls posted to the first of several contacts with their number, and
//! operators' requests to log them on another of those contacts too.
//!
//! The post component keeps each such call's candidates and message under
//! `post/shared/<call key>`, and each copy's progress under
//! `post/copy/<contact id>/<call key>` (`components/post/src/copies.rs`
//! owns both formats). The host owns the requests, `post/also/<call key>`:
//! the contacts an operator asked for, in the order asked. A tick hands the
//! requests not yet carried out to the post stage
//! ([`Storage::pending_copies`]); the page shows each candidate's state.
//! `host/tests/ambiguity.rs` runs this through the real components.

use super::Storage;
use super::review_rows::ReviewCandidate;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Deserialize;

/// Most calls the page lists.
const LIMIT: i64 = 100;

/// Most copy requests one tick carries out (the rest wait a tick).
pub const COPIES_PER_TICK: usize = 20;

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
    /// Asked for; the next tick logs it.
    Requested,
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
    contacts: Vec<String>,
}

fn shared_key(call_key: &str) -> String {
    format!("post/shared/{call_key}")
}

fn requests_key(call_key: &str) -> String {
    format!("post/also/{call_key}")
}

fn marker_key(contact_id: &str, call_key: &str) -> String {
    format!("post/copy/{contact_id}/{call_key}")
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
        _ if requested.contacts.iter().any(|c| c == contact_id) => CopyState::Requested,
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

impl Storage {
    /// The posted calls of `tenant` that several contacts' number shares,
    /// newest first, with where each copy stands.
    pub fn shared_calls(&self, tenant: &str) -> rusqlite::Result<Vec<SharedCall>> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT c.call_key, c.direction, c.caller, c.callee, c.ended_at_ms, kv.value
             FROM calls c JOIN kv ON kv.namespace = c.tenant AND kv.key = 'post/shared/' || c.call_key
             WHERE c.tenant = ?1 AND c.outcome = 'posted'
             ORDER BY c.ended_at_ms DESC, c.call_key LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![tenant, LIMIT], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut calls = Vec::new();
        for (call_key, direction, caller, callee, ended_at_ms, value) in rows {
            let Ok(shared) = serde_json::from_slice::<Shared>(&value) else {
                continue;
            };
            let requested: Requests =
                kv_json(&conn, tenant, &requests_key(&call_key))?.unwrap_or_default();
            let mut others = Vec::new();
            for other in shared.others {
                let state = state(&conn, tenant, &call_key, &other.id, &requested)?;
                others.push((other, state));
            }
            calls.push(SharedCall {
                call_key,
                direction,
                caller,
                callee,
                ended_at_ms,
                how: shared.how,
                chosen: shared.chosen,
                others,
            });
        }
        Ok(calls)
    }

    /// Ask for call `call_key` of `tenant` to be logged on `contact_id`
    /// too, in one transaction. Asking again after a refusal tries again;
    /// asking twice otherwise changes nothing.
    pub fn ask_copy(
        &self,
        tenant: &str,
        call_key: &str,
        contact_id: &str,
    ) -> rusqlite::Result<CopyAsk> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let posted: Option<String> = tx
            .query_row(
                "SELECT outcome FROM calls WHERE tenant = ?1 AND call_key = ?2",
                params![tenant, call_key],
                |r| r.get(0),
            )
            .optional()?;
        let shared = kv_json::<Shared>(&tx, tenant, &shared_key(call_key))?;
        let (Some(shared), Some("posted")) = (shared, posted.as_deref()) else {
            return Ok(CopyAsk::NotShared);
        };
        let Some(candidate) = shared.others.iter().find(|c| c.id == contact_id) else {
            return Ok(CopyAsk::NotACandidate);
        };
        let mut requested: Requests =
            kv_json(&tx, tenant, &requests_key(call_key))?.unwrap_or_default();
        match state(&tx, tenant, call_key, contact_id, &requested)? {
            CopyState::Logged(_) => {
                return Ok(CopyAsk::Already(format!(
                    "it is already logged on {}",
                    name(candidate)
                )));
            }
            CopyState::Requested => {
                return Ok(CopyAsk::Already(format!(
                    "it is already being logged on {}",
                    name(candidate)
                )));
            }
            CopyState::Refused(_) => {
                // A refused copy created nothing: forget the refusal so the
                // post stage tries afresh.
                tx.execute(
                    "DELETE FROM kv WHERE namespace = ?1 AND key = ?2",
                    params![tenant, marker_key(contact_id, call_key)],
                )?;
            }
            CopyState::None => {}
        }
        if !requested.contacts.iter().any(|c| c == contact_id) {
            requested.contacts.push(contact_id.to_string());
        }
        let value = to_json(&requested)?;
        tx.execute(
            "INSERT INTO kv (namespace, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
            params![tenant, requests_key(call_key), value],
        )?;
        tx.commit()?;
        Ok(CopyAsk::Queued(name(candidate)))
    }

    /// The copy requests of `tenant` not yet carried out nor refused, as
    /// (call key, contact id), at most [`COPIES_PER_TICK`]. Requests the
    /// post stage settled are dropped from their list on the way (their
    /// marker says how they ended), so the lists hold only what is pending
    /// and this read stays short.
    pub fn pending_copies(&self, tenant: &str) -> rusqlite::Result<Vec<(String, String)>> {
        let mut conn = self.lock();
        // Every tick asks; almost always nothing waits, and a plain read
        // says so without taking the write lock.
        let any: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM kv WHERE namespace = ?1 AND key >= 'post/also/' AND key < 'post/also0' LIMIT 1",
                params![tenant],
                |r| r.get(0),
            )
            .optional()?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let rows = {
            let mut stmt = tx.prepare(
                "SELECT key, value FROM kv
                 WHERE namespace = ?1 AND key >= 'post/also/' AND key < 'post/also0'
                 ORDER BY key",
            )?;
            stmt.query_map(params![tenant], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
        };
        let mut pending = Vec::new();
        for (key, value) in rows {
            let Some(call_key) = key.strip_prefix("post/also/") else {
                continue;
            };
            let requested = serde_json::from_slice::<Requests>(&value).unwrap_or_default();
            let mut still = Requests::default();
            for contact in &requested.contacts {
                if state(&tx, tenant, call_key, contact, &requested)? == CopyState::Requested {
                    still.contacts.push(contact.clone());
                }
            }
            if still.contacts.is_empty() {
                tx.execute(
                    "DELETE FROM kv WHERE namespace = ?1 AND key = ?2",
                    params![tenant, key],
                )?;
            } else if still.contacts.len() < requested.contacts.len() {
                tx.execute(
                    "UPDATE kv SET value = ?3 WHERE namespace = ?1 AND key = ?2",
                    params![tenant, key, to_json(&still)?],
                )?;
            }
            for contact in still.contacts {
                if pending.len() < COPIES_PER_TICK {
                    pending.push((call_key.to_string(), contact));
                }
            }
        }
        tx.commit()?;
        Ok(pending)
    }
}

fn to_json(requests: &Requests) -> rusqlite::Result<Vec<u8>> {
    serde_json::to_vec(requests).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}
