//! # connectzero-ratelimit: one request budget per HighLevel location
//!
//! Shared by everything in this process that calls the location: the
//! components' `wasi:http` requests (decided in the runtime's
//! `outbound`), the host's contact directory (`connectzero::directory`)
//! and every tenant configured for the same app and location. It holds
//! the only HighLevel-specific request policy ([ASSUMED] facts below) and
//! depends only on the configuration (`connectzero-config`) and the
//! shared reading of a `Retry-After` (`guest-support`): never on the
//! runtime, wasmtime or the host, which all use it.
//!
//! HighLevel limits each marketplace app per location (HighLevel NOTES
//! §6.1; the numbers are [`CrmRateLimit::HIGHLEVEL`]). The limiter
//! keeps to it this way:
//!
//! - **Burst: a sliding window.** At most `burst − headroom` requests
//!   start in any `interval`. A sliding window never exceeds the limit
//!   whichever way HighLevel counts it (fixed windows or a token bucket,
//!   [`assumed_semantics`]); the headroom (a tenth, at least one) absorbs
//!   the jitter between a request leaving here and HighLevel counting it.
//! - **Daily**: at most `daily − 1%` in any 24 h, counted in hourly slots.
//! - **Fair, first come first served.** A request takes the next free
//!   slot in the window and waits for it, so requests are admitted in the
//!   order they asked. A tenant's stages send one request at a time, so a
//!   tenant with a large backlog gets one request in turn with every other
//!   tenant on the location, never all of them.
//! - **429 stops everyone.** When HighLevel answers 429 anyway (another
//!   process on the same app and location, e.g. a second host or `doctor`),
//!   every user of the location gets an immediate 429 from this limiter
//!   until `Retry-After` has passed, without a request leaving the host;
//!   components treat it like HighLevel's (the call is released and the
//!   tick waits).
//! - **No long queues.** A request whose slot is more than [`MAX_WAIT`]
//!   away is answered 429 at once with that wait as `Retry-After`: the
//!   location is over-committed and whole ticks should wait, not
//!   component instances.
//!
//! Limiters live for the process, one per (CRM base URL, app client id,
//! location id): [`for_location`]. Where several processes share a
//! database, each limiter keeps its window there instead of in memory
//! ([`LocationLimiter::share_through`], [`shared`]), so the hosts together
//! stay within the location's limit.

use connectzero_config::{CrmConfig, CrmRateLimit};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub mod shared;
pub use shared::{BudgetStore, BudgetStoreError, SharedBudget};

/// Longest a request waits for its slot before it is refused (429) instead.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// The daily limit is counted in slots this long.
const DAY_SLOT: Duration = Duration::from_secs(60 * 60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// [ASSUMED] facts about HighLevel's limit, in one place (NOTES §6.1):
///
/// - how HighLevel counts "100 per 10 seconds" is not documented (fixed
///   windows or a token bucket): the sliding window kept here satisfies
///   either;
/// - exceeding it answers 429, with no guaranteed `Retry-After`: without
///   one, the location waits one whole burst interval;
/// - `POST /oauth/token` is not counted against a location (it carries no
///   location token); every other request to the CRM is.
///
/// Returns the wait after a 429 given its `Retry-After` (whole seconds).
pub fn assumed_semantics(limit: &CrmRateLimit, retry_after_secs: Option<u64>) -> Duration {
    retry_after_secs
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_millis(limit.interval_ms.max(1000)))
}

/// Whether a request to `path` on the CRM counts against the location's
/// limit (see [`assumed_semantics`]; the rule is Spin's too,
/// `guest_support::budget`).
pub use guest_support::budget::counts_against_limit;

/// What the limiter answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead; this long was spent waiting for the slot.
    Go(Duration),
    /// Do not send: answer 429 with this `Retry-After`.
    Refused(Duration),
}

/// Counters of one limiter (tests and logs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimiterStats {
    /// Requests admitted.
    pub admitted: u64,
    /// Admitted requests that had to wait for their slot.
    pub waited: u64,
    /// Requests refused by this limiter (blocked after a 429, or a queue
    /// longer than [`MAX_WAIT`]).
    pub refused: u64,
    /// 429s HighLevel itself answered.
    pub upstream_429: u64,
}

/// The budget of one app in one location.
#[derive(Debug)]
pub struct LocationLimiter {
    location: String,
    limit: CrmRateLimit,
    window: Mutex<Window>,
    admitted: AtomicU64,
    waited: AtomicU64,
    refused: AtomicU64,
    upstream_429: AtomicU64,
    /// The store every process on the database shares, once attached.
    shared: OnceLock<shared::Shared>,
}

#[derive(Debug, Default)]
struct Window {
    /// Start times given out in the last interval (some in the future),
    /// in order.
    slots: VecDeque<Instant>,
    /// (slot start, requests) per hour of the last day.
    days: VecDeque<(Instant, u32)>,
    /// No request may go before this (after a 429).
    blocked_until: Option<Instant>,
}

impl LocationLimiter {
    /// A limiter keeping to `limit` for `location` (used in logs).
    pub fn new(location: &str, limit: CrmRateLimit) -> Self {
        Self {
            location: location.to_string(),
            limit,
            window: Mutex::new(Window::default()),
            admitted: AtomicU64::new(0),
            waited: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            upstream_429: AtomicU64::new(0),
            shared: OnceLock::new(),
        }
    }

    /// Keep this limiter's window in `store` under `key` from now on
    /// ([`limiter_key`]), shared with every process using that store. The
    /// first store attached is kept. When the store fails, requests fall
    /// back to this process's own window (logged): a broken database
    /// should slow calls, not stop them.
    pub fn share_through(&self, store: Arc<dyn BudgetStore>, key: String) {
        if self.shared.set(shared::Shared { store, key }).is_err() {
            tracing::debug!(location = %self.location, "the location's budget is shared already");
        }
    }

    /// Whether the window is kept in a shared store.
    pub fn is_shared(&self) -> bool {
        self.shared.get().is_some()
    }

    /// The limit it keeps to.
    pub fn limit(&self) -> CrmRateLimit {
        self.limit
    }

    /// Requests started per interval: the burst less a tenth (at least
    /// one) for jitter, never below one.
    fn burst(&self) -> usize {
        guest_support::budget::admitted_per_interval(self.limit.burst)
    }

    fn daily(&self) -> u64 {
        let daily = u64::from(self.limit.daily);
        daily - daily / 100
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.limit.interval_ms)
    }

    /// Wait for this request's slot (or learn that it must not go).
    pub async fn acquire(&self) -> Admission {
        let now = Instant::now();
        let admission = self.reserve(now);
        match admission {
            Admission::Go(wait) if !wait.is_zero() => {
                self.waited.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
            }
            Admission::Go(_) => {}
            Admission::Refused(retry) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(location = %self.location, retry_in = ?retry, "CRM request held back by the location's rate limit");
                return admission;
            }
        }
        self.admitted.fetch_add(1, Ordering::Relaxed);
        admission
    }

    /// Give this request the next free slot at or after `now`, in the
    /// shared window when there is one.
    fn reserve(&self, now: Instant) -> Admission {
        if let Some(shared) = self.shared.get() {
            match shared.reserve(&self.limit, now_ms()) {
                Ok(admission) => return admission,
                Err(e) => {
                    tracing::warn!(location = %self.location, error = %e, "using this process's own request window for now");
                }
            }
        }
        let burst = self.burst();
        if burst == 0 {
            return Admission::Go(Duration::ZERO);
        }
        let interval = self.interval();
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = window.blocked_until {
            if until > now {
                return Admission::Refused(until - now);
            }
            window.blocked_until = None;
        }
        while window.slots.front().is_some_and(|t| *t + interval <= now) {
            window.slots.pop_front();
        }
        let slot = if window.slots.len() < burst {
            now
        } else {
            // The slot `burst` places back must have left the window.
            (window.slots[window.slots.len() - burst] + interval).max(now)
        };
        let wait = slot - now;
        if wait > MAX_WAIT {
            return Admission::Refused(wait);
        }
        if self.limit.daily > 0 {
            while window.days.front().is_some_and(|(t, _)| *t + DAY <= now) {
                window.days.pop_front();
            }
            let used: u64 = window.days.iter().map(|(_, n)| u64::from(*n)).sum();
            if used >= self.daily() {
                let oldest = window.days.front().map_or(now, |(t, _)| *t);
                return Admission::Refused((oldest + DAY).saturating_duration_since(now));
            }
            match window.days.back_mut() {
                Some((start, n)) if *start + DAY_SLOT > now => *n += 1,
                _ => window.days.push_back((now, 1)),
            }
        }
        window.slots.push_back(slot);
        Admission::Go(wait)
    }

    /// HighLevel answered 429: nobody on this location sends until
    /// `retry_after` has passed.
    pub fn note_429(&self, retry_after_secs: Option<u64>) {
        self.upstream_429.fetch_add(1, Ordering::Relaxed);
        // Bounded here too: a caller may not have read it through
        // `parse_retry_after`.
        let cap = u64::from(guest_support::waits::MAX_RETRY_AFTER_SECS);
        let wait = assumed_semantics(&self.limit, retry_after_secs.map(|s| s.min(cap)));
        let until = Instant::now() + wait;
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if window.blocked_until.is_none_or(|t| t < until) {
            window.blocked_until = Some(until);
        }
        drop(window);
        if let Some(shared) = self.shared.get() {
            let until_ms =
                now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
            if let Err(e) = shared.block_until(until_ms) {
                tracing::warn!(location = %self.location, error = %e, "could not tell the other hosts about the 429");
            }
        }
        tracing::warn!(location = %self.location, retry_in = ?wait, "HighLevel answered 429; every tenant on this location waits");
    }

    /// Its counters.
    pub fn stats(&self) -> LimiterStats {
        LimiterStats {
            admitted: self.admitted.load(Ordering::Relaxed),
            waited: self.waited.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            upstream_429: self.upstream_429.load(Ordering::Relaxed),
        }
    }
}

/// Milliseconds since the epoch: the shared window's clock, the same for
/// every process on the machine.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The key of `crm`'s app and location: one limiter per key in a process
/// ([`for_location`]), one budget per key in a shared store.
pub fn limiter_key(crm: &CrmConfig) -> String {
    let authority =
        connectzero_config::authority::authority_of_url(&crm.base_url).unwrap_or_default();
    format!("{authority} {} {}", crm.client_id, crm.location_id)
}

/// The limiter of `crm`'s app and location, shared by every caller in this
/// process; `None` when its limit is off. The first caller's limit is the
/// one kept (tenants of one location should agree; a differing one is
/// logged).
pub fn for_location(crm: &CrmConfig) -> Option<Arc<LocationLimiter>> {
    static LIMITERS: OnceLock<Mutex<HashMap<String, Arc<LocationLimiter>>>> = OnceLock::new();
    if crm.rate_limit.burst == 0 && crm.rate_limit.daily == 0 {
        return None;
    }
    let key = limiter_key(crm);
    let mut all = LIMITERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let limiter = all
        .entry(key)
        .or_insert_with(|| Arc::new(LocationLimiter::new(&crm.location_id, crm.rate_limit)))
        .clone();
    if limiter.limit != crm.rate_limit {
        tracing::warn!(location = %crm.location_id, kept = ?limiter.limit, ignored = ?crm.rate_limit, "tenants of one HighLevel location set different crm.rate_limit values; keeping the first");
    }
    Some(limiter)
}

/// `Retry-After` in whole seconds from a header value, at most an hour
/// (`guest_support::waits`).
pub fn parse_retry_after(value: Option<&str>) -> Option<u64> {
    guest_support::waits::retry_after_secs(value?).map(u64::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A limit of `burst` per `interval_ms` and `daily` a day.
    pub(crate) fn limit(burst: u32, interval_ms: u64, daily: u32) -> CrmRateLimit {
        CrmRateLimit {
            burst,
            interval_ms,
            daily,
        }
    }

    #[test]
    fn the_window_admits_the_burst_less_headroom_then_queues_in_order() {
        let limiter = LocationLimiter::new("loc", limit(10, 1000, 0));
        let t0 = Instant::now();
        let waits: Vec<Duration> = (0..12)
            .map(|_| match limiter.reserve(t0) {
                Admission::Go(wait) => wait,
                other => panic!("{other:?}"),
            })
            .collect();
        // 9 (10 less one for jitter) go at once, the next wait one interval.
        assert!(waits[..9].iter().all(Duration::is_zero), "{waits:?}");
        assert_eq!(waits[9..], [Duration::from_secs(1); 3]);
        // Never more than 9 starts in any one-second window.
        let window = limiter.window.lock().unwrap();
        let slots: Vec<Instant> = window.slots.iter().copied().collect();
        for (i, start) in slots.iter().enumerate() {
            let inside = slots[i..]
                .iter()
                .filter(|t| **t < *start + Duration::from_secs(1))
                .count();
            assert!(inside <= 9, "{inside} in one window");
        }
    }

    #[test]
    fn a_long_queue_is_refused_instead_of_waited_for() {
        let limiter = LocationLimiter::new("loc", limit(2, 8_000, 0));
        let t0 = Instant::now();
        assert_eq!(limiter.reserve(t0), Admission::Go(Duration::ZERO));
        assert_eq!(limiter.reserve(t0), Admission::Go(Duration::from_secs(8)));
        // The third would wait 16 s > MAX_WAIT.
        assert_eq!(
            limiter.reserve(t0),
            Admission::Refused(Duration::from_secs(16))
        );
    }

    proptest::proptest! {
        /// A hostile `Retry-After` (any header text, any number a caller
        /// passes) never panics and never blocks a location past an hour.
        #[test]
        fn no_retry_after_blocks_a_location_for_more_than_an_hour(
            header in proptest::option::of(".{0,30}"),
            secs in proptest::option::of(proptest::num::u64::ANY),
        ) {
            let limiter = LocationLimiter::new("loc", limit(100, 10_000, 0));
            limiter.note_429(parse_retry_after(header.as_deref()));
            limiter.note_429(secs);
            if let Admission::Refused(wait) = limiter.reserve(Instant::now()) {
                proptest::prop_assert!(wait <= Duration::from_secs(3600));
            }
        }
    }

    #[test]
    fn a_429_blocks_every_user_until_retry_after() {
        let limiter = LocationLimiter::new("loc", limit(100, 10_000, 0));
        limiter.note_429(Some(5));
        match limiter.reserve(Instant::now()) {
            Admission::Refused(wait) => {
                assert!(wait <= Duration::from_secs(5) && wait > Duration::from_secs(4))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(limiter.stats().upstream_429, 1);
        // Without Retry-After, one interval.
        assert_eq!(
            assumed_semantics(&limiter.limit, None),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn the_daily_limit_refuses_once_spent() {
        let limiter = LocationLimiter::new("loc", limit(1000, 1, 100));
        let t0 = Instant::now();
        // 100 less 1% = 99 per day.
        for i in 0..99u64 {
            let at = t0 + Duration::from_millis(i * 2);
            assert!(matches!(limiter.reserve(at), Admission::Go(_)), "{i}");
        }
        assert!(matches!(
            limiter.reserve(t0 + Duration::from_secs(1)),
            Admission::Refused(wait) if wait > Duration::from_secs(23 * 3600)
        ));
    }

    /// A store for one process's tests: a map behind a lock.
    #[derive(Debug, Default)]
    struct MemoryStore(Mutex<HashMap<String, SharedBudget>>);

    impl BudgetStore for MemoryStore {
        fn update(
            &self,
            key: &str,
            change: &mut dyn FnMut(&mut SharedBudget),
        ) -> Result<(), BudgetStoreError> {
            change(self.0.lock().unwrap().entry(key.to_string()).or_default());
            Ok(())
        }
    }

    /// Requests admitted at once by three limiters asking in turn.
    fn admitted_at_once(limiters: &[LocationLimiter]) -> usize {
        let t0 = Instant::now();
        (0..30)
            .flat_map(|_| limiters.iter())
            .filter(|l| l.reserve(t0) == Admission::Go(Duration::ZERO))
            .count()
    }

    #[test]
    fn limiters_sharing_a_store_admit_one_burst_between_them() {
        let store: Arc<dyn BudgetStore> = Arc::new(MemoryStore::default());
        let three = || -> Vec<LocationLimiter> {
            (0..3)
                .map(|_| LocationLimiter::new("loc", limit(10, 60_000, 0)))
                .collect()
        };
        // Alone, each admits its own burst less headroom: three times too many.
        assert_eq!(admitted_at_once(&three()), 27);
        let shared = three();
        for limiter in &shared {
            limiter.share_through(store.clone(), "crm app loc".into());
            assert!(limiter.is_shared());
        }
        assert_eq!(admitted_at_once(&shared), 9);
        // A 429 one of them got stops the others.
        let fresh = three();
        for limiter in &fresh {
            limiter.share_through(store.clone(), "crm app other".into());
        }
        fresh[0].note_429(Some(30));
        assert!(matches!(
            fresh[2].reserve(Instant::now()),
            Admission::Refused(wait) if wait > Duration::from_secs(29)
        ));
    }

    #[test]
    fn an_off_limit_admits_everything() {
        let limiter = LocationLimiter::new("loc", CrmRateLimit::OFF);
        let t0 = Instant::now();
        assert!((0..1000).all(|_| limiter.reserve(t0) == Admission::Go(Duration::ZERO)));
        assert!(counts_against_limit("/contacts/search"));
        assert!(!counts_against_limit("/oauth/token"));
    }
}
