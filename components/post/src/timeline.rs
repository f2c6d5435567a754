//! The leg timeline and the missed reason in a call message.
//!
//! A call that went through an IVR, a queue, a ring group or a transfer is
//! one message; its segments are listed in order so the CRM user sees what
//! the caller went through: when each began (offset from the call's start),
//! who or what it reached, and whether a person answered and talked.

use crate::summary::{duration, name};
use guest_support::bindings::connectzero::pipeline::types::{
    Call, CallLeg, DnKind, MissedReason, Party,
};
use guest_support::legs::{answered_by_person, is_routing};

/// Most segments listed in one message. HighLevel's `message` field
/// (`ProcessMessageBodyDto`, operationId `add-an-inbound-message`) is a
/// plain string with no documented maximum; a call bounced between
/// extensions for an hour should still not produce pages of text, so the
/// rest is counted instead of listed.
pub const MAX_LISTED_LEGS: usize = 20;

/// What the headline says after "missed": "not answered" for a plain
/// no-answer (and for calls no reason was derived for), else the reason.
pub fn missed_text(reason: Option<MissedReason>) -> &'static str {
    match reason {
        None | Some(MissedReason::NoAnswer) => "not answered",
        Some(MissedReason::AbandonedInIvr) => "caller hung up in the IVR",
        Some(MissedReason::AbandonedInQueue) => "caller hung up waiting in the queue",
        Some(MissedReason::OutOfHours) => "outside office hours",
        Some(MissedReason::EndedByRule) => "ended by a PBX rule",
        Some(MissedReason::Busy) => "busy",
    }
}

/// " Timeline: +0s IVR Main IVR (800), 20s; +20s queue Sales (801), 15s;
/// +35s Alice Smith (ext. 101), answered, talk 1m 0s; +1m 35s transferred to
/// Bob Jones (ext. 102), answered, talk 2m 0s." — empty for a one-leg call,
/// whose headline already says everything.
pub fn timeline_text(call: &Call) -> String {
    if call.legs.len() < 2 {
        return String::new();
    }
    let mut person_answered = false;
    let mut entries = Vec::new();
    for leg in call.legs.iter().take(MAX_LISTED_LEGS) {
        entries.push(entry(call, leg, person_answered));
        person_answered |= answered_by_person(leg);
    }
    let mut text = format!(" Timeline: {}", entries.join("; "));
    let more = call.legs.len().saturating_sub(MAX_LISTED_LEGS);
    if more > 0 {
        text.push_str(&format!("; {more} more segments"));
    }
    text.push('.');
    text
}

/// One segment: offset, who or what it reached, how it went.
fn entry(call: &Call, leg: &CallLeg, after_an_answer: bool) -> String {
    let offset = duration(secs_between(call.start_time, leg.start_time));
    let span = duration(secs_between(leg.start_time, leg.end_time));
    // The side a segment reached is its callee (for an outbound leg, the
    // outside number).
    let who = who(&leg.callee);
    if is_routing(leg.callee.kind) {
        return format!("+{offset} {who}, {span}");
    }
    // A person answered earlier and the call went on to someone else: the
    // call was transferred (or forwarded) there.
    let to = if after_an_answer {
        format!("transferred to {who}")
    } else {
        who
    };
    if answered_by_person(leg) {
        format!(
            "+{offset} {to}, answered, talk {}",
            duration(leg.duration_secs)
        )
    } else {
        format!("+{offset} {to}, not answered (rang {span})")
    }
}

/// "IVR Main IVR (800)", "queue 801", "Alice Smith (ext. 101)", "+1555...".
fn who(party: &Party) -> String {
    let label = |what: &str| match &party.display_name {
        Some(shown) if shown != &party.number => format!("{what} {shown} ({})", party.number),
        _ => format!("{what} {}", party.number),
    };
    match party.kind {
        DnKind::Ivr => label("IVR"),
        DnKind::Queue => label("queue"),
        DnKind::RingGroup => label("ring group"),
        DnKind::Voicemail => label("voicemail"),
        DnKind::EndCall => label("end-call rule"),
        DnKind::Extension | DnKind::ExternalLine | DnKind::Other => name(party),
    }
}

fn secs_between(from_ms: i64, to_ms: i64) -> u32 {
    u32::try_from(to_ms.saturating_sub(from_ms).max(0) / 1000).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_support::bindings::connectzero::pipeline::types::{Direction, ExtensionOwner};

    fn party(number: &str, kind: DnKind, shown: Option<&str>) -> Party {
        Party {
            display_name: shown.map(Into::into),
            ..Party::at(number, kind)
        }
    }

    fn person(ext: &str, first: &str) -> Party {
        Party {
            owner: Some(ExtensionOwner {
                extension: ext.into(),
                first_name: first.into(),
                last_name: "Smith".into(),
                email: None,
            }),
            ..party(ext, DnKind::Extension, None)
        }
    }

    fn leg(start_s: i64, secs: i64, callee: Party, answered: bool) -> CallLeg {
        CallLeg {
            leg_id: 1,
            start_time: 1_000_000 + start_s * 1000,
            end_time: 1_000_000 + (start_s + secs) * 1000,
            direction: Direction::Inbound,
            answered,
            duration_secs: if answered { secs as u32 } else { 0 },
            caller: party("+15550001111", DnKind::ExternalLine, None),
            callee,
            recording: None,
        }
    }

    fn call(legs: Vec<CallLeg>) -> Call {
        Call {
            key: "3cx:1@1000000".into(),
            direction: Direction::Inbound,
            answered: true,
            start_time: legs[0].start_time,
            end_time: legs.last().unwrap().end_time,
            duration_secs: 0,
            caller: legs[0].caller.clone(),
            callee: legs[0].callee.clone(),
            answered_by: None,
            route: Vec::new(),
            missed_reason: None,
            legs,
        }
    }

    #[test]
    fn a_transferred_queue_call_lists_every_segment_with_offsets_and_talk_time() {
        let text = timeline_text(&call(vec![
            leg(0, 20, party("800", DnKind::Ivr, Some("Main IVR")), true),
            leg(20, 15, party("801", DnKind::Queue, Some("Sales")), true),
            leg(35, 5, person("102", "Bob"), false),
            leg(40, 60, person("101", "Alice"), true),
            leg(100, 120, person("103", "Carol"), true),
        ]));
        assert_eq!(
            text,
            " Timeline: +0s IVR Main IVR (800), 20s; +20s queue Sales (801), 15s; \
             +35s Bob Smith (ext. 102), not answered (rang 5s); \
             +40s Alice Smith (ext. 101), answered, talk 1m 0s; \
             +1m 40s transferred to Carol Smith (ext. 103), answered, talk 2m 0s."
        );
    }

    #[test]
    fn a_one_leg_call_has_no_timeline_and_long_ones_are_cut() {
        assert_eq!(
            timeline_text(&call(vec![leg(0, 30, person("101", "Alice"), true)])),
            ""
        );
        let legs = (0..30)
            .map(|i| leg(i * 10, 5, party("101", DnKind::Extension, None), false))
            .collect();
        let text = timeline_text(&call(legs));
        assert_eq!(text.matches("not answered").count(), MAX_LISTED_LEGS);
        assert!(text.ends_with("; 10 more segments."), "{text}");
    }

    #[test]
    fn missed_reasons_read_as_plain_words() {
        assert_eq!(missed_text(None), "not answered");
        assert_eq!(
            missed_text(Some(MissedReason::AbandonedInIvr)),
            "caller hung up in the IVR"
        );
        assert_eq!(
            missed_text(Some(MissedReason::AbandonedInQueue)),
            "caller hung up waiting in the queue"
        );
        assert_eq!(missed_text(Some(MissedReason::Busy)), "busy");
        assert_eq!(
            missed_text(Some(MissedReason::OutOfHours)),
            "outside office hours"
        );
    }
}
