//! What the runtime reports as it works (ticks, posted calls, stage
//! timings, upstream answers), to whoever listens. The runtime only
//! reports; the operator layer decides what a report means
//! (`connectzero::metrics` turns them into Prometheus series). A leaf module:
//! the capabilities and the pipeline report through it without depending
//! on the metrics.
//!
//! One process-wide sink, like the one Prometheus registry it feeds: the
//! binary, the status page's router and the test bed install the metrics
//! ([`install`]); until one is installed reports go nowhere.

use crate::report::TickReport;
use connectzero_stages::Stage;
use std::sync::OnceLock;
use std::time::Instant;

/// Receives the runtime's reports. Every method has a do-nothing default.
pub trait Telemetry: Send + Sync {
    /// `tenant`'s 3CX and CRM base URLs, so answers from them can be told
    /// apart.
    fn tenant_services(&self, _pbx_base_url: &str, _crm_base_url: &str) {}
    /// One tick of `tenant` is over.
    fn tick(&self, _tenant: &str, _report: &TickReport) {}
    /// A call of `tenant` that ended at `call_end_ms` was posted.
    fn call_posted(&self, _tenant: &str, _call_end_ms: i64) {}
    /// A recording job of `tenant` will be retried.
    fn attach_retry(&self, _tenant: &str) {}
    /// One invocation of `stage`'s `function` took `seconds`.
    fn stage_invoked(&self, _stage: &str, _function: &str, _seconds: f64) {}
    /// An HTTP answer (`None`: no answer) came from `authority` (`host:port`).
    fn http_answer(&self, _authority: &str, _status: Option<u16>) {}
}

/// The sink reports go to until one is installed.
struct Nowhere;

impl Telemetry for Nowhere {}

static SINK: OnceLock<&'static dyn Telemetry> = OnceLock::new();

/// Send every report of this process to `sink` from now on. The first
/// installation wins; installing again is harmless.
pub fn install(sink: &'static dyn Telemetry) {
    let _ = SINK.set(sink);
}

/// Where reports go.
pub fn sink() -> &'static dyn Telemetry {
    SINK.get().copied().unwrap_or(&Nowhere)
}

/// Reports a stage invocation's duration when dropped.
#[must_use = "the duration is reported when the timer is dropped"]
pub struct StageTimer {
    sink: &'static dyn Telemetry,
    stage: Stage,
    function: &'static str,
    started: Instant,
}

impl Drop for StageTimer {
    fn drop(&mut self) {
        self.sink.stage_invoked(
            self.stage.name(),
            self.function,
            self.started.elapsed().as_secs_f64(),
        );
    }
}

/// Time one invocation of `stage`'s WIT `function` until the guard drops.
pub fn stage_timer(stage: Stage, function: &'static str) -> StageTimer {
    StageTimer {
        sink: sink(),
        stage,
        function,
        started: Instant::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Remembers the stage reports it gets.
    struct Recorder(Mutex<Vec<(String, String)>>);

    impl Telemetry for Recorder {
        fn stage_invoked(&self, stage: &str, function: &str, _seconds: f64) {
            self.0
                .lock()
                .unwrap()
                .push((stage.to_string(), function.to_string()));
        }
    }

    #[test]
    fn a_stage_timer_reports_its_stage_and_function_once_when_dropped() {
        // Not installed process-wide: another test may install the metrics.
        static RECORDER: Recorder = Recorder(Mutex::new(Vec::new()));
        let timer = StageTimer {
            sink: &RECORDER,
            stage: Stage::Match,
            function: "match-calls",
            started: Instant::now(),
        };
        assert!(RECORDER.0.lock().unwrap().is_empty());
        drop(timer);
        assert_eq!(
            *RECORDER.0.lock().unwrap(),
            [("match".to_string(), "match-calls".to_string())]
        );
    }
}
