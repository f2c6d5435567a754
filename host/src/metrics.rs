//! Prometheus metrics (`GET /metrics`).
//!
//! One process-wide registry, so the pipeline records with a one-line call
//! wherever something happens instead of threading a handle through every
//! stage. Every metric is named `connectzero_…`; `docs/OPERATIONS.md`
//! lists them with what to alert on.
//!
//! Labels are bounded: tenant ids (from the configuration), stage and
//! function names (fixed), services (`3cx`, `crm`) and HTTP status codes.
//! Call keys and phone numbers are never labels.

use crate::engine::Stage;
use crate::report::TickReport;
use crate::storage::Storage;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

/// `Content-Type` of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of per-tenant counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant: String,
}

/// Labels of the stage latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
    function: &'static str,
}

/// Labels of upstream errors.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    service: &'static str,
    status: String,
}

/// Labels of queue depths.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    tenant: String,
    queue: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the host exports.
struct Metrics {
    registry: Registry,
    polled: Family<TenantLabel, Counter>,
    posted: Family<TenantLabel, Counter>,
    skipped: Family<TenantLabel, Counter>,
    duplicate: Family<TenantLabel, Counter>,
    parked: Family<TenantLabel, Counter>,
    retried: Family<TenantLabel, Counter>,
    stage_seconds: HistogramFamily<StageLabels>,
    end_to_end_seconds: HistogramFamily<TenantLabel>,
    attached: Family<TenantLabel, Counter>,
    attach_retries: Family<TenantLabel, Counter>,
    attach_gave_up: Family<TenantLabel, Counter>,
    triggers_delivered: Family<TenantLabel, Counter>,
    upstream_errors: Family<ErrorLabels, Counter>,
    queue_depth: Family<QueueLabels, Gauge>,
    calls_pending: Family<TenantLabel, Gauge>,
    /// Open diagnostics incidents (`crate::diagnostics`), read at scrape time.
    open_incidents: Family<TenantLabel, Gauge>,
    /// `host:port` of each configured 3CX and CRM, so an HTTP answer can be
    /// counted against the service it came from.
    services: RwLock<HashMap<String, &'static str>>,
}

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

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Self {
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
        Self {
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

fn tenant(id: &str) -> TenantLabel {
    TenantLabel { tenant: id.into() }
}

/// Count what one tick did (polled, posted, skipped, duplicates, …).
fn tick(tenant_id: &str, report: &TickReport) {
    let m = &*METRICS;
    let t = tenant(tenant_id);
    let add = |family: &Family<TenantLabel, Counter>, n: usize| {
        // Touch the series even for 0, so every tenant shows up from its
        // first tick and rate() has a starting point.
        family.get_or_create(&t).inc_by(n as u64);
    };
    add(&m.polled, report.polled);
    add(&m.posted, report.posted);
    add(&m.skipped, report.skipped);
    add(&m.duplicate, report.duplicates);
    add(&m.parked, report.parked);
    add(&m.retried, report.retrying);
    add(&m.attached, report.attached);
    add(&m.attach_gave_up, report.attach_gave_up);
    add(&m.triggers_delivered, report.triggers_delivered);
    // A tick that could not poll knows nothing about pending calls: keep
    // the last known value rather than report zero.
    if report.error.is_none() {
        m.calls_pending
            .get_or_create(&t)
            .set(report.retrying as i64);
    }
}

/// A call was posted: observe hang-up to posted.
fn call_posted(tenant_id: &str, call_end_ms: i64) {
    let now = chrono::Utc::now().timestamp_millis();
    let seconds = (now - call_end_ms).max(0) as f64 / 1000.0;
    METRICS
        .end_to_end_seconds
        .get_or_create(&tenant(tenant_id))
        .observe(seconds);
}

/// A recording job will be retried.
fn attach_retry(tenant_id: &str) {
    METRICS
        .attach_retries
        .get_or_create(&tenant(tenant_id))
        .inc();
}

/// One stage invocation the composed tick timed (its report's `timings`).
fn stage_invoked(stage: &str, function: &str, seconds: f64) {
    METRICS
        .stage_seconds
        .get_or_create(&StageLabels {
            stage: stage_label(stage),
            function: function_label(function),
        })
        .observe(seconds);
}

/// The label of a stage the tick named; a name the host does not know
/// (a replaced tick) is "other", so a component cannot grow the label set.
/// Besides the stages the tick times its own retention sweep.
fn stage_label(stage: &str) -> &'static str {
    Stage::ALL
        .into_iter()
        .map(Stage::name)
        .chain(["retention"])
        .find(|name| *name == stage)
        .unwrap_or("other")
}

/// The label of a stage function the tick named, "other" when unknown:
/// every function a component exports (`connectzero_stages`), and the
/// tick's own steps (`renew`: claims renewed through dedup; `sweep`:
/// the retention sweep).
fn function_label(function: &str) -> &'static str {
    connectzero_stages::exported_functions()
        .chain(["renew", "sweep"])
        .find(|known| *known == function)
        .unwrap_or("other")
}

/// The runtime's reports (`crate::telemetry`) as Prometheus series.
pub struct Prometheus;

impl crate::telemetry::Telemetry for Prometheus {
    fn tenant_services(&self, pbx_base_url: &str, crm_base_url: &str) {
        learn_service(pbx_base_url, "3cx");
        learn_service(crm_base_url, "crm");
    }

    fn tick(&self, tenant: &str, report: &TickReport) {
        tick(tenant, report);
    }

    fn call_posted(&self, tenant: &str, call_end_ms: i64) {
        call_posted(tenant, call_end_ms);
    }

    fn attach_retry(&self, tenant: &str) {
        attach_retry(tenant);
    }

    fn stage_invoked(&self, stage: &str, function: &str, seconds: f64) {
        stage_invoked(stage, function, seconds);
    }

    fn http_answer(&self, authority: &str, status: Option<u16>) {
        http_answer(authority, status);
    }
}

/// Count this process's runtime reports in the registry [`encode`]
/// writes: the binary, the status page's router and the test bed call it.
pub fn install() {
    crate::telemetry::install(&Prometheus);
}

/// Remember which service `base_url` belongs to (`"3cx"` or `"crm"`), so
/// [`http_answer`] can label answers from it.
fn learn_service(base_url: &str, service: &'static str) {
    if let Some(authority) = crate::authority::authority_of_url(base_url) {
        let mut services = METRICS.services.write().unwrap_or_else(|p| p.into_inner());
        services.insert(authority, service);
    }
}

fn service_of(authority: &str) -> &'static str {
    METRICS
        .services
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(authority)
        .copied()
        .unwrap_or("other")
}

/// An HTTP answer (or none: `status` = `None`) from `authority`
/// (`host:port`); counted when it is an error. Called for every request a
/// component makes through `wasi:http` and for the host's own requests.
fn http_answer(authority: &str, status: Option<u16>) {
    let status = match status {
        Some(code) if code < 400 => return,
        Some(code) => code.to_string(),
        None => "network".to_string(),
    };
    METRICS
        .upstream_errors
        .get_or_create(&ErrorLabels {
            service: service_of(authority),
            status,
        })
        .inc();
}

/// Jobs in the durable queue `queue`: one key per job at
/// `<queue>/job/<id>` (see `guest-support/src/queue.rs`).
fn queue_len(storage: &Storage, tenant: &str, queue: &str) -> i64 {
    storage
        .kv_count_prefix(tenant, &format!("{queue}/job/"))
        .unwrap_or(0)
}

/// The registry in the Prometheus/OpenMetrics text format, with queue
/// depths read from `storage` for `tenants` first.
pub fn encode<'a>(storage: &Storage, tenants: impl IntoIterator<Item = &'a str>) -> String {
    let m = &*METRICS;
    for tenant in tenants {
        for queue in ["attach", "trigger"] {
            m.queue_depth
                .get_or_create(&QueueLabels {
                    tenant: tenant.into(),
                    queue,
                })
                .set(queue_len(storage, tenant, queue));
        }
        let open = storage.open_incidents(tenant).map_or(0, |list| list.len());
        m.open_incidents
            .get_or_create(&self::tenant(tenant))
            .set(open as i64);
    }
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &m.registry);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_counted_by_service_and_status_and_successes_are_not() {
        learn_service("https://crm-metrics-test.example", "crm");
        http_answer("crm-metrics-test.example:443", Some(429));
        http_answer("crm-metrics-test.example:443", Some(200));
        http_answer("unknown-metrics-test.example:443", None);
        let text = encode(&Storage::in_memory().unwrap(), []);
        assert!(
            text.contains(r#"connectzero_upstream_errors_total{service="crm",status="429"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"connectzero_upstream_errors_total{service="other",status="network"} 1"#
            ),
            "{text}"
        );
        assert!(!text.contains(r#"status="200""#), "{text}");
    }

    #[test]
    fn queue_depth_counts_the_queued_jobs() {
        let storage = Storage::in_memory().unwrap();
        for key in [
            "attach/job/a",
            "attach/job/b",
            "attach/job/c",
            "attach/done/d",
        ] {
            storage.kv_set("qd-tenant", key, b"{}").unwrap();
        }
        // Another tenant's jobs and keys that merely sort nearby.
        storage.kv_set("other", "attach/job/x", b"{}").unwrap();
        storage.kv_set("qd-tenant", "attach/jobs", b"{}").unwrap();
        let text = encode(&storage, ["qd-tenant"]);
        assert!(
            text.contains(r#"connectzero_queue_depth{tenant="qd-tenant",queue="attach"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"connectzero_queue_depth{tenant="qd-tenant",queue="trigger"} 0"#),
            "{text}"
        );
    }
}
