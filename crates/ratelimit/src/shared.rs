//! A location's budget kept where every process on one database sees it.
//!
//! One [`crate::LocationLimiter`] per process is enough for one host; two
//! or three hosts sharing a database each had their own window and
//! together sent two or three times HighLevel's limit, learning of each
//! other only from its 429s. With a [`BudgetStore`] attached
//! ([`crate::LocationLimiter::share_through`]) the limiter keeps its
//! window there instead, under the limiter's key ([`crate::limiter_key`]):
//!
//! - the burst window is `guest_support::budget::Window`, the rule the
//!   Spin replicas keep in their key-value store, so both runtimes admit
//!   the same requests (and a slot more than `budget::MAX_WAIT_MS` away is
//!   refused, 5 s rather than the in-memory limiter's [`crate::MAX_WAIT`]);
//! - the daily count and the block after a 429 are kept beside it, so a
//!   429 one host gets stops every host on the location;
//! - each request's change is one transaction the store makes exclusive
//!   across processes (the host: SQLite `BEGIN IMMEDIATE`).
//!
//! The store is a trait so this crate stays free of the database: the
//! host implements it over its SQLite file.

use crate::Admission;
use connectzero_config::CrmRateLimit;
use guest_support::budget::{self, Window};
use std::time::Duration;

/// The daily count is kept in slots this long (ms).
const HOUR_MS: i64 = 60 * 60 * 1000;
/// A day (ms).
const DAY_MS: i64 = 24 * HOUR_MS;

/// A location's budget as a [`BudgetStore`] keeps it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SharedBudget {
    /// The burst window: starts of the last interval, ms since the epoch
    /// (the Spin replicas' rule).
    pub window: Window,
    /// No request may go before this (ms since the epoch): set by a 429
    /// any process got; 0 when none.
    pub blocked_until_ms: i64,
    /// Requests per hour of the last day: (slot start ms, requests),
    /// oldest first.
    pub hours: Vec<(i64, u32)>,
}

/// Why a [`BudgetStore`] could not read or write a budget.
#[derive(Debug, thiserror::Error)]
#[error("the shared request budget could not be read or written: {0}")]
pub struct BudgetStoreError(pub String);

/// Where budgets shared by several processes live (the host: its SQLite
/// database).
pub trait BudgetStore: Send + Sync + std::fmt::Debug {
    /// Read the budget under `key` (a default one when there is none), let
    /// `change` alter it and write it back, in one step no other process
    /// sharing the store can interleave with. `change` may run more than
    /// once when the store retries; only the last run's changes are kept.
    fn update(
        &self,
        key: &str,
        change: &mut dyn FnMut(&mut SharedBudget),
    ) -> Result<(), BudgetStoreError>;
}

/// The store a limiter shares, and its key there.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: std::sync::Arc<dyn BudgetStore>,
    pub(crate) key: String,
}

impl Shared {
    /// Take a slot for a request asking at `now_ms` (ms since the epoch).
    pub(crate) fn reserve(
        &self,
        limit: &CrmRateLimit,
        now_ms: i64,
    ) -> Result<Admission, BudgetStoreError> {
        let mut admission = Admission::Go(Duration::ZERO);
        self.store.update(&self.key, &mut |budget| {
            admission = admit(budget, limit, now_ms);
        })?;
        Ok(admission)
    }

    /// Block the location for every process until `until_ms`.
    pub(crate) fn block_until(&self, until_ms: i64) -> Result<(), BudgetStoreError> {
        self.store.update(&self.key, &mut |budget| {
            budget.blocked_until_ms = budget.blocked_until_ms.max(until_ms);
        })
    }
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The admission of a request asking at `now_ms`, recorded in `budget`:
/// blocked after a 429, refused once the day is spent, else the burst
/// window's slot (`guest_support::budget::Window::admit`).
pub(crate) fn admit(budget: &mut SharedBudget, limit: &CrmRateLimit, now_ms: i64) -> Admission {
    // A block no 429 could have set from this clock's now (written by a
    // clock ahead of it) is capped at the longest `Retry-After` honoured.
    let longest_block = i64::from(guest_support::waits::MAX_RETRY_AFTER_SECS) * 1000;
    budget.blocked_until_ms = budget
        .blocked_until_ms
        .min(now_ms.saturating_add(longest_block));
    if budget.blocked_until_ms > now_ms {
        return Admission::Refused(millis(budget.blocked_until_ms - now_ms));
    }
    if limit.daily > 0 {
        // Hours a clock ahead of this one opened are not counted.
        budget
            .hours
            .retain(|(start, _)| start + DAY_MS > now_ms && *start <= now_ms + HOUR_MS);
        let used: u64 = budget.hours.iter().map(|(_, n)| u64::from(*n)).sum();
        let daily = u64::from(limit.daily);
        if used >= daily - daily / 100 {
            let oldest = budget.hours.first().map_or(now_ms, |(start, _)| *start);
            return Admission::Refused(millis(oldest + DAY_MS - now_ms));
        }
    }
    let wait = if budget::admitted_per_interval(limit.burst) == 0 {
        Duration::ZERO
    } else {
        match budget.window.admit(now_ms, limit.burst, limit.interval_ms) {
            budget::Admission::Slot { wait_ms } => millis(wait_ms),
            budget::Admission::Refused { retry_after_ms } => {
                return Admission::Refused(millis(retry_after_ms));
            }
        }
    };
    if limit.daily > 0 {
        match budget.hours.last_mut() {
            Some((start, n)) if *start + HOUR_MS > now_ms => *n += 1,
            _ => budget.hours.push((now_ms, 1)),
        }
    }
    Admission::Go(wait)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::limit;

    #[test]
    fn the_window_is_spins_rule() {
        let mut budget = SharedBudget::default();
        let mut window = Window::default();
        let limit = limit(100, 10_000, 0);
        for now in (0..30_000).step_by(37) {
            let ours = admit(&mut budget, &limit, now);
            let spins = window.admit(now, limit.burst, limit.interval_ms);
            let same = match (ours, spins) {
                (Admission::Go(wait), budget::Admission::Slot { wait_ms }) => {
                    wait == millis(wait_ms)
                }
                (Admission::Refused(wait), budget::Admission::Refused { retry_after_ms }) => {
                    wait == millis(retry_after_ms)
                }
                _ => false,
            };
            assert!(same, "at {now}: {ours:?} vs {spins:?}");
        }
        assert_eq!(budget.window, window);
    }

    #[test]
    fn a_row_written_by_a_clock_far_ahead_does_not_refuse_for_hours() {
        let hours_ahead = 10 * HOUR_MS;
        let mut budget = SharedBudget {
            blocked_until_ms: hours_ahead,
            hours: vec![(hours_ahead, 1_000)],
            ..SharedBudget::default()
        };
        let limit = limit(100, 10_000, 1_000);
        let longest = millis(i64::from(guest_support::waits::MAX_RETRY_AFTER_SECS) * 1000);
        assert!(matches!(
            admit(&mut budget, &limit, 0),
            Admission::Refused(wait) if wait <= longest
        ));
        // Once that block is over, the hour from the future is not counted.
        assert!(matches!(
            admit(&mut budget, &limit, longest.as_millis() as i64),
            Admission::Go(_)
        ));
    }

    #[test]
    fn a_block_refuses_until_it_ends_and_the_day_is_counted() {
        let mut budget = SharedBudget {
            blocked_until_ms: 5_000,
            ..SharedBudget::default()
        };
        let limit = limit(1_000, 1, 100);
        assert_eq!(
            admit(&mut budget, &limit, 1_000),
            Admission::Refused(Duration::from_secs(4))
        );
        // 100 less 1% = 99 a day, counted in hourly slots.
        for i in 0..99 {
            assert!(matches!(
                admit(&mut budget, &limit, 5_000 + i * 10),
                Admission::Go(_)
            ));
        }
        assert_eq!(budget.hours, vec![(5_000, 99)]);
        assert!(matches!(
            admit(&mut budget, &limit, 10_000),
            Admission::Refused(wait) if wait == millis(DAY_MS - 5_000)
        ));
        // A day later the slot has left the window.
        assert!(matches!(
            admit(&mut budget, &limit, 5_000 + DAY_MS),
            Admission::Go(_)
        ));
    }
}
