//! The match stage's rules (`connectzero_match::plan`, the very code the
//! component runs) compiled into the host: the baseline the `boundary`
//! scenario compares the component against. Same rules, same per-batch
//! directory cache, same directory (the tenant's `ContactDirectory`), no component
//! boundary.

use crate::bindings::matcher::exports::connectzero::matcher::matcher::{
    MatchOutcome, MatcherSettings,
};
use crate::bindings::types::{Call, ContactRef, StageError, TenantSettings};
use crate::directory::ContactDirectory;
use connectzero_match::plan::Lookup;
use std::collections::HashMap;

/// Match a batch, as `match-calls` does.
pub async fn match_calls(
    settings: &TenantSettings,
    calls: &[Call],
    directory: &dyn ContactDirectory,
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
    let settings = MatcherSettings::from(settings);
    let mut out = Vec::with_capacity(calls.len());
    for call in calls {
        out.push(match_call(&settings, call, &mut cache).await);
    }
    out
}

struct Cache<'a> {
    directory: &'a dyn ContactDirectory,
    phones: HashMap<String, Vec<ContactRef>>,
    emails: HashMap<String, Vec<ContactRef>>,
}

impl Cache<'_> {
    /// The contacts `lookup` finds.
    async fn find(&mut self, lookup: &Lookup) -> Result<Vec<ContactRef>, StageError> {
        match lookup {
            Lookup::Phone(e164) => self.by_phone(e164).await,
            Lookup::Email(email) => self.by_email(email).await,
        }
    }

    async fn by_phone(&mut self, e164: &str) -> Result<Vec<ContactRef>, StageError> {
        if let Some(hit) = self.phones.get(e164) {
            return Ok(hit.clone());
        }
        let found = self.directory.find_by_phone(e164).await?;
        self.phones.insert(e164.to_string(), found.clone());
        Ok(found)
    }

    async fn by_email(&mut self, email: &str) -> Result<Vec<ContactRef>, StageError> {
        let email = email.trim().to_ascii_lowercase();
        if let Some(hit) = self.emails.get(&email) {
            return Ok(hit.clone());
        }
        let found = self.directory.find_by_email(&email).await?;
        self.emails.insert(email, found.clone());
        Ok(found)
    }
}

async fn match_call(
    settings: &MatcherSettings,
    call: &Call,
    cache: &mut Cache<'_>,
) -> Result<MatchOutcome, StageError> {
    connectzero_match::match_call_with!(settings, call, |lookup| cache.find(&lookup).await?)
}

connectzero_match::call_view_fns!(
    crate::bindings::types;
    crate::bindings::matcher::exports::connectzero::matcher::matcher
);

#[cfg(test)]
mod tests {
    use connectzero_match::normalise::to_e164;

    #[test]
    fn benchmark_numbers_are_valid() {
        for i in [0, 1, 9, 10, 99_999, 100_000, 123_456] {
            let n = super::super::number(i);
            assert_eq!(to_e164(&n, "US").as_deref(), Some(n.as_str()));
        }
    }
}
