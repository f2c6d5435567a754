//! The HighLevel OAuth install on Spin: `GET /t/{tenant}/oauth/install`
//! redirects to HighLevel's authorize page with a single-use, expiring
//! `state`; `GET /t/{tenant}/oauth/callback` checks the state and hands the
//! code to the credentials provider (`crm-install`), which exchanges it and
//! keeps the tokens sealed. The bundled host's routes
//! (`host/src/server/oauth.rs`) behave the same.

use crate::connectzero::pipeline::crm_install;
use guest_support::bindings::wasi::keyvalue::atomics::{self, Cas, CasError};
use guest_support::installs::{self, Pending};
use guest_support::serve::Incoming;
use guest_support::{StageError, config, kv, webhook};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// HighLevel's authorize page (HighLevel NOTES §2.1, `/v2/` revision).
const DEFAULT_AUTHORIZE_URL: &str = "https://marketplace.gohighlevel.com/v2/oauth/chooselocation";

/// What the pipeline needs (the host's default scope list).
const DEFAULT_SCOPES: &str = "contacts.readonly contacts.write conversations.readonly conversations.write conversations/message.readonly conversations/message.write workflows.readonly users.readonly";

/// The tenant's pending install states, with who asked for each
/// (`guest_support::installs`), changed by compare-and-swap only.
const PENDING_KEY: &str = "oauth/pending";

/// Compare-and-swap attempts on [`PENDING_KEY`] before giving up with 503:
/// only concurrent install starts and callbacks contend for it.
const PENDING_ATTEMPTS: usize = 8;

/// A stored state: only its digest is the key, so the store never holds a
/// usable state.
#[derive(Serialize, Deserialize)]
struct StoredState {
    expires_at_ms: i64,
    used: bool,
}

/// The answer of a route: status, extra headers, JSON body.
pub type Answer = (u16, Vec<(String, String)>, Value);

fn error(status: u16, message: impl Into<String>) -> Answer {
    (status, Vec::new(), json!({"error": message.into()}))
}

fn internal(e: StageError) -> Answer {
    error(500, crate::describe(&e))
}

/// `GET /t/{tenant}/oauth/install`: 302 to the authorize page.
pub fn install(request: &Incoming, tenant: &str) -> Answer {
    match start(request, tenant) {
        Ok(location) => (
            302,
            vec![
                ("location".into(), location),
                // The link carries a single-use state: never cache it.
                ("cache-control".into(), "no-store".into()),
            ],
            json!({"redirect": "HighLevel authorize page"}),
        ),
        Err(answer) => answer,
    }
}

fn start(request: &Incoming, tenant: &str) -> Result<String, Answer> {
    let client_id = config::require("crm_client_id").map_err(internal)?;
    let base = config::get("oauth_authorize_url")
        .map_err(internal)?
        .unwrap_or_else(|| DEFAULT_AUTHORIZE_URL.into());
    let scopes = config::get("oauth_scopes")
        .map_err(internal)?
        .unwrap_or_else(|| DEFAULT_SCOPES.into());
    let state = random_state();
    let bucket = kv::open().map_err(internal)?;
    let stored = StoredState {
        expires_at_ms: guest_support::time::now_ms() + installs::STATE_TTL_MS,
        used: false,
    };
    // Counted before it is stored: a state that is not counted must not
    // work.
    admit(&bucket, &state, client_of(request), stored.expires_at_ms)?;
    kv::set_json(&bucket, &state_key(&state), &stored).map_err(internal)?;
    let separator = if base.contains('?') { '&' } else { '?' };
    Ok(format!(
        "{base}{separator}response_type=code&client_id={}&redirect_uri={}&scope={}&state={}",
        urlencoding::encode(&client_id),
        urlencoding::encode(&redirect_uri(request, tenant).map_err(internal)?),
        urlencoding::encode(&scopes),
        urlencoding::encode(&state),
    ))
}

/// Count a new state among the tenant's pending ones (the client's own
/// oldest goes beyond its share; `guest_support::installs::admit`), or
/// refuse with 429 when the tenant has too many pending.
fn admit(
    bucket: &guest_support::bindings::wasi::keyvalue::store::Bucket,
    state: &str,
    client: String,
    expires_at_ms: i64,
) -> Result<(), Answer> {
    let new = Pending {
        state: digest(state),
        client,
        expires_at_ms,
    };
    for _ in 0..PENDING_ATTEMPTS {
        let cas = Cas::new(bucket, PENDING_KEY)
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
                // The client's own oldest links stop working.
                for state in evicted {
                    let _ = bucket.delete(&format!("oauth/state/{state}"));
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
fn forget_pending(
    bucket: &guest_support::bindings::wasi::keyvalue::store::Bucket,
    state_digest: &str,
) {
    for _ in 0..PENDING_ATTEMPTS {
        let Ok(cas) = Cas::new(bucket, PENDING_KEY) else {
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

/// Who asked: Spin's `spin-client-addr` (its last value, should a client
/// send one of its own), read as the host reads a connection's address
/// (`guest_support::installs::client_key`).
fn client_of(request: &Incoming) -> String {
    fn values<'a>(request: &'a Incoming, name: &'a str) -> impl Iterator<Item = &'a str> {
        request
            .headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    let peer = values(request, "spin-client-addr")
        .last()
        .and_then(installs::parse_peer);
    installs::client_key(peer, values(request, "x-forwarded-for"))
}

/// `GET /t/{tenant}/oauth/callback?code=…&state=…`.
pub fn callback(request: &Incoming, tenant: &str) -> Answer {
    let query = request
        .path_with_query
        .split_once('?')
        .map_or("", |(_, q)| q);
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| urlencoding::decode(v).ok())
            .map(|v| v.into_owned())
            .filter(|v| !v.is_empty())
    };
    match param("state") {
        Some(state) => {
            if let Err(answer) = redeem_state(&state) {
                return answer;
            }
        }
        // An install started from the marketplace listing carries no
        // state (NOTES.md §8): the grant then vouches for itself, kept only
        // when its token is for this app's configured location
        // (`crm_install::complete` refuses any other, and agency tokens).
        None if param("error").is_none() => {}
        None => {
            return error(
                400,
                "HighLevel did not authorise the install: start it again from /t/<tenant>/oauth/install",
            );
        }
    }
    let Some(code) = param("code") else {
        return error(400, "missing code: HighLevel sent no authorization code");
    };
    let redirect = match redirect_uri(request, tenant) {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    match crm_install::complete(&code, &redirect) {
        Ok(location) => (
            200,
            Vec::new(),
            json!({"ok": true, "locationId": location, "message": "ConnectZero is installed for this location"}),
        ),
        Err(e @ StageError::Forbidden(_)) => error(403, crate::describe(&e)),
        Err(e @ StageError::Unauthorized(_)) => error(400, crate::describe(&e)),
        Err(e) => error(502, crate::describe(&e)),
    }
}

/// Mark a state used, once: unknown, expired or already used states are
/// refused. Compare-and-swap, so two callbacks racing with one state
/// cannot both pass.
fn redeem_state(state: &str) -> Result<(), Answer> {
    let refused = || {
        error(
            400,
            "unknown, expired or already used state: start the install again from /t/<tenant>/oauth/install",
        )
    };
    let bucket = kv::open().map_err(internal)?;
    let key = state_key(state);
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
            forget_pending(&bucket, &digest(state));
            Ok(())
        }
        Err(CasError::CasFailed(_)) => Err(refused()),
        Err(CasError::StoreError(e)) => Err(internal(kv::storage_error(e))),
    }
}

/// Where HighLevel sends the installer back: `public_base_url` when set,
/// else this request's own host (plain http only for loopback).
fn redirect_uri(request: &Incoming, tenant: &str) -> Result<String, StageError> {
    let base = match config::get("public_base_url")? {
        Some(base) => base.trim_end_matches('/').to_string(),
        None => {
            let host = request
                .authority
                .as_deref()
                .or_else(|| request.header("host"))
                .unwrap_or("localhost");
            let loopback = host.starts_with("127.0.0.1")
                || host.starts_with("localhost")
                || host.starts_with("[::1]");
            format!("{}://{host}", if loopback { "http" } else { "https" })
        }
    };
    Ok(format!("{base}/t/{tenant}/oauth/callback"))
}

fn state_key(state: &str) -> String {
    format!("oauth/state/{}", digest(state))
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
