//! `idle-tenants`: process memory with 1,000 and 10,000 tenants that have
//! no calls, all pointing at one pair of simulators.
//!
//! Each tenant has its own id (so its own key-value namespace, cursor and
//! ledger), settings, directory handle and scheduler task. They share the
//! token source of the testbed tenant: the 3CX simulator, like 3CX, keeps
//! one active token per API client, so 10,000 token caches against one
//! simulator would log each other out on every tick. In production each
//! tenant has its own PBX; a token source is a few hundred bytes.

use super::{mb, reset_peak_rss, status_kb, world};
use crate::config::TenantOptions;
use crate::engine::Runtime;
use crate::pipeline::Tenant;
use crate::scheduler;
use crate::testbed::World;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod ticking;
use ticking::{FIRST_TICKS_LIMIT, run_schedulers, tick_each_once};

/// Ticks run at once in the tick-each-once pass: well under the pooling
/// allocator's 64 instance slots.
const ONCE_CONCURRENCY: usize = 16;

/// Run the scenario and print its figures.
pub async fn run(
    runtime: Arc<Runtime>,
    dir: &Path,
    quick: bool,
    figures: &super::figures::Figures,
) -> anyhow::Result<()> {
    // The steady part lasts as long as an idle tenant's longest quiet
    // stretch (`scheduler::MAX_QUIET_EMPTY`: its queues are empty), so each
    // tenant's periodic pipeline run falls in it once, as it does in every
    // such stretch of a long run.
    let run_for = if quick {
        Duration::from_secs(3)
    } else {
        scheduler::MAX_QUIET_EMPTY
    };
    // The simulators serve from a runtime of their own, so their CPU can
    // be told from the host's: against a real 3CX only the host's runs
    // on this machine.
    let simulators = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SIMULATOR_THREADS)
        .enable_all()
        .build()?;
    let started = simulators
        .spawn(world_owned(runtime, dir.to_path_buf()))
        .await
        .map_err(anyhow::Error::from)
        .and_then(|world| world);
    let result = match started {
        Ok(world) => measure(&world, quick, run_for, figures).await,
        Err(error) => Err(error),
    };
    // Dropping a runtime may not block inside this one.
    simulators.shutdown_background();
    result
}

/// Name of the simulators' runtime threads.
const SIMULATOR_THREADS: &str = "cz-sim";

async fn world_owned(runtime: Arc<Runtime>, dir: std::path::PathBuf) -> anyhow::Result<World> {
    world(runtime, &dir, "tenants", TenantOptions::default()).await
}

async fn measure(
    world: &World,
    quick: bool,
    run_for: Duration,
    figures: &super::figures::Figures,
) -> anyhow::Result<()> {
    let counts: [usize; 2] = if quick { [100, 1_000] } else { [1_000, 10_000] };
    // Fetch the shared tokens once.
    world.tick().await?;
    let http = crate::upstream::client(std::time::Duration::from_secs(30))?;
    let base = status_kb("VmRSS:").unwrap_or(0);
    println!(
        "  measures: VmRSS of this process (simulators, runtime, SQLite included) with N idle tenants;\n\
         \x20           each tenant ticked once (at most {ONCE_CONCURRENCY} at a time), then one scheduler task per\n\
         \x20           tenant at the default 1 s interval until each has ticked once, then {} s more (steady)",
        run_for.as_secs()
    );
    println!(
        "  RSS with the runtime, both simulators and no extra tenants: {}",
        mb(base)
    );

    let mut tenants: Vec<Arc<Tenant>> = Vec::new();
    for count in counts {
        while tenants.len() < count {
            tenants.push(Arc::new(idle_tenant(world, &http, tenants.len())));
        }
        let built = status_kb("VmRSS:").unwrap_or(0);

        let t = Instant::now();
        let cpu = super::load::cpu_time();
        let once = tick_each_once(&world.pipeline, &tenants).await;
        let once_took = t.elapsed();
        let once_cpu = super::load::cpu_time().saturating_sub(cpu);
        let ticked = status_kb("VmRSS:").unwrap_or(0);

        reset_peak_rss()?;
        let cpu = super::load::cpu_time();
        let scheduled = run_schedulers(&world.pipeline, &tenants, run_for).await;
        let live_cpu = super::load::cpu_time().saturating_sub(cpu);
        let live = &scheduled.all;
        let steady = &scheduled.steady;
        let steady_ticks = (steady.ok + steady.failed).max(1);
        let steady_rate = steady_ticks as f64 / steady.took.as_secs_f64().max(1e-9);
        let steady_cpu_per_tick = scheduled.steady_cpu.total / steady_ticks as u32;
        let steady_host_per_tick = scheduled.steady_cpu.host() / steady_ticks as u32;
        let after = status_kb("VmRSS:").unwrap_or(0);
        let peak = status_kb("VmHWM:").unwrap_or(0);

        println!("  {count} tenants:");
        println!(
            "    built: RSS {} (+{} per tenant)",
            mb(built),
            per_tenant(built, base, count)
        );
        println!(
            "    each ticked once: {} ok, {} failed in {:.2} s ({:.0} idle ticks/s); RSS {} (+{} per tenant)",
            once.ok,
            once.failed,
            once_took.as_secs_f64(),
            count as f64 / once_took.as_secs_f64(),
            mb(ticked),
            per_tenant(ticked, base, count)
        );
        println!(
            "    {count} scheduler tasks for {:.1} s: {} ticks ok, {} failed ({:.0} ticks/s; {:.0}/s wanted); RSS {} (peak {})",
            live.took.as_secs_f64(),
            live.ok,
            live.failed,
            (live.ok + live.failed) as f64 / live.took.as_secs_f64(),
            count as f64 / 1.0,
            mb(after),
            mb(peak)
        );
        let live_rate = (live.ok + live.failed) as f64 / live.took.as_secs_f64();
        println!(
            "    of the scheduled ticks: {} checks of 3CX that found nothing new (the pipeline skipped), {} pipeline runs",
            live.checks,
            live.ok + live.failed - live.checks
        );
        println!(
            "    CPU per idle tick (both simulators included): {} ticked once, {} on the schedulers ({:.2} cores busy)",
            super::ms(once_cpu / count as u32),
            super::ms(live_cpu / (live.ok + live.failed).max(1) as u32),
            live_cpu.as_secs_f64() / live.took.as_secs_f64()
        );
        if !scheduled.steady_reached {
            println!(
                "    steady: not reached (a tenant's first scheduled tick did not report within {} s)",
                FIRST_TICKS_LIMIT.as_secs()
            );
        }
        println!(
            "    steady (after every tenant's first tick, {:.1} s): {} ticks ({:.0} ticks/s), {} checks only, \
             {} pipeline runs;\n      CPU per idle tick {} ({:.2} cores busy): the host {}, the simulators {}",
            steady.took.as_secs_f64(),
            steady.ok + steady.failed,
            steady_rate,
            steady.checks,
            steady.ok + steady.failed - steady.checks,
            super::ms(steady_cpu_per_tick),
            scheduled.steady_cpu.total.as_secs_f64() / steady.took.as_secs_f64().max(1e-9),
            super::ms(steady_host_per_tick),
            super::ms(scheduled.steady_cpu.simulators / steady_ticks as u32),
        );
        if count == counts[1] {
            figures.record(
                "idle.ticks-per-s",
                &format!("idle ticks/s, {count} tenants each once"),
                "ticks/s",
                count as f64 / once_took.as_secs_f64(),
                Some(super::figures::Goal::AtLeast(10_000.0)),
            );
            figures.record(
                "idle.scheduled-ticks-per-s",
                &format!("idle ticks/s, {count} tenants on schedulers"),
                "ticks/s",
                live_rate,
                Some(super::figures::Goal::AtLeast(count as f64)),
            );
            // No steady part, no steady figures (not a rate over no time).
            let steady_figures = scheduled.steady_reached;
            figures.record_if(
                steady_figures,
                "idle.steady-ticks-per-s",
                &format!("idle ticks/s, {count} tenants, steady"),
                "ticks/s",
                steady_rate,
                Some(super::figures::Goal::AtLeast(count as f64)),
            );
            figures.record_if(
                steady_figures,
                "idle.steady-cpu-per-tick",
                "CPU per idle tick, steady",
                "ms",
                steady_cpu_per_tick.as_secs_f64() * 1000.0,
                None,
            );
            figures.record_if(
                steady_figures,
                "idle.steady-host-cpu-per-tick",
                "CPU per idle tick, steady, host only",
                "ms",
                steady_host_per_tick.as_secs_f64() * 1000.0,
                None,
            );
            figures.record(
                "idle.checks-share",
                "idle ticks that were checks only",
                "%",
                100.0 * live.checks as f64 / (live.ok + live.failed).max(1) as f64,
                None,
            );
            figures.record(
                "idle.cpu-per-tick",
                "CPU per idle tick",
                "ms",
                (live_cpu / (live.ok + live.failed).max(1) as u32).as_secs_f64() * 1000.0,
                None,
            );
            figures.record(
                "idle.rss",
                &format!("RSS with {count} idle tenants (peak)"),
                "MB",
                peak as f64 / 1024.0,
                Some(super::figures::Goal::AtMost(1024.0)),
            );
        }
        for (error, n) in live.errors.iter().chain(once.errors.iter()).take(3) {
            println!("    failed ticks ({n}): {error}");
        }
        if count == 10_000 {
            println!(
                "    target <= 1 GB RSS at 10,000: {}",
                if peak <= 1024 * 1024 {
                    "met"
                } else {
                    "NOT met"
                }
            );
        }
    }
    Ok(())
}

fn per_tenant(now: u64, base: u64, count: usize) -> String {
    format!(
        "{:.1} kB",
        now.saturating_sub(base) as f64 / count.max(1) as f64
    )
}

/// Tenant `i`: the testbed tenant's configuration under its own id.
fn idle_tenant(world: &World, http: &reqwest::Client, i: usize) -> Tenant {
    let mut config = world.config().clone();
    config.id = format!("idle-{i:05}");
    let mut tenant = crate::connect::tenant(config, http.clone());
    tenant.credentials = world.tenant.credentials.clone();
    tenant
}
