//! `throughput-tenants` and `latency-under-load`: many tenants with calls
//! at once on one host — one database file, one pipeline, as `connectzero
//! run` has them.
//!
//! Each tenant has its own 3CX simulator and its own HighLevel location
//! (simulator), so its calls are its own and no two tenants share a
//! rate-limit budget (lifted anyway: the figures are the pipeline's).
//! Half of a tenant's calls come from numbers the CRM knows, half from
//! new ones, for which the tenant's `create-contact` policy creates the
//! contact first.

use super::figures::{Figures, Goal};
use super::{call_plan, ms, number, percentile};
use crate::config::TenantOptions;
use crate::demo::Placer;
use crate::engine::Runtime;
use crate::pipeline::{Pipeline, Tenant, TickReport};
use crate::scheduler;
use crate::storage::Storage;
use crate::testbed::World;
use connectzero_simulators::highlevel::{HighLevelConfig, SimContact};
use connectzero_simulators::threecx::SimUser;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Tenants with calls at once.
const TENANTS: usize = 100;

/// Calls per tenant in the throughput scenario.
const CALLS_PER_TENANT: usize = 20;

/// Longest a scenario may take before it counts as stuck.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// The target of both scenarios' throughput.
const CALLS_PER_SEC_GOAL: f64 = 1000.0;

/// The key of `throughput-tenants`' figure.
const THROUGHPUT_KEY: &str = "throughput.tenants.calls-per-s";

/// Share of the measured throughput `latency-under-load` offers: a load
/// the host keeps up with (at or past its limit every queue grows and
/// latency only says how long the run was).
const LOAD_SHARE: f64 = 0.8;

/// The tenants of one run: their worlds (each its own simulators) and
/// the one pipeline and database they all run on.
struct Load {
    worlds: Vec<World>,
    pipeline: Arc<Pipeline>,
    storage: Storage,
    placers: Vec<Placer>,
}

impl Load {
    /// `tenants` tenants on one database under `dir`, tenant `t` owning
    /// numbers `t * per_tenant ..`, the even ones known to its CRM.
    async fn start(
        runtime: Arc<Runtime>,
        dir: &Path,
        name: &str,
        tenants: usize,
        per_tenant: usize,
    ) -> anyhow::Result<Self> {
        let storage = Storage::open(&dir.join(format!("{name}.db")))?;
        let options = TenantOptions {
            no_match_policy: "create-contact".into(),
            ..TenantOptions::default()
        };
        let mut worlds = Vec::with_capacity(tenants);
        for t in 0..tenants {
            let crm = HighLevelConfig {
                location_id: format!("loadLocation{t:06}"),
                rate_limit: None,
                ..HighLevelConfig::default()
            };
            let mut world =
                World::start_with_crm(runtime.clone(), storage.clone(), options.clone(), crm)
                    .await?;
            world.reconfigure(|config| config.id = format!("load-{t:03}"))?;
            world.pbx.add_user(SimUser::new(
                1,
                "101",
                "Alice",
                "Smith",
                "alice@acme.example",
            ));
            for i in (0..per_tenant).filter(|i| i % 2 == 0) {
                let n = t * per_tenant + i;
                world
                    .crm
                    .add_contact(SimContact::new(format!("Load{n}"), "Contact").phone(number(n)));
            }
            worlds.push(world);
        }
        let pipeline = Arc::new(Pipeline::new(runtime, storage.clone()));
        let placers = (0..tenants).map(|_| Placer::default()).collect();
        Ok(Self {
            worlds,
            pipeline,
            storage,
            placers,
        })
    }

    /// Place call `i` of tenant `t` (number `t * per_tenant + i`), ending now.
    fn place(&mut self, t: usize, i: usize, per_tenant: usize) -> String {
        let mut plan = call_plan(t * per_tenant + i);
        plan.call_id = 100_000 + i as i32;
        self.placers[t]
            .place(&self.worlds[t], &plan, chrono::Utc::now())
            .key
    }

    /// Tick every tenant concurrently, back to back, until each CRM holds
    /// `each` messages.
    async fn tick_until(&self, each: usize) -> anyhow::Result<usize> {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for world in &self.worlds {
            let (pipeline, tenant, crm) = (
                self.pipeline.clone(),
                world.tenant.clone(),
                world.crm.clone(),
            );
            tasks.spawn(async move {
                let mut ticks = 0usize;
                while crm.messages().len() < each {
                    anyhow::ensure!(
                        started.elapsed() < RUN_LIMIT,
                        "tenant {} is stuck at {} of {each} messages",
                        tenant.id(),
                        crm.messages().len()
                    );
                    let report = pipeline.tick(&tenant).await?;
                    if let Some(error) = report.error {
                        anyhow::bail!("tenant {}: tick failed: {error}", tenant.id());
                    }
                    ticks += 1;
                }
                Ok(ticks)
            });
        }
        let mut ticks = 0;
        while let Some(done) = tasks.join_next().await {
            ticks += done??;
        }
        Ok(ticks)
    }

    /// Fails unless every tenant's CRM holds `each` messages, each call once.
    fn each_call_once(&self, each: usize) -> anyhow::Result<()> {
        for world in &self.worlds {
            let messages = world.crm.messages();
            let keys: std::collections::HashSet<_> =
                messages.iter().filter_map(|m| m.alt_id.clone()).collect();
            anyhow::ensure!(
                messages.len() == each && keys.len() == each,
                "tenant {}: {} messages for {} calls ({} distinct): a call was lost or doubled",
                world.tenant.id(),
                messages.len(),
                each,
                keys.len()
            );
        }
        Ok(())
    }
}

/// This process's CPU time so far (user + system), from /proc/self/stat.
pub(super) fn cpu_time() -> Duration {
    stat_cpu("/proc/self/stat")
}

/// CPU time so far of this process's threads whose name starts with
/// `prefix` (a runtime's workers, named by its builder).
pub(super) fn threads_cpu_time(prefix: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim_end().starts_with(prefix))
        })
        .map(|task| stat_cpu(task.path().join("stat")))
        .sum()
}

/// User + system time of a `stat` file (a process's or a thread's).
fn stat_cpu(path: impl AsRef<Path>) -> Duration {
    let ticks = std::fs::read_to_string(path)
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which may hold spaces).
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let user: u64 = fields.get(11)?.parse().ok()?;
            let system: u64 = fields.get(12)?.parse().ok()?;
            Some(user + system)
        })
        .unwrap_or(0);
    // USER_HZ: 100 on every Linux this runs on.
    Duration::from_millis(ticks * 10)
}

/// `throughput-tenants`: 100 tenants' backlogs at once.
pub async fn throughput(
    runtime: Arc<Runtime>,
    dir: &Path,
    quick: bool,
    figures: &Figures,
) -> anyhow::Result<()> {
    let tenants = if quick { 10 } else { TENANTS };
    let per_tenant = CALLS_PER_TENANT;
    // One warm-up call per tenant (numbers past its own), then its backlog.
    let mut load = Load::start(runtime, dir, "throughput-tenants", tenants, per_tenant + 1).await?;
    for t in 0..tenants {
        load.place(t, per_tenant, per_tenant + 1);
    }
    load.tick_until(1).await?;
    for t in 0..tenants {
        for i in 0..per_tenant {
            load.place(t, i, per_tenant + 1);
        }
    }
    let total = tenants * per_tenant;
    let cpu = cpu_time();
    let started = Instant::now();
    let ticks = load.tick_until(per_tenant + 1).await?;
    let elapsed = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu);
    load.each_call_once(per_tenant + 1)?;
    let rate = total as f64 / elapsed.as_secs_f64();
    let cpu_per_call = cpu / total as u32;
    println!(
        "  measures: wall time from the first tick until every tenant's CRM holds its {per_tenant} messages;\n\
         \x20           {tenants} tenants ticked back to back at once on one pipeline and database,\n\
         \x20           half the calls from numbers the CRM knows, half creating their contact"
    );
    println!(
        "  {total} calls in {:.2} s over {ticks} ticks: {rate:.0} calls/s; CPU {} per call ({:.2} cores busy)",
        elapsed.as_secs_f64(),
        ms(cpu_per_call),
        cpu.as_secs_f64() / elapsed.as_secs_f64()
    );
    figures.record(
        THROUGHPUT_KEY,
        &format!("throughput, {tenants} tenants at once"),
        "calls/s",
        rate,
        Some(Goal::AtLeast(CALLS_PER_SEC_GOAL)),
    );
    figures.record(
        "throughput.tenants.cpu-per-call",
        "CPU per call (both simulators included)",
        "ms",
        cpu_per_call.as_secs_f64() * 1000.0,
        None,
    );
    Ok(())
}

/// `latency-under-load`: 100 tenants on their schedulers (1 s poll), calls
/// hanging up at a steady rate across them; hang-up to CRM per call from
/// the host's call log (`handled_at - ended_at`).
pub async fn latency(
    runtime: Arc<Runtime>,
    dir: &Path,
    quick: bool,
    figures: &Figures,
) -> anyhow::Result<()> {
    let tenants = if quick { 10 } else { TENANTS };
    // The target load, or what this host sustains when that is less
    // (measured by `throughput-tenants` in this run; 100 calls/s when it
    // did not run).
    let sustained = figures
        .get(THROUGHPUT_KEY)
        .map_or(100.0, |r| r * LOAD_SHARE);
    let rate = CALLS_PER_SEC_GOAL.min(sustained).max(1.0);
    let run_for = Duration::from_secs(if quick { 5 } else { 20 });
    let per_tenant = (rate * run_for.as_secs_f64() / tenants as f64).ceil() as usize;
    let mut load = Load::start(runtime, dir, "latency-under-load", tenants, per_tenant).await?;
    let interval = Duration::from_millis(TenantOptions::default().poll_interval_ms);

    let (stop_tx, stop_rx) = watch::channel(false);
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut schedulers = Vec::new();
    for world in &load.worlds {
        let failed = failed.clone();
        schedulers.push(tokio::spawn(scheduler::run_tenant(
            load.pipeline.clone(),
            world.tenant.clone(),
            stop_rx.clone(),
            move |_: &Tenant, report: &TickReport| {
                if report.error.is_some() {
                    failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            },
        )));
    }
    // Calls hang up one after another across the tenants, evenly spaced.
    let gap = Duration::from_secs_f64(1.0 / rate);
    let cpu = cpu_time();
    let started = Instant::now();
    let mut placed = 0usize;
    for i in 0..per_tenant {
        for t in 0..tenants {
            let due = started + gap * placed as u32;
            tokio::time::sleep_until(due.into()).await;
            load.place(t, i, per_tenant);
            placed += 1;
        }
    }
    let placing = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    let logged = |load: &Load| -> anyhow::Result<Vec<Duration>> {
        let mut latencies = Vec::new();
        for world in &load.worlds {
            for row in load.storage.calls(world.tenant.id())? {
                latencies.push(Duration::from_millis(
                    (row.handled_at_ms - row.ended_at_ms).max(0) as u64,
                ));
            }
        }
        Ok(latencies)
    };
    while load
        .worlds
        .iter()
        .map(|w| w.crm.messages().len())
        .sum::<usize>()
        < placed
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu = cpu_time().saturating_sub(cpu);
    let wall = started.elapsed();
    stop_tx.send(true)?;
    for task in schedulers {
        task.await?;
    }
    load.each_call_once(per_tenant)?;
    let mut latencies = logged(&load)?;
    latencies.sort_unstable();
    let p99 = percentile(&latencies, 99.0);
    println!(
        "  measures: hang-up (ended = placed) until the host logged the call posted (its call log,\n\
         \x20           ms resolution); {tenants} tenants on the real scheduler (poll {} ms), one pipeline\n\
         \x20           and database; {placed} calls hanging up evenly at {rate:.0} calls/s over {:.1} s",
        interval.as_millis(),
        placing.as_secs_f64()
    );
    println!(
        "  latency p50 {}  p95 {}  p99 {}  max {}; {} failed ticks; {:.2} cores busy",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 95.0)),
        ms(p99),
        ms(latencies.last().copied().unwrap_or_default()),
        failed.load(std::sync::atomic::Ordering::Relaxed),
        cpu.as_secs_f64() / wall.as_secs_f64()
    );
    figures.record(
        "latency.under-load.p99",
        &format!("latency p99 at {rate:.0} calls/s, {tenants} tenants"),
        "ms",
        p99.as_secs_f64() * 1000.0,
        Some(Goal::AtMost(
            (interval + Duration::from_millis(500)).as_secs_f64() * 1000.0,
        )),
    );
    Ok(())
}
