//! Fair scheduling across tenants and HighLevel's per-location rate limit:
//! two tenants on one HighLevel location share its budget and both get
//! through without HighLevel ever answering 429; a 429 HighLevel answers
//! one tenant holds back the other's requests for its `Retry-After`
//! without them leaving the host; a tenant with a large
//! backlog works it a bounded batch per tick, so another tenant's calls
//! post in between.

use crate::common;
use anyhow::Context;

use common::*;
use connectzero::demo::{Placer, numbers};
use connectzero::pipeline::{Tenant, TickReport};
use connectzero::scheduler;
use connectzero::storage::Storage;
use connectzero::testbed::World;
use connectzero_simulators::highlevel::{HighLevelConfig, RateLimit};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Calls each tenant places in the rate-limit test.
const CALLS_EACH: i32 = 8;

/// Messages posted for calls whose key starts with `3cx:<id>@` for an id
/// in `ids`.
fn posted_for(world: &World, ids: std::ops::RangeInclusive<i32>) -> Vec<String> {
    world
        .crm
        .messages()
        .into_iter()
        .filter_map(|m| m.alt_id)
        .filter(|key| ids.clone().any(|id| key.starts_with(&format!("3cx:{id}@"))))
        .collect()
}

/// Ticks 100 ms apart, no waiting between retries.
fn fast_ticks() -> Options {
    options().poll_interval_ms(100).eager()
}

#[tokio::test]
async fn two_tenants_on_one_location_both_progress_and_highlevel_never_answers_429()
-> anyhow::Result<()> {
    // A small limit so the test needs a few seconds, not minutes: 10
    // requests per second per location, HighLevel's shape scaled down.
    let crm_config = HighLevelConfig {
        rate_limit: Some(RateLimit {
            max: 10,
            interval: Duration::from_secs(1),
        }),
        ..HighLevelConfig::default()
    };
    let (a, b) = sharing_one_location(crm_config).await?;
    let limiter = a.tenant.crm_limiter.clone().context("a has a limiter")?;
    assert!(
        Arc::ptr_eq(
            &limiter,
            b.tenant
                .crm_limiter
                .as_ref()
                .context("the tenant has a CRM limiter")?
        ),
        "tenants of one location share one limiter"
    );

    let now = chrono::Utc::now();
    let (mut pa, mut pb) = (Placer::default(), Placer::default());
    let from = [numbers::DANA, numbers::ELI, numbers::FAY];
    for i in 0..CALLS_EACH {
        let who = outside(from[i as usize % from.len()]);
        pa.place(
            &a,
            &one_leg(100 + i, who.clone(), ext("101"), true, 30),
            now,
        );
        pb.place(&b, &one_leg(200 + i, who, ext("102"), true, 30), now);
    }

    // Both tenants run on the real scheduler, on one pipeline; every tick
    // report comes back here.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, TickReport)>();
    let mut tasks = Vec::new();
    for tenant in [a.tenant.clone(), b.tenant.clone()] {
        let tx = tx.clone();
        tasks.push(tokio::spawn(scheduler::run_tenant(
            a.pipeline.clone(),
            tenant,
            stop_rx.clone(),
            move |t: &Tenant, r: &TickReport| {
                let _ = tx.send((t.id().to_string(), r.clone()));
            },
        )));
    }
    let done = |a: &World| {
        posted_for(a, 100..=199).len() == CALLS_EACH as usize
            && posted_for(a, 200..=299).len() == CALLS_EACH as usize
    };
    let mut ticks = 0;
    while !done(&a) {
        // Bounded: a few hundred ticks is minutes of budget at this limit.
        assert!(ticks < 600, "not all calls posted after {ticks} ticks");
        rx.recv().await.context("the scheduler reported a tick")?;
        ticks += 1;
    }
    stop_tx.send(true)?;
    for task in tasks {
        task.await?;
    }

    // Each call once, both tenants through.
    let (mine_a, mine_b) = (posted_for(&a, 100..=199), posted_for(&a, 200..=299));
    assert_eq!(mine_a.len(), CALLS_EACH as usize, "{mine_a:?}");
    assert_eq!(mine_b.len(), CALLS_EACH as usize, "{mine_b:?}");
    // The limiter held HighLevel's limit: not one 429 from the simulator,
    // although the two tenants together needed several bursts' worth.
    let requests = api_requests(&a);
    assert!(
        requests > 20,
        "only {requests} CRM requests: the test needs more than two bursts"
    );
    assert_eq!(a.crm.rate_limited_count(), 0, "HighLevel answered 429");
    let stats = limiter.stats();
    assert!(
        stats.waited > 0,
        "the limiter never had to hold a request back: {stats:?}"
    );
    assert_eq!(stats.upstream_429, 0, "{stats:?}");
    Ok(())
}

#[tokio::test]
async fn a_large_backlog_yields_to_another_tenant_between_bounded_ticks() -> anyhow::Result<()> {
    const BACKLOG: i32 = 60;
    const PER_TICK: u32 = 20;
    let storage = Storage::in_memory()?;
    let big = World::start(
        runtime(),
        storage.clone(),
        fast_ticks().max_calls_per_tick(PER_TICK).build(),
        false,
    )
    .await?;
    demo::seed(&big);
    let mut small = World::start(runtime(), storage, fast_ticks().build(), false).await?;
    demo::seed(&small);
    small.reconfigure(|c| c.id = "small".into())?;

    let now = chrono::Utc::now();
    let mut placer = Placer::default();
    for i in 0..BACKLOG {
        placer.place(
            &big,
            &one_leg(1000 + i, outside(numbers::DANA), ext("101"), true, 30),
            now,
        );
    }
    let mut placer = Placer::default();
    for i in 0..3 {
        placer.place(
            &small,
            &one_leg(5000 + i, outside(numbers::ELI), ext("102"), true, 30),
            now,
        );
    }

    // Ticks in turn, as the scheduler hands out a scarce tick slot: big
    // first (it asked first), then small.
    let first = big.pipeline.tick(&big.tenant).await?;
    assert_eq!(first.posted, PER_TICK as usize, "{first:?}");
    assert_eq!(
        first.deferred,
        (BACKLOG as u32 - PER_TICK) as usize,
        "{first:?}"
    );
    let other = big.pipeline.tick(&small.tenant).await?;
    assert_eq!(other.posted, 3, "{other:?}");
    // Small's calls posted while big still had most of its backlog.
    assert_eq!(big.crm.messages().len(), PER_TICK as usize);
    assert_eq!(small.crm.messages().len(), 3);

    // Big works the rest a bounded batch per tick, losing nothing.
    let mut ticks = 1;
    while big.crm.messages().len() < BACKLOG as usize {
        assert!(ticks < 10, "backlog not worked off after {ticks} ticks");
        let report = big.pipeline.tick(&big.tenant).await?;
        assert!(report.posted <= PER_TICK as usize, "{report:?}");
        ticks += 1;
    }
    assert_eq!(ticks, (BACKLOG as u32).div_ceil(PER_TICK) as usize);
    let mut keys = posted_keys(&big);
    keys.dedup();
    assert_eq!(
        keys.len(),
        BACKLOG as usize,
        "a call posted twice or not at all"
    );
    // A tick after the backlog finds nothing new.
    let after = big.pipeline.tick(&big.tenant).await?;
    assert_eq!((after.posted, after.deferred), (0, 0), "{after:?}");
    Ok(())
}

/// Tenants a and b, each with its own 3CX, on the same HighLevel app and
/// location (a's simulator, configured by `crm_config`), on one database.
async fn sharing_one_location(crm_config: HighLevelConfig) -> anyhow::Result<(World, World)> {
    let storage = Storage::in_memory()?;
    let a = World::start_with_crm(
        runtime(),
        storage.clone(),
        fast_ticks().build(),
        crm_config.clone(),
    )
    .await?;
    demo::seed(&a);
    let mut b = World::start_with_crm(runtime(), storage, fast_ticks().build(), crm_config).await?;
    demo::seed(&b);
    let tokens = a.crm.install();
    let shared = a.config().crm.clone();
    b.reconfigure(|c| {
        c.id = "b".into();
        c.crm = shared;
        c.crm.access_token = Some(connectzero::config::Secret::new(tokens.access_token));
        c.crm.refresh_token = connectzero::config::Secret::new(tokens.refresh_token);
    })?;
    Ok((a, b))
}

/// Requests that reached the CRM simulator's API (contacts and
/// conversations).
fn api_requests(world: &World) -> usize {
    ["GET", "POST", "PUT"]
        .iter()
        .map(|m| world.crm.request_count(m, "/c"))
        .sum()
}

#[tokio::test]
async fn a_429_for_one_tenant_holds_back_every_tenant_on_the_location() -> anyhow::Result<()> {
    let (a, b) = sharing_one_location(HighLevelConfig::default()).await?;
    let now = chrono::Utc::now();
    Placer::default().place(
        &a,
        &one_leg(100, outside(numbers::DANA), ext("101"), true, 30),
        now,
    );
    Placer::default().place(
        &b,
        &one_leg(200, outside(numbers::ELI), ext("102"), true, 30),
        now,
    );
    a.crm.inject_failures(
        connectzero_simulators::highlevel::Fault::TooManyRequests {
            retry_after_secs: Some(30),
        },
        1,
    );

    let first = a.pipeline.tick(&a.tenant).await?;
    assert_eq!((first.posted, first.retrying), (0, 1), "{first:?}");
    let before = api_requests(&a);
    // b's call waits for the same Retry-After without asking HighLevel.
    let second = a.pipeline.tick(&b.tenant).await?;
    assert_eq!((second.posted, second.retrying), (0, 1), "{second:?}");
    assert!(
        second
            .backoff
            .is_some_and(|wait| wait >= Duration::from_secs(20)),
        "{second:?}"
    );
    assert_eq!(
        api_requests(&a),
        before,
        "b's requests reached HighLevel during the block"
    );
    let stats = a
        .tenant
        .crm_limiter
        .as_ref()
        .context("the tenant has a CRM limiter")?
        .stats();
    assert_eq!(stats.upstream_429, 1, "{stats:?}");
    assert!(stats.refused >= 1, "{stats:?}");
    assert!(a.crm.messages().is_empty());
    Ok(())
}

mod demo {
    use connectzero::testbed::World;

    /// The demo's users and contacts in `world`'s simulators.
    pub fn seed(world: &World) {
        connectzero::demo::seed_directory(world);
    }
}
