//! # tick: one pipeline tick, for both runtimes
//!
//! The orchestration of the stages — poll → dedup → match → post → call
//! log → ledger → attach → trigger — written once. wac composes it with
//! the unchanged stage components (`tools/compose`): the bundled host calls
//! the composed tick directly and provides `credentials`, `directory` and
//! `call-log` natively; the Spin app calls the same composition from
//! `POST /tick` with provider components plugged into those imports.
//!
//! - [`options`]: the tick's settings (policy and route from JSON).
//! - [`history`]: the calls 3CX finished: claim, match, post, settle.
//! - [`followups`]: recordings, workflow triggers, `call.started`, and
//!   operators' copies of calls onto other contacts with the number.
//! - [`events`]: trigger events and the calls behind active calls.
//! - [`insights`]: 3CX's own call insights: which calls get them, and
//!   `call.insights` once they are written.
//! - [`facts`]: what routing and the logging policy look at in a call.
//!
//! It depends on `guest-support` and on the stage interfaces its world
//! imports, plugged in by composition: never on a stage's crate, the host
//! or the runtime.

pub mod events;
pub mod facts;
pub mod followups;
pub mod history;
pub mod insights;
pub mod options;
pub mod timing;

use guest_support::bindings::connectzero::pipeline::types::StageError;

wit_bindgen::generate!({
    path: "../../wit",
    world: "connectzero:pipeline/tick-stage",
    with: {
        "connectzero:pipeline/types@0.1.0": guest_support::bindings::connectzero::pipeline::types,
        "connectzero:matcher/types@0.1.0": guest_support::bindings::connectzero::matcher::types,
        "connectzero:matcher/matcher@0.1.0": generate,
        "wasi:keyvalue/store@0.2.0-draft2": guest_support::bindings::wasi::keyvalue::store,
        "wasi:keyvalue/atomics@0.2.0-draft2": guest_support::bindings::wasi::keyvalue::atomics,
    },
});

// The matcher reads only its part of the tenant's settings.
guest_support::matcher_settings_conversion!(
    guest_support::bindings::connectzero::pipeline::types;
    connectzero::matcher::matcher
);

use exports::connectzero::pipeline::tick::{CallResult, Guest, TickOptions, TickReport, Window};
use guest_support::bindings::connectzero::pipeline::types::{Call, CopyRequest, TenantSettings};

struct Tick;

impl Guest for Tick {
    fn run(options: TickOptions) -> TickReport {
        let mut report = report();
        if let Err(error) = layout_ready() {
            fail(&mut report, error);
            return report;
        }
        let options = options::Options::parse(options);
        // History first: it is what must not wait, and a 3CX that fails
        // shows on the history read (active calls are a nicety the tick
        // goes on without). Unusable filters stop both, never the queues
        // of calls already posted.
        let settled = match options.usable() {
            Ok(()) => {
                // The history read lists the calls in progress first;
                // when it failed, `calls_started` asks 3CX itself.
                let (active, settled) = match history::sync(&options, &mut report) {
                    Ok(synced) => (Some(synced.active), synced.settled),
                    Err(error) => {
                        fail(&mut report, error);
                        (None, None)
                    }
                };
                followups::calls_started(&options, active, &mut report);
                settled
            }
            Err(error) => {
                fail(&mut report, error);
                None
            }
        };
        let worked = followups::work_queues(&options, &mut report);
        report.quiet = settled.filter(|_| !worked && did_nothing(&report));
        timing::drain_into(&mut report);
        report
    }

    fn fetch_window(settings: TenantSettings, start: i64, end: i64) -> Result<Window, StageError> {
        // Not timed here: there is no report to carry it; the host times
        // the whole call.
        let batch = connectzero::pipeline::poll::fetch_window(&settings, start, end)?;
        Ok(Window {
            calls: batch.calls,
            unreadable: batch.rejected,
        })
    }

    fn run_calls(
        options: TickOptions,
        calls: Vec<Call>,
        triggers: bool,
    ) -> (TickReport, Vec<CallResult>) {
        let mut report = report();
        let options = options::Options::parse(options);
        let results = match layout_ready().and_then(|()| options.usable()) {
            Ok(()) => history::run_calls(&options, calls, triggers, &mut report),
            Err(error) => {
                let results = history::all_retrying(&calls, &error);
                report.retrying += history::count(calls.len());
                fail(&mut report, error);
                results
            }
        };
        timing::drain_into(&mut report);
        (report, results)
    }

    fn work_queues(options: TickOptions) -> TickReport {
        let mut report = report();
        if let Err(error) = layout_ready() {
            fail(&mut report, error);
            return report;
        }
        let _ = followups::work_queues(&options::Options::parse(options), &mut report);
        timing::drain_into(&mut report);
        report
    }

    fn post_copies(settings: TenantSettings, requests: Vec<CopyRequest>) -> TickReport {
        let mut report = report();
        if let Err(error) = layout_ready() {
            fail(&mut report, error);
            return report;
        }
        followups::copies(&settings, &requests, &mut report);
        timing::drain_into(&mut report);
        report
    }
}

/// The tenant's key-value layout is one this release works on (migrated
/// first when older: `guest_support::layout`). Checked before anything is
/// read or claimed.
fn layout_ready() -> Result<(), StageError> {
    guest_support::layout::check(&guest_support::kv::open()?)
}

/// Whether the tick changed nothing and found nothing due: every call it
/// read was handled before, no follow-up ran, nothing went wrong.
fn did_nothing(r: &TickReport) -> bool {
    let counts = [
        r.posted,
        r.skipped,
        r.parked,
        r.retrying,
        r.in_flight,
        r.rejected_rows,
        r.deferred,
        r.attached,
        r.attach_gave_up,
        r.attach_pending,
        r.insights_written,
        r.insights_gave_up,
        r.insights_pending,
        r.triggers_delivered,
        r.calls_started,
        r.copies_settled,
        r.pruned,
    ];
    counts.iter().all(|&n| n == 0)
        && r.error.is_none()
        && r.retry_after_secs.is_none()
        && r.warnings.is_empty()
}

/// An empty report.
pub fn report() -> TickReport {
    TickReport {
        polled: 0,
        posted: 0,
        skipped: 0,
        parked: 0,
        retrying: 0,
        duplicates: 0,
        in_flight: 0,
        rejected_rows: 0,
        deferred: 0,
        error: None,
        retry_after_secs: None,
        attached: 0,
        attach_gave_up: 0,
        attach_pending: 0,
        insights_written: 0,
        insights_gave_up: 0,
        insights_pending: 0,
        triggers_delivered: 0,
        calls_started: 0,
        pruned: 0,
        copies_settled: 0,
        warnings: Vec::new(),
        timings: Vec::new(),
        quiet: None,
    }
}

/// Note in `report` that the tick could not run (or its history part).
pub fn fail(report: &mut TickReport, error: StageError) {
    note_rate_limit(report, &error);
    report.error = Some(error);
}

/// Keep the longest Retry-After a rate limit asked for.
pub fn note_rate_limit(report: &mut TickReport, error: &StageError) {
    if let StageError::RateLimited(secs) = error {
        report.retry_after_secs = Some(report.retry_after_secs.map_or(*secs, |s| s.max(*secs)));
    }
}

pub use guest_support::api::describe;

/// Whether a failed call is parked (it can never succeed as it is: a 4xx
/// the CRM will always give, unreadable data) rather than retried (network,
/// 5xx, 408, 429, refused credentials).
pub fn parks(error: &StageError) -> bool {
    match error {
        StageError::Upstream(e) => (400..500).contains(&e.status) && e.status != 408,
        StageError::InvalidData(_) | StageError::NotImplemented(_) => true,
        _ => false,
    }
}

// Exported only when building the component (see the stage crates).
#[cfg(target_arch = "wasm32")]
export!(Tick);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_park_and_transient_ones_retry() {
        use guest_support::{Service, UpstreamError};
        let upstream = |status| {
            StageError::Upstream(UpstreamError {
                service: Service::Crm,
                status,
                message: String::new(),
            })
        };
        assert!(parks(&upstream(422)));
        assert!(!parks(&upstream(408)));
        assert!(!parks(&upstream(503)));
        assert!(!parks(&StageError::RateLimited(3)));
        assert!(parks(&StageError::InvalidData("x".into())));
    }

    #[test]
    fn the_longest_retry_after_wins() {
        let mut r = report();
        note_rate_limit(&mut r, &StageError::RateLimited(3));
        note_rate_limit(&mut r, &StageError::RateLimited(9));
        note_rate_limit(&mut r, &StageError::RateLimited(5));
        assert_eq!(r.retry_after_secs, Some(9));
    }
}
