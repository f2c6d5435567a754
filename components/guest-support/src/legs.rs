//! Who picked a call leg up: the one rule the poll stage (answered,
//! attribution, talk time, missed reason) and the post stage (the leg
//! timeline) share, so the message never disagrees with the call record;
//! and whether a call went to voicemail, which the policy facts of the
//! Spin app's tick and the post stage's call status share.

use crate::bindings::connectzero::pipeline::types::{Call, CallLeg, DnKind, Party};

impl Party {
    /// The party at 3CX DN `number` of `kind`, with no name or owner: an
    /// outside party for an external line, an extension-like DN otherwise
    /// (the one shape the stages' tests build calls from).
    pub fn at(number: &str, kind: DnKind) -> Self {
        let external = kind == DnKind::ExternalLine;
        Party {
            number: number.into(),
            display_name: None,
            extension: (!external).then(|| number.to_string()),
            external,
            owner: None,
            kind,
        }
    }
}

/// True for the DN kinds that route, take messages or end the call rather
/// than talk: IVR, queue, ring group, voicemail, EndCall.
pub fn is_routing(kind: DnKind) -> bool {
    matches!(
        kind,
        DnKind::Ivr | DnKind::Queue | DnKind::RingGroup | DnKind::Voicemail | DnKind::EndCall
    )
}

/// True when a person picked this leg up: it was answered and the side
/// that answers (the callee) is not a routing point or a mailbox. 3CX may
/// mark an IVR, queue or voicemail segment answered (they pick the line up
/// to play prompts), which is no answer for the caller. A ring group's own
/// segment counts as routing too: the member who picks up has a leg of
/// their own. `other` (a DN type the poll stage's table lacks) counts as a
/// person, so an unknown code never hides an answer.
pub fn answered_by_person(leg: &CallLeg) -> bool {
    leg.answered && !is_routing(leg.callee.kind)
}

/// True when nobody answered the call and its last leg reached a
/// voicemail box: the policy's `voicemail` kind and the post stage's
/// "voicemail" call status. The mailbox's own leg may be marked answered
/// (3CX picks the line up to record); the call's `answered` (a person
/// answered, [`answered_by_person`]) is what counts.
///
/// Used by the tick's policy facts (`components/tick/src/facts.rs`).
pub fn reached_voicemail(call: &Call) -> bool {
    !call.answered
        && call
            .legs
            .last()
            .is_some_and(|leg| leg.callee.kind == DnKind::Voicemail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::connectzero::pipeline::types::Direction;

    fn party(number: &str, kind: DnKind) -> Party {
        Party::at(number, kind)
    }

    /// An inbound call whose legs end at DNs of `kinds`, each leg marked
    /// `leg_answered`; the call's `answered` as given.
    fn call(kinds: &[DnKind], leg_answered: bool, answered: bool) -> Call {
        let legs: Vec<CallLeg> = kinds
            .iter()
            .enumerate()
            .map(|(i, &kind)| CallLeg {
                leg_id: i as i32 + 1,
                start_time: 1_000,
                end_time: 31_000,
                direction: Direction::Inbound,
                answered: leg_answered,
                duration_secs: 30,
                caller: party("+15550001111", DnKind::ExternalLine),
                callee: party("999", kind),
                recording: None,
            })
            .collect();
        Call {
            key: "3cx:1@1000".into(),
            direction: Direction::Inbound,
            answered,
            start_time: 1_000,
            end_time: 31_000,
            duration_secs: 0,
            caller: party("+15550001111", DnKind::ExternalLine),
            callee: party("999", kinds.first().copied().unwrap_or(DnKind::Extension)),
            answered_by: None,
            route: Vec::new(),
            missed_reason: None,
            legs,
        }
    }

    #[test]
    fn a_call_nobody_answered_that_ends_in_a_mailbox_reached_voicemail() {
        // The mailbox picked the line up (leg answered); no person did.
        assert!(reached_voicemail(&call(
            &[DnKind::Queue, DnKind::Voicemail],
            true,
            false
        )));
        assert!(reached_voicemail(&call(&[DnKind::Voicemail], false, false)));
    }

    #[test]
    fn an_answered_call_or_one_ending_elsewhere_did_not_reach_voicemail() {
        // A person answered, then the call was transferred to a mailbox.
        assert!(!reached_voicemail(&call(
            &[DnKind::Extension, DnKind::Voicemail],
            true,
            true
        )));
        // The mailbox was on the way, not the end.
        assert!(!reached_voicemail(&call(
            &[DnKind::Voicemail, DnKind::Extension],
            false,
            false
        )));
        assert!(!reached_voicemail(&call(&[], false, false)));
    }

    #[test]
    fn routing_points_and_mailboxes_answer_for_nobody() {
        let c = call(
            &[DnKind::Ivr, DnKind::Voicemail, DnKind::Extension],
            true,
            true,
        );
        let by_person: Vec<bool> = c.legs.iter().map(answered_by_person).collect();
        assert_eq!(by_person, [false, false, true]);
    }
}
