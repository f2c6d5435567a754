//! # The match stage — find the CRM contact of each call
//!
//! Fixed priority, first match wins:
//! 1. inbound: the caller's number;
//! 2. outbound: the called (outside) number;
//! 3. the contact whose e-mail is the extension owner's.
//!
//! Numbers are normalised to E.164 with the tenant's default country.
//! Internal calls are skipped unless the tenant logs them. The directory
//! answers oldest contact first, so "the first contact with that number" is
//! deterministic; other contacts with the same number are reported in
//! `also-matching` so the ambiguity is visible, never silently guessed.
//!
//! This component has no network, no key-value store and no secrets: it
//! only reads the host's `directory`. Partners replace it with their own.
//!
//! It depends on `guest-support` and on the matcher contract
//! (`wit/matcher/matcher.wit`): the directory is all it sees, never the
//! network, the key-value store, the host or another stage.

/// Phone numbers to E.164; also used natively by the host's benchmark
/// baseline, so both sides of the boundary measurement run the same code.
pub mod normalise;
pub mod plan;
mod rules;

use guest_support::StageError;
use guest_support::bindings::connectzero::matcher::types::Call;

guest_support::stage_bindings!(pure "connectzero:pipeline/bundled-match-stage");

use exports::connectzero::matcher::matcher::{
    Guest as MatcherGuest, MatchOutcome, MatcherSettings,
};

struct Matcher;

impl MatcherGuest for Matcher {
    fn match_calls(
        settings: MatcherSettings,
        calls: Vec<Call>,
    ) -> Vec<Result<MatchOutcome, StageError>> {
        if !normalise::is_known_country(&settings.default_country) {
            let error = StageError::InvalidSettings(format!(
                "default-country {:?} is not an ISO 3166-1 alpha-2 code (e.g. \"US\", \"GB\")",
                settings.default_country
            ));
            return calls.iter().map(|_| Err(error.clone())).collect();
        }
        let mut directory = rules::CachedDirectory::default();
        calls
            .iter()
            .map(|call| rules::match_call(&settings, call, &mut directory))
            .collect()
    }
}

/// The pre-initialiser's entry point (`wit/worlds.wit`,
/// `bundled-match-stage`): the host calls it once and snapshots the result.
impl crate::Guest for Matcher {
    fn wizer_initialize() {
        normalise::preload();
    }
}

// Exported only when building the component: a native build (unit tests)
// would otherwise put WIT export names into the host linker's symbol list.
#[cfg(target_arch = "wasm32")]
export!(Matcher);
