//! Polls every tenant on its interval and runs a tick each time.
//!
//! Each tenant has its own task, so a slow or failing tenant never delays
//! another. After a failed tick the delay doubles (up to a minute), so
//! wrong credentials do not hammer a token endpoint; a 429's Retry-After is
//! always honoured. A tick that traps is logged and the loop goes on.
//!
//! Fairness across tenants, three ways:
//! - ticks wait for a slot in the pipeline's tick semaphore (32 at once),
//!   which tokio hands out first come, first served, and a tenant's next
//!   tick queues behind those already waiting;
//! - a tick claims and posts at most `max_calls_per_tick` new calls
//!   (default 100; `Pipeline::claim_bounded`), so a tenant with a large
//!   backlog holds its slot for a bounded time and works the rest over the
//!   next ticks instead of starving the others;
//! - tenants on one HighLevel location share its rate limiter
//!   (`crate::ratelimit`), which admits requests in the order they ask: a
//!   tenant's stages send one request at a time, so each tenant gets its
//!   turn whatever the others' backlog.
//!
//! An idle tenant costs a check, not a tick: after a tick that found
//! nothing to do (`TickReport::quiet`), the next ones first ask 3CX
//! whether anything changed ([`QuietProbe`]: two small reads) and run the
//! pipeline only when it did, or when the tenant's settings changed, an
//! operator asked for a copy, the check failed, or [`MAX_QUIET`] passed
//! (a follow-up coming due — a recording retry, a workflow retry — waits
//! for that at most; [`MAX_QUIET_EMPTY`] when the tenant's follow-up
//! queues are empty, so nothing can come due). Skipping a tick cannot lose
//! or double a call: the next tick that runs handles everything the
//! skipped one would have.

use crate::pipeline::{Pipeline, Tenant, TickReport};
use crate::report::QuietWindow;
use crate::storage::Storage;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Longest wait between ticks after repeated failures.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Longest a tenant goes on checks alone before its pipeline runs again,
/// whatever 3CX says: what bounds the wait of a follow-up coming due while
/// the tenant is idle (the tick does not say when its queues' next job is
/// due).
pub const MAX_QUIET: Duration = Duration::from_secs(15);

/// Longest a tenant goes on checks alone when its follow-up queues held no
/// job after its last run: nothing can come due, and the pipeline's run
/// only backs up the checks. A quarter of the runs [`MAX_QUIET`] would
/// make; at 10,000 idle tenants those runs were most of the host's CPU
/// (issue 20).
pub const MAX_QUIET_EMPTY: Duration = Duration::from_secs(60);

/// How long a tenant whose last tick was quiet may go on checks alone:
/// [`MAX_QUIET`] while any follow-up job is queued (or that cannot be
/// read), else [`MAX_QUIET_EMPTY`].
pub fn quiet_limit(storage: &Storage, tenant: &str) -> Duration {
    let queued = guest_support::queue::FOLLOW_UP_QUEUES.iter().any(|queue| {
        storage
            .queued_jobs(tenant, queue)
            .map_or(true, |jobs| jobs > 0)
    });
    if queued { MAX_QUIET } else { MAX_QUIET_EMPTY }
}

pub use crate::quiet::QuietProbe;

/// What the layers above the scheduler see of a tenant's ticks, and the
/// one thing they may change: which settings the next tick runs with. The
/// status page's `web::LiveTenant` is one (settings saved on the page,
/// the last tick shown there); a closure `FnMut(&Tenant, &TickReport)` is
/// one that only watches. The scheduler knows nothing of either.
pub trait TickObserver: Send {
    /// The tenant to run the next tick: `base`, or `base` with changes
    /// the observer applies. Called before every tick.
    fn tenant_for_tick(&mut self, base: &Arc<Tenant>, _storage: &Storage) -> Arc<Tenant> {
        base.clone()
    }

    /// Every tick's report, once the tick is over.
    fn tick_done(&mut self, _tenant: &Tenant, _report: &TickReport) {}
}

impl<F: FnMut(&Tenant, &TickReport) + Send> TickObserver for F {
    fn tick_done(&mut self, tenant: &Tenant, report: &TickReport) {
        self(tenant, report)
    }
}

/// Run `tenant` until `stop` turns true, telling `observer` about every
/// tick.
pub async fn run_tenant(
    pipeline: Arc<Pipeline>,
    tenant: Arc<Tenant>,
    mut stop: watch::Receiver<bool>,
    mut observer: impl TickObserver,
) {
    let mut delay = Duration::ZERO;
    let mut last_error: Option<String> = None;
    // The last quiet tick's window, when it ran, how long checks alone may
    // stand in for the pipeline, and the tenant (settings) it ran with.
    let mut quiet: Option<(QuietWindow, Instant, Duration, Arc<Tenant>)> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
        let tenant = observer.tenant_for_tick(&tenant, pipeline.storage());
        let interval = Duration::from_millis(tenant.config.settings.poll_interval_ms);
        let still = match quiet.take() {
            Some((window, since, limit, ran_with))
                if Arc::ptr_eq(&ran_with, &tenant) && since.elapsed() < limit =>
            {
                pipeline
                    .still_quiet(&tenant, &window)
                    .await
                    .then_some((window, since, limit, ran_with))
            }
            _ => None,
        };
        let report = match still {
            Some(unchanged) => {
                quiet = Some(unchanged);
                TickReport {
                    probed: true,
                    ..TickReport::default()
                }
            }
            None => {
                let report = match pipeline.tick(&tenant).await {
                    Ok(report) => report,
                    Err(fault) => TickReport {
                        error: Some(format!("component fault: {fault:#}")),
                        ..TickReport::default()
                    },
                };
                quiet = report.quiet.clone().map(|window| {
                    let limit = quiet_limit(pipeline.storage(), tenant.id());
                    (window, Instant::now(), limit, tenant.clone())
                });
                report
            }
        };
        observer.tick_done(&tenant, &report);
        delay = next_delay(interval, delay, &report);
        if report.error != last_error {
            match &report.error {
                Some(error) => {
                    tracing::error!(tenant = tenant.id(), %error, retry_in = ?delay, "tick failed; nothing is lost, the calls wait")
                }
                None if last_error.is_some() => {
                    tracing::info!(tenant = tenant.id(), "tenant recovered")
                }
                None => {}
            }
            last_error = report.error.clone();
        }
    }
}

/// The wait before the next tick.
pub fn next_delay(interval: Duration, previous: Duration, report: &TickReport) -> Duration {
    let base = if report.error.is_some() {
        (previous * 2).clamp(interval, MAX_BACKOFF.max(interval))
    } else {
        interval
    };
    report.backoff.map_or(base, |b| base.max(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_exponentially_and_success_resets() {
        let second = Duration::from_secs(1);
        let failed = TickReport {
            error: Some("x".into()),
            ..TickReport::default()
        };
        let d1 = next_delay(second, Duration::ZERO, &failed);
        let d2 = next_delay(second, d1, &failed);
        assert_eq!((d1, d2), (second, 2 * second));
        assert_eq!(
            next_delay(second, Duration::from_secs(50), &failed),
            MAX_BACKOFF
        );
        assert_eq!(
            next_delay(second, Duration::from_secs(50), &TickReport::default()),
            second
        );
    }

    #[test]
    fn a_quiet_tenant_with_queued_follow_ups_runs_its_pipeline_sooner() {
        let storage = Storage::in_memory().unwrap();
        assert_eq!(quiet_limit(&storage, "t"), MAX_QUIET_EMPTY);
        for queue in guest_support::queue::FOLLOW_UP_QUEUES {
            let job = format!("{}3cx:1@1", guest_support::queue::jobs_prefix(queue));
            storage.kv_set("t", &job, b"{}").unwrap();
            assert_eq!(quiet_limit(&storage, "t"), MAX_QUIET, "{queue}");
            // Another tenant's jobs are not this one's.
            assert_eq!(quiet_limit(&storage, "u"), MAX_QUIET_EMPTY, "{queue}");
            storage.kv_delete("t", &job).unwrap();
        }
        // Keys that are not jobs (done markers, index pages) hold nothing back.
        storage.kv_set("t", "trigger/done/x", b"1").unwrap();
        storage.kv_set("t", "attach/pages", b"[0,0]").unwrap();
        assert_eq!(quiet_limit(&storage, "t"), MAX_QUIET_EMPTY);
    }

    #[test]
    fn retry_after_is_honoured() {
        let limited = TickReport {
            backoff: Some(Duration::from_secs(7)),
            ..TickReport::default()
        };
        assert_eq!(
            next_delay(Duration::from_secs(1), Duration::ZERO, &limited),
            Duration::from_secs(7)
        );
    }
}
