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

use super::Storage;
use super::review_rows::ReviewCandidate;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
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

impl Storage {
    /// The posted calls of `tenant` that several contacts' number shares,
    /// newest first, with where each copy stands.
    pub fn shared_calls(&self, tenant: &str) -> rusqlite::Result<Vec<SharedCall>> {
        let conn = self.lock();
        // From the entries (their key range, copies' markers left out) to
        // their calls by primary key: a tenant has few such calls and many
        // others.
        let mut stmt = conn.prepare(
            "SELECT c.call_key, c.direction, c.caller, c.callee, c.ended_at_ms, c.contact_id, kv.value
             FROM kv JOIN calls c ON c.tenant = kv.namespace AND c.call_key = substr(kv.key, 13)
             WHERE kv.namespace = ?1 AND kv.key >= 'post/shared/' AND kv.key < 'post/shared0'
               AND instr(substr(kv.key, 13), '/') = 0 AND c.outcome = 'posted'
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
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Vec<u8>>(6)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut calls = Vec::new();
        for (call_key, direction, caller, callee, ended_at_ms, contact_id, value) in rows {
            let Ok(shared) = serde_json::from_slice::<Shared>(&value) else {
                continue;
            };
            // Posted elsewhere in the end (a later attempt, an operator):
            // not what the entry describes.
            if contact_id.as_deref() != Some(shared.chosen.id.as_str()) {
                continue;
            }
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
        let posted: Option<(String, Option<String>)> = tx
            .query_row(
                "SELECT outcome, contact_id FROM calls WHERE tenant = ?1 AND call_key = ?2",
                params![tenant, call_key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let shared = kv_json::<Shared>(&tx, tenant, &shared_key(call_key))?;
        let Some(shared) = shared.filter(|shared| {
            posted.as_ref().is_some_and(|(outcome, contact)| {
                outcome == "posted" && contact.as_deref() == Some(shared.chosen.id.as_str())
            })
        }) else {
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
            CopyState::Requested { .. } => {
                return Ok(CopyAsk::Already(format!(
                    "it is already being logged on {}",
                    name(candidate)
                )));
            }
            CopyState::Refused(_) => {
                // Forget the refusal, not the rest of the marker: the post
                // stage looks for a copy it began before sending afresh.
                let key = marker_key(contact_id, call_key);
                let mut marker: serde_json::Value = kv_json(&tx, tenant, &key)?.unwrap_or_default();
                if let Some(fields) = marker.as_object_mut() {
                    fields.remove("refused");
                }
                tx.execute(
                    "UPDATE kv SET value = ?3 WHERE namespace = ?1 AND key = ?2",
                    params![tenant, key, marker.to_string().into_bytes()],
                )?;
                requested.leases.remove(contact_id);
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

    /// Take the copy requests of `tenant` not yet carried out nor refused,
    /// nor held by another tick, as (call key, contact id), at most
    /// [`COPIES_PER_TICK`], each leased for [`LEASE_MS`] doubled per
    /// earlier attempt (so one that keeps failing for now waits longer
    /// each time, up to an hour, and never holds back the others).
    /// Requests the post stage settled are dropped from their list on the
    /// way (their marker says how they ended), so the lists hold only what
    /// is pending and this stays short.
    pub fn pending_copies(
        &self,
        tenant: &str,
        now_ms: i64,
    ) -> rusqlite::Result<Vec<(String, String)>> {
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
                if let CopyState::Requested { .. } =
                    state(&tx, tenant, call_key, contact, &requested)?
                {
                    still.contacts.push(contact.clone());
                    let mut lease = requested.leases.get(contact).copied().unwrap_or_default();
                    if lease.until <= now_ms && pending.len() < COPIES_PER_TICK {
                        lease.until = now_ms + lease_ms(lease.attempts);
                        lease.attempts += 1;
                        pending.push((call_key.to_string(), contact.clone()));
                    }
                    still.leases.insert(contact.clone(), lease);
                }
            }
            if still.contacts.is_empty() {
                tx.execute(
                    "DELETE FROM kv WHERE namespace = ?1 AND key = ?2",
                    params![tenant, key],
                )?;
            } else {
                let updated = to_json(&still)?;
                // Unchanged (every request held by a lease): no write.
                if updated != value {
                    tx.execute(
                        "UPDATE kv SET value = ?3 WHERE namespace = ?1 AND key = ?2",
                        params![tenant, key, updated],
                    )?;
                }
            }
        }
        tx.commit()?;
        Ok(pending)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CallRecord;

    const T: &str = "t";
    const CALL: &str = "3cx:7@1700000000000";
    const NOW: i64 = 1_800_000_000_000;

    /// A call posted to contact `a`, which shares its number with `b`.
    fn shared_call(posted_to: &str) -> Storage {
        let storage = Storage::in_memory().unwrap();
        storage
            .record_call(&CallRecord {
                tenant: T.into(),
                call_key: CALL.into(),
                direction: "inbound".into(),
                caller: "+15551230000".into(),
                callee: "101".into(),
                outcome: "posted".into(),
                detail: "msg-1".into(),
                rule: Some("caller-number".into()),
                contact_id: Some(posted_to.into()),
                ended_at_ms: NOW,
                handled_at_ms: NOW,
                recording: "none".into(),
                triggers: String::new(),
            })
            .unwrap();
        let entry = serde_json::json!({
            "how": "logged on the first (oldest) contact with the number",
            "chosen": { "id": "a", "name": "Ann" },
            "others": [{ "id": "b", "name": "Ben" }],
        });
        storage
            .kv_set(T, &shared_key(CALL), entry.to_string().as_bytes())
            .unwrap();
        storage
    }

    #[test]
    fn a_request_goes_to_one_tick_at_a_time_and_waits_longer_after_each_attempt() {
        let storage = shared_call("a");
        assert_eq!(storage.pending_copies(T, NOW).unwrap(), []);
        assert_eq!(
            storage.ask_copy(T, CALL, "b").unwrap(),
            CopyAsk::Queued("Ben".into())
        );
        let taken = vec![(CALL.to_string(), "b".to_string())];
        assert_eq!(storage.pending_copies(T, NOW).unwrap(), taken);
        // Another host (or the next tick) finds it held.
        assert_eq!(storage.pending_copies(T, NOW + 1).unwrap(), []);
        assert_eq!(storage.pending_copies(T, NOW + LEASE_MS - 1).unwrap(), []);
        // The tick died or failed for now: taken again after the lease,
        // then held twice as long.
        assert_eq!(storage.pending_copies(T, NOW + LEASE_MS).unwrap(), taken);
        let second = NOW + LEASE_MS;
        assert_eq!(
            storage.pending_copies(T, second + LEASE_MS).unwrap(),
            [],
            "held twice as long"
        );
        assert_eq!(
            storage.pending_copies(T, second + 2 * LEASE_MS).unwrap(),
            taken
        );
        let shown = storage.shared_calls(T).unwrap();
        assert_eq!(shown[0].others[0].1, CopyState::Requested { attempts: 3 });
        // However often it failed, it waits at most an hour.
        assert_eq!(lease_ms(40), MAX_LEASE_MS);
        assert_eq!(lease_ms(0), LEASE_MS);

        // The post stage logged it: dropped from the list on the next take.
        storage
            .kv_set(
                T,
                &marker_key("b", CALL),
                br#"{"conversation":"c","messageId":"msg-2"}"#,
            )
            .unwrap();
        assert_eq!(
            storage.pending_copies(T, NOW + MAX_LEASE_MS * 2).unwrap(),
            []
        );
        assert_eq!(storage.kv_get(T, &requests_key(CALL)).unwrap(), None);
        assert!(matches!(
            storage.ask_copy(T, CALL, "b").unwrap(),
            CopyAsk::Already(why) if why.contains("already logged on Ben")
        ));
    }

    #[test]
    fn asking_again_after_a_refusal_keeps_what_the_post_stage_needs_to_look_first() {
        let storage = shared_call("a");
        storage.ask_copy(T, CALL, "b").unwrap();
        storage.pending_copies(T, NOW).unwrap();
        storage
            .kv_set(
                T,
                &marker_key("b", CALL),
                br#"{"conversation":"c","crmKey":"k/also/b","at":5,"refused":"HighLevel refused it (HTTP 422): no"}"#,
            )
            .unwrap();
        assert_eq!(storage.pending_copies(T, NOW + MAX_LEASE_MS).unwrap(), []);
        assert!(matches!(
            &storage.shared_calls(T).unwrap()[0].others[0].1,
            CopyState::Refused(why) if why.contains("422")
        ));
        assert_eq!(
            storage.ask_copy(T, CALL, "b").unwrap(),
            CopyAsk::Queued("Ben".into())
        );
        let marker: serde_json::Value =
            serde_json::from_slice(&storage.kv_get(T, &marker_key("b", CALL)).unwrap().unwrap())
                .unwrap();
        assert_eq!(
            marker,
            serde_json::json!({"conversation": "c", "crmKey": "k/also/b", "at": 5})
        );
        // Taken at once: the earlier lease went with the refusal.
        assert_eq!(
            storage.pending_copies(T, NOW + 1).unwrap(),
            [(CALL.to_string(), "b".to_string())]
        );
    }

    #[test]
    fn a_call_posted_elsewhere_in_the_end_is_neither_listed_nor_copied() {
        // The entry says "a", but a later attempt posted the call to "b".
        let storage = shared_call("b");
        assert_eq!(storage.shared_calls(T).unwrap(), []);
        assert_eq!(storage.ask_copy(T, CALL, "b").unwrap(), CopyAsk::NotShared);
        let storage = shared_call("a");
        assert_eq!(storage.shared_calls(T).unwrap().len(), 1);
        assert_eq!(
            storage.ask_copy(T, CALL, "z").unwrap(),
            CopyAsk::NotACandidate
        );
        assert_eq!(
            storage.ask_copy(T, "3cx:8@1", "b").unwrap(),
            CopyAsk::NotShared
        );
    }
}
