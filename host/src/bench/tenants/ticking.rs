//! How `idle-tenants` ticks its tenants and counts what they did: each
//! once, then on their schedulers, with the steady part and its CPU
//! (the host's and the simulators') told apart.

use super::{ONCE_CONCURRENCY, SIMULATOR_THREADS};
use crate::pipeline::{Pipeline, Tenant, TickReport};
use crate::scheduler;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Tick outcomes.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) ok: usize,
    pub(super) failed: usize,
    /// Of `ok`: checks of 3CX that skipped the pipeline (quiet ticks).
    pub(super) checks: usize,
    /// Failure text (shortened) → count.
    pub(super) errors: BTreeMap<String, usize>,
    pub(super) took: Duration,
}

impl Tally {
    fn add(&mut self, report: &TickReport) {
        self.checks += usize::from(report.probed);
        match &report.error {
            None => self.ok += 1,
            Some(error) => {
                self.failed += 1;
                let short: String = error.chars().take(140).collect();
                *self.errors.entry(short).or_default() += 1;
            }
        }
    }
}

pub(super) async fn tick_each_once(pipeline: &Arc<Pipeline>, tenants: &[Arc<Tenant>]) -> Tally {
    let next = Arc::new(AtomicUsize::new(0));
    let tenants: Arc<Vec<Arc<Tenant>>> = Arc::new(tenants.to_vec());
    let tally = Arc::new(Mutex::new(Tally::default()));
    let workers: Vec<_> = (0..ONCE_CONCURRENCY)
        .map(|_| {
            let (next, tenants, tally, pipeline) = (
                next.clone(),
                tenants.clone(),
                tally.clone(),
                pipeline.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(tenant) = tenants.get(i) else { break };
                    let report = pipeline
                        .tick(tenant)
                        .await
                        .unwrap_or_else(|fault| TickReport {
                            error: Some(format!("component fault: {fault:#}")),
                            ..TickReport::default()
                        });
                    tally.lock().unwrap_or_else(|e| e.into_inner()).add(&report);
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    std::mem::take(&mut *tally.lock().unwrap_or_else(|e| e.into_inner()))
}

/// What the schedulers did: every tick, and the steady part (from the
/// moment every tenant had had its first tick, which always runs the
/// pipeline, on).
pub(super) struct Scheduled {
    pub(super) all: Tally,
    pub(super) steady: Tally,
    /// CPU in the steady part: the whole process's, and the simulators'.
    pub(super) steady_cpu: Cpu,
    /// Whether every tenant had its first tick in time, so there was a
    /// steady part at all.
    pub(super) steady_reached: bool,
}

/// CPU time: the whole process's, and the simulators' threads'.
#[derive(Clone, Copy, Default)]
pub(super) struct Cpu {
    pub(super) total: Duration,
    pub(super) simulators: Duration,
}

impl Cpu {
    pub(super) fn now() -> Self {
        Self {
            total: super::super::load::cpu_time(),
            simulators: super::super::load::threads_cpu_time(SIMULATOR_THREADS),
        }
    }

    pub(super) fn since(self, then: Cpu) -> Self {
        Self {
            total: self.total.saturating_sub(then.total),
            simulators: self.simulators.saturating_sub(then.simulators),
        }
    }

    /// The host's part: everything but the simulators.
    pub(super) fn host(self) -> Duration {
        self.total.saturating_sub(self.simulators)
    }
}

/// Every tick's tally; once each tenant has reported once, the steady one.
#[derive(Default)]
pub(super) struct Counting {
    pub(super) all: Tally,
    first_seen: std::collections::HashSet<String>,
    pub(super) steady: Tally,
    /// When the steady part began, and the CPU then.
    steady_since: Option<(Instant, Cpu)>,
}

/// One scheduler task per tenant, each on the default interval, until
/// every tenant has had its first tick and then for `steady_for` more.
pub(super) async fn run_schedulers(
    pipeline: &Arc<Pipeline>,
    tenants: &[Arc<Tenant>],
    steady_for: Duration,
) -> Scheduled {
    let count = tenants.len();
    let counting = Arc::new(Mutex::new(Counting::default()));
    let all_seen = Arc::new(tokio::sync::Notify::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let tasks: Vec<_> = tenants
        .iter()
        .map(|tenant| {
            let (counting, all_seen) = (counting.clone(), all_seen.clone());
            tokio::spawn(scheduler::run_tenant(
                pipeline.clone(),
                tenant.clone(),
                stop_rx.clone(),
                move |tenant: &Tenant, report: &TickReport| {
                    let mut c = counting.lock().unwrap_or_else(|e| e.into_inner());
                    c.all.add(report);
                    if c.steady_since.is_some() {
                        c.steady.add(report);
                    } else if c.first_seen.insert(tenant.id().to_string())
                        && c.first_seen.len() == count
                    {
                        c.steady_since = Some((Instant::now(), Cpu::now()));
                        all_seen.notify_one();
                    }
                },
            ))
        })
        .collect();
    // Bounded: a tenant whose first tick never reports ends the wait.
    let _ = tokio::time::timeout(FIRST_TICKS_LIMIT, all_seen.notified()).await;
    tokio::time::sleep(steady_for).await;
    let _ = stop_tx.send(true);
    let ended = (Instant::now(), Cpu::now());
    for task in tasks {
        let _ = task.await;
    }
    let mut c = std::mem::take(&mut *counting.lock().unwrap_or_else(|e| e.into_inner()));
    c.all.took = started.elapsed();
    let steady_reached = c.steady_since.is_some();
    let (since, cpu_then) = c.steady_since.unwrap_or(ended);
    c.steady.took = ended.0.saturating_duration_since(since);
    Scheduled {
        all: c.all,
        steady: c.steady,
        steady_cpu: ended.1.since(cpu_then),
        steady_reached,
    }
}

/// Longest wait for every tenant's first scheduled tick.
pub(super) const FIRST_TICKS_LIMIT: Duration = Duration::from_secs(120);
