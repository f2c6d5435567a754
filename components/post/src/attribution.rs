//! Whether HighLevel keeps the CRM user on call messages.
//!
//! `userId` is not in `ProcessMessageBodyDto` (NOTES.md §8). HighLevel may
//! keep it, refuse it (handled in `crm::Crm::post_call`), or accept it and
//! drop it silently (api-docs issue #214: inbound `TYPE_CALL` messages come
//! back without it). Only reading a message back tells, so once a day a
//! posted message that carried `userId` is read back (operationId
//! `get-message`) and the verdict kept under [`ATTRIBUTION_KEY`] and the
//! call's direction (issue #214 reports inbound messages losing it while
//! outbound ones keep it), where the host's status page and `doctor` read
//! it. The call is posted either
//! way: attribution is a nicety, never a reason to hold a call.

use guest_support::bindings::wasi::keyvalue::store::Bucket;
use guest_support::{StageError, kv};
use serde::{Deserialize, Serialize};

use crate::crm::Crm;

/// Where the latest verdicts are kept, `<this>/<direction>` (read by
/// `host/src/attribution.rs`).
pub const ATTRIBUTION_KEY: &str = "post/attribution";

/// How often a message is read back.
const EVERY_MS: i64 = 24 * 60 * 60 * 1000;

/// The verdict of the latest read-back.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Attribution {
    /// When the message was read back, ms since the epoch.
    pub at_ms: i64,
    /// Whether the message came back with the user it was posted with.
    pub kept: bool,
    /// The message read back.
    pub message_id: String,
}

/// Reads `message_id` (posted with `direction`, "inbound" or "outbound")
/// back when the last check of that direction is a day old (or none was
/// made) and records whether it kept `user_id`. A failure only skips the
/// check: it is tried again with the next call.
pub fn check_if_due(crm: &Crm, bucket: &Bucket, direction: &str, message_id: &str, user_id: &str) {
    let now = guest_support::time::now_ms();
    let key = format!("{ATTRIBUTION_KEY}/{direction}");
    let result = (|| -> Result<(), StageError> {
        if let Some(last) = kv::get_json::<Attribution>(bucket, &key)?
            && now.saturating_sub(last.at_ms) < EVERY_MS
            && last.at_ms <= now
        {
            return Ok(());
        }
        let kept_user = crm.message_user(message_id)?;
        let verdict = Attribution {
            at_ms: now,
            kept: kept_user.as_deref() == Some(user_id),
            message_id: message_id.to_owned(),
        };
        if !verdict.kept {
            eprintln!(
                "connectzero post: HighLevel kept {direction} message {message_id} without the CRM user it was posted with: such calls are not attributed to users"
            );
        }
        kv::set_json(bucket, &key, &verdict)
    })();
    if let Err(e) = result {
        eprintln!(
            "connectzero post: could not check call attribution: {}",
            guest_support::api::describe(&e)
        );
    }
}
