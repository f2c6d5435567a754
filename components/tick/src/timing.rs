//! How long each stage invocation takes, collected for the report (the
//! host turns them into its `stage_duration_seconds` metric).

use crate::exports::connectzero::pipeline::tick::{StageTiming, TickReport};
use std::cell::RefCell;

thread_local! {
    /// Timings of the export call in progress (a component instance runs
    /// one call at a time).
    static TIMINGS: RefCell<Vec<StageTiming>> = const { RefCell::new(Vec::new()) };
}

/// Run `call`, the invocation of `stage`'s `function`, and note its time.
pub fn time<T>(stage: &str, function: &str, call: impl FnOnce() -> T) -> T {
    let started = now();
    let answer = call();
    let nanos = now().saturating_sub(started);
    TIMINGS.with(|t| {
        t.borrow_mut().push(StageTiming {
            stage: stage.to_string(),
            function: function.to_string(),
            nanos,
        })
    });
    answer
}

/// Move the timings noted so far into `report`.
pub fn drain_into(report: &mut TickReport) {
    TIMINGS.with(|t| report.timings.append(&mut t.borrow_mut()));
}

#[cfg(target_arch = "wasm32")]
fn now() -> u64 {
    guest_support::wasi::clocks::monotonic_clock::now()
}

#[cfg(not(target_arch = "wasm32"))]
fn now() -> u64 {
    0
}
