//! One invocation's time allowance: how long a component may take, on the
//! wall clock, not counting the time it waits for 3CX's and HighLevel's
//! answers and for the location's rate limiter.
//!
//! Why the wall clock: a component that sleeps (`wasi:clocks` pollables)
//! or spins holds its tenant's tick, its pool slot and, with the
//! sleeps, never reaches an epoch check at all. Counting only running wasm
//! would let a replacement matcher that alternates sleeping and spinning
//! run for ever.
//!
//! Why credit upstream waits: a composed tick of hundreds of calls spends
//! most of its time waiting for answers and for its rate budget. Those
//! waits are bounded elsewhere (request timeouts, the limiter's own cap)
//! and are not the component's doing, so they do not count.
//!
//! What is credited, exactly: time during which the component is blocked
//! in a host call *and* the host is working for it, each piece of work
//! holding a [`Credited`] guard: an upstream exchange (an outbound request
//! until its answer's head, and its body while the host waits for the
//! next frame; a directory search; a token fetch; the rate limiter) or
//! the host's own storage work (key-value and call-log writes, which wait
//! on the database). A guest that sleeps while nothing is in flight, or
//! runs while a request is in flight, is not credited. Whatever the
//! credit, no invocation outlives [`MAX_INVOCATION_TIME`].
//!
//! Two mechanisms read the same account, because neither sees every case:
//! the engine's epoch callback stops wasm that runs past the allowance
//! (and yields to the executor every [`YIELD_EVERY`] so other tenants keep
//! running meanwhile), and `engine::within_allowance` races the invocation with
//! a watchdog that cancels it while it is parked in a host call (a sleep)
//! past the allowance. The account restarts with every invocation, so a
//! warm instance gets its full allowance per call.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// No invocation outlives this, whatever it waited for. A tick works a
/// bounded batch of calls (`max_calls_per_tick`), so even one spending
/// its location's whole rate budget ends well within it.
pub const MAX_INVOCATION_TIME: Duration = Duration::from_secs(15 * 60);

/// Running wasm yields to the async executor at least this often, so a
/// spinning component holds a worker thread no longer than this at a
/// time.
pub const YIELD_EVERY: Duration = Duration::from_millis(100);

/// The account of one store's invocations. Cheap to clone: clones share it.
#[derive(Clone, Debug)]
pub struct Allowance {
    limit: Duration,
    account: Arc<Mutex<Account>>,
}

#[derive(Debug)]
struct Account {
    started: Instant,
    /// Credited upstream waiting, closed stretches only.
    credited: Duration,
    /// Who runs now, innermost last: `true` for the host (the component
    /// called it), `false` for wasm (the host called it: the invocation
    /// itself, or a host call's `cabi_realloc`). wasmtime's call hook
    /// fires for libcalls too, so a flag would be cleared by a memory
    /// growth inside a host call's realloc.
    frames: Vec<bool>,
    /// Open credited work.
    waits: u32,
    /// Start of the stretch being credited now (in a host call with an
    /// exchange open).
    crediting_since: Option<Instant>,
}

impl Account {
    /// Close or open the credited stretch after `in_host` or `waits`
    /// changed.
    fn settle(&mut self, now: Instant) {
        let crediting = self.in_host() && self.waits > 0;
        match (self.crediting_since, crediting) {
            (Some(since), false) => {
                self.credited += now.saturating_duration_since(since);
                self.crediting_since = None;
            }
            (None, true) => self.crediting_since = Some(now),
            _ => {}
        }
    }

    fn in_host(&self) -> bool {
        self.frames.last().copied().unwrap_or(false)
    }

    fn restart(&mut self, now: Instant) {
        self.started = now;
        self.credited = Duration::ZERO;
        self.crediting_since = None;
        // Left over only by an invocation cancelled mid-call.
        self.frames.clear();
        self.settle(now);
    }

    fn host_entered(&mut self, now: Instant) {
        self.frames.push(true);
        self.settle(now);
    }

    fn host_left(&mut self, now: Instant) {
        self.frames.pop();
        self.settle(now);
    }

    fn wasm_entered(&mut self, now: Instant) {
        self.frames.push(false);
        self.settle(now);
    }

    fn wasm_left(&mut self, now: Instant) {
        self.frames.pop();
        self.settle(now);
    }

    fn wait_opened(&mut self, now: Instant) {
        self.waits += 1;
        self.settle(now);
    }

    fn wait_closed(&mut self, now: Instant) {
        self.waits = self.waits.saturating_sub(1);
        self.settle(now);
    }

    /// What is left of `limit` at `now`, within the ceiling.
    fn remaining(&self, limit: Duration, now: Instant) -> Duration {
        let to_ceiling =
            MAX_INVOCATION_TIME.saturating_sub(now.saturating_duration_since(self.started));
        limit.saturating_sub(self.used(now)).min(to_ceiling)
    }

    fn used(&self, now: Instant) -> Duration {
        let open = self
            .crediting_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        now.saturating_duration_since(self.started)
            .saturating_sub(self.credited)
            .saturating_sub(open)
    }
}

/// Why an invocation was stopped.
#[derive(Debug, thiserror::Error)]
#[error(
    "the component was stopped after using its time allowance ({limit:?} not waiting for 3CX or HighLevel, at most {ceiling:?} in all); its work is retried"
)]
pub struct AllowanceSpent {
    /// The allowance it had.
    pub limit: Duration,
    /// The ceiling on the whole invocation.
    pub ceiling: Duration,
}

impl Allowance {
    /// A fresh account granting `limit` per invocation.
    pub fn new(limit: Duration) -> Self {
        Self {
            limit,
            account: Arc::new(Mutex::new(Account {
                started: Instant::now(),
                credited: Duration::ZERO,
                frames: Vec::new(),
                waits: 0,
                crediting_since: None,
            })),
        }
    }

    fn account(&self) -> std::sync::MutexGuard<'_, Account> {
        self.account.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start a new invocation's account: nothing used, nothing credited.
    /// Exchanges still open from an earlier call (an answer not read to
    /// its end) stay open.
    pub fn restart(&self) {
        self.account().restart(Instant::now());
    }

    /// The component called into the host (the store's call hook).
    pub fn entering_host(&self) {
        self.account().host_entered(Instant::now());
    }

    /// The host call returned to the component.
    pub fn leaving_host(&self) {
        self.account().host_left(Instant::now());
    }

    /// The host called into the component (the invocation, or a host
    /// call's `cabi_realloc`).
    pub fn entering_wasm(&self) {
        self.account().wasm_entered(Instant::now());
    }

    /// The component returned to the host.
    pub fn leaving_wasm(&self) {
        self.account().wasm_left(Instant::now());
    }

    /// The host works for the component (an upstream exchange, a wait for
    /// the rate limiter, storage work) until the returned guard is
    /// dropped; the component's time blocked meanwhile is credited.
    pub fn credited(&self) -> Credited {
        self.account().wait_opened(Instant::now());
        Credited {
            allowance: self.clone(),
        }
    }

    /// What this invocation has used of its allowance so far.
    pub fn used(&self) -> Duration {
        self.account().used(Instant::now())
    }

    /// What is left of the allowance; zero once it is spent or the
    /// invocation reached [`MAX_INVOCATION_TIME`].
    pub fn remaining(&self) -> Duration {
        self.account().remaining(self.limit, Instant::now())
    }

    /// Whether the invocation has spent its allowance.
    pub fn is_spent(&self) -> bool {
        self.remaining().is_zero()
    }

    /// Why the invocation was stopped.
    pub fn spent(&self) -> AllowanceSpent {
        AllowanceSpent {
            limit: self.limit,
            ceiling: MAX_INVOCATION_TIME,
        }
    }

    /// Completes once the allowance is spent; the watchdog of
    /// [`within_allowance`]. Sleeps until the earliest moment that could
    /// happen, then looks again (credited waiting pushes it back).
    pub async fn spent_wait(&self) {
        loop {
            let remaining = self.remaining();
            if remaining.is_zero() {
                return;
            }
            tokio::time::sleep(remaining).await;
        }
    }
}

/// Work the host does for the component; credited while the component
/// waits on it.
#[derive(Debug)]
pub struct Credited {
    allowance: Allowance,
}

impl Drop for Credited {
    fn drop(&mut self) {
        self.allowance.account().wait_closed(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The account is driven with made-up instants, so these tests check
    // what it credits, not how long anything took.

    fn account(at: Instant) -> Account {
        let mut account = Account {
            started: at,
            credited: Duration::ZERO,
            frames: Vec::new(),
            waits: 0,
            crediting_since: None,
        };
        // The invocation: the host called the component.
        account.wasm_entered(at);
        account
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn waiting_in_a_host_call_on_an_open_exchange_is_credited() {
        let t0 = Instant::now();
        let mut a = account(t0);
        a.wait_opened(t0 + ms(10));
        a.host_entered(t0 + ms(20));
        // While credited, the used time does not grow.
        assert_eq!(a.used(t0 + ms(500)), ms(20));
        a.host_left(t0 + ms(520));
        a.wait_closed(t0 + ms(530));
        assert_eq!(a.used(t0 + ms(600)), ms(100));
    }

    #[test]
    fn sleeping_with_nothing_in_flight_is_not_credited() {
        let t0 = Instant::now();
        let mut a = account(t0);
        a.host_entered(t0 + ms(10));
        a.host_left(t0 + ms(510));
        assert_eq!(a.used(t0 + ms(510)), ms(510));
    }

    #[test]
    fn running_while_an_exchange_is_open_is_not_credited() {
        let t0 = Instant::now();
        let mut a = account(t0);
        a.wait_opened(t0);
        assert_eq!(a.used(t0 + ms(300)), ms(300));
        // Overlapping exchanges are credited once, not once each.
        a.wait_opened(t0 + ms(300));
        a.host_entered(t0 + ms(300));
        a.wait_closed(t0 + ms(400));
        a.wait_closed(t0 + ms(500));
        assert_eq!(a.used(t0 + ms(600)), ms(400));
    }

    #[test]
    fn wasm_the_host_calls_back_is_not_credited_and_its_libcalls_do_not_end_the_wait() {
        let t0 = Instant::now();
        let mut a = account(t0);
        a.host_entered(t0);
        a.wait_opened(t0);
        // The host call runs the component's realloc (wasm), which grows
        // its memory (a libcall: the hook says "host").
        a.wasm_entered(t0 + ms(100));
        a.host_entered(t0 + ms(100));
        a.host_left(t0 + ms(100));
        a.wasm_left(t0 + ms(300));
        // Back in the host call, still waiting: credited again.
        assert_eq!(a.used(t0 + ms(600)), ms(200));
        a.wait_closed(t0 + ms(600));
        a.host_left(t0 + ms(600));
        assert_eq!(a.used(t0 + ms(700)), ms(300));
    }

    #[test]
    fn each_invocation_starts_with_the_whole_allowance() {
        let t0 = Instant::now();
        let mut a = account(t0);
        a.host_entered(t0);
        a.wait_opened(t0);
        a.wait_closed(t0 + ms(100));
        a.host_left(t0 + ms(100));
        assert_eq!(a.used(t0 + ms(200)), ms(100));
        a.restart(t0 + ms(200));
        assert_eq!(a.used(t0 + ms(250)), ms(50));
        assert_eq!(a.credited, Duration::ZERO);
    }

    #[test]
    fn a_restart_inside_an_open_wait_keeps_crediting_it() {
        let t0 = Instant::now();
        let mut a = account(t0);
        a.wait_opened(t0);
        a.restart(t0 + ms(100));
        a.wasm_entered(t0 + ms(100));
        a.host_entered(t0 + ms(100));
        assert_eq!(a.used(t0 + ms(400)), Duration::ZERO);
    }

    #[test]
    fn the_ceiling_holds_whatever_was_credited() {
        let allowance = Allowance::new(Duration::from_secs(30));
        let mut a = allowance.account();
        let t0 = a.started;
        a.wasm_entered(t0);
        a.wait_opened(t0);
        a.host_entered(t0);
        assert_eq!(
            a.remaining(allowance.limit, t0 + ms(1000)),
            Duration::from_secs(30)
        );
        assert_eq!(
            a.remaining(allowance.limit, t0 + MAX_INVOCATION_TIME),
            Duration::ZERO
        );
    }

    #[tokio::test]
    async fn the_watchdog_fires_once_the_allowance_is_spent() {
        let allowance = Allowance::new(Duration::from_millis(1));
        // Bounded: it fires after 1 ms of real time.
        tokio::time::timeout(Duration::from_secs(60), allowance.spent_wait())
            .await
            .expect("the watchdog fired");
        assert!(allowance.is_spent());
    }
}
