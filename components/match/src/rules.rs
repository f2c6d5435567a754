//! The matching rules.

use crate::exports::connectzero::pipeline::matcher::{ContactMatch, MatchOutcome};
use crate::normalise::to_e164;
use guest_support::StageError;
use guest_support::bindings::connectzero::pipeline::directory;
use guest_support::bindings::connectzero::pipeline::types::MatchRule;
use guest_support::bindings::connectzero::pipeline::types::{
    Call, ContactRef, Direction, ExtensionOwner, Party, TenantSettings,
};
use std::collections::HashMap;

/// The directory with a per-batch cache: one lookup per number or e-mail,
/// however many calls in the batch share it (HighLevel rate limits count
/// every request).
#[derive(Default)]
pub struct CachedDirectory {
    phones: HashMap<String, Vec<ContactRef>>,
    emails: HashMap<String, Vec<ContactRef>>,
}

impl CachedDirectory {
    fn by_phone(&mut self, e164: &str) -> Result<Vec<ContactRef>, StageError> {
        if let Some(hit) = self.phones.get(e164) {
            return Ok(hit.clone());
        }
        let found = directory::find_by_phone(e164)?;
        self.phones.insert(e164.to_string(), found.clone());
        Ok(found)
    }

    fn by_email(&mut self, email: &str) -> Result<Vec<ContactRef>, StageError> {
        let email = email.trim().to_ascii_lowercase();
        if let Some(hit) = self.emails.get(&email) {
            return Ok(hit.clone());
        }
        let found = directory::find_by_email(&email)?;
        self.emails.insert(email, found.clone());
        Ok(found)
    }
}

/// Apply the rules to one call.
pub fn match_call(
    settings: &TenantSettings,
    call: &Call,
    directory: &mut CachedDirectory,
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
        && let Some(found) = pick(directory.by_phone(e164)?, rule, e164)
    {
        return Ok(MatchOutcome::Matched(found));
    }
    for owner in owners(call) {
        if let Some(email) = &owner.email
            && let Some(found) = pick(directory.by_email(email)?, MatchRule::ExtensionOwner, email)
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

/// The first (oldest) contact wins; the rest are reported.
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

/// The party outside the PBX: the caller of an inbound call, the first
/// outside callee of an outbound one.
fn outside_party(call: &Call) -> Option<&Party> {
    match call.direction {
        Direction::Inbound => Some(&call.caller),
        Direction::Outbound => call.legs.iter().map(|l| &l.callee).find(|p| p.external),
        Direction::Internal => None,
    }
}

/// Owners of the extensions that handled the call, most relevant first: who
/// answered, then who was called, then who called.
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
