//! Grouping legs into calls.
//!
//! `CallHistoryView` has no call id, so the 3CX call id of each leg comes
//! from `GetCallLogData` (see `xapi::call_ids`). A leg whose call id is
//! unknown forms a call of its own, keyed by its segment id.

use guest_support::bindings::connectzero::pipeline::types::{
    Call, CallLeg, Direction, ExtensionOwner, Party,
};
use std::collections::{BTreeMap, HashMap};

/// Identifies a leg: its segment id and start time (segment ids repeat
/// after a 3CX backup restore).
pub type LegId = (i32, i64);

/// Group `legs` into calls, oldest first, filling in extension owners.
pub fn group_calls(
    legs: Vec<CallLeg>,
    call_ids: &HashMap<LegId, i32>,
    owners: &HashMap<String, ExtensionOwner>,
) -> Vec<Call> {
    let mut groups: BTreeMap<String, Vec<CallLeg>> = BTreeMap::new();
    for mut leg in legs {
        fill_owner(&mut leg.caller, owners);
        fill_owner(&mut leg.callee, owners);
        let group = match call_ids.get(&(leg.leg_id, leg.start_time)) {
            Some(call_id) => format!("call:{call_id}"),
            None => format!("segment:{}@{}", leg.leg_id, leg.start_time),
        };
        groups.entry(group).or_default().push(leg);
    }
    let mut calls: Vec<Call> = groups
        .into_iter()
        .flat_map(|(group, legs)| {
            split_reissued(legs)
                .into_iter()
                .map(move |legs| (group.clone(), legs))
        })
        .map(|(group, legs)| build_call(&group, legs))
        .collect();
    calls.sort_by_key(|c| c.start_time);
    calls
}

/// Legs of one call follow each other back to back (a queue rings the next
/// agent as the IVR ends, a transfer starts as the first leg ends). A leg
/// that starts more than this after the previous ones ended carries a call
/// id 3CX reissued after a backup restore, and belongs to another call —
/// possibly one only minutes later, since the restore reissues the ids of
/// the calls made after the backup.
const REISSUE_GAP_MS: i64 = 30 * 1000;

/// Split one call id's legs into runs separated by more than [`REISSUE_GAP_MS`].
fn split_reissued(mut legs: Vec<CallLeg>) -> Vec<Vec<CallLeg>> {
    legs.sort_by_key(|l| (l.start_time, l.leg_id));
    let mut runs: Vec<Vec<CallLeg>> = Vec::new();
    let mut run_end = i64::MIN;
    for leg in legs {
        let starts_new_run =
            runs.is_empty() || leg.start_time > run_end.saturating_add(REISSUE_GAP_MS);
        run_end = if starts_new_run {
            leg.end_time
        } else {
            run_end.max(leg.end_time)
        };
        if starts_new_run {
            runs.push(vec![leg]);
        } else if let Some(run) = runs.last_mut() {
            run.push(leg);
        }
    }
    runs
}

fn fill_owner(party: &mut Party, owners: &HashMap<String, ExtensionOwner>) {
    if let Some(ext) = &party.extension {
        party.owner = owners.get(ext).cloned();
    }
}

/// Build one call from its legs (any order).
fn build_call(group: &str, mut legs: Vec<CallLeg>) -> Call {
    legs.sort_by_key(|l| (l.start_time, l.leg_id));
    let first = &legs[0];
    let key = match group.strip_prefix("call:") {
        Some(call_id) => format!("3cx:{call_id}@{}", first.start_time),
        None => format!("3cx-segment:{}@{}", first.leg_id, first.start_time),
    };
    let answered_leg = legs.iter().rev().find(|l| l.answered);
    let answered_by = answered_leg.and_then(inside_party).cloned();
    let route = legs
        .iter()
        .filter_map(|l| (!l.callee.external).then_some(&l.callee))
        .filter(|p| Some(p.number.as_str()) != answered_by.as_ref().map(|a| a.number.as_str()))
        .fold(Vec::<Party>::new(), |mut route, p| {
            if route.last().map(|r| &r.number) != Some(&p.number) {
                route.push(p.clone());
            }
            route
        });
    Call {
        key,
        direction: call_direction(&legs),
        answered: answered_leg.is_some(),
        start_time: first.start_time,
        end_time: legs
            .iter()
            .map(|l| l.end_time)
            .max()
            .unwrap_or(first.end_time),
        duration_secs: legs
            .iter()
            .map(|l| l.duration_secs)
            .fold(0u32, u32::saturating_add),
        caller: first.caller.clone(),
        callee: first.callee.clone(),
        answered_by,
        route,
        legs,
    }
}

/// The PBX side of a leg that talked: the callee when it is an extension,
/// else the caller (an outbound call answered by the outside party).
fn inside_party(leg: &CallLeg) -> Option<&Party> {
    if !leg.callee.external {
        Some(&leg.callee)
    } else if !leg.caller.external {
        Some(&leg.caller)
    } else {
        None
    }
}

/// A call is inbound when its first leg came from outside, outbound when an
/// extension reached an outside number in any leg, internal otherwise.
fn call_direction(legs: &[CallLeg]) -> Direction {
    if legs[0].caller.external {
        Direction::Inbound
    } else if legs.iter().any(|l| l.callee.external) {
        Direction::Outbound
    } else {
        Direction::Internal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(number: &str, external: bool) -> Party {
        Party {
            number: number.into(),
            display_name: None,
            extension: (!external).then(|| number.to_string()),
            external,
            owner: None,
        }
    }

    fn leg(id: i32, start: i64, from: Party, to: Party, answered: bool, secs: u32) -> CallLeg {
        CallLeg {
            leg_id: id,
            start_time: start,
            end_time: start + i64::from(secs) * 1000 + 1000,
            direction: crate::history::direction_of(&from, &to),
            answered,
            duration_secs: secs,
            caller: from,
            callee: to,
            recording: None,
        }
    }

    #[test]
    fn segments_of_one_call_become_one_call_naming_who_answered_and_the_route() {
        let outside = party("+15550001111", true);
        let legs = vec![
            leg(3, 3_000, outside.clone(), party("102", false), true, 60),
            leg(1, 1_000, outside.clone(), party("800", false), false, 0),
            leg(2, 2_000, outside.clone(), party("101", false), false, 0),
        ];
        let ids = HashMap::from([((1, 1_000), 77), ((2, 2_000), 77), ((3, 3_000), 77)]);
        let owners = HashMap::from([(
            "102".to_string(),
            ExtensionOwner {
                extension: "102".into(),
                first_name: "Bob".into(),
                last_name: "Jones".into(),
                email: None,
            },
        )]);
        let calls = group_calls(legs, &ids, &owners);
        assert_eq!(calls.len(), 1);
        let call = &calls[0];
        assert_eq!(call.key, "3cx:77@1000");
        assert!(matches!(call.direction, Direction::Inbound));
        assert!(call.answered);
        assert_eq!(call.duration_secs, 60);
        let by = call.answered_by.as_ref().unwrap();
        assert_eq!(by.number, "102");
        assert_eq!(by.owner.as_ref().unwrap().first_name, "Bob");
        let route: Vec<&str> = call.route.iter().map(|p| p.number.as_str()).collect();
        assert_eq!(route, ["800", "101"]);
        assert_eq!(
            call.legs.iter().map(|l| l.leg_id).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }

    #[test]
    fn a_call_id_reissued_after_a_restore_is_another_call() {
        let outside = party("+15550001111", true);
        let hour = 3_600_000;
        let legs = vec![
            leg(7, 1_000, outside.clone(), party("101", false), true, 30),
            leg(
                8,
                1_000 + 5 * hour,
                outside.clone(),
                party("102", false),
                true,
                30,
            ),
        ];
        let ids = HashMap::from([((7, 1_000), 42), ((8, 1_000 + 5 * hour), 42)]);
        let calls = group_calls(legs, &ids, &HashMap::new());
        assert_eq!(calls.len(), 2);
        assert_ne!(calls[0].key, calls[1].key);
    }

    #[test]
    fn a_leg_without_a_call_id_is_a_call_of_its_own_and_keys_include_the_start() {
        let legs = vec![
            leg(
                5,
                1_000,
                party("101", false),
                party("+15550002222", true),
                false,
                0,
            ),
            leg(
                5,
                9_000,
                party("101", false),
                party("+15550002222", true),
                true,
                5,
            ),
        ];
        let calls = group_calls(legs, &HashMap::new(), &HashMap::new());
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].key, "3cx-segment:5@1000");
        assert_eq!(calls[1].key, "3cx-segment:5@9000");
        assert!(matches!(calls[1].direction, Direction::Outbound));
        assert_eq!(calls[1].answered_by.as_ref().unwrap().number, "101");
    }
}
