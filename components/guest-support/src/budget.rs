//! A HighLevel location's request budget kept in a shared store, for
//! runtimes whose replicas share nothing but that store (Spin): the rules,
//! without I/O.
//!
//! HighLevel allows each marketplace app 100 requests per 10 s per location
//! (HighLevel NOTES §6.1; [`HIGHLEVEL_BURST`], [`HIGHLEVEL_INTERVAL_MS`],
//! which the bundled host's limiter reads too). The shared budget keeps the
//! start times of the requests of the last interval in one value, changed
//! by compare-and-swap, and gives each request the next free slot:
//!
//! - **a sliding window** of `burst − headroom` starts in any interval
//!   (the headroom, a tenth, absorbs the jitter between a request's start
//!   here and HighLevel counting it), so the limit holds however HighLevel
//!   counts (fixed windows or a token bucket);
//! - **first come, first served**: a request that finds the window full
//!   takes the earliest slot after it and waits for it;
//! - **no long queues**: a slot more than [`MAX_WAIT_MS`] away is refused
//!   with the wait, so whole ticks wait instead of component instances.

use serde::{Deserialize, Serialize};

/// Requests HighLevel allows per [`HIGHLEVEL_INTERVAL_MS`] per app and
/// location (HighLevel NOTES §6.1, [DOC] docs/oauth/Authorization.md).
pub const HIGHLEVEL_BURST: u32 = 100;

/// HighLevel's burst window in milliseconds.
pub const HIGHLEVEL_INTERVAL_MS: u64 = 10_000;

/// Requests HighLevel allows per day per app and location.
pub const HIGHLEVEL_DAILY: u32 = 200_000;

/// The longest a request waits for its slot; later slots are refused.
pub const MAX_WAIT_MS: i64 = 5_000;

/// How many requests may start per interval: the burst less a tenth (at
/// least one) of headroom, never below one (a burst of 0 or 1 stays as it
/// is). The bundled host's limiter uses it too.
pub fn admitted_per_interval(burst: u32) -> usize {
    let burst = burst as usize;
    if burst <= 1 {
        return burst;
    }
    burst - (burst / 10).max(1)
}

/// The requests of the last interval (and the slots taken after now), as
/// kept in the store: start times in ms since the epoch, ascending.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Start times, ascending.
    pub starts: Vec<i64>,
}

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Its slot is `wait_ms` from now (0: at once); the window holds it.
    Slot {
        /// How long to wait before sending.
        wait_ms: i64,
    },
    /// No slot within [`MAX_WAIT_MS`]: try again after `retry_after_ms`;
    /// the window is unchanged.
    Refused {
        /// When a slot may be free.
        retry_after_ms: i64,
    },
}

impl Window {
    /// Take the next free slot for a request asking at `now` (ms since the
    /// epoch), `burst` per `interval_ms`.
    pub fn admit(&mut self, now: i64, burst: u32, interval_ms: u64) -> Admission {
        let interval = i64::try_from(interval_ms).unwrap_or(i64::MAX);
        let allowed = admitted_per_interval(burst).max(1);
        // What started an interval ago or earlier no longer counts. A
        // start further ahead than any slot is handed out was written by
        // a clock ahead of this one (another replica's, or this one's
        // before it was set back): kept, it would refuse every request
        // until that clock's time came round.
        self.starts
            .retain(|&t| t > now.saturating_sub(interval) && t <= now.saturating_add(MAX_WAIT_MS));
        let mut slot = now;
        if let Some(&last) = self.starts.last() {
            // Slots are handed out in order, never before an earlier one.
            slot = slot.max(last);
        }
        if self.starts.len() >= allowed {
            // The slot must leave `allowed − 1` starts in the interval
            // before it.
            slot = slot.max(self.starts[self.starts.len() - allowed] + interval);
        }
        let wait_ms = slot - now;
        if wait_ms > MAX_WAIT_MS {
            return Admission::Refused {
                retry_after_ms: wait_ms,
            };
        }
        self.starts.push(slot);
        Admission::Slot { wait_ms }
    }
}

/// Whether a request to `path` on HighLevel counts against the location's
/// budget: the token endpoint does not [ASSUMED: HighLevel NOTES §6.1
/// counts API requests per app and location; a token request names no
/// location]. Also keeps strangers' install callbacks, each of which asks
/// the token endpoint once, from spending a location's budget.
pub fn counts_against_limit(path: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    path.trim_end_matches('/') != "/oauth/token"
}

/// What a refused request's `wasi:http` error says, so the stage that
/// sent it reads it as a 429 ([`request_error`]) rather than a network
/// failure: the call waits for the budget instead of counting as an outage.
const REFUSAL_MARKER: &str = "connectzero budget: retry after ";

/// The error text the runtime's request handler gives a request the
/// budget refused.
pub fn refusal_message(retry_after_ms: i64) -> String {
    let secs = (retry_after_ms.max(0) + 999) / 1000;
    format!("{REFUSAL_MARKER}{secs} s (this location's HighLevel request budget is spent)")
}

/// A failed request's error: [`StageError::RateLimited`] when the shared
/// budget refused it ([`refusal_message`]), else a network error.
pub fn request_error(message: String) -> crate::StageError {
    let retry_after = message.find(REFUSAL_MARKER).and_then(|at| {
        message[at + REFUSAL_MARKER.len()..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|digits| digits.parse::<u32>().ok())
    });
    match retry_after {
        Some(secs) => crate::StageError::RateLimited(secs.max(1)),
        None => crate::StageError::Network(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_admits_the_burst_less_headroom_then_queues_then_refuses() {
        let mut window = Window::default();
        let allowed = admitted_per_interval(HIGHLEVEL_BURST);
        assert_eq!(allowed, 90);
        for _ in 0..allowed {
            assert_eq!(
                window.admit(1_000, HIGHLEVEL_BURST, HIGHLEVEL_INTERVAL_MS),
                Admission::Slot { wait_ms: 0 }
            );
        }
        // Full: the next slot is when the first start leaves the window,
        // but that is more than five seconds away.
        assert_eq!(
            window.admit(1_000, HIGHLEVEL_BURST, HIGHLEVEL_INTERVAL_MS),
            Admission::Refused {
                retry_after_ms: 10_000
            }
        );
        assert_eq!(window.starts.len(), allowed, "a refusal takes no slot");
        // Six seconds later the first slot is four seconds away: queued.
        assert_eq!(
            window.admit(7_000, HIGHLEVEL_BURST, HIGHLEVEL_INTERVAL_MS),
            Admission::Slot { wait_ms: 4_000 }
        );
    }

    #[test]
    fn no_interval_ever_holds_more_than_the_admitted_number() {
        // Requests asking every 20 ms for a minute, waiting for their slot.
        let mut window = Window::default();
        let mut sent = Vec::new();
        let mut now = 0;
        while now < 60_000 {
            if let Admission::Slot { wait_ms } = window.admit(now, 100, 10_000) {
                sent.push(now + wait_ms);
            }
            now += 20;
        }
        sent.sort();
        for (i, &start) in sent.iter().enumerate() {
            let in_interval = sent[i..]
                .iter()
                .take_while(|&&t| t < start + 10_000)
                .count();
            assert!(
                in_interval <= 90,
                "{in_interval} starts within 10 s of {start}"
            );
        }
        assert!(sent.len() >= 90 * 5, "the budget is used: {}", sent.len());
    }

    #[test]
    fn a_refusal_reads_as_rate_limited_and_other_failures_as_network() {
        // As guest_support::http words a failed request: the error code's
        // Debug text inside.
        let refused = format!(
            "request to crm:443 failed: InternalError(Some({:?}))",
            refusal_message(6_200)
        );
        assert!(matches!(
            request_error(refused),
            crate::StageError::RateLimited(7)
        ));
        assert!(matches!(
            request_error("request to crm:443 failed: ConnectionRefused".into()),
            crate::StageError::Network(m) if m == "request to crm:443 failed: ConnectionRefused"
        ));
    }

    #[test]
    fn slots_are_handed_out_in_order() {
        let mut window = Window::default();
        let mut last = 0;
        for now in (0..20_000).step_by(7) {
            if let Admission::Slot { wait_ms } = window.admit(now, 10, 1_000) {
                assert!(now + wait_ms >= last);
                last = now + wait_ms;
            }
        }
    }

    #[test]
    fn starts_from_a_clock_far_ahead_do_not_block_the_window() {
        let mut window = Window::default();
        // Another clock, an hour ahead, filled the window.
        let ahead = 3_600_000;
        for _ in 0..admitted_per_interval(HIGHLEVEL_BURST) {
            assert!(matches!(
                window.admit(ahead, HIGHLEVEL_BURST, HIGHLEVEL_INTERVAL_MS),
                Admission::Slot { .. }
            ));
        }
        assert_eq!(
            window.admit(0, HIGHLEVEL_BURST, HIGHLEVEL_INTERVAL_MS),
            Admission::Slot { wait_ms: 0 }
        );
    }

    #[test]
    fn the_token_endpoint_is_not_counted() {
        assert!(!counts_against_limit("/oauth/token"));
        assert!(!counts_against_limit("/oauth/token/?x=1"));
        assert!(counts_against_limit("/contacts/search"));
    }
}
