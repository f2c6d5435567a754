//! Recording into the registry: the runtime's reports (ticks, posted
//! calls, stage timings, upstream answers) as counters and histograms,
//! with bounded labels.

use super::{ErrorLabels, METRICS, StageLabels, TenantLabel};
use crate::engine::Stage;
use crate::report::TickReport;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
pub(super) fn tenant(id: &str) -> TenantLabel {
    TenantLabel { tenant: id.into() }
}

/// Count what one tick did (polled, posted, skipped, duplicates, …).
pub(super) fn tick(tenant_id: &str, report: &TickReport) {
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
    // Touched on every tick, so a tenant whose ticks never succeed shows
    // 0 (infinitely long ago) rather than no series at all.
    let last_success = m.last_success.get_or_create(&t);
    if report.error.is_none() {
        last_success.set(chrono::Utc::now().timestamp());
    }
}

/// A call was posted: observe hang-up to posted, and make it the lag.
pub(super) fn call_posted(tenant_id: &str, call_end_ms: i64) {
    let now = chrono::Utc::now().timestamp_millis();
    let seconds = (now - call_end_ms).max(0) as f64 / 1000.0;
    let t = tenant(tenant_id);
    METRICS
        .end_to_end_seconds
        .get_or_create(&t)
        .observe(seconds);
    METRICS.call_lag.get_or_create(&t).set(seconds);
}

/// A recording job will be retried.
pub(super) fn attach_retry(tenant_id: &str) {
    METRICS
        .attach_retries
        .get_or_create(&tenant(tenant_id))
        .inc();
}

/// One stage invocation the composed tick timed (its report's `timings`).
pub(super) fn stage_invoked(stage: &str, function: &str, seconds: f64) {
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

/// Remember which service `base_url` belongs to (`"3cx"` or `"crm"`), so
/// [`http_answer`] can label answers from it.
pub(super) fn learn_service(base_url: &str, service: &'static str) {
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
pub(super) fn http_answer(authority: &str, status: Option<u16>) {
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
