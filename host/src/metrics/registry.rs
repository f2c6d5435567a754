//! The registry: every metric the host exports, with its name, help text
//! and buckets, registered once.

use super::{ErrorLabels, HistogramFamily, Metrics, QueueLabels, StageLabels, TenantLabel};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::AtomicU64;
/// Stage invocations take from tens of microseconds (dedup of an empty
/// batch) to seconds (a recording upload): 100 µs … ~26 s.
fn stage_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0001, 2.0, 19,
    ))
}

/// Hang-up to posted: the target is under 10 s; the overlap window and
/// retries can make it minutes. 0.25 s … 256 s.
fn end_to_end_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.25, 2.0, 11,
    ))
}

impl Metrics {
    pub(super) fn new() -> Self {
        let mut registry = Registry::with_prefix("connectzero");
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<TenantLabel, Counter>::default();
            registry.register(name, help, family.clone());
            family
        };
        let polled = counter(
            &mut registry,
            "calls_polled",
            "Calls read from 3CX call history, including ones handled before (the overlap window re-reads them)",
        );
        let posted = counter(
            &mut registry,
            "calls_posted",
            "Calls posted to the CRM conversation",
        );
        let skipped = counter(
            &mut registry,
            "calls_skipped",
            "Calls deliberately not posted (internal calls, no match under the skip policy)",
        );
        let duplicate = counter(
            &mut registry,
            "calls_duplicate",
            "Calls polled again after they were handled; the ledger kept them from posting twice",
        );
        let parked = counter(
            &mut registry,
            "calls_parked",
            "Calls parked for an operator (unreadable data or a permanent CRM refusal)",
        );
        let retried = counter(
            &mut registry,
            "calls_retried",
            "Call attempts that failed for now and were released to retry",
        );
        let stage_seconds = HistogramFamily::<StageLabels>::new_with_constructor(stage_histogram);
        registry.register(
            "stage_duration_seconds",
            "Duration of one stage invocation (a whole batch), by stage and WIT function",
            stage_seconds.clone(),
        );
        let end_to_end_seconds =
            HistogramFamily::<TenantLabel>::new_with_constructor(end_to_end_histogram);
        registry.register(
            "call_end_to_posted_seconds",
            "Time from the end of a call (3CX) to its message being posted in the CRM",
            end_to_end_seconds.clone(),
        );
        let attached = counter(
            &mut registry,
            "recordings_attached",
            "Recordings streamed to the CRM and attached to their call message",
        );
        let attach_retries = counter(
            &mut registry,
            "attach_retries",
            "Recording attempts that will be retried (not final in 3CX yet, or a transient error)",
        );
        let attach_gave_up = counter(
            &mut registry,
            "attach_gave_up",
            "Recordings given up after the recording window; the call stays logged without audio",
        );
        let triggers_delivered = counter(
            &mut registry,
            "triggers_delivered",
            "Workflow trigger deliveries (one per event and subscribed workflow)",
        );
        let upstream_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Error answers from 3CX and the CRM by HTTP status (429: rate limited; network: no answer)",
            upstream_errors.clone(),
        );
        let queue_depth = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "queue_depth",
            "Jobs waiting in a durable queue (attach: recordings, trigger: workflow events), read at scrape time",
            queue_depth.clone(),
        );
        let calls_pending = Family::<TenantLabel, Gauge>::default();
        registry.register(
            "calls_pending",
            "Calls waiting to be retried after the tenant's last tick",
            calls_pending.clone(),
        );
        let open_incidents = Family::<TenantLabel, Gauge>::default();
        registry.register(
            "diagnostics_open_incidents",
            "Diagnostics checks failing now (one incident per failing check; the status page's Health section names them), read at scrape time",
            open_incidents.clone(),
        );
        let needs_reauthorisation = Family::<TenantLabel, Gauge>::default();
        registry.register(
            "grant_needs_reauthorisation",
            "1 while the tenant's HighLevel grant needs re-authorisation (its calls wait; open /t/<tenant>/oauth/install), read at scrape time",
            needs_reauthorisation.clone(),
        );
        let last_success = Family::<TenantLabel, Gauge>::default();
        registry.register(
            "last_successful_tick_timestamp_seconds",
            "Unix time of the tenant's last tick that ran without error in this process (0: none yet)",
            last_success.clone(),
        );
        let call_lag = Family::<TenantLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "call_lag_seconds",
            "Hang-up (3CX end time) to posted of the tenant's newest posted call",
            call_lag.clone(),
        );
        Self {
            needs_reauthorisation,
            last_success,
            call_lag,
            open_incidents,
            registry,
            polled,
            posted,
            skipped,
            duplicate,
            parked,
            retried,
            stage_seconds,
            end_to_end_seconds,
            attached,
            attach_retries,
            attach_gave_up,
            triggers_delivered,
            upstream_errors,
            queue_depth,
            calls_pending,
            services: RwLock::new(HashMap::new()),
        }
    }
}
