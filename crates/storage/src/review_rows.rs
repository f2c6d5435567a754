//! Calls parked "needs review" (several contacts share the number and no
//! tie-breaker decided) and an operator's assignment of one of them.
//!
//! The post component keeps each such call's candidates in the tenant's
//! key-value namespace under `post/review/<call key>` and reads the
//! operator's choice from `post/assigned/<call key>`
//! (`components/post/src/ambiguity.rs` owns both formats). Assigning writes
//! the choice and queues the call's retry (the status page's retry
//! machinery: the next tick releases the call in the ledger and reads it
//! again, and the post stage posts it, once, to the chosen contact).
//! `host/tests/e2e/ambiguity.rs` runs this through the real components.

use super::Storage;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Deserialize;

/// Prefix of the park reason the pipeline gives such calls
/// (`guest_support::review::NEEDS_REVIEW`).
const PREFIX: &str = guest_support::review::NEEDS_REVIEW;

/// Most calls the page lists.
const LIMIT: i64 = 100;

/// A call waiting for an operator to pick its contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewCall {
    /// The call's key.
    pub call_key: String,
    /// "inbound", "outbound" or "internal".
    pub direction: String,
    /// Calling number as 3CX reported it.
    pub caller: String,
    /// Called number (the outside one, outbound).
    pub callee: String,
    /// When the call ended, ms since the epoch.
    pub ended_at_ms: i64,
    /// The contacts that share the number, oldest first.
    pub candidates: Vec<ReviewCandidate>,
}

/// One contact a call may be assigned to.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ReviewCandidate {
    /// HighLevel contact id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Phone, when it has one.
    #[serde(default)]
    pub phone: Option<String>,
}

#[derive(Deserialize)]
struct Review {
    candidates: Vec<ReviewCandidate>,
}

/// What assigning a call found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReviewAssign {
    /// Assigned to this contact (its name); the next tick posts the call.
    Queued(String),
    /// The call is not waiting for review (any more): already assigned,
    /// posted, or no such call. Says which.
    NotWaiting(String),
    /// The contact is not one of the call's candidates.
    NotACandidate,
}

fn review_key(call_key: &str) -> String {
    format!("post/review/{call_key}")
}

fn assigned_key(call_key: &str) -> String {
    format!("post/assigned/{call_key}")
}

impl Storage {
    /// The calls of `tenant` parked "needs review" and not yet assigned,
    /// newest first, with their candidates.
    pub fn needs_review(&self, tenant: &str) -> rusqlite::Result<Vec<ReviewCall>> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare(
            "SELECT c.call_key, c.direction, c.caller, c.callee, c.ended_at_ms, kv.value
             FROM calls c JOIN kv ON kv.namespace = c.tenant AND kv.key = 'post/review/' || c.call_key
             WHERE c.tenant = ?1 AND c.outcome = 'parked' AND substr(c.detail, 1, length(?2)) = ?2
             ORDER BY c.ended_at_ms DESC, c.call_key LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![tenant, PREFIX, LIMIT], |r| {
            let value: Vec<u8> = r.get(5)?;
            Ok(ReviewCall {
                call_key: r.get(0)?,
                direction: r.get(1)?,
                caller: r.get(2)?,
                callee: r.get(3)?,
                ended_at_ms: r.get(4)?,
                candidates: serde_json::from_slice::<Review>(&value)
                    .map(|r| r.candidates)
                    .unwrap_or_default(),
            })
        })?;
        rows.collect()
    }

    /// Assign the review call `call_key` of `tenant` to `contact_id`, in one
    /// transaction: record the choice for the post stage, mark the call
    /// "retrying" and queue its retry. A second assignment (a double click,
    /// another operator) finds the call no longer waiting.
    pub fn assign_review(
        &self,
        tenant: &str,
        call_key: &str,
        contact_id: &str,
        now_ms: i64,
    ) -> rusqlite::Result<ReviewAssign> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let call: Option<(String, String)> = tx
            .query_row(
                "SELECT outcome, detail FROM calls WHERE tenant = ?1 AND call_key = ?2",
                params![tenant, call_key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let waiting = match &call {
            None => return Ok(ReviewAssign::NotWaiting("there is no such call".into())),
            Some((outcome, detail)) => outcome == "parked" && detail.starts_with(PREFIX),
        };
        let kv = |key: String| -> rusqlite::Result<Option<Vec<u8>>> {
            tx.query_row(
                "SELECT value FROM kv WHERE namespace = ?1 AND key = ?2",
                params![tenant, key],
                |r| r.get(0),
            )
            .optional()
        };
        if !waiting || kv(assigned_key(call_key))?.is_some() {
            let (outcome, _) = call.unwrap_or_default();
            let why = if waiting || outcome != "parked" {
                format!("it was already assigned (it is {outcome} now)")
            } else {
                "it is parked for another reason, not for review: use its Retry button".into()
            };
            return Ok(ReviewAssign::NotWaiting(why));
        }
        let candidates = kv(review_key(call_key))?
            .and_then(|v| serde_json::from_slice::<Review>(&v).ok())
            .map(|r| r.candidates)
            .unwrap_or_default();
        let Some(chosen) = candidates.into_iter().find(|c| c.id == contact_id) else {
            return Ok(ReviewAssign::NotACandidate);
        };
        let choice = serde_json::json!({ "contactId": contact_id }).to_string();
        tx.execute(
            "INSERT INTO kv (namespace, key, value) VALUES (?1, ?2, ?3)",
            params![tenant, assigned_key(call_key), choice.as_bytes()],
        )?;
        let name = if chosen.name.is_empty() {
            chosen.id.clone()
        } else {
            chosen.name.clone()
        };
        tx.execute(
            "UPDATE calls SET outcome = 'retrying',
                 detail = 'assigned on the status page to ' || ?3 || ' (was: ' || detail || ')'
             WHERE tenant = ?1 AND call_key = ?2",
            params![tenant, call_key, name],
        )?;
        tx.execute(
            "INSERT INTO web_retries (tenant, call_key, requested_at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (tenant, call_key) DO NOTHING",
            params![tenant, call_key, now_ms],
        )?;
        tx.commit()?;
        Ok(ReviewAssign::Queued(name))
    }
}
