//! What routing and the logging policy look at in a call — derived once,
//! here, for both runtimes.

use crate::connectzero::matcher::matcher::MatchOutcome;
use guest_support::bindings::connectzero::pipeline::types::{Call, Direction, MatchRule};
use guest_support::policy::{self, CallDirection, CallFacts};
use guest_support::routing::RouteFacts;

/// What routing looks at in a call from 3CX's history: its DID and every
/// extension it reached or came from (`RouteFacts::of_call`). 3CX's call
/// history has no DID (specs NOTES §8): `recorded_did` is the one its
/// recording names (`poll::recording-dids`), and wins; without it the DID
/// is read from the first leg's called side where that holds one, else it
/// is none and the call routes by its queues.
pub fn route_facts(call: &Call, recorded_did: Option<&str>) -> RouteFacts {
    let mut facts = RouteFacts::of_call(
        matches!(call.direction, Direction::Inbound),
        &call.callee.number,
        call.callee.extension.as_deref(),
        extensions(call),
    );
    if let Some(did) = recorded_did.filter(|_| matches!(call.direction, Direction::Inbound)) {
        facts.did = Some(did.to_string());
    }
    facts
}

/// What routing looks at in an active call (`events::active_to_call`): the
/// same, except that an inbound call whose `Callee` text names no DID has
/// an unknown DID (`RouteFacts::of_active_call`), so `call.started` by DID
/// needs the DID in 3CX's active-call text.
pub fn active_route_facts(call: &Call) -> RouteFacts {
    RouteFacts::of_active_call(
        matches!(call.direction, Direction::Inbound),
        &call.callee.number,
        call.callee.extension.as_deref(),
        extensions(call),
    )
}

/// Each leg's caller and callee DN, in leg order.
fn extensions(call: &Call) -> impl Iterator<Item = Option<&str>> {
    call.legs.iter().flat_map(|leg| {
        [
            leg.caller.extension.as_deref(),
            leg.callee.extension.as_deref(),
        ]
    })
}

/// The facts the logging policy decides on. The outside number is the one
/// the match stage normalised (matched on, or unmatched); a call matched by
/// its extension's owner falls back to the raw outside number when 3CX
/// wrote it in E.164.
pub fn policy_facts(call: &Call, outcome: &MatchOutcome) -> CallFacts {
    let outside_e164 = match outcome {
        MatchOutcome::Matched(m) if !matches!(m.rule, MatchRule::ExtensionOwner) => {
            Some(m.matched_on.clone())
        }
        MatchOutcome::Unmatched(number) if number.starts_with('+') => Some(number.clone()),
        _ => {
            let outside = match call.direction {
                Direction::Inbound => Some(&call.caller),
                Direction::Outbound => call.legs.iter().map(|l| &l.callee).find(|p| p.external),
                Direction::Internal => None,
            };
            outside.and_then(|p| policy::canonical_e164(&p.number))
        }
    };
    facts_with(call, outside_e164)
}

/// The policy's facts of `call`, with `outside_e164` as its outside
/// number (`None` where only the call's kind matters).
pub fn facts_with(call: &Call, outside_e164: Option<String>) -> CallFacts {
    CallFacts {
        direction: match call.direction {
            Direction::Inbound => CallDirection::Inbound,
            Direction::Outbound => CallDirection::Outbound,
            Direction::Internal => CallDirection::Internal,
        },
        answered: call.answered,
        duration_secs: call.duration_secs,
        start_ms: call.start_time,
        outside_e164,
        voicemail: guest_support::legs::reached_voicemail(call),
    }
}
