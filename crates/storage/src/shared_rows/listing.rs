//! The page's list of shared calls: the posted calls whose number several
//! contacts share, with where each copy stands.

use super::{LIMIT, Requests, Shared, SharedCall, kv_json, requests_key, state};
use crate::Storage;
use rusqlite::params;

impl Storage {
    /// The posted calls of `tenant` that several contacts' number shares,
    /// newest first, with where each copy stands.
    pub fn shared_calls(&self, tenant: &str) -> rusqlite::Result<Vec<SharedCall>> {
        let conn = self.lock()?;
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
}
