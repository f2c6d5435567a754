//! The token cache every instance shares, in the key-value store.
//!
//! On Spin each request gets a fresh instance, and several replicas may
//! run: an in-memory cache would fetch a new 3CX token per request (3CX
//! allows one active token per API client, so each fetch logs the others
//! out) and lose HighLevel's rotated refresh token. So tokens live in the
//! store, sealed, and a refresh runs under a compare-and-swap lease so only
//! one instance talks to a token endpoint at a time.

use crate::grant;
use crate::settings::Settings;
use guest_support::bindings::wasi::keyvalue::atomics::{self, Cas, CasError};
use guest_support::bindings::wasi::keyvalue::store::Bucket;
use guest_support::kv::{self, storage_error};
use guest_support::oauth::{InstallRefusal, TokenAnswer, check_install, renew_after_secs};
use guest_support::time::now_ms;
use guest_support::{Service, StageError};
use serde::{Deserialize, Serialize};

/// A lease older than this belongs to a crashed instance and may be taken.
const LEASE_MS: i64 = 30_000;
/// How often to look again while another instance refreshes, and the wait
/// between looks: five seconds in all, well under a request's budget.
const LEASE_WAITS: u32 = 50;
const LEASE_WAIT_MS: u64 = 100;

/// One service's cached token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Entry {
    /// The bearer token.
    pub token: String,
    /// When to renew it (ms since the epoch).
    pub renew_at_ms: i64,
    /// HighLevel's latest refresh token; none for 3CX.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Lease {
    until_ms: i64,
}

/// Key of a service's entry in the store; also the sealing name.
pub fn entry_key(service: Service) -> &'static str {
    match service {
        Service::Pbx => "credentials/pbx",
        Service::Crm => "credentials/crm",
    }
}

fn lease_key(service: Service) -> &'static str {
    match service {
        Service::Pbx => "credentials/pbx/lease",
        Service::Crm => "credentials/crm/lease",
    }
}

/// A current token for `service`, refreshed when needed.
pub fn access_token(settings: &Settings, service: Service) -> Result<String, StageError> {
    let bucket = kv::open()?;
    if let Some(token) = fresh(&read(&bucket, settings, service)) {
        return Ok(token);
    }
    for _ in 0..LEASE_WAITS {
        if take_lease(&bucket, service)? {
            let result = refresh(&bucket, settings, service);
            // A lease left behind only delays others by LEASE_MS.
            let _ = bucket.delete(lease_key(service));
            return result;
        }
        wait(LEASE_WAIT_MS);
        if let Some(token) = fresh(&read(&bucket, settings, service)) {
            return Ok(token);
        }
    }
    // Another instance holds the lease without finishing: retry later.
    Err(StageError::RateLimited(1))
}

/// Drop `token` after a 401, keeping the refresh token. Compare-and-swap,
/// so a concurrent refresh's newer entry is never overwritten.
pub fn forget(settings: &Settings, service: Service, token: &str) -> Result<(), StageError> {
    let bucket = kv::open()?;
    let cas = Cas::new(&bucket, entry_key(service)).map_err(storage_error)?;
    let Some(sealed) = cas.current().map_err(storage_error)? else {
        return Ok(());
    };
    let mut entry = open_entry(settings, service, &sealed)?;
    if entry.token != token {
        return Ok(());
    }
    entry.renew_at_ms = 0;
    let bytes = seal_entry(settings, service, &entry)?;
    match atomics::swap(cas, &bytes) {
        Ok(()) | Err(CasError::CasFailed(_)) => Ok(()),
        Err(CasError::StoreError(e)) => Err(storage_error(e)),
    }
}

/// Fetch a new token and store it before anyone uses it: HighLevel's
/// rotated refresh token must be safe before the old one is forgotten.
fn refresh(bucket: &Bucket, settings: &Settings, service: Service) -> Result<String, StageError> {
    let current = read(bucket, settings, service);
    if let Some(token) = fresh(&current) {
        return Ok(token);
    }
    let now = now_ms();
    let entry = match service {
        Service::Pbx => {
            let granted = grant::pbx_token(settings)?;
            Entry {
                renew_at_ms: renew_at_ms(now, service, &granted),
                token: granted.access_token,
                refresh_token: None,
            }
        }
        Service::Crm => {
            let refresh_token = current
                .and_then(|e| e.refresh_token)
                .or_else(|| settings.crm_refresh_token.clone())
                .ok_or_else(|| {
                    StageError::InvalidSettings(
                        "HighLevel is not installed for this location: open /t/<tenant>/oauth/install (or set crm_refresh_token)".into(),
                    )
                })?;
            let granted = grant::crm_token(settings, &refresh_token)?;
            Entry {
                renew_at_ms: renew_at_ms(now, service, &granted),
                token: granted.access_token,
                refresh_token: Some(granted.refresh_token.unwrap_or(refresh_token)),
            }
        }
    };
    let bytes = seal_entry(settings, service, &entry)?;
    bucket
        .set(entry_key(service), &bytes)
        .map_err(storage_error)?;
    Ok(entry.token)
}

/// An install's grant, exchanged and not kept yet (`crm-install.grant`):
/// its tokens stay in this instance's memory until [`keep`] stores them.
pub struct Exchanged {
    answer: TokenAnswer,
    /// When the access token is to be renewed, counted from the exchange.
    renew_at_ms: i64,
}

impl Exchanged {
    /// The location the grant is for; none for an agency's.
    pub fn location_id(&self) -> Option<&str> {
        self.answer.location_id()
    }
}

/// Exchange an install's `code` (single-use) for its grant, kept by nobody
/// yet.
pub fn exchange(
    settings: &Settings,
    code: &str,
    redirect_uri: &str,
) -> Result<Exchanged, StageError> {
    let answer = grant::crm_install(settings, code, redirect_uri)?;
    Ok(Exchanged {
        renew_at_ms: renew_at_ms(now_ms(), Service::Crm, &answer),
        answer,
    })
}

/// Keep an exchanged grant (sealed) as the selected tenant's, in place of
/// any earlier one.
///
/// A grant is only kept for the tenant's configured location
/// (`guest_support::oauth::check_install`), whoever chose the tenant: a
/// tenant without one is never completed by an install (the install link
/// is public, so the first stranger to install would bind their own
/// sub-account, and the tenant's calls, to it).
pub fn keep(settings: &Settings, grant: Exchanged) -> Result<(), StageError> {
    let refused = |message: String| {
        StageError::Forbidden(guest_support::UpstreamError {
            service: Service::Crm,
            status: 403,
            message,
        })
    };
    let expected = guest_support::config::require("crm_location_id")?;
    match check_install(grant.location_id(), &expected) {
        Ok(()) => {}
        Err(InstallRefusal::NoLocation) => {
            return Err(refused("HighLevel issued an agency-level token with no location: install the app into the sub-account (location) itself".into()));
        }
        Err(InstallRefusal::WrongLocation { installed }) => {
            // The answer goes to whoever presented the code: no location ids.
            eprintln!(
                "connectzero credentials: refused an install for location {installed}; this tenant serves {expected}"
            );
            return Err(refused(
                "the app was installed in another sub-account than this tenant serves; its grant is unchanged: install it from that sub-account".into(),
            ));
        }
    }
    let entry = Entry {
        renew_at_ms: grant.renew_at_ms,
        token: grant.answer.access_token,
        refresh_token: grant.answer.refresh_token,
    };
    let bucket = kv::open()?;
    let bytes = seal_entry(settings, Service::Crm, &entry)?;
    bucket
        .set(entry_key(Service::Crm), &bytes)
        .map_err(storage_error)
}

/// When a token granted at `now` (ms) is renewed (`guest_support::oauth`).
fn renew_at_ms(now: i64, service: Service, granted: &TokenAnswer) -> i64 {
    now + (renew_after_secs(granted.lifetime_secs(service)) * 1000) as i64
}

/// The stored entry, or none when absent or unreadable (then it is fetched
/// again; for HighLevel the configured refresh token is the fallback).
fn read(bucket: &Bucket, settings: &Settings, service: Service) -> Option<Entry> {
    let sealed = bucket.get(entry_key(service)).ok()??;
    match open_entry(settings, service, &sealed) {
        Ok(entry) => Some(entry),
        Err(error) => {
            eprintln!("connectzero-credentials: {error:?}");
            None
        }
    }
}

fn fresh(entry: &Option<Entry>) -> Option<String> {
    entry
        .as_ref()
        .filter(|e| now_ms() < e.renew_at_ms)
        .map(|e| e.token.clone())
}

fn seal_entry(settings: &Settings, service: Service, entry: &Entry) -> Result<Vec<u8>, StageError> {
    let json = serde_json::to_vec(entry)
        .map_err(|e| StageError::Storage(format!("encoding a token entry: {e}")))?;
    settings.token_key.seal(entry_key(service), &json)
}

fn open_entry(settings: &Settings, service: Service, sealed: &[u8]) -> Result<Entry, StageError> {
    let json = settings.token_key.open(entry_key(service), sealed)?;
    serde_json::from_slice(&json)
        .map_err(|e| StageError::Storage(format!("a stored token entry is unreadable: {e}")))
}

/// Take the refresh lease if nobody holds a live one.
fn take_lease(bucket: &Bucket, service: Service) -> Result<bool, StageError> {
    let cas = Cas::new(bucket, lease_key(service)).map_err(storage_error)?;
    let now = now_ms();
    let held = cas
        .current()
        .map_err(storage_error)?
        .and_then(|bytes| serde_json::from_slice::<Lease>(&bytes).ok())
        .is_some_and(|lease| lease.until_ms > now);
    if held {
        return Ok(false);
    }
    let lease = serde_json::to_vec(&Lease {
        until_ms: now + LEASE_MS,
    })
    .map_err(|e| StageError::Storage(e.to_string()))?;
    match atomics::swap(cas, &lease) {
        Ok(()) => Ok(true),
        Err(CasError::CasFailed(_)) => Ok(false),
        Err(CasError::StoreError(e)) => Err(storage_error(e)),
    }
}

/// Block this instance for `ms` milliseconds.
fn wait(ms: u64) {
    guest_support::wasi::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
}
