//! Operators' copy requests: asking for a call to be logged on one more
//! contact, and ticks taking the pending requests under a lease.

use super::{
    COPIES_PER_TICK, CopyAsk, CopyState, Requests, Shared, kv_json, lease_ms, marker_key, name,
    requests_key, shared_key, state, to_json,
};
use crate::Storage;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

impl Storage {
    /// Ask for call `call_key` of `tenant` to be logged on `contact_id`
    /// too, in one transaction. Asking again after a refusal tries again;
    /// asking twice otherwise changes nothing.
    pub fn ask_copy(
        &self,
        tenant: &str,
        call_key: &str,
        contact_id: &str,
    ) -> rusqlite::Result<CopyAsk> {
        let mut conn = self.lock()?;
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

    /// Whether `tenant` has copy requests listed (carried out or not: the
    /// next tick's [`Self::pending_copies`] tells). A plain read, no lease:
    /// the scheduler asks it before deciding whether a tick may be skipped.
    pub fn has_copy_requests(&self, tenant: &str) -> rusqlite::Result<bool> {
        any_copy_requests(&*self.lock()?, tenant)
    }

    /// Take the copy requests of `tenant` not yet carried out nor refused,
    /// nor held by another tick, as (call key, contact id), at most
    /// [`COPIES_PER_TICK`], each leased for [`LEASE_MS`](super::LEASE_MS) doubled per
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
        let mut conn = self.lock()?;
        // Every tick asks; almost always nothing waits, and a plain read
        // says so without taking the write lock.
        if !any_copy_requests(&conn, tenant)? {
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

/// Whether any `post/also/` list of `tenant` exists: a plain read.
fn any_copy_requests(conn: &rusqlite::Connection, tenant: &str) -> rusqlite::Result<bool> {
    let any: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM kv WHERE namespace = ?1 AND key >= 'post/also/' AND key < 'post/also0' LIMIT 1",
            params![tenant],
            |r| r.get(0),
        )
        .optional()?;
    Ok(any.is_some())
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use crate::{CallRecord, Storage};

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
                insights: "none".into(),
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
    fn a_listed_request_is_seen_without_taking_it() {
        let storage = shared_call("a");
        assert!(!storage.has_copy_requests(T).unwrap());
        storage.ask_copy(T, CALL, "b").unwrap();
        assert!(storage.has_copy_requests(T).unwrap());
        // Seeing it leased nothing: the next tick still takes it.
        assert!(storage.has_copy_requests(T).unwrap());
        assert_eq!(storage.pending_copies(T, NOW).unwrap().len(), 1);
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
