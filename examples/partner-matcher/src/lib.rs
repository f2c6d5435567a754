//! # A partner matcher for ConnectZero
//!
//! A replacement for the bundled match stage, to copy and adapt. It
//! implements the `match-stage` world of `wit/matcher/matcher.wit` (and
//! is built from that file alone): it exports
//! `connectzero:matcher/matcher` and imports only the read-only
//! `connectzero:matcher/directory`, so it has no network, no key-value
//! store and never sees a secret. See `docs/PARTNERS.md` for how to build,
//! verify and load it.
//!
//! Its rules, first match wins:
//! 1. internal calls are skipped unless the tenant logs them;
//! 2. the outside number (caller of an inbound call, callee of an outbound
//!    one) is looked up, and **the newest contact with that number wins**.
//!    This partner's agencies create a fresh contact for every new
//!    enquiry, so the newest record is the one their team works; the
//!    bundled matcher picks the oldest instead. The others are reported in
//!    `also-matching`, so the message still says the number is shared;
//! 3. otherwise the contact whose e-mail is the answering extension owner's.
//!
//! Numbers are normalised with a deliberately small rule set (see
//! [`to_e164`]) instead of the `phonenumber` crate the bundled matcher
//! uses: smaller and faster to instantiate, at the price of reading only
//! international numbers and North American national ones.

wit_bindgen::generate!({
    path: "../../wit/matcher",
    world: "match-stage",
});

use connectzero::matcher::directory;
use connectzero::matcher::types::{Call, ContactRef, Direction, MatchRule, Party, StageError};
use exports::connectzero::matcher::matcher::{ContactMatch, Guest, MatchOutcome, MatcherSettings};

struct PartnerMatcher;

impl Guest for PartnerMatcher {
    fn match_calls(
        settings: MatcherSettings,
        calls: Vec<Call>,
    ) -> Vec<Result<MatchOutcome, StageError>> {
        // One answer per call, in order: the host refuses anything else.
        calls
            .iter()
            .map(|call| match_call(&settings, call))
            .collect()
    }
}

fn match_call(settings: &MatcherSettings, call: &Call) -> Result<MatchOutcome, StageError> {
    if matches!(call.direction, Direction::Internal) && !settings.log_internal_calls {
        return Ok(MatchOutcome::Skipped("internal-call".into()));
    }
    let (outside, rule) = match call.direction {
        Direction::Inbound => (Some(&call.caller), MatchRule::CallerNumber),
        Direction::Outbound => (
            call.legs.iter().map(|l| &l.callee).find(|p| p.external),
            MatchRule::CalledNumber,
        ),
        Direction::Internal => (None, MatchRule::ExtensionOwner),
    };
    let e164 = outside.and_then(|p| to_e164(&p.number, &settings.default_country));
    if let Some(number) = &e164
        && let Some(found) = newest(directory::find_by_phone(number)?, rule, number)
    {
        return Ok(MatchOutcome::Matched(found));
    }
    if let Some(email) = owner_email(call)
        && let Some(found) = newest(
            directory::find_by_email(&email)?,
            MatchRule::ExtensionOwner,
            &email,
        )
    {
        return Ok(MatchOutcome::Matched(found));
    }
    Ok(MatchOutcome::Unmatched(
        e164.or_else(|| outside.map(|p| p.number.clone()))
            .unwrap_or_default(),
    ))
}

/// The newest contact wins. The directory answers oldest first
/// (`dateAdded`, then id), so that is the last one; the rest are reported.
pub fn newest(
    mut contacts: Vec<ContactRef>,
    rule: MatchRule,
    matched_on: &str,
) -> Option<ContactMatch> {
    let contact = contacts.pop()?;
    contacts.reverse();
    Some(ContactMatch {
        contact,
        rule,
        matched_on: matched_on.to_string(),
        also_matching: contacts,
    })
}

/// E-mail of the extension owner who answered, else of the one called.
fn owner_email(call: &Call) -> Option<String> {
    [call.answered_by.as_ref(), Some(&call.callee)]
        .into_iter()
        .flatten()
        .filter_map(|p: &Party| p.owner.as_ref()?.email.clone())
        .next()
        .map(|e| e.trim().to_ascii_lowercase())
}

/// A small E.164 normaliser: `+` numbers and `00` international prefixes
/// as they are; ten-digit (or `1` + ten-digit) national numbers when the
/// tenant's default country is in the North American plan. Anything else
/// is not read (`None`), and the call goes to the next rule.
pub fn to_e164(number: &str, default_country: &str) -> Option<String> {
    let trimmed = number.trim();
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    let international = if trimmed.starts_with('+') {
        Some(digits.as_str())
    } else {
        digits.strip_prefix("00")
    };
    let e164 = match international {
        Some(rest) => format!("+{rest}"),
        None if matches!(default_country, "US" | "CA") && digits.len() == 10 => {
            format!("+1{digits}")
        }
        None if matches!(default_country, "US" | "CA")
            && digits.len() == 11
            && digits.starts_with('1') =>
        {
            format!("+{digits}")
        }
        None => return None,
    };
    // E.164: at most 15 digits, and no country code starts with 0.
    let plausible = (8..=15).contains(&(e164.len() - 1)) && !e164.starts_with("+0");
    plausible.then_some(e164)
}

// The export only exists in the component: a native build (unit tests)
// has no host to call it.
#[cfg(target_arch = "wasm32")]
export!(PartnerMatcher);

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(id: &str) -> ContactRef {
        ContactRef {
            id: id.into(),
            name: id.to_uppercase(),
            phone: Some("+14155550104".into()),
            email: None,
            assigned_to: None,
        }
    }

    #[test]
    fn the_newest_contact_wins_and_the_others_are_reported() {
        let found = newest(
            vec![contact("oldest"), contact("middle"), contact("newest")],
            MatchRule::CallerNumber,
            "+14155550104",
        )
        .unwrap();
        assert_eq!(found.contact.id, "newest");
        let others: Vec<&str> = found.also_matching.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(others, ["middle", "oldest"]);
        assert!(newest(Vec::new(), MatchRule::CallerNumber, "x").is_none());
    }

    #[test]
    fn numbers_are_read_as_e164_or_not_at_all() {
        assert_eq!(
            to_e164("+44 20 7946 0958", "GB").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            to_e164("0044 20 7946 0958", "GB").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            to_e164("(415) 555-0101", "US").as_deref(),
            Some("+14155550101")
        );
        assert_eq!(
            to_e164("1 415 555 0101", "CA").as_deref(),
            Some("+14155550101")
        );
        assert_eq!(to_e164("020 7946 0958", "GB"), None);
        assert_eq!(to_e164("101", "US"), None);
    }
}
