//! Whether calls reach the CRM attributed to their CRM user: what the post
//! stage found out (`components/post/src/attribution.rs` reads a posted
//! message back once a day; `components/post/src/crm.rs` notes a refusal),
//! read from the tenant's key-value namespace for the status page and
//! `doctor`. HighLevel does not document `userId` on call messages
//! (NOTES.md §8); when it ignores or refuses it, calls are still posted,
//! without their user (docs/OPERATIONS.md).

use crate::storage::Storage;
use serde::Deserialize;

/// Key of the post stage's latest read-back verdict.
const VERDICT_KEY: &str = "post/attribution";
/// Key of the post stage's note that HighLevel refused `userId`.
const REFUSED_KEY: &str = "post/user-id-refused";

/// What is known about call attribution for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribution {
    /// No call with a CRM user has been checked yet.
    Unknown,
    /// A message read back kept its user.
    Working {
        /// When it was checked, ms since the epoch.
        at_ms: i64,
    },
    /// A message read back had lost its user: HighLevel accepts `userId`
    /// and drops it.
    Ignored {
        /// When it was checked, ms since the epoch.
        at_ms: i64,
    },
    /// HighLevel refused `userId`; calls are posted without it.
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
        Ok(match storage.kv_get(tenant, VERDICT_KEY)? {
            Some(bytes) => match serde_json::from_slice::<Verdict>(&bytes) {
                Ok(Verdict { at_ms, kept: true }) => Self::Working { at_ms },
                Ok(Verdict { at_ms, kept: false }) => Self::Ignored { at_ms },
                Err(_) => Self::Unknown,
            },
            None => Self::Unknown,
        })
    }

    /// One phrase for the status page and `doctor`.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::Unknown => "not checked yet (no call with a CRM user posted)",
            Self::Working { .. } => "working",
            Self::Ignored { .. } => "ignored by HighLevel: calls are logged without their CRM user",
            Self::Refused { .. } => "refused by HighLevel: calls are logged without their CRM user",
        }
    }

    /// When it was last found out, if it was.
    pub fn checked_at_ms(&self) -> Option<i64> {
        match self {
            Self::Unknown => None,
            Self::Working { at_ms } | Self::Ignored { at_ms } | Self::Refused { at_ms } => {
                Some(*at_ms)
            }
        }
    }
}
