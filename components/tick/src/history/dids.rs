//! The DIDs routing needs, read from the calls' recordings: known, none,
//! not yet known (the call waits) or never knowable (the call is parked).

use crate::connectzero::pipeline::poll;
use crate::describe;
use crate::timing::time;
use guest_support::bindings::connectzero::pipeline::types::{
    Call, Direction, StageError, TenantSettings,
};

/// How long after a call ends 3CX may take to list its recording with the
/// DID; a call whose recording is still not listed then is parked, never
/// routed without its DID (another tenant could read it a moment later and
/// take the call too, or leave it). Every tenant on the 3CX applies the
/// same rule, so they agree on each call: its recording's DID, or no DID
/// only when the listed, final recording names none.
const DID_WAIT_MS: i64 = 10 * 60 * 1000;

/// What routing may use of a call's recording.
pub(super) enum DidRead {
    /// The recording names this DID.
    Known(String),
    /// No DID to read: the listed, final recording names none.
    None,
    /// Not yet known (the recording is not listed yet, or 3CX failed):
    /// the call is tried again next tick.
    Wait(String),
    /// Cannot be known: the call is parked with this reason (Retry on the
    /// status page once fixed).
    Park(String),
}

/// The DIDs of the inbound calls that have a recording, by call key, read
/// from the recordings (`poll::recording-dids`) when the route lists DIDs.
pub(super) fn recorded_dids(
    s: &TenantSettings,
    route: &guest_support::routing::Route,
    calls: &[Call],
    now_ms: i64,
) -> std::collections::HashMap<String, DidRead> {
    let mut dids = std::collections::HashMap::new();
    if !route.routes_by_did() {
        return dids;
    }
    let wanted: Vec<(&Call, i32)> = calls
        .iter()
        .filter(|c| matches!(c.direction, Direction::Inbound))
        .filter_map(|c| {
            let id = c
                .legs
                .iter()
                .find_map(|l| l.recording.as_ref().map(|r| r.id))?;
            Some((c, id))
        })
        .collect();
    if wanted.is_empty() {
        return dids;
    }
    let ids: Vec<i32> = wanted.iter().map(|(_, id)| *id).collect();
    let found = time("poll", "recording-dids", || poll::recording_dids(s, &ids));
    let waited = |call: &Call| now_ms.saturating_sub(call.end_time) >= DID_WAIT_MS;
    for (call, id) in wanted {
        let read = match &found {
            Ok(found) => match found.iter().find(|(listed, _)| *listed == id) {
                Some((_, Some(did))) => DidRead::Known(did.clone()),
                Some((_, None)) => DidRead::None,
                None if waited(call) => DidRead::Park(format!(
                    "3CX still does not list the call's recording {id}, whose DID decides which tenant takes the call; Retry once it does"
                )),
                None => DidRead::Wait(format!(
                    "3CX does not list the call's recording {id} yet; its DID decides which tenant takes the call"
                )),
            },
            Err(StageError::Forbidden(e)) => DidRead::Park(format!(
                "the call's DID cannot be read: 3CX refuses reading recordings ({}); give the API client the System Owner role, or route by queues, then Retry",
                e.message
            )),
            // An outage says nothing about the recording: wait it out (the
            // cursor holds before the call), however long it lasts.
            Err(e) => DidRead::Wait(describe(e)),
        };
        dids.insert(call.key.clone(), read);
    }
    dids
}

/// The retryable error of a call waiting for its DID.
pub(super) fn did_unread(why: &str) -> StageError {
    StageError::Upstream(guest_support::UpstreamError {
        service: guest_support::Service::Pbx,
        status: 503,
        message: why.to_string(),
    })
}
