//! Install states: single-use, expiring, stored as digests, with who
//! asked for each pending one (`guest_support::installs`). A tenant's
//! routes keep theirs in the tenant's namespace (`oauth/state/…`,
//! `oauth/pending`); the app's one redirect URL keeps its own in the app's
//! (`oauth/app/state/…`, `oauth/app/pending`), so a state is redeemed only
//! at the callback of the route that issued it.

use super::{Answer, Flow, error, internal};
use guest_support::bindings::wasi::keyvalue::atomics::{self, Cas, CasError};
use guest_support::bindings::wasi::keyvalue::store::Bucket;
use guest_support::installs::{self, Pending};
use guest_support::{kv, webhook};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Compare-and-swap attempts on the pending list before giving up with
/// 503: only concurrent install starts and callbacks contend for it.
const PENDING_ATTEMPTS: usize = 8;

/// A stored state: only its digest is the key, so the store never holds a
/// usable state.
#[derive(Serialize, Deserialize)]
struct StoredState {
    expires_at_ms: i64,
    used: bool,
}

impl Flow<'_> {
    /// Where this flow's keys start.
    fn prefix(&self) -> &'static str {
        match self {
            Flow::Tenant(_) => "oauth/",
            Flow::App => "oauth/app/",
        }
    }

    /// The key of the state whose digest is `digest`.
    fn state_key(&self, digest: &str) -> String {
        format!("{}state/{digest}", self.prefix())
    }

    /// The key of the pending states (changed by compare-and-swap only).
    fn pending_key(&self) -> String {
        format!("{}pending", self.prefix())
    }
}

/// Issue a new state for `flow`, counted for `client` among the pending
/// ones before it is stored (a state that is not counted must not work).
pub(super) fn issue(flow: Flow<'_>, client: String) -> Result<String, Answer> {
    let state = random_state();
    let bucket = kv::open().map_err(internal)?;
    let stored = StoredState {
        expires_at_ms: guest_support::time::now_ms() + installs::STATE_TTL_MS,
        used: false,
    };
    admit(flow, &bucket, &state, client, stored.expires_at_ms)?;
    kv::set_json(&bucket, &flow.state_key(&digest(&state)), &stored).map_err(internal)?;
    Ok(state)
}

/// Count a new state among the flow's pending ones (the client's own
/// oldest goes beyond its share; `guest_support::installs::admit`), or
/// refuse with 429 when too many are pending.
fn admit(
    flow: Flow<'_>,
    bucket: &Bucket,
    state: &str,
    client: String,
    expires_at_ms: i64,
) -> Result<(), Answer> {
    let new = Pending {
        state: digest(state),
        client,
        expires_at_ms,
    };
    let key = flow.pending_key();
    for _ in 0..PENDING_ATTEMPTS {
        let cas = Cas::new(bucket, &key)
            .map_err(kv::storage_error)
            .map_err(internal)?;
        let mut pending: Vec<Pending> = cas
            .current()
            .map_err(kv::storage_error)
            .map_err(internal)?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let evicted = match installs::admit(
            &mut pending,
            new.clone(),
            guest_support::time::now_ms(),
        ) {
            Ok(evicted) => evicted,
            Err(busy) => {
                let secs = (busy.retry_in_ms.max(0) as u64).div_ceil(1000);
                return Err((
                    429,
                    vec![("retry-after".into(), secs.to_string())],
                    json!({"error": format!("too many install links are pending for this location; try again in {secs} s")}),
                ));
            }
        };
        let bytes = serde_json::to_vec(&pending).unwrap_or_default();
        match atomics::swap(cas, &bytes) {
            Ok(()) => {
                // Expired links go, and the client's own oldest stop
                // working.
                for state in evicted {
                    let _ = bucket.delete(&flow.state_key(&state));
                }
                return Ok(());
            }
            Err(CasError::CasFailed(_)) => continue,
            Err(CasError::StoreError(e)) => return Err(internal(kv::storage_error(e))),
        }
    }
    Err(error(503, "install starts are contending: try again"))
}

/// Drop a redeemed state from the pending ones, best effort: left there,
/// it leaves when it expires.
fn forget_pending(flow: Flow<'_>, bucket: &Bucket, state_digest: &str) {
    let key = flow.pending_key();
    for _ in 0..PENDING_ATTEMPTS {
        let Ok(cas) = Cas::new(bucket, &key) else {
            return;
        };
        let Some(mut pending) = cas
            .current()
            .ok()
            .flatten()
            .and_then(|bytes| serde_json::from_slice::<Vec<Pending>>(&bytes).ok())
        else {
            return;
        };
        let before = pending.len();
        pending.retain(|p| p.state != state_digest);
        if pending.len() == before {
            return;
        }
        let bytes = serde_json::to_vec(&pending).unwrap_or_default();
        match atomics::swap(cas, &bytes) {
            Err(CasError::CasFailed(_)) => continue,
            _ => return,
        }
    }
}

/// Mark a state of `flow` used, once: unknown, expired or already used
/// states are refused. Compare-and-swap, so two callbacks racing with one
/// state cannot both pass.
pub(super) fn redeem(flow: Flow<'_>, state: &str) -> Result<(), Answer> {
    let refused = || {
        error(
            400,
            format!(
                "unknown, expired or already used state: start the install again from {}",
                flow.install_path()
            ),
        )
    };
    let bucket = kv::open().map_err(internal)?;
    let state_digest = digest(state);
    let key = flow.state_key(&state_digest);
    let cas = Cas::new(&bucket, &key)
        .map_err(kv::storage_error)
        .map_err(internal)?;
    let Some(bytes) = cas.current().map_err(kv::storage_error).map_err(internal)? else {
        return Err(refused());
    };
    let Ok(mut stored) = serde_json::from_slice::<StoredState>(&bytes) else {
        return Err(refused());
    };
    if stored.used || stored.expires_at_ms <= guest_support::time::now_ms() {
        return Err(refused());
    }
    stored.used = true;
    let used = serde_json::to_vec(&stored).unwrap_or_default();
    match atomics::swap(cas, &used) {
        // Claimed: the state is spent; drop it (a later use finds nothing).
        Ok(()) => {
            let _ = bucket.delete(&key);
            forget_pending(flow, &bucket, &state_digest);
            Ok(())
        }
        Err(CasError::CasFailed(_)) => Err(refused()),
        Err(CasError::StoreError(e)) => Err(internal(kv::storage_error(e))),
    }
}

/// What the store keeps of a state.
fn digest(state: &str) -> String {
    webhook::body_digest(state.as_bytes())
}

/// 256 random bits, hex.
#[cfg(target_arch = "wasm32")]
fn random_state() -> String {
    let bytes = guest_support::wasi::random::random::get_random_bytes(32);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Native builds are unit tests only, which never start an install.
#[cfg(not(target_arch = "wasm32"))]
fn random_state() -> String {
    unreachable!("an install state needs wasi:random")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenants_states_and_the_apps_never_share_keys() {
        let tenant = Flow::Tenant("demo");
        assert_eq!(tenant.state_key("d"), "oauth/state/d");
        assert_eq!(tenant.pending_key(), "oauth/pending");
        assert_eq!(Flow::App.state_key("d"), "oauth/app/state/d");
        assert_eq!(Flow::App.pending_key(), "oauth/app/pending");
        assert_ne!(digest("a"), "a");
    }
}
