//! Grouping legs into calls.
//!
//! `CallHistoryView` has no call id, so the 3CX call id of each leg comes
//! from `GetCallLogData` (see `xapi::call_log`). A leg whose call id is
//! unknown forms a call of its own, keyed by its segment id.

use crate::missed;
use guest_support::bindings::connectzero::pipeline::types::{
    Call, CallLeg, Direction, ExtensionOwner, Party,
};
use guest_support::legs::answered_by_person;
use std::collections::{BTreeMap, HashMap};

/// Identifies a leg: its segment id and start time (segment ids repeat
/// after a 3CX backup restore).
pub type LegId = (i32, i64);

/// What the call log report (`GetCallLogData`) adds to a leg.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogFacts {
    /// `CallId`: groups the legs of one call.
    pub call_id: i32,
    /// `Reason`, as 3CX wrote it, when it wrote one.
    pub reason: Option<String>,
}

/// Group `legs` into calls, oldest first, filling in extension owners.
pub fn group_calls(
    legs: Vec<CallLeg>,
    call_log: &HashMap<LegId, LogFacts>,
    owners: &HashMap<String, ExtensionOwner>,
) -> Vec<Call> {
    let mut groups: BTreeMap<String, Vec<CallLeg>> = BTreeMap::new();
    for mut leg in legs {
        fill_owner(&mut leg.caller, owners);
        fill_owner(&mut leg.callee, owners);
        let group = match call_log.get(&(leg.leg_id, leg.start_time)) {
            Some(facts) => format!("call:{}", facts.call_id),
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
        .map(|(group, legs)| build_call(&group, legs, call_log))
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

/// Whether a read cut at `boundary` (rows starting later unread) has
/// seen the whole of `call`: its legs ended more than [`REISSUE_GAP_MS`]
/// before the boundary, and a call's next leg starts as its previous one
/// ends, so no leg of it can start after the boundary.
pub fn ended_before(call: &Call, boundary: i64) -> bool {
    call.end_time.saturating_add(REISSUE_GAP_MS) < boundary
}

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
fn build_call(group: &str, mut legs: Vec<CallLeg>, call_log: &HashMap<LegId, LogFacts>) -> Call {
    legs.sort_by_key(|l| (l.start_time, l.leg_id));
    let first = &legs[0];
    let key = match group.strip_prefix("call:") {
        Some(call_id) => format!("3cx:{call_id}@{}", first.start_time),
        None => format!("3cx-segment:{}@{}", first.leg_id, first.start_time),
    };
    // The last leg a person answered: after a transfer, the extension the
    // call was transferred to is the one it is attributed to.
    let answered_leg = legs.iter().rev().find(|l| answered_by_person(l));
    let answered_by = answered_leg.and_then(inside_party).cloned();
    let direction = call_direction(&legs);
    let reasons: Vec<Option<&str>> = legs
        .iter()
        .map(|l| {
            call_log
                .get(&(l.leg_id, l.start_time))
                .and_then(|f| f.reason.as_deref())
        })
        .collect();
    let missed_reason = missed::missed_reason(direction, &legs, &reasons, answered_leg.is_some());
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
        direction,
        answered: answered_leg.is_some(),
        start_time: first.start_time,
        end_time: legs
            .iter()
            .map(|l| l.end_time)
            .max()
            .unwrap_or(first.end_time),
        // Time in an IVR menu or a queue's music is not talk time.
        duration_secs: legs
            .iter()
            .filter(|l| answered_by_person(l))
            .map(|l| l.duration_secs)
            .fold(0u32, u32::saturating_add),
        caller: first.caller.clone(),
        callee: first.callee.clone(),
        answered_by,
        route,
        missed_reason,
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
    use guest_support::bindings::connectzero::pipeline::types::{DnKind, MissedReason};

    fn party(number: &str, external: bool) -> Party {
        let kind = if external {
            DnKind::ExternalLine
        } else {
            DnKind::Extension
        };
        Party::at(number, kind)
    }

    fn ids(pairs: &[(LegId, i32)]) -> HashMap<LegId, LogFacts> {
        pairs
            .iter()
            .map(|&(leg, call_id)| {
                (
                    leg,
                    LogFacts {
                        call_id,
                        reason: None,
                    },
                )
            })
            .collect()
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
        let ids = ids(&[((1, 1_000), 77), ((2, 2_000), 77), ((3, 3_000), 77)]);
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

    fn routing(number: &str, kind: DnKind) -> Party {
        Party {
            kind,
            ..party(number, false)
        }
    }

    #[test]
    fn a_transferred_queue_call_is_one_call_attributed_to_the_extension_it_was_transferred_to() {
        let outside = party("+15550001111", true);
        let legs = vec![
            leg(
                1,
                1_000,
                outside.clone(),
                routing("800", DnKind::Ivr),
                true,
                20,
            ),
            leg(
                2,
                22_000,
                outside.clone(),
                routing("801", DnKind::Queue),
                true,
                15,
            ),
            leg(3, 38_000, outside.clone(), party("101", false), true, 60),
            leg(4, 99_000, outside.clone(), party("102", false), true, 120),
        ];
        let call_log = ids(&[
            ((1, 1_000), 5),
            ((2, 22_000), 5),
            ((3, 38_000), 5),
            ((4, 99_000), 5),
        ]);
        let calls = group_calls(legs, &call_log, &HashMap::new());
        assert_eq!(calls.len(), 1);
        let call = &calls[0];
        assert!(call.answered);
        assert_eq!(call.missed_reason, None);
        assert_eq!(call.answered_by.as_ref().unwrap().number, "102");
        // The IVR's 20 s and the queue's 15 s are not talk time.
        assert_eq!(call.duration_secs, 180);
        let route: Vec<&str> = call.route.iter().map(|p| p.number.as_str()).collect();
        assert_eq!(route, ["800", "801", "101"]);
    }

    #[test]
    fn an_ivr_that_picked_up_does_not_make_a_call_answered() {
        let outside = party("+15550001111", true);
        let legs = vec![leg(
            1,
            1_000,
            outside,
            routing("800", DnKind::Ivr),
            true,
            12,
        )];
        let calls = group_calls(legs, &ids(&[((1, 1_000), 9)]), &HashMap::new());
        let call = &calls[0];
        assert!(!call.answered);
        assert!(call.answered_by.is_none());
        assert_eq!(call.duration_secs, 0);
        assert_eq!(call.missed_reason, Some(MissedReason::AbandonedInIvr));
    }

    #[test]
    fn the_call_log_reason_of_any_leg_reaches_the_missed_reason() {
        let outside = party("+15550001111", true);
        let legs = vec![
            leg(1, 1_000, outside.clone(), party("101", false), false, 0),
            leg(
                2,
                3_000,
                outside,
                routing("999", DnKind::Voicemail),
                true,
                30,
            ),
        ];
        let mut call_log = ids(&[((1, 1_000), 3), ((2, 3_000), 3)]);
        call_log.get_mut(&(1, 1_000)).unwrap().reason = Some("Forwarded (Busy)".into());
        let calls = group_calls(legs, &call_log, &HashMap::new());
        assert_eq!(calls[0].missed_reason, Some(MissedReason::Busy));
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
        let ids = ids(&[((7, 1_000), 42), ((8, 1_000 + 5 * hour), 42)]);
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
