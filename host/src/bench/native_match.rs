//! The match stage's rules (`components/match`) compiled into the host: the
//! baseline the `boundary` scenario compares the component against. Same
//! normalisation (the `phonenumber` crate), same rule order, same per-batch
//! directory cache, same directory (`Directory::search`), no component
//! boundary.

use crate::bindings::matcher::exports::connectzero::pipeline::matcher::{
    ContactMatch, MatchOutcome,
};
use crate::bindings::types::{
    Call, ContactRef, Direction, ExtensionOwner, MatchRule, Party, StageError, TenantSettings,
};
use crate::directory::Directory;
use std::collections::HashMap;

/// Match a batch, as `match-calls` does.
pub async fn match_calls(
    settings: &TenantSettings,
    calls: &[Call],
    directory: &Directory,
) -> Vec<Result<MatchOutcome, StageError>> {
    if !connectzero_match::normalise::is_known_country(&settings.default_country) {
        let error = StageError::InvalidSettings("default-country".into());
        return calls.iter().map(|_| Err(error.clone())).collect();
    }
    let mut cache = Cache {
        directory,
        phones: HashMap::new(),
        emails: HashMap::new(),
    };
    let mut out = Vec::with_capacity(calls.len());
    for call in calls {
        out.push(match_call(settings, call, &mut cache).await);
    }
    out
}

struct Cache<'a> {
    directory: &'a Directory,
    phones: HashMap<String, Vec<ContactRef>>,
    emails: HashMap<String, Vec<ContactRef>>,
}

impl Cache<'_> {
    async fn by_phone(&mut self, e164: &str) -> Result<Vec<ContactRef>, StageError> {
        if let Some(hit) = self.phones.get(e164) {
            return Ok(hit.clone());
        }
        let found = self.directory.search("phone", e164).await?;
        self.phones.insert(e164.to_string(), found.clone());
        Ok(found)
    }

    async fn by_email(&mut self, email: &str) -> Result<Vec<ContactRef>, StageError> {
        let email = email.trim().to_ascii_lowercase();
        if let Some(hit) = self.emails.get(&email) {
            return Ok(hit.clone());
        }
        let found = self.directory.search("email", &email).await?;
        self.emails.insert(email, found.clone());
        Ok(found)
    }
}

async fn match_call(
    settings: &TenantSettings,
    call: &Call,
    cache: &mut Cache<'_>,
) -> Result<MatchOutcome, StageError> {
    if matches!(call.direction, Direction::Internal) && !settings.log_internal_calls {
        return Ok(MatchOutcome::Skipped("internal-call".into()));
    }
    let outside = outside_party(call);
    let outside_e164 = outside.and_then(|p| to_e164(&p.number, &settings.default_country));
    let number_rule = match call.direction {
        Direction::Inbound => Some(MatchRule::CallerNumber),
        Direction::Outbound => Some(MatchRule::CalledNumber),
        Direction::Internal => None,
    };
    if let (Some(rule), Some(e164)) = (number_rule, &outside_e164)
        && let Some(found) = pick(cache.by_phone(e164).await?, rule, e164)
    {
        return Ok(MatchOutcome::Matched(found));
    }
    for owner in owners(call) {
        if let Some(email) = &owner.email
            && let Some(found) = pick(
                cache.by_email(email).await?,
                MatchRule::ExtensionOwner,
                email,
            )
        {
            return Ok(MatchOutcome::Matched(found));
        }
    }
    Ok(MatchOutcome::Unmatched(
        outside_e164
            .or_else(|| outside.map(|p| p.number.clone()))
            .unwrap_or_default(),
    ))
}

/// The match component's own normaliser, linked natively.
pub use connectzero_match::normalise::to_e164;

fn pick(mut contacts: Vec<ContactRef>, rule: MatchRule, matched_on: &str) -> Option<ContactMatch> {
    if contacts.is_empty() {
        return None;
    }
    let contact = contacts.remove(0);
    Some(ContactMatch {
        contact,
        rule,
        matched_on: matched_on.to_string(),
        also_matching: contacts,
    })
}

fn outside_party(call: &Call) -> Option<&Party> {
    match call.direction {
        Direction::Inbound => Some(&call.caller),
        Direction::Outbound => call.legs.iter().map(|l| &l.callee).find(|p| p.external),
        Direction::Internal => None,
    }
}

fn owners(call: &Call) -> Vec<&ExtensionOwner> {
    let mut owners: Vec<&ExtensionOwner> = Vec::new();
    let candidates = [
        call.answered_by.as_ref(),
        Some(&call.callee),
        Some(&call.caller),
    ];
    for party in candidates.into_iter().flatten() {
        if let Some(owner) = &party.owner
            && !owners.iter().any(|o| o.extension == owner.extension)
        {
            owners.push(owner);
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_normalise_as_in_the_component() {
        assert_eq!(
            to_e164("020 7946 0958", "GB").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            to_e164("0044 20 7946 0958", "US").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(to_e164("101", "US"), None);
        assert_eq!(to_e164("anonymous", "US"), None);
    }

    #[test]
    fn benchmark_numbers_are_valid() {
        for i in [0, 1, 9, 10, 99_999, 100_000, 123_456] {
            let n = super::super::number(i);
            assert_eq!(to_e164(&n, "US").as_deref(), Some(n.as_str()));
        }
    }
}
