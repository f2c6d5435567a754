//! A cold tick: a tenant's first tick in this process, its composed tick
//! instantiated fresh, handling one call — the matcher's first call
//! included.

use super::super::figures::{Figures, Goal};
use super::super::{call_plan, ms, percentile, seed_contacts, world};
use crate::config::TenantOptions;
use crate::demo::Placer;
use crate::engine::Runtime;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The target for a fresh composed tick with one call.
const GOAL_MS: f64 = 5.0;

/// Time [`reps`] cold ticks, each on a new world (its own simulators, so
/// its tenant sees only its own call) and a tenant id the runtime has not
/// seen (no warm instance). Tokens are fetched before the clock starts, by
/// a tick of another tenant sharing the credentials: a restarted host's
/// first tick finds them in its database.
pub(super) async fn fresh_tick(
    runtime: &Arc<Runtime>,
    dir: &Path,
    quick: bool,
    figures: &Figures,
    round_trip: Duration,
) -> anyhow::Result<()> {
    let reps = if quick { 3 } else { 20 };
    let mut times = Vec::with_capacity(reps);
    let mut requests = 0;
    let mut instantiations = Vec::with_capacity(reps);
    for rep in 0..reps {
        let name = format!("cold-{rep}");
        let mut world = world(runtime.clone(), dir, &name, TenantOptions::default()).await?;
        seed_contacts(&world, 0, 1);
        world.reconfigure(|c| c.id = format!("{name}-warm-up"))?;
        world.tick().await?;
        let credentials = world.tenant.credentials.clone();
        world.reconfigure(|c| c.id = name.clone())?;
        let mut tenant = crate::connect::tenant(
            world.config().clone(),
            crate::upstream::client(Duration::from_secs(30))?,
        );
        tenant.credentials = credentials;
        Placer::default().place(&world, &call_plan(0), chrono::Utc::now());
        let sent = |world: &crate::testbed::World| {
            world.pbx.request_count("/")
                + ["GET", "POST", "PUT"]
                    .iter()
                    .map(|m| world.crm.request_count(m, "/"))
                    .sum::<usize>()
        };
        let before = sent(&world);
        let started = Instant::now();
        let report = world.pipeline.tick(&tenant).await?;
        times.push(started.elapsed());
        requests = sent(&world) - before;
        anyhow::ensure!(
            report.posted == 1 && world.crm.messages().len() == 1,
            "the cold tick did not post its call: {report:?}"
        );
        instantiations.push(bare_instantiation(runtime, &world, &name).await?);
    }
    times.sort_unstable();
    instantiations.sort_unstable();
    let median = percentile(&times, 50.0);
    let instantiation = percentile(&instantiations, 50.0);
    println!(
        "  cold tick (fresh composed tick, first tick of a tenant: poll, claim, the matcher's first call,\n\
         \x20   post, record; loopback simulators): median {}, max {} over {reps}; {requests} requests one\n\
         \x20   after another, {} at the bare round trip; instantiating the composed tick alone (a fresh\n\
         \x20   store, no call): median {}",
        ms(median),
        ms(times.last().copied().unwrap_or_default()),
        ms(round_trip * requests as u32),
        ms(instantiation)
    );
    figures.record(
        "cold.instantiation",
        "instantiating a fresh composed tick (median)",
        "ms",
        instantiation.as_secs_f64() * 1000.0,
        None,
    );
    figures.record(
        "cold.fresh-tick",
        "fresh composed tick with one call (median)",
        "ms",
        median.as_secs_f64() * 1000.0,
        Some(Goal::AtMost(GOAL_MS)),
    );
    Ok(())
}

/// How long instantiating the composed tick takes on its own: a fresh
/// store and instance, no call (what a cold tick pays before its first
/// request).
async fn bare_instantiation(
    runtime: &Runtime,
    world: &crate::testbed::World,
    name: &str,
) -> anyhow::Result<Duration> {
    let kv = crate::kv::KvCtx {
        namespace: format!("{name}-bare"),
        storage: world.storage.clone(),
    };
    let mut store = runtime.new_tick_store(
        kv,
        crate::outbound::OutboundPolicy::deny_all(),
        crate::state::Grants::default(),
    );
    let started = Instant::now();
    runtime.stages.tick.instantiate_async(&mut store).await?;
    Ok(started.elapsed())
}
