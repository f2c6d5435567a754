//! `latency`: from a call ending in the 3CX simulator to its message
//! existing in the CRM simulator, with the real scheduler at the default
//! poll interval.
//!
//! Calls are placed one at a time with random gaps (uniform, mean 300 ms),
//! so hang-ups fall at random points of the poll cycle. A watcher reads the
//! CRM simulator's messages every 5 ms and stops each call's clock when a
//! message with its key (`altId`) appears.

use super::{call_plan, ms, percentile, seed_contacts, world};
use crate::config::TenantOptions;
use crate::demo::Placer;
use crate::engine::Runtime;
use crate::pipeline::{Tenant, TickReport};
use crate::scheduler;
use crate::testbed::TENANT;
use rand::Rng;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the watcher looks at the CRM simulator.
const WATCH_EVERY: Duration = Duration::from_millis(5);
/// Mean gap between hang-ups.
const MEAN_GAP: Duration = Duration::from_millis(300);
/// Longest wait for the last call after it was placed.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// Tick timing seen by the scheduler's `on_tick`.
#[derive(Default)]
struct Ticks {
    count: usize,
    errors: usize,
    last: Option<Instant>,
    gaps: Vec<Duration>,
}

/// Run the scenario and print its figures.
pub async fn run(
    runtime: Arc<Runtime>,
    dir: &Path,
    quick: bool,
    figures: &super::figures::Figures,
) -> anyhow::Result<()> {
    let calls = if quick { 30 } else { 200 };
    let world = world(runtime, dir, "latency", TenantOptions::default()).await?;
    // One contact per call, plus one for the warm-up call.
    seed_contacts(&world, 0, calls + 1);
    let interval = Duration::from_millis(world.config().settings.poll_interval_ms);

    let ticks = Arc::new(Mutex::new(Ticks::default()));
    let on_tick = {
        let ticks = ticks.clone();
        move |_: &Tenant, report: &TickReport| {
            let mut t = ticks.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if let Some(last) = t.last.replace(now) {
                t.gaps.push(now - last);
            }
            t.count += 1;
            t.errors += usize::from(report.error.is_some());
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let scheduler = tokio::spawn(scheduler::run_tenant(
        world.pipeline.clone(),
        world.tenant.clone(),
        stop_rx,
        on_tick,
    ));

    // The watcher: pending keys and when their call ended.
    let pending: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    let observed: Arc<Mutex<Vec<(String, Duration)>>> = Default::default();
    let watcher = {
        let (crm, pending, observed) = (world.crm.clone(), pending.clone(), observed.clone());
        tokio::spawn(async move {
            let mut seen = 0;
            loop {
                let messages = crm.messages();
                let now = Instant::now();
                for m in &messages[seen.min(messages.len())..] {
                    let ended = m.alt_id.as_ref().and_then(|key| {
                        pending
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(key)
                            .map(|t| (key.clone(), t))
                    });
                    if let Some((key, t)) = ended {
                        observed
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((key, now - t));
                    }
                }
                seen = messages.len();
                tokio::time::sleep(WATCH_EVERY).await;
            }
        })
    };

    let mut placer = Placer::default();
    // Warm-up: tokens, connections, caches; not counted.
    let warm = placer.place(&world, &call_plan(calls), chrono::Utc::now());
    pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(warm.key.clone(), Instant::now());
    wait_for(&pending, &warm.key, DRAIN_DEADLINE).await?;
    observed.lock().unwrap_or_else(|e| e.into_inner()).clear();

    let started = Instant::now();
    for i in 0..calls {
        let gap = rand::rng().random_range(0..=2 * MEAN_GAP.as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(gap)).await;
        let placed = placer.place(&world, &call_plan(i), chrono::Utc::now());
        let hung_up = Instant::now();
        pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(placed.key, hung_up);
    }
    let placing = started.elapsed();
    let deadline = Instant::now() + DRAIN_DEADLINE;
    while !pending.lock().unwrap_or_else(|e| e.into_inner()).is_empty() && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(true)?;
    scheduler.await?;
    watcher.abort();

    let observed = std::mem::take(&mut *observed.lock().unwrap_or_else(|e| e.into_inner()));
    let missing = pending.lock().unwrap_or_else(|e| e.into_inner()).len();
    let mut latencies: Vec<Duration> = observed.iter().map(|(_, d)| *d).collect();
    latencies.sort_unstable();
    // The host's own record of the same calls: handled_at - ended_at (ms).
    let keys: std::collections::HashSet<&String> = observed.iter().map(|(k, _)| k).collect();
    let mut logged: Vec<Duration> = world
        .storage
        .calls(TENANT)?
        .into_iter()
        .filter(|r| keys.contains(&r.call_key))
        .map(|r| Duration::from_millis((r.handled_at_ms - r.ended_at_ms).max(0) as u64))
        .collect();
    logged.sort_unstable();
    let ticks = ticks.lock().unwrap_or_else(|e| e.into_inner());
    let mut tick_times: Vec<Duration> = ticks
        .gaps
        .iter()
        .map(|g| g.saturating_sub(interval))
        .collect();
    tick_times.sort_unstable();

    println!(
        "  measures: hang-up (call placed in the 3CX simulator, ended = now) until the CRM simulator\n\
         \x20           holds its message (watched every {} ms); real scheduler, poll interval {} ms",
        WATCH_EVERY.as_millis(),
        interval.as_millis()
    );
    println!(
        "  {} calls over {:.1} s (random gaps, mean {} ms); {} observed, {missing} not posted within {} s",
        calls,
        placing.as_secs_f64(),
        MEAN_GAP.as_millis(),
        latencies.len(),
        DRAIN_DEADLINE.as_secs()
    );
    let p99 = percentile(&latencies, 99.0);
    println!(
        "  latency p50 {}  p95 {}  p99 {}  max {}",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 95.0)),
        ms(p99),
        ms(latencies.last().copied().unwrap_or_default())
    );
    println!(
        "  call log (handled_at - ended_at, ms resolution): p50 {}  p99 {}",
        ms(percentile(&logged, 50.0)),
        ms(percentile(&logged, 99.0))
    );
    println!(
        "  ticks: {} ({} failed); tick duration (gap between ticks - interval) p50 {}  max {}",
        ticks.count,
        ticks.errors,
        ms(percentile(&tick_times, 50.0)),
        ms(tick_times.last().copied().unwrap_or_default())
    );
    let target = interval + Duration::from_millis(500);
    figures.record(
        "latency.one-tenant.p99",
        "latency p99, one tenant, calls 300 ms apart",
        "ms",
        p99.as_secs_f64() * 1000.0,
        Some(super::figures::Goal::AtMost(target.as_secs_f64() * 1000.0)),
    );
    println!(
        "  target p99 <= poll interval + 0.5 s ({} ms): {}",
        target.as_millis(),
        if p99 <= target && missing == 0 {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

/// Wait until `key` has left `pending` (its message arrived).
async fn wait_for(
    pending: &Mutex<HashMap<String, Instant>>,
    key: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(key)
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the warm-up call was not posted within {} s",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
