//! Re-running one parked call on its own: `connectzero replay`, and the
//! status page's Retry (and review assignment). The call is read from 3CX
//! again through `fetch-window` and run alone, so the live cursor never
//! moves back: a rewound cursor would re-read every call since, and calls
//! older than the retention horizon no longer have ledger entries to stop
//! them posting twice.

use super::{CallResult, Pipeline, Tenant, TickReport, describe};
use crate::bindings::types::CallFate;
use crate::storage::ReplayOpen;

/// Why a call cannot be replayed. Each says what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Not the key of a call.
    #[error(
        "{0:?} is not a call key: keys look like 3cx:<call id>@<start ms> (the status page and the call log show them)"
    )]
    NotACallKey(String),
    /// An unreadable 3CX row, parked as such.
    #[error(
        "{0} is a 3CX call-history row that could not be read, not a call: it cannot be replayed; once 3CX serves it readable, a backfill of its day posts it"
    )]
    UnreadableRow(String),
    /// The call log does not have it.
    #[error("tenant {tenant} has no call {call} in its call log")]
    Unknown {
        /// Tenant id.
        tenant: String,
        /// The key.
        call: String,
    },
    /// Handled for good: replaying would post it again (or post a skip).
    #[error(
        "call {call} was {outcome} ({detail}): only parked or retrying calls are replayed, since replaying a handled call could post it twice"
    )]
    Handled {
        /// The key.
        call: String,
        /// "posted" or "skipped".
        outcome: String,
        /// Message id or reason.
        detail: String,
    },
    /// 3CX could not be read now; nothing was changed.
    #[error("reading call {call} from 3CX: {error}; nothing was changed, try again")]
    PbxUnavailable {
        /// The key.
        call: String,
        /// What 3CX answered.
        error: String,
    },
    /// 3CX no longer lists it.
    #[error(
        "3CX's call history no longer has call {0} (deleted, or the PBX was restored from an older backup); nothing was changed"
    )]
    GoneFromPbx(String),
}

/// Start of a call from its key: `3cx:<id>@<ms>` or `3cx-segment:<id>@<ms>`.
pub fn call_start(key: &str) -> Result<i64, ReplayError> {
    if key.starts_with("3cx-row:") {
        return Err(ReplayError::UnreadableRow(key.to_string()));
    }
    let rest = key
        .strip_prefix("3cx:")
        .or_else(|| key.strip_prefix("3cx-segment:"))
        .ok_or_else(|| ReplayError::NotACallKey(key.to_string()))?;
    rest.rsplit_once('@')
        .and_then(|(id, start)| {
            id.parse::<i32>().ok()?;
            start.parse::<i64>().ok()
        })
        .ok_or_else(|| ReplayError::NotACallKey(key.to_string()))
}

/// Most status-page retries one tick replays: each reads 3CX, so a long
/// list (many review calls assigned at once) or a slow 3CX cannot hold a
/// tick up; the rest wait for the next ticks, oldest first.
const RETRIES_PER_TICK: usize = 5;

/// How long a retry that did not settle the call waits before it is tried
/// again: a failing CRM or 3CX is not asked once a tick.
const RETRY_AGAIN_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

impl Pipeline {
    /// Re-run one parked (or retrying) call: read it from 3CX again,
    /// release its parked ledger legs, then claim, match, post and record
    /// it like any call, queueing its triggers when `with_triggers`. A
    /// posted or skipped call is refused (`Ok(Err(..))`, which says why);
    /// `Err` is a fault of the runtime or the database.
    pub async fn replay_call(
        &self,
        tenant: &Tenant,
        key: &str,
        with_triggers: bool,
    ) -> anyhow::Result<Result<CallResult, ReplayError>> {
        let start = match call_start(key) {
            Ok(start) => start,
            Err(refused) => return Ok(Err(refused)),
        };
        let id = tenant.id().to_string();
        let storage = self.storage();
        let refused = |found: Option<(String, String)>| match found {
            None => ReplayError::Unknown {
                tenant: id.clone(),
                call: key.to_string(),
            },
            Some((outcome, detail)) => ReplayError::Handled {
                call: key.to_string(),
                outcome,
                detail,
            },
        };
        // Check before asking 3CX: a refusal needs no network.
        match storage.call_outcome(&id, key)?.as_deref() {
            Some("parked" | "retrying") => {}
            None => return Ok(Err(refused(None))),
            Some(_) => {
                let record = storage.call_record(&id, key)?;
                return Ok(Err(refused(record.map(|r| (r.outcome, r.detail)))));
            }
        }
        // The call's legs come from 3CX again (the ledger keeps only keys).
        let batch = match self.window(tenant, start, start + 1).await? {
            Ok(batch) => batch,
            Err(error) => {
                return Ok(Err(ReplayError::PbxUnavailable {
                    call: key.to_string(),
                    error: describe(&error),
                }));
            }
        };
        let Some(call) = batch.calls.into_iter().find(|c| c.key == key) else {
            return Ok(Err(ReplayError::GoneFromPbx(key.to_string())));
        };
        let now = self.runtime.clock.now_ms();
        match storage.reopen_for_replay(&id, key, now)? {
            ReplayOpen::Reopened { legs_released, was } => {
                tracing::info!(tenant = %id, call = %key, legs_released, %was, "replaying a call");
            }
            ReplayOpen::Refused(found) => return Ok(Err(refused(found))),
        }
        let mut report = TickReport::default();
        let mut results = self
            .run_calls(tenant, vec![call], with_triggers, &mut report)
            .await?;
        let result = results
            .pop()
            .ok_or_else(|| anyhow::anyhow!("the pipeline returned no result for call {key}"))?;
        Ok(Ok(result))
    }

    /// Replay each call whose retry was asked for on the status page (the
    /// Retry button, or a contact assigned to a call left for review) and
    /// is due, with its triggers, as the live path would have queued them.
    /// A call that does not settle (3CX unreadable, the CRM failing for
    /// now, another worker holding it) is tried again [`RETRY_AGAIN_AFTER`]
    /// later, behind the requests already due; one that cannot run (gone
    /// from 3CX, unknown) is parked again with the reason, so the page shows
    /// it; a handled one is dropped. Another host sharing the database may
    /// replay the same call at once; the ledger's claims let only one post
    /// it.
    pub async fn apply_status_page_retries(&self, tenant: &Tenant) {
        let id = tenant.id();
        let now = self.runtime.clock.now_ms();
        let pending = match self.storage().pending_retries(id, now, RETRIES_PER_TICK) {
            Ok(pending) => pending,
            Err(error) => {
                tracing::warn!(tenant = %id, %error, "could not read the retries asked for on the status page; trying again next tick");
                return;
            }
        };
        for key in pending {
            let settled = match self.replay_call(tenant, &key, true).await {
                // Posted, skipped, or parked again (the page offers Retry
                // again): settled.
                Ok(Ok(result)) => {
                    tracing::info!(tenant = %id, call = %key, outcome = %result.outcome(), "retried a parked call, as asked on the status page");
                    matches!(result.fate, CallFate::Settled(_))
                }
                Ok(Err(error @ ReplayError::PbxUnavailable { .. })) => {
                    tracing::warn!(tenant = %id, call = %key, %error, "retry asked on the status page waits for 3CX");
                    false
                }
                Ok(Err(error @ ReplayError::Handled { .. })) => {
                    tracing::info!(tenant = %id, call = %key, %error, "nothing left to retry");
                    true
                }
                Ok(Err(error)) => {
                    tracing::warn!(tenant = %id, call = %key, %error, "a retry asked on the status page could not run; the call is parked again");
                    if let Err(e) = self.storage().park_again(id, &key, &error.to_string()) {
                        tracing::warn!(tenant = %id, call = %key, error = %e, "could not park the call again");
                    }
                    true
                }
                Err(error) => {
                    tracing::warn!(tenant = %id, call = %key, error = %format!("{error:#}"), "a retry asked on the status page failed; trying again later");
                    false
                }
            };
            let written = if settled {
                self.storage().retry_done(id, &key)
            } else {
                let again = now + RETRY_AGAIN_AFTER.as_millis() as i64;
                self.storage().defer_retry(id, &key, again)
            };
            if let Err(error) = written {
                tracing::warn!(tenant = %id, call = %key, %error, "could not update a status-page retry; it runs again (the ledger keeps it from posting twice)");
            }
        }
    }
}
