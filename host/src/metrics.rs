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

mod record;
mod registry;

use crate::report::TickReport;
use crate::storage::{Storage, TenantAuth};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use record::{attach_retry, call_posted, http_answer, learn_service, stage_invoked, tenant, tick};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
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
    /// 1 while the tenant's HighLevel grant needs re-authorisation, read at
    /// scrape time: its calls wait until someone installs the app again.
    needs_reauthorisation: Family<TenantLabel, Gauge>,
    /// Unix time of the tenant's last tick that ran without error (0 until
    /// one did), so "nothing worked for N minutes" is an alert.
    last_success: Family<TenantLabel, Gauge>,
    /// Hang-up to posted of the tenant's newest posted call: the status
    /// page's lag, as a series.
    call_lag: Family<TenantLabel, Gauge<f64, AtomicU64>>,
    /// `host:port` of each configured 3CX and CRM, so an HTTP answer can be
    /// counted against the service it came from.
    services: RwLock<HashMap<String, &'static str>>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

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

/// The registry in the Prometheus/OpenMetrics text format, with queue
/// depths read from `storage` for `tenants` first.
pub fn encode<'a>(storage: &Storage, tenants: impl IntoIterator<Item = &'a str>) -> String {
    let m = &*METRICS;
    for tenant in tenants {
        for queue in guest_support::queue::FOLLOW_UP_QUEUES {
            m.queue_depth
                .get_or_create(&QueueLabels {
                    tenant: tenant.into(),
                    queue,
                })
                .set(storage.queued_jobs(tenant, queue).unwrap_or(0));
        }
        let open = storage.open_incidents(tenant).map_or(0, |list| list.len());
        m.open_incidents
            .get_or_create(&self::tenant(tenant))
            .set(open as i64);
        // A database that cannot answer says nothing about the grant: keep
        // the last value rather than report it fine.
        if let Ok(auth) = storage.tenant_auth_status(tenant) {
            let waiting = matches!(auth, TenantAuth::NeedsReauthorisation { .. });
            m.needs_reauthorisation
                .get_or_create(&self::tenant(tenant))
                .set(i64::from(waiting));
        }
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

    /// The value of the sample `series` (name and labels) in `text`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.parse().ok())
    }

    #[test]
    fn a_grant_needing_reauthorisation_is_1_and_an_authorised_one_0() {
        let storage = Storage::in_memory().unwrap();
        storage
            .set_needs_reauthorisation("reauth-a", "HighLevel refused the refresh token", 1)
            .unwrap();
        let text = encode(&storage, ["reauth-a", "reauth-b"]);
        let series =
            |t: &str| format!(r#"connectzero_grant_needs_reauthorisation{{tenant="{t}"}}"#);
        assert_eq!(sample(&text, &series("reauth-a")), Some(1.0), "{text}");
        assert_eq!(sample(&text, &series("reauth-b")), Some(0.0), "{text}");
    }

    #[test]
    fn only_a_tick_without_error_moves_the_last_success_time() {
        let series = r#"connectzero_last_successful_tick_timestamp_seconds{tenant="ls-tenant"}"#;
        let failed = TickReport {
            error: Some("3CX unreachable".into()),
            ..TickReport::default()
        };
        let read = || sample(&encode(&Storage::in_memory().unwrap(), []), series);
        tick("ls-tenant", &failed);
        assert_eq!(read(), Some(0.0), "a tenant that never succeeded is 0");
        let before = chrono::Utc::now().timestamp() as f64;
        tick("ls-tenant", &TickReport::default());
        let after = chrono::Utc::now().timestamp() as f64;
        let set = read().unwrap();
        assert!(
            (before..=after).contains(&set),
            "{before} <= {set} <= {after}"
        );
        tick("ls-tenant", &failed);
        assert_eq!(read(), Some(set), "a failed tick keeps the last success");
    }

    #[test]
    fn a_posted_call_sets_the_lag_to_its_hang_up_to_posted_time() {
        let series = r#"connectzero_call_lag_seconds{tenant="lag-tenant"}"#;
        let ended = chrono::Utc::now().timestamp_millis() - 5_000;
        call_posted("lag-tenant", ended);
        let text = encode(&Storage::in_memory().unwrap(), []);
        let lag = sample(&text, series).unwrap();
        assert!((5.0..6.0).contains(&lag), "{lag}\n{text}");
        call_posted("lag-tenant", chrono::Utc::now().timestamp_millis());
        let text = encode(&Storage::in_memory().unwrap(), []);
        assert!(sample(&text, series).unwrap() < 1.0, "the newest call wins");
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
