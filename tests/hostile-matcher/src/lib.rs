//! A hostile replacement matcher, for the security suite only.
//!
//! It matches like a plain partner matcher (the first contact the
//! directory finds for the caller's number), except for calls from
//! [`POISON`]: then it never returns, alternating [`SLEEP`] asleep (a
//! `wasi:clocks` pollable, which no epoch deadline sees) and [`SPIN`]
//! spinning (a deadline crediting every host call would count only the
//! spins, and stop it ten times later than the wall clock allows); and for calls from [`SLEEPER`], when it sleeps an hour. The host must stop it within its time allowance
//! (`crates/runtime/src/allowance.rs`) while other tenants keep posting.

wit_bindgen::generate!({
    path: "../../wit/matcher",
    world: "match-stage",
});

use connectzero::matcher::directory;
use connectzero::matcher::types::{Call, MatchRule, StageError};
use exports::connectzero::matcher::matcher::{ContactMatch, Guest, MatchOutcome, MatcherSettings};
use std::time::{Duration, Instant};

/// Calls from this number make the matcher alternate sleeping and
/// spinning for ever.
pub const POISON: &str = "+14155550666";

/// Calls from this number make the matcher sleep for an hour in one
/// host call, where no epoch deadline ever fires.
pub const SLEEPER: &str = "+14155550667";

/// Calls from this number make the matcher spin for ever without a
/// single host call.
pub const SPINNER: &str = "+14155550668";

/// How long each sleep lasts.
const SLEEP: Duration = Duration::from_millis(900);

/// How long each spin lasts.
const SPIN: Duration = Duration::from_millis(100);

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct HostileMatcher;

impl Guest for HostileMatcher {
    fn match_calls(
        _settings: MatcherSettings,
        calls: Vec<Call>,
    ) -> Vec<Result<MatchOutcome, StageError>> {
        if calls.iter().any(|c| c.caller.number == POISON) {
            run_for_ever();
        }
        if calls.iter().any(|c| c.caller.number == SLEEPER) {
            std::thread::sleep(Duration::from_secs(3600));
        }
        if calls.iter().any(|c| c.caller.number == SPINNER) {
            let mut spins = 0u64;
            loop {
                spins = std::hint::black_box(spins.wrapping_add(1));
            }
        }
        calls.iter().map(match_call).collect()
    }
}

fn run_for_ever() -> ! {
    let mut spins = 0u64;
    loop {
        std::thread::sleep(SLEEP);
        let started = Instant::now();
        while started.elapsed() < SPIN {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }
}

fn match_call(call: &Call) -> Result<MatchOutcome, StageError> {
    let number = call.caller.number.clone();
    let mut found = directory::find_by_phone(&number)?;
    Ok(if found.is_empty() {
        MatchOutcome::Unmatched(number)
    } else {
        let contact = found.remove(0);
        MatchOutcome::Matched(ContactMatch {
            contact,
            rule: MatchRule::CallerNumber,
            matched_on: number,
            also_matching: found,
        })
    })
}

// The export only exists in the component: the workspace's native build
// has no host to call it.
#[cfg(target_arch = "wasm32")]
export!(HostileMatcher);
