//! What a backfill tells its operator: the summary summed over its chunks
//! and the progress display while it runs.

use super::{Window, rfc3339};
use crate::pipeline::TickReport;
use indicatif::{HumanDuration, ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;
/// What a backfill did, summed over its chunks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillSummary {
    /// The window.
    pub window: Option<Window>,
    /// Where this run started (later than `since` when it resumed).
    pub started_at_ms: i64,
    /// Chunks worked.
    pub chunks: usize,
    /// Calls read from 3CX.
    pub read: usize,
    /// Calls posted by this run.
    pub posted: usize,
    /// Calls deliberately not posted.
    pub skipped: usize,
    /// Calls parked for an operator (`connectzero replay`).
    pub parked: usize,
    /// Calls handled before (by an earlier run or the live host).
    pub already_handled: usize,
    /// Calls another worker (the live host) was handling.
    pub in_flight: usize,
    /// Unreadable 3CX rows, parked.
    pub rejected_rows: usize,
    /// Recordings attached while the run worked the queue.
    pub attached: usize,
    /// Trigger deliveries made while the run worked the queue.
    pub triggers_delivered: usize,
}

impl BackfillSummary {
    pub(super) fn add(&mut self, report: &TickReport) {
        self.read += report.polled;
        self.posted += report.posted;
        self.skipped += report.skipped;
        self.parked += report.parked;
        self.already_handled += report.duplicates;
        self.in_flight += report.in_flight;
        self.rejected_rows += report.rejected_rows;
    }

    fn counts(&self) -> String {
        format!(
            "{} posted, {} skipped, {} parked, {} already handled, {} in flight elsewhere",
            self.posted, self.skipped, self.parked, self.already_handled, self.in_flight
        )
    }

    /// The closing lines printed on stdout.
    pub fn render(&self, tenant: &str) -> String {
        let Some(window) = self.window else {
            return String::new();
        };
        let mut text = format!(
            "backfill of {tenant} from {} to {}",
            rfc3339(window.since_ms),
            rfc3339(window.until_ms)
        );
        if self.started_at_ms > window.since_ms {
            text.push_str(&format!(" (resumed at {})", rfc3339(self.started_at_ms)));
        }
        text.push_str(&format!(
            ": {} chunks, {} calls read: {}",
            self.chunks,
            self.read,
            self.counts()
        ));
        if self.rejected_rows > 0 {
            text.push_str(&format!(
                "; {} unreadable 3CX rows parked",
                self.rejected_rows
            ));
        }
        text.push('\n');
        if self.parked > 0 {
            text.push_str(
                "parked calls are in the call log; after fixing the cause, `connectzero replay --call KEY` posts one\n",
            );
        }
        if self.in_flight > 0 {
            text.push_str("calls in flight elsewhere are being handled by another worker (the live host); nothing is lost\n");
        }
        text
    }
}

/// The bar on a terminal: chunks done, ETA and the counts so far.
const BAR_TEMPLATE: &str =
    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} chunks · ETA {eta} · {msg}";

/// Progress display: a bar with an ETA on a terminal, else one line per
/// chunk on stderr (logs, CI, a test reading the output).
pub(super) struct Progress {
    bar: ProgressBar,
    lines: bool,
}

impl Progress {
    pub(super) fn new(chunks: usize) -> Self {
        let len = chunks as u64;
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template(BAR_TEMPLATE)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            Self { bar, lines: false }
        } else {
            // Hidden, but it still keeps position and the ETA estimate.
            let bar = ProgressBar::hidden();
            bar.set_length(len);
            Self { bar, lines: true }
        }
    }

    pub(super) fn chunk_done(&self, tenant: &str, end_ms: i64, summary: &BackfillSummary) {
        self.bar.inc(1);
        // Short, so the bar keeps its width on an 80-column terminal.
        self.bar.set_message(format!(
            "{} posted, {} parked, {} done before",
            summary.posted, summary.parked, summary.already_handled
        ));
        if self.lines {
            eprintln!(
                "backfill {tenant}: chunk {}/{} done (up to {}): {}; ETA {}",
                self.bar.position(),
                self.bar.length().unwrap_or(0),
                rfc3339(end_ms),
                summary.counts(),
                HumanDuration(self.bar.eta())
            );
        }
    }

    pub(super) fn note(&self, text: &str) {
        if self.lines {
            eprintln!("{text}");
        } else {
            self.bar.println(text);
        }
    }

    pub(super) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn the_progress_bar_template_is_valid() {
        assert!(ProgressStyle::with_template(BAR_TEMPLATE).is_ok());
    }
}
