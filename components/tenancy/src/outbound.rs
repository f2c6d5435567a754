//! `wasi:http/outgoing-handler` with each HighLevel location's request
//! budget shared by every replica.
//!
//! HighLevel allows 100 requests per 10 s per app and location. The
//! bundled host keeps to it with one limiter per process; Spin replicas
//! share only the key-value store, so the budget lives there
//! (`tenancy/budget/<location>`, a `guest_support::budget::Window` changed
//! by compare-and-swap). A request to the selected tenant's HighLevel
//! (`crm_base_url`'s host) takes the next slot and waits for it; when no
//! slot is free within five seconds it fails at once with an error the
//! stages read as a 429, so the call waits for a later tick. Requests to
//! anyone else pass straight through.

use crate::Provider;
use crate::config;
use crate::exports::wasi::http::outgoing_handler::Guest;
use crate::store::{Swapped, swap_on_spin};
use crate::wasi::http::outgoing_handler as real;
use crate::wasi::http::types::{
    ErrorCode, FutureIncomingResponse, OutgoingRequest, RequestOptions,
};
use crate::wasi::keyvalue::atomics::Cas;
use crate::wasi::keyvalue::store;
use guest_support::budget::{self, Admission, Window};
use guest_support::kv::BUCKET;

/// Compare-and-swap attempts on a budget before the request goes
/// unbudgeted-refused (only replicas taking slots at the same instant
/// contend).
const CAS_ATTEMPTS: usize = 32;

impl Guest for Provider {
    fn handle(
        request: OutgoingRequest,
        options: Option<RequestOptions>,
    ) -> Result<FutureIncomingResponse, ErrorCode> {
        // A tick waiting on 3CX or HighLevel keeps its tenant's lease.
        crate::fence::keep(&crate::scope::current().lease_id());
        if let Some(location) = budgeted_location(&request) {
            take_slot(&location)?;
        }
        real::handle(request, options)
    }
}

/// The selected tenant's location when `request` goes to its HighLevel.
fn budgeted_location(request: &OutgoingRequest) -> Option<String> {
    let path = request.path_with_query().unwrap_or_default();
    if !guest_support::budget::counts_against_limit(&path) {
        return None;
    }
    let authority = request.authority()?;
    let crm = config::value("crm_base_url")?;
    let crm_authority = authority_of(&crm)?;
    if !authority.eq_ignore_ascii_case(crm_authority) {
        return None;
    }
    config::value("crm_location_id")
}

/// The host[:port] of a base URL.
fn authority_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

fn internal(message: String) -> ErrorCode {
    ErrorCode::InternalError(Some(message))
}

/// Take a slot in `location`'s budget and wait for it, or refuse.
fn take_slot(location: &str) -> Result<(), ErrorCode> {
    let key = format!(
        "{}budget/{location}",
        guest_support::tenancy::RESERVED_PREFIX
    );
    let bucket = store::open(BUCKET).map_err(|e| internal(format!("budget store: {e:?}")))?;
    for _ in 0..CAS_ATTEMPTS {
        let cas = Cas::new(&bucket, &key).map_err(|e| internal(format!("budget: {e:?}")))?;
        let (mut window, first_write): (Window, bool) = match crate::store::current(&cas) {
            Ok(Some(bytes)) => (serde_json::from_slice(&bytes).unwrap_or_default(), false),
            Ok(None) => (Window::default(), true),
            Err(e) => return Err(internal(format!("budget: {e:?}"))),
        };
        let now = guest_support::time::now_ms();
        let (burst, interval_ms) = limit();
        let admission = window.admit(now, burst, interval_ms);
        let wait_ms = match admission {
            Admission::Refused { retry_after_ms } => {
                return Err(internal(budget::refusal_message(retry_after_ms)));
            }
            Admission::Slot { wait_ms } => wait_ms,
        };
        let bytes = serde_json::to_vec(&window).unwrap_or_default();
        match swap_on_spin(&bucket, &key, cas, &bytes, first_write) {
            Ok(Swapped::Done) => {
                sleep_ms(wait_ms);
                return Ok(());
            }
            Ok(Swapped::Lost(_)) => continue,
            Err(e) => return Err(internal(format!("budget: {e:?}"))),
        }
    }
    Err(internal(budget::refusal_message(1_000)))
}

/// The budget: `crm_rate_limit_burst` per `crm_rate_limit_interval_ms`,
/// HighLevel's documented limit when unset or unreadable (a bad value must
/// not lift the limit).
fn limit() -> (u32, u64) {
    let burst = config::value("crm_rate_limit_burst")
        .and_then(|v| v.parse().ok())
        .filter(|&b: &u32| b > 0)
        .unwrap_or(budget::HIGHLEVEL_BURST);
    let interval = config::value("crm_rate_limit_interval_ms")
        .and_then(|v| v.parse().ok())
        .filter(|&i: &u64| i > 0)
        .unwrap_or(budget::HIGHLEVEL_INTERVAL_MS);
    (burst, interval)
}

/// Block for `ms` milliseconds (`wasi:clocks`).
fn sleep_ms(ms: i64) {
    if ms > 0 {
        let nanos = u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000);
        crate::wasi::clocks::monotonic_clock::subscribe_duration(nanos).block();
    }
}
