//! What one tick did: the report the scheduler, the status page, the
//! metrics and the tests read. A leaf module, so the layers that watch
//! ticks need not depend on the pipeline that runs them.

use std::time::Duration;

/// What one tick did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Calls read from 3CX (including ones already handled).
    pub polled: usize,
    /// Calls posted to the CRM.
    pub posted: usize,
    /// Calls deliberately not posted.
    pub skipped: usize,
    /// Calls parked for an operator.
    pub parked: usize,
    /// Calls that failed for now and will be retried.
    pub retrying: usize,
    /// Calls already handled earlier.
    pub duplicates: usize,
    /// Calls another worker is handling.
    pub in_flight: usize,
    /// History rows 3CX sent that could not be read.
    pub rejected_rows: usize,
    /// Why the tick could not run at all, when it could not.
    pub error: Option<String>,
    /// Wait at least this long before the next tick (a 429's Retry-After).
    pub backoff: Option<Duration>,
    /// Recordings attached in this tick.
    pub attached: usize,
    /// Recording jobs that gave up in this tick.
    pub attach_gave_up: usize,
    /// Calls whose 3CX insights were written to the CRM in this tick.
    pub insights_written: usize,
    /// Insights jobs that gave up in this tick.
    pub insights_gave_up: usize,
    /// Trigger deliveries made in this tick (one per event and workflow).
    pub triggers_delivered: usize,
    /// `call.started` events queued in this tick.
    pub calls_started: usize,
    /// New calls left for the next tick (more than `max_calls_per_tick`).
    pub deferred: usize,
    /// Keys of calls past the retention horizon deleted in this tick.
    pub pruned: usize,
    /// The rows an idle tick read, when it found nothing to do
    /// (`tick-report.quiet`): what the scheduler's check of 3CX compares.
    pub quiet: Option<QuietWindow>,
    /// The pipeline did not run: 3CX showed nothing new since a quiet tick
    /// (`crate::scheduler`).
    pub probed: bool,
}

/// The history rows a quiet tick read (`window-rows` in WIT).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuietWindow {
    /// Where the poll's read began (ms).
    pub start_ms: i64,
    /// The `SegmentId` of every row read, ascending.
    pub segment_ids: Vec<i32>,
}
