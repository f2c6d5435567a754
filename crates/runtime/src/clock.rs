//! The time the runtime tells components and its own retention: the wall
//! clock, moved by a fixed amount only by `connectzero bench --scenario
//! retention`, which plays 90 days in minutes, and by the upgrade test,
//! which resumes a previous release's database at the time it was made.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Wall time plus an offset shared by every store of one [`crate::engine::Runtime`].
#[derive(Clone, Debug, Default)]
pub struct Clock {
    ahead_ms: Arc<AtomicI64>,
}

impl Clock {
    /// Now, in ms since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis() + self.ahead_ms.load(Ordering::Relaxed)
    }

    /// Run `by` ahead of the wall clock from now on (the retention
    /// benchmark's simulated days).
    pub fn run_ahead(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.ahead_ms.fetch_add(by, Ordering::Relaxed);
    }

    /// Read `at_ms` now and run on from there, however far that is from
    /// the wall clock (the upgrade test resumes a fixture, made whenever
    /// its release was current, a few minutes after it stopped).
    pub fn resume_at(&self, at_ms: i64) {
        let offset = at_ms - chrono::Utc::now().timestamp_millis();
        self.ahead_ms.store(offset, Ordering::Relaxed);
    }
}

impl wasmtime_wasi::HostWallClock for Clock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.now_ms()).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime_wasi::HostWallClock;

    #[test]
    fn a_clock_run_ahead_tells_every_copy_the_later_time() {
        let clock = Clock::default();
        let copy = clock.clone();
        let before = copy.now_ms();
        clock.run_ahead(Duration::from_secs(86_400));
        assert!(copy.now_ms() >= before + 86_400_000);
        assert!(HostWallClock::now(&copy).as_millis() as i64 >= before + 86_400_000);
    }

    #[test]
    fn a_resumed_clock_reads_the_time_it_resumed_at_and_runs_on() {
        let clock = Clock::default();
        let long_ago = chrono::Utc::now().timestamp_millis() - 90 * 86_400_000;
        clock.run_ahead(Duration::from_secs(3_600));
        clock.resume_at(long_ago);
        let read = clock.clone().now_ms();
        // Within the time the two statements took, not 90 days and an hour off.
        assert!((long_ago..long_ago + 60_000).contains(&read), "{read}");
    }
}
