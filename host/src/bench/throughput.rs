//! `throughput`: a backlog of distinct calls, each with its own contact,
//! driven through poll → dedup → match → post → record → follow-up
//! queueing by back-to-back ticks (no poll interval), CRM rate limit off.

use super::{call_plan, ms, seed_contacts, world};
use crate::config::TenantOptions;
use crate::demo::Placer;
use crate::engine::Runtime;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the boundary scenario needs from this one.
#[derive(Clone, Copy, Debug)]
pub struct Throughput {
    /// Calls in the backlog (one match batch when one tick took them all).
    pub calls: usize,
    /// Ticks it took.
    pub ticks: usize,
    /// Wall time from the first tick until every message was posted.
    pub elapsed: Duration,
}

/// The largest `max_calls_per_tick` the configuration accepts.
const MAX_BATCH: u32 = 10_000;

/// Most ticks to wait for the backlog.
const MAX_TICKS: usize = 50;

/// Run the scenario and print its figures.
pub async fn run(
    runtime: Arc<Runtime>,
    dir: &Path,
    calls: usize,
    figures: &super::figures::Figures,
) -> anyhow::Result<Throughput> {
    anyhow::ensure!(calls > 0, "--calls must be at least 1");
    // One batch per tick, as large as the backlog (up to the setting's
    // maximum): the default bound (100 calls per tick) is for fairness
    // between tenants, and with it every tick re-reads the whole remaining
    // backlog from 3CX, since the cursor waits before the first deferred
    // call — that measures catch-up under the bound, not the stages.
    let options = TenantOptions {
        max_calls_per_tick: u32::try_from(calls).unwrap_or(u32::MAX).min(MAX_BATCH),
        ..TenantOptions::default()
    };
    let world = world(runtime, dir, "throughput", options).await?;
    // One contact more than the backlog, for the warm-up call.
    seed_contacts(&world, 0, calls + 1);
    // Warm-up: one call through every stage, so tokens, connections and the
    // tenant's warm match instance exist, as they do for a tenant that has
    // been running; a tenant's first batch in a process pays the matcher's
    // start-up once (the boundary scenario's "1 call, fresh" row).
    let mut placer = Placer::default();
    placer.place(&world, &call_plan(calls), chrono::Utc::now());
    world.tick().await?;
    let warm_up = world.crm.messages().len();
    anyhow::ensure!(warm_up == 1, "the warm-up call was not posted");
    let crm_before = crm_requests(&world);
    let pbx_before = world.pbx.request_count("/");
    let requests_before = |method: &str, path: &str| world.crm.request_count(method, path);
    let (directory_before, searches_before, messages_before) = (
        requests_before("POST", "/contacts/search"),
        requests_before("GET", "/conversations/search"),
        requests_before("POST", "/conversations/messages"),
    );

    let now = chrono::Utc::now();
    for i in 0..calls {
        placer.place(&world, &call_plan(i), now);
    }
    let started = Instant::now();
    let mut ticks = Vec::new();
    let mut totals = (0, 0, 0, 0);
    while world.crm.messages().len() < warm_up + calls && ticks.len() < MAX_TICKS {
        let t = Instant::now();
        let report = world.tick().await?;
        ticks.push(t.elapsed());
        totals.0 += report.posted;
        totals.1 += report.skipped + report.parked;
        totals.2 += report.retrying;
        if let Some(error) = &report.error {
            println!("  tick error: {error}");
            totals.3 += 1;
        }
    }
    let elapsed = started.elapsed();
    let posted = world.crm.messages().len() - warm_up;
    let crm = crm_requests(&world) - crm_before;
    let pbx = world.pbx.request_count("/") - pbx_before;
    let directory = world.crm.request_count("POST", "/contacts/search") - directory_before;
    let conversation_searches =
        world.crm.request_count("GET", "/conversations/search") - searches_before;
    let conversations_created = world.crm.conversations().len() - warm_up;
    let messages_posted =
        world.crm.request_count("POST", "/conversations/messages") - messages_before;

    // A tick after the backlog, with every call still inside the overlap
    // window: the cost of re-reading handled calls.
    let t = Instant::now();
    world.tick().await?;
    let reread = t.elapsed();

    let per_call = elapsed / calls.max(1) as u32;
    println!(
        "  measures: wall time from the first tick until the CRM simulator holds all {calls} messages;\n\
         \x20           ticks back to back, one tenant, {calls} distinct numbers and contacts, CRM rate limit off,\n\
         \x20           max_calls_per_tick {} (the default 100 bounds a tick for fairness between tenants)",
        world.tenant.config.settings.max_calls_per_tick
    );
    println!(
        "  {posted}/{calls} posted in {:.2} s over {} tick(s) ({} posted, {} skipped/parked, {} retrying, {} failed ticks)",
        elapsed.as_secs_f64(),
        ticks.len(),
        totals.0,
        totals.1,
        totals.2,
        totals.3
    );
    println!(
        "  throughput {:.0} calls/s ({} per call)",
        calls as f64 / elapsed.as_secs_f64(),
        ms(per_call)
    );
    println!(
        "  CRM requests per call {:.2} (directory searches {directory}, conversation searches {conversation_searches}, \
         conversations created {conversations_created}, messages posted {messages_posted}); 3CX requests {pbx} in total",
        crm as f64 / calls as f64
    );
    println!(
        "  next tick with the {calls} handled calls still in the overlap window: {}",
        ms(reread)
    );
    figures.record(
        "throughput.one-tenant.calls-per-s",
        "throughput, one tenant's backlog",
        "calls/s",
        calls as f64 / elapsed.as_secs_f64(),
        None,
    );
    println!(
        "  target >= 1000 calls/s: {}",
        if posted == calls && calls as f64 / elapsed.as_secs_f64() >= 1000.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(Throughput {
        calls,
        ticks: ticks.len(),
        elapsed,
    })
}

/// Every request the CRM simulator received, any method.
fn crm_requests(world: &crate::testbed::World) -> usize {
    ["GET", "POST", "PUT", "PATCH", "DELETE"]
        .iter()
        .map(|m| world.crm.request_count(m, "/"))
        .sum()
}
