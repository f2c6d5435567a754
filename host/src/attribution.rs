//! Whether calls reach the CRM attributed to their CRM user: what the post
//! stage found out (`components/post/src/attribution.rs` reads a posted
//! message back once a day; `components/post/src/crm/send.rs` notes a
//! refusal), read from the tenant's key-value namespace for the status page
//! and `doctor`. HighLevel does not document `userId` on call messages
//! (NOTES.md §8); when it ignores or refuses it, calls are still posted,
//! without their user (docs/OPERATIONS.md).

use crate::storage::Storage;
use serde::Deserialize;

/// Key prefix of the post stage's latest read-back verdicts, one per call
/// direction (`<prefix>/inbound`, `<prefix>/outbound`).
const VERDICT_KEY: &str = "post/attribution";
/// Key of the post stage's note that HighLevel refused `userId`.
const REFUSED_KEY: &str = "post/user-id-refused";
/// The directions a verdict is kept for, as the post stage names them.
const DIRECTIONS: [&str; 2] = ["inbound", "outbound"];

/// What is known about call attribution for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribution {
    /// No call with a CRM user has been checked yet.
    Unknown,
    /// Every message read back kept its user.
    Working {
        /// When it was last checked, ms since the epoch.
        at_ms: i64,
    },
    /// A message read back had lost its user: HighLevel accepts `userId`
    /// and drops it (for calls in these directions).
    Ignored {
        /// When it was last checked, ms since the epoch.
        at_ms: i64,
        /// "inbound" and/or "outbound".
        directions: Vec<&'static str>,
    },
    /// HighLevel refused `userId`; calls are posted without it (delete
    /// `post/user-id-refused` in the tenant's key-value store to try
    /// again).
    Refused {
        /// When it refused, ms since the epoch.
        at_ms: i64,
    },
}

impl Attribution {
    /// Reads `tenant`'s state; an unreadable record counts as unknown.
    pub fn read(storage: &Storage, tenant: &str) -> rusqlite::Result<Self> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Verdict {
            at_ms: i64,
            kept: bool,
        }
        #[derive(Deserialize)]
        struct Refused {
            at_ms: i64,
        }
        if let Some(bytes) = storage.kv_get(tenant, REFUSED_KEY)?
            && let Ok(refused) = serde_json::from_slice::<Refused>(&bytes)
        {
            return Ok(Self::Refused {
                at_ms: refused.at_ms,
            });
        }
        let mut latest = None;
        let mut ignored = Vec::new();
        let mut checked_inbound = false;
        for direction in DIRECTIONS {
            let key = format!("{VERDICT_KEY}/{direction}");
            let Some(bytes) = storage.kv_get(tenant, &key)? else {
                continue;
            };
            let Ok(verdict) = serde_json::from_slice::<Verdict>(&bytes) else {
                continue;
            };
            latest = latest.max(Some(verdict.at_ms));
            checked_inbound |= direction == "inbound";
            if !verdict.kept {
                ignored.push(direction);
            }
        }
        Ok(match (latest, ignored.is_empty()) {
            (None, _) => Self::Unknown,
            // Inbound is the direction HighLevel is reported to drop
            // (issue #214): working means inbound was seen to work.
            (Some(_), true) if !checked_inbound => Self::Unknown,
            (Some(at_ms), true) => Self::Working { at_ms },
            (Some(at_ms), false) => Self::Ignored {
                at_ms,
                directions: ignored,
            },
        })
    }

    /// One phrase for the status page and `doctor`.
    pub fn describe(&self) -> String {
        match self {
            Self::Unknown => "not checked yet (no inbound call with a CRM user posted)".into(),
            Self::Working { .. } => "working".into(),
            Self::Ignored { directions, .. } => format!(
                "ignored by HighLevel for {} calls: they are logged without their CRM user",
                directions.join(" and ")
            ),
            Self::Refused { .. } => {
                "refused by HighLevel: calls are logged without their CRM user".into()
            }
        }
    }

    /// When it was last found out, if it was.
    pub fn checked_at_ms(&self) -> Option<i64> {
        match self {
            Self::Unknown => None,
            Self::Working { at_ms } | Self::Ignored { at_ms, .. } | Self::Refused { at_ms } => {
                Some(*at_ms)
            }
        }
    }
}
