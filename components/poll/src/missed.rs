//! Why nobody answered a call (`missed-reason`), derived from its legs.
//!
//! 3CX's call history says per segment who was called (`DstDnType`, read
//! into `party.kind` by `history::dn_kind`) and whether it was answered;
//! the call log report adds a free-text `Reason` per segment. Where the
//! call was when it ended tells most reasons apart; busy and out of office
//! hours are not visible in the segments at all, so they come from the
//! `Reason` text alone.

use guest_support::bindings::connectzero::pipeline::types::{
    CallLeg, Direction, DnKind, MissedReason,
};

/// The missed reason of a call with these `legs` (oldest first) and the
/// call log `Reason` of each leg (same order; `None` where 3CX wrote none
/// or the leg has no call log row). `None` when the call was answered.
///
/// In order:
/// 1. a `Reason` text saying busy or out of office hours, newest leg first
///    ([ASSUMED], see [`reason_from_text`]);
/// 2. an outbound call nobody picked up: no answer;
/// 3. where the call was when it ended, the callee of its last leg: an IVR
///    → abandoned in the IVR; a queue → abandoned in the queue; voicemail
///    or a ring group → no answer;
/// 4. the last leg rang an extension: if the nearest routing point before
///    it was a queue, the extension was an agent the queue was polling and
///    the caller gave up waiting (abandoned in the queue); otherwise (rung
///    directly, from the IVR or a ring group) no answer.
///
/// 3CX does not say who ended a segment, so "abandoned" means the call
/// ended there: a queue that gives up on its own with no destination reads
/// the same.
pub fn missed_reason(
    direction: Direction,
    legs: &[CallLeg],
    reasons: &[Option<&str>],
    answered: bool,
) -> Option<MissedReason> {
    if answered {
        return None;
    }
    if let Some(reason) = reasons
        .iter()
        .rev()
        .flatten()
        .find_map(|r| reason_from_text(r))
    {
        return Some(reason);
    }
    if matches!(direction, Direction::Outbound) {
        return Some(MissedReason::NoAnswer);
    }
    let Some(last) = legs.last() else {
        return Some(MissedReason::NoAnswer);
    };
    // EndCall ends the call, so it should be the last leg; a zero-length
    // segment or a tie in start times may still sort one after it. The
    // Reason text (read above) tells out-of-hours apart from other rules.
    if legs.iter().any(|l| l.callee.kind == DnKind::EndCall) {
        return Some(MissedReason::EndedByRule);
    }
    Some(match last.callee.kind {
        DnKind::EndCall => MissedReason::EndedByRule,
        DnKind::Ivr => MissedReason::AbandonedInIvr,
        DnKind::Queue => MissedReason::AbandonedInQueue,
        DnKind::Voicemail | DnKind::RingGroup => MissedReason::NoAnswer,
        DnKind::Extension | DnKind::ExternalLine | DnKind::Other => {
            let routed_by = legs
                .iter()
                .rev()
                .skip(1)
                .map(|l| l.callee.kind)
                .find(|k| matches!(k, DnKind::Ivr | DnKind::Queue | DnKind::RingGroup));
            // A queue's agents ring one after another (or all at once), each
            // ring a leg; the last leg of a queue call is such a ring.
            if matches!(routed_by, Some(DnKind::Queue)) {
                MissedReason::AbandonedInQueue
            } else {
                MissedReason::NoAnswer
            }
        }
    })
}

/// A missed reason the call log's `Reason` text states outright.
///
/// [ASSUMED] The spec (specs/3cx/NOTES.md §2b) types `CallLogData.Reason`
/// as a free string with no values listed, and no public sample exists
/// (NOTES.md §8). It may be report prose ("Busy", "Out of office hours") or
/// 3CX's CamelCase enum words (`PhoneBusy`, `OutOfOfficeHours`), so it is
/// compared case-insensitively with spaces removed. Only those two facts
/// are read; every other text is ignored (the segments decide then). It
/// is the only place the text is interpreted.
pub fn reason_from_text(text: &str) -> Option<MissedReason> {
    let text: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    if text.contains("busy") {
        Some(MissedReason::Busy)
    } else if ["officehours", "ofhours", "outsidehours", "holiday"]
        .iter()
        .any(|w| text.contains(w))
    {
        Some(MissedReason::OutOfHours)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_support::bindings::connectzero::pipeline::types::Party;
    use guest_support::legs::answered_by_person;

    fn party(number: &str, kind: DnKind) -> Party {
        Party::at(number, kind)
    }

    fn caller() -> Party {
        party("+15550001111", DnKind::ExternalLine)
    }

    /// An inbound leg from the outside caller to `number` of `kind`.
    fn to(number: &str, kind: DnKind, answered: bool) -> CallLeg {
        CallLeg {
            leg_id: 1,
            start_time: 0,
            end_time: 1_000,
            direction: Direction::Inbound,
            answered,
            duration_secs: if answered { 1 } else { 0 },
            caller: caller(),
            callee: party(number, kind),
            recording: None,
        }
    }

    fn reason(legs: &[CallLeg]) -> Option<MissedReason> {
        let answered = legs.iter().any(answered_by_person);
        missed_reason(Direction::Inbound, legs, &vec![None; legs.len()], answered)
    }

    #[test]
    fn an_answered_call_has_no_missed_reason() {
        let legs = [
            to("800", DnKind::Ivr, true),
            to("801", DnKind::Queue, false),
            to("101", DnKind::Extension, true),
        ];
        assert_eq!(reason(&legs), None);
    }

    #[test]
    fn hanging_up_in_the_ivr_is_abandoned_in_the_ivr_even_if_the_ivr_picked_up() {
        assert_eq!(
            reason(&[to("800", DnKind::Ivr, true)]),
            Some(MissedReason::AbandonedInIvr)
        );
        assert_eq!(
            reason(&[to("800", DnKind::Ivr, false)]),
            Some(MissedReason::AbandonedInIvr)
        );
    }

    #[test]
    fn hanging_up_in_the_queue_is_abandoned_in_the_queue_while_agents_ring() {
        let in_queue = [to("800", DnKind::Ivr, true), to("801", DnKind::Queue, true)];
        assert_eq!(reason(&in_queue), Some(MissedReason::AbandonedInQueue));
        let agents_ringing = [
            to("800", DnKind::Ivr, true),
            to("801", DnKind::Queue, true),
            to("101", DnKind::Extension, false),
            to("102", DnKind::Extension, false),
        ];
        assert_eq!(
            reason(&agents_ringing),
            Some(MissedReason::AbandonedInQueue)
        );
    }

    #[test]
    fn extensions_or_ring_groups_nobody_picks_up_and_voicemail_are_no_answer() {
        assert_eq!(
            reason(&[to("101", DnKind::Extension, false)]),
            Some(MissedReason::NoAnswer)
        );
        // Chosen in the IVR, then rang out: the caller left the IVR.
        let from_ivr = [
            to("800", DnKind::Ivr, true),
            to("101", DnKind::Extension, false),
        ];
        assert_eq!(reason(&from_ivr), Some(MissedReason::NoAnswer));
        let ring_group = [
            to("600", DnKind::RingGroup, false),
            to("101", DnKind::Extension, false),
            to("102", DnKind::Extension, false),
        ];
        assert_eq!(reason(&ring_group), Some(MissedReason::NoAnswer));
        let voicemail = [
            to("101", DnKind::Extension, false),
            to("999", DnKind::Voicemail, true),
        ];
        assert_eq!(reason(&voicemail), Some(MissedReason::NoAnswer));
        // A queue that overflowed to voicemail: the mailbox took it.
        let overflow = [
            to("801", DnKind::Queue, true),
            to("101", DnKind::Extension, false),
            to("999", DnKind::Voicemail, true),
        ];
        assert_eq!(reason(&overflow), Some(MissedReason::NoAnswer));
    }

    #[test]
    fn busy_and_out_of_hours_come_from_the_call_log_reason_only() {
        let legs = [
            to("101", DnKind::Extension, false),
            to("999", DnKind::Voicemail, true),
        ];
        let with =
            |texts: [Option<&str>; 2]| missed_reason(Direction::Inbound, &legs, &texts, false);
        assert_eq!(
            with([Some("Forwarded (Busy)"), None]),
            Some(MissedReason::Busy)
        );
        assert_eq!(
            with([None, Some("Out of office hours")]),
            Some(MissedReason::OutOfHours)
        );
        // Other texts leave it to the segments.
        assert_eq!(
            with([Some("Terminated by caller"), None]),
            Some(MissedReason::NoAnswer)
        );
        // An answered call stays answered whatever the text says.
        assert_eq!(
            missed_reason(Direction::Inbound, &legs, &[Some("Busy"), None], true),
            None
        );
    }

    #[test]
    fn an_outbound_call_nobody_picked_up_is_no_answer_unless_busy() {
        let mut leg = to("+15550002222", DnKind::ExternalLine, false);
        leg.caller = party("101", DnKind::Extension);
        let legs = [leg];
        assert_eq!(
            missed_reason(Direction::Outbound, &legs, &[None], false),
            Some(MissedReason::NoAnswer)
        );
        assert_eq!(
            missed_reason(Direction::Outbound, &legs, &[Some("Callee busy")], false),
            Some(MissedReason::Busy)
        );
    }

    #[test]
    fn a_call_that_ends_at_an_end_call_rule_is_ended_by_rule_never_answered() {
        // 3CX may mark the EndCall segment answered (it takes the line to
        // end it); nobody talked to the caller.
        let legs = [
            to("800", DnKind::Ivr, true),
            to("EndCall", DnKind::EndCall, true),
        ];
        assert!(!legs.iter().any(answered_by_person));
        assert_eq!(
            missed_reason(Direction::Inbound, &legs, &[None, None], false),
            Some(MissedReason::EndedByRule)
        );
        assert_eq!(
            reason(&[to("EndCall", DnKind::EndCall, false)]),
            Some(MissedReason::EndedByRule)
        );
        // The Reason text says which rule: out of office hours.
        assert_eq!(
            missed_reason(
                Direction::Inbound,
                &legs,
                &[None, Some("OutOfOfficeHours")],
                false
            ),
            Some(MissedReason::OutOfHours)
        );
    }

    #[test]
    fn reason_texts_are_read_case_insensitively_and_unknown_ones_ignored() {
        assert_eq!(reason_from_text("BUSY"), Some(MissedReason::Busy));
        assert_eq!(
            reason_from_text("Call outside office hours"),
            Some(MissedReason::OutOfHours)
        );
        assert_eq!(reason_from_text("Holiday"), Some(MissedReason::OutOfHours));
        // 3CX's own enum words (NOTES.md §8).
        assert_eq!(reason_from_text("PhoneBusy"), Some(MissedReason::Busy));
        assert_eq!(
            reason_from_text("OutOfOfficeHours"),
            Some(MissedReason::OutOfHours)
        );
        assert_eq!(
            reason_from_text("Out Of Hours"),
            Some(MissedReason::OutOfHours)
        );
        assert_eq!(reason_from_text("Answered"), None);
        assert_eq!(reason_from_text(""), None);
    }
}
