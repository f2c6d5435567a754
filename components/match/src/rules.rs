//! The matching rules.

use crate::exports::connectzero::matcher::matcher::{MatchOutcome, MatcherSettings};
use crate::plan::Lookup;
use guest_support::StageError;
use guest_support::bindings::connectzero::matcher::directory;
use guest_support::bindings::connectzero::matcher::types::{Call, ContactRef};
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
    /// The contacts `lookup` finds.
    fn find(&mut self, lookup: &Lookup) -> Result<Vec<ContactRef>, StageError> {
        match lookup {
            Lookup::Phone(e164) => self.by_phone(e164),
            Lookup::Email(email) => self.by_email(email),
        }
    }

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

/// Apply the rules ([`crate::plan`]) to one call.
pub fn match_call(
    settings: &MatcherSettings,
    call: &Call,
    directory: &mut CachedDirectory,
) -> Result<MatchOutcome, StageError> {
    crate::match_call_with!(settings, call, |lookup| directory.find(&lookup)?)
}

crate::call_view_fns!(
    guest_support::bindings::connectzero::matcher::types;
    crate::exports::connectzero::matcher::matcher
);
