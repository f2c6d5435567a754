//! The human-readable text of a call message.

use crate::exports::connectzero::pipeline::post::PostJob;
use guest_support::bindings::connectzero::pipeline::types::MatchRule;
use guest_support::bindings::connectzero::pipeline::types::{
    Call, Direction, MissedReason, Party, TenantSettings,
};

/// e.g. "Inbound call from +15551234567, answered by Alice Smith (ext. 101)
/// via IVR (ext. 800). Talk time 3m 35s. Matched by caller number."
///
/// With `timeline` (the tenant's `call-timeline`), a call of several
/// segments also lists them (`timeline::timeline_text`).
pub fn message_text(
    job: &PostJob,
    choice: Option<crate::ambiguity::Choice>,
    timeline: bool,
) -> String {
    let call = &job.call;
    let mut text = match call.direction {
        Direction::Inbound => format!("Inbound call from {}", call.caller.number),
        Direction::Outbound => format!(
            "Outbound call from {} to {}",
            name(&call.caller),
            outside_number(call)
        ),
        Direction::Internal => format!(
            "Internal call from {} to {}",
            name(&call.caller),
            name(&call.callee)
        ),
    };
    match (&call.answered_by, call.answered) {
        (Some(by), true) if !matches!(call.direction, Direction::Outbound) => {
            text.push_str(&format!(", answered by {}", name(by)));
        }
        (_, true) => text.push_str(", answered"),
        (_, false) => text.push_str(&format!(
            ", missed ({})",
            crate::timeline::missed_text(call.missed_reason)
        )),
    }
    if !call.route.is_empty() {
        let route: Vec<String> = call.route.iter().map(name).collect();
        text.push_str(&format!(" via {}", route.join(" → ")));
    }
    text.push_str(&format!(". Talk time {}.", duration(call.duration_secs)));
    if timeline {
        text.push_str(&crate::timeline::timeline_text(call));
    }
    match job.rule {
        Some(MatchRule::CallerNumber) => text.push_str(" Matched by caller number."),
        Some(MatchRule::CalledNumber) => text.push_str(" Matched by called number."),
        Some(MatchRule::ExtensionOwner) => text.push_str(" Matched by extension owner."),
        None => text.push_str(" Contact created for this number."),
    }
    match choice {
        Some(choice) => text.push_str(&format!(
            " Several contacts share this number: {}.",
            choice.describe()
        )),
        None if job.ambiguous => {
            text.push_str(" Several contacts share this number: check the match.")
        }
        None => {}
    }
    text.push(' ');
    text.push_str(&reference(call));
    text
}

/// "Ref: <call key>": lets a worker that crashed after posting find the
/// message again instead of posting the call twice.
pub fn reference(call: &Call) -> String {
    format!("Ref: {}", call.key)
}

/// The call's key as the CRM sees it (the message's `altId` and its "Ref:"
/// line): `<call-reference-prefix>/<call key>`, or the bare call key when
/// the tenant has no prefix (the default, and every key posted before the
/// prefix existed). Two 3CX systems feeding one location get different
/// prefixes (the host derives them, `crates/config/src/lib.rs`
/// `call_reference_prefix`), so one system's call never looks like the
/// other's already-posted call. The one place the CRM key is built.
pub fn crm_key(settings: &TenantSettings, call: &Call) -> String {
    let prefix = settings.call_reference_prefix.trim();
    if prefix.is_empty() {
        call.key.clone()
    } else {
        format!("{prefix}/{}", call.key)
    }
}

/// "Ref: <CRM key>", the line a takeover looks for.
pub fn reference_to(crm_key: &str) -> String {
    format!("Ref: {crm_key}")
}

/// `text` (from [`message_text`], which ends with the bare [`reference`])
/// ending with the reference to `crm_key` instead.
pub fn with_crm_key(text: String, call: &Call, crm_key: &str) -> String {
    match text.strip_suffix(&reference(call)) {
        Some(body) if crm_key != call.key => format!("{body}{}", reference_to(crm_key)),
        _ => text,
    }
}

/// `CallDataDTO.status` of the call: "completed" when a person answered;
/// "voicemail" when nobody did and the last leg reached a voicemail box
/// (`guest_support::legs::reached_voicemail`, the rule the policy's
/// voicemail kind uses); "busy" when the called
/// side was busy; every other missed call (IVR, queue, out of hours,
/// nobody picked up) is "no-answer", and the message text says which.
pub fn call_status(call: &Call) -> &'static str {
    if call.answered {
        "completed"
    } else if guest_support::legs::reached_voicemail(call) {
        "voicemail"
    } else if call.missed_reason == Some(MissedReason::Busy) {
        "busy"
    } else {
        "no-answer"
    }
}

/// The outside number of an outbound call.
pub fn outside_number(call: &Call) -> &str {
    call.legs
        .iter()
        .map(|l| &l.callee)
        .find(|p| p.external)
        .map_or(call.callee.number.as_str(), |p| p.number.as_str())
}

/// "Alice Smith (ext. 101)", falling back to the display name or number.
pub fn name(party: &Party) -> String {
    let person = party
        .owner
        .as_ref()
        .map(|o| {
            format!("{} {}", o.first_name, o.last_name)
                .trim()
                .to_string()
        })
        .filter(|n| !n.is_empty())
        .or_else(|| party.display_name.clone());
    match (person, &party.extension) {
        (Some(person), Some(ext)) => format!("{person} (ext. {ext})"),
        (None, Some(ext)) => format!("ext. {ext}"),
        (Some(person), None) => format!("{person} ({})", party.number),
        (None, None) => party.number.clone(),
    }
}

/// "3m 35s", "45s", "1h 2m 5s".
pub fn duration(secs: u32) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_support::bindings::connectzero::pipeline::types::DnKind;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(215), "3m 35s");
        assert_eq!(duration(3725), "1h 2m 5s");
    }

    fn ending_at(kind: DnKind, answered: bool, missed: Option<MissedReason>) -> Call {
        let party = Party::at;
        let leg = guest_support::bindings::connectzero::pipeline::types::CallLeg {
            leg_id: 1,
            start_time: 1_000,
            end_time: 31_000,
            direction: Direction::Inbound,
            answered,
            duration_secs: 30,
            caller: party("+15550001111", DnKind::ExternalLine),
            callee: party("999", kind),
            recording: None,
        };
        Call {
            key: "3cx:1@1000".into(),
            direction: Direction::Inbound,
            answered: answered && kind == DnKind::Extension,
            start_time: leg.start_time,
            end_time: leg.end_time,
            duration_secs: 0,
            caller: leg.caller.clone(),
            callee: leg.callee.clone(),
            answered_by: None,
            route: Vec::new(),
            missed_reason: missed,
            legs: vec![leg],
        }
    }

    #[test]
    fn a_missed_call_ending_in_a_voicemail_box_has_status_voicemail() {
        // 3CX marks the mailbox's leg answered: it picked the line up.
        let voicemail = ending_at(DnKind::Voicemail, true, Some(MissedReason::NoAnswer));
        assert_eq!(call_status(&voicemail), "voicemail");
        assert_eq!(
            call_status(&ending_at(DnKind::Extension, true, None)),
            "completed"
        );
        assert_eq!(
            call_status(&ending_at(
                DnKind::Extension,
                false,
                Some(MissedReason::Busy)
            )),
            "busy"
        );
        assert_eq!(
            call_status(&ending_at(
                DnKind::Queue,
                true,
                Some(MissedReason::AbandonedInQueue)
            )),
            "no-answer"
        );
    }

    #[test]
    fn names_prefer_the_owner_then_the_display_name() {
        let mut party = Party {
            number: "101".into(),
            display_name: Some("Desk".into()),
            extension: Some("101".into()),
            external: false,
            owner: None,
            kind: guest_support::bindings::connectzero::pipeline::types::DnKind::Extension,
        };
        assert_eq!(name(&party), "Desk (ext. 101)");
        party.owner = Some(
            guest_support::bindings::connectzero::pipeline::types::ExtensionOwner {
                extension: "101".into(),
                first_name: "Alice".into(),
                last_name: "Smith".into(),
                email: None,
            },
        );
        assert_eq!(name(&party), "Alice Smith (ext. 101)");
    }
}
