//! Calls in progress, remembered between ticks (key `poll/active`).
//!
//! 3CX writes a call's history rows when the call ends (NOTES §8), so a
//! call that is still going on is invisible to the history read. Its
//! `ActiveCalls` entry is what keeps the cursor before its start, and what
//! tells a call whose first segments are visible that its later ones may
//! still come. The rules are `guest_support::protocol`'s; this module only
//! reads 3CX and the key-value store.

use crate::xapi;
use guest_support::api::ApiClient;
use guest_support::bindings::connectzero::pipeline::types::{Call, Party};
use guest_support::bindings::wasi::keyvalue::store::Bucket;
use guest_support::protocol::{self, Completeness, Listed, Sighting};
use guest_support::{StageError, kv};
use serde::{Deserialize, Serialize};

/// Key of the remembered sightings.
const SIGHTINGS_KEY: &str = "poll/active";

/// What is kept between ticks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Stored {
    /// Calls listed now, or within the grace after they were last listed.
    sightings: Vec<Sighting>,
    /// The PBX's clock minus ours, from the last `ServerNow` 3CX sent
    /// (3CX sends it only while a call is listed), so times compare on
    /// the PBX's clock even when the two drift.
    pbx_offset_ms: i64,
}

/// The calls in progress as this tick sees them.
pub struct Observed {
    /// The sightings, for the completeness of calls read.
    pub sightings: Vec<Sighting>,
    /// Now, on the PBX's clock.
    pub pbx_now: i64,
    /// The calls 3CX listed, as read.
    pub calls: Vec<crate::ActiveCall>,
}

/// Read `ActiveCalls`, merge it into the remembered sightings and store
/// them. When 3CX does not answer, the poll fails (the tick reports it and
/// retries): without the list, a call going on now is unknown, and moving
/// the cursor or posting a call whose later segments may still come could
/// lose or freeze it.
pub fn observe(
    bucket: &Bucket,
    api: &ApiClient,
    now: i64,
    page_size: u32,
) -> Result<Observed, StageError> {
    let stored: Stored = kv::get_json(bucket, SIGHTINGS_KEY)?.unwrap_or_default();
    let active = xapi::active_calls(api, now, page_size).map_err(|error| match error {
        StageError::InvalidData(why) => StageError::InvalidData(format!("ActiveCalls: {why}")),
        other => other,
    })?;
    // The snapshot's time on the PBX clock is the `ServerNow` it carried.
    // The offset kept for reads without one is measured against our clock
    // after the answer arrived, so it errs towards an earlier PBX time
    // (more waiting, never less).
    let after = guest_support::time::now_ms();
    let pbx_offset_ms = active
        .server_now
        .map_or(stored.pbx_offset_ms, |server| server - after);
    let pbx_now = active.server_now.unwrap_or(now + pbx_offset_ms);
    let listed: Vec<Listed> = active
        .calls
        .iter()
        .zip(&active.established_given)
        .map(|(call, given)| Listed {
            id: call.id,
            established_at: given.then_some(call.established_at),
            sides: vec![call.caller.clone(), call.callee.clone()],
        })
        .collect();
    let sightings =
        protocol::merge_sightings_of(&stored.sightings, &listed, pbx_now, active.one_page);
    let next = Stored {
        sightings: sightings.clone(),
        pbx_offset_ms,
    };
    if next != stored {
        kv::set_json(bucket, SIGHTINGS_KEY, &next)?;
    }
    Ok(Observed {
        sightings,
        pbx_now,
        calls: active.calls,
    })
}

/// Whether `call` is complete, given the sightings: the parties compared
/// are its outside numbers, or its extensions for an internal call.
pub fn completeness(call: &Call, sightings: &[Sighting], pbx_now: i64) -> Completeness {
    let parties = || call.legs.iter().flat_map(|l| [&l.caller, &l.callee]);
    let outside: Vec<String> = parties()
        .filter(|p| p.external)
        .filter_map(|p| protocol::party_number(&p.number))
        .collect();
    let numbers = if outside.is_empty() {
        parties()
            .filter_map(|p: &Party| p.extension.as_deref().or(Some(p.number.as_str())))
            .filter_map(protocol::party_number)
            .collect()
    } else {
        outside
    };
    let newest_end = call
        .legs
        .iter()
        .map(|l| l.end_time)
        .max()
        .unwrap_or(call.start_time);
    protocol::completeness(&numbers, newest_end, sightings, pbx_now)
}
