//! A tenant's tick lease under `spin up`: a tick that runs long renews it
//! as it writes, and a tick whose lease another tick took is refused every
//! further write (`components/tenancy/src/fence.rs`).

use super::{SpinApp, assert_each_call_once, quick_retries, spin_cli};
use crate::common::{self, seeded_world};
use connectzero::demo;
use connectzero::testbed::World;
use guest_support::tenancy;
use serde_json::Value;
use std::time::Duration;

/// Calls placed; each message takes [`POST_LATENCY`] to post, so one tick
/// posting them all runs several times the two-second lease.
const CALLS: usize = 12;
const POST_LATENCY: Duration = Duration::from_millis(400);
/// The tick lease: two seconds, so it is renewed (a third left) about
/// every 1.3 s while the tick writes.
const LEASE: [(&str, &str); 1] = [("tenant_lease_secs", "2")];

/// `CALLS` answered calls, each to be posted once, posting slowed down.
fn slow_calls(world: &World) {
    world
        .crm
        .set_latency_on("/conversations/messages/inbound", POST_LATENCY);
    let mut placer = demo::Placer::default();
    for i in 0..CALLS {
        placer.place(
            world,
            &common::one_leg(
                i as i32 + 1,
                common::outside(demo::numbers::DANA),
                common::ext("101"),
                true,
                10,
            ),
            chrono::Utc::now(),
        );
    }
}

/// Wait (bounded: 30 s) until the CRM holds at least `count` messages.
async fn posted_at_least(world: &World, count: usize) {
    for _ in 0..600 {
        if world.crm.messages().len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "only {} messages after 30 s, waiting for {count}",
        world.crm.messages().len()
    );
}

/// A tick posting for longer than its lease keeps the tenant: a second
/// tick started after the lease's first end finds it still held. Without
/// renewal the second would take the tenant over mid-tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_running_past_its_lease_renews_it_as_it_writes() -> anyhow::Result<()> {
    let Some(spin) = spin_cli() else {
        return Ok(());
    };
    let (world, _) = seeded_world(quick_retries().build()).await?;
    let state = tempfile::tempdir()?;
    let app = SpinApp::start_with(&spin, &world, state.path(), "renew", &LEASE)?;
    slow_calls(&world);

    let first = app.try_tick();
    let second = async {
        // Seven posts take 2.8 s: past the lease's first end.
        posted_at_least(&world, 7).await;
        app.try_tick().await
    };
    let (first, second) = tokio::join!(first, second);
    let (first, second) = (
        first.map_err(anyhow::Error::msg)?,
        second.map_err(anyhow::Error::msg)?,
    );
    assert_eq!(
        second["skipped"],
        "another tick holds this tenant's lease",
        "the second tick took the tenant over: {second}\n{}",
        app.logs()
    );
    assert_eq!(
        first["posted"], CALLS,
        "the first tick posts them all: {first}"
    );
    assert_eq!(world.crm.messages().len(), CALLS, "{first}\n{}", app.logs());
    assert_each_call_once(&world, "renewed lease");
    Ok(())
}

/// A tick whose lease another tick took (it stalled past the lease) stops
/// writing at its next renewal, and the calls it left are posted once by
/// the ticks after it. Without the fence it would post every call itself,
/// beside the tick that holds the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_that_lost_its_lease_stops_writing() -> anyhow::Result<()> {
    let Some(spin) = spin_cli() else {
        return Ok(());
    };
    let (world, _) = seeded_world(quick_retries().claim_lease_secs(1).build()).await?;
    let state = tempfile::tempdir()?;
    let app = SpinApp::start_with(&spin, &world, state.path(), "fence", &LEASE)?;
    slow_calls(&world);
    let lease_key = tenancy::lease_key(tenancy::APP_LEASE_ID);
    let lease = |holder: &str, until_ms: i64| {
        let lease = tenancy::Lease {
            holder: holder.into(),
            until_ms,
        };
        guest_support::kv::encode(&lease_key, &lease).map_err(|e| anyhow::anyhow!("{e:?}"))
    };

    let first = app.try_tick();
    let take_over = async {
        posted_at_least(&world, 2).await;
        // Another tick holds the tenant for the next minute.
        let until = chrono::Utc::now().timestamp_millis() + 60_000;
        app.store
            .put(state.path(), &lease_key, &lease("another-tick", until)?)
    };
    let (first, taken) = tokio::join!(first, take_over);
    taken?;
    let first: Value = first.map_err(anyhow::Error::msg)?;
    let by_first = world.crm.messages().len();
    assert!(
        by_first < CALLS,
        "the tick went on posting after losing its lease ({by_first} of {CALLS}): {first}\n{}",
        app.logs()
    );
    assert!(
        first.to_string().contains("lost tenant"),
        "the refusal is not reported: {first}"
    );

    // The other tick gives the lease back; the next ticks finish the job.
    app.store
        .put(state.path(), &lease_key, &lease("another-tick", 0)?)?;
    for round in 0.. {
        assert!(round < 30, "not settled after 30 ticks\n{}", app.logs());
        app.tick().await;
        if world.crm.messages().len() >= CALLS {
            break;
        }
        // Claims the fenced tick left expire after a second.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    app.tick().await;
    assert_eq!(world.crm.messages().len(), CALLS, "{}", app.logs());
    assert_each_call_once(&world, "after the fence");
    Ok(())
}
