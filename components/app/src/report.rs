//! A tick's report as the JSON `POST /tick` answers (field names as the
//! report's WIT fields, with `_`).

use crate::connectzero::pipeline::tick::TickReport;
use serde_json::{Value, json};

/// The report as JSON; `error` is the readable text of the stage error.
pub fn to_json(report: &TickReport) -> Value {
    json!({
        "polled": report.polled,
        "posted": report.posted,
        "skipped": report.skipped,
        "parked": report.parked,
        "retrying": report.retrying,
        "duplicates": report.duplicates,
        "in_flight": report.in_flight,
        "rejected_rows": report.rejected_rows,
        "deferred": report.deferred,
        "attached": report.attached,
        "attach_gave_up": report.attach_gave_up,
        "attach_pending": report.attach_pending,
        "triggers_delivered": report.triggers_delivered,
        "calls_started": report.calls_started,
        "retry_after_secs": report.retry_after_secs,
        "error": report.error.as_ref().map(crate::describe),
        "warnings": report.warnings,
    })
}
