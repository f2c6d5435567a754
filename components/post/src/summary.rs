//! The human-readable text of a call message.

use crate::exports::connectzero::pipeline::post::PostJob;
use guest_support::bindings::connectzero::pipeline::types::MatchRule;
use guest_support::bindings::connectzero::pipeline::types::{Call, Direction, Party};

/// e.g. "Inbound call from +15551234567, answered by Alice Smith (ext. 101)
/// via IVR (ext. 800). Talk time 3m 35s. Matched by caller number."
pub fn message_text(job: &PostJob) -> String {
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
        (_, false) => text.push_str(", missed (not answered)"),
    }
    if !call.route.is_empty() {
        let route: Vec<String> = call.route.iter().map(name).collect();
        text.push_str(&format!(" via {}", route.join(" → ")));
    }
    text.push_str(&format!(". Talk time {}.", duration(call.duration_secs)));
    match job.rule {
        Some(MatchRule::CallerNumber) => text.push_str(" Matched by caller number."),
        Some(MatchRule::CalledNumber) => text.push_str(" Matched by called number."),
        Some(MatchRule::ExtensionOwner) => text.push_str(" Matched by extension owner."),
        None => text.push_str(" Contact created for this number."),
    }
    if job.ambiguous {
        text.push_str(" Several contacts share this number: check the match.");
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

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(215), "3m 35s");
        assert_eq!(duration(3725), "1h 2m 5s");
    }

    #[test]
    fn names_prefer_the_owner_then_the_display_name() {
        let mut party = Party {
            number: "101".into(),
            display_name: Some("Desk".into()),
            extension: Some("101".into()),
            external: false,
            owner: None,
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
