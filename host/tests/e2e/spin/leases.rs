//! A tenant's tick lease under `spin up`: a tick that runs long renews it
//! as it works, and a tick whose lease another tick took is refused the
//! first writes of new keys (`components/tenancy/src/fence.rs`).

use super::{SpinApp, assert_each_call_once, fired, quick_retries, spin_cli, subscribe_through};
use crate::common::{self, seeded_world};
use connectzero::demo;
use connectzero::testbed::World;
use guest_support::tenancy;
use serde_json::Value;
use std::time::Duration;

/// Calls placed; each message takes [`POST_LATENCY`] to post, so one tick
/// posting them all runs several times the two-second lease.
const CALLS: usize = 16;
const POST_LATENCY: Duration = Duration::from_millis(400);
/// The tick lease: three seconds, so it is renewed (a third left) every
/// two seconds or so while the tick works; each post (a request, then
/// writes) gives it the chance.
const LEASE: [(&str, &str); 1] = [("tenant_lease_secs", "3")];

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
        // Ten posts take 4 s: past the lease's first end.
        posted_at_least(&world, 10).await;
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

/// A tick whose lease another tick took (it stalled past the lease) is
/// refused the first writes of new keys from its next renewal on: here the
/// `call.ended` jobs of the calls it posts. It finishes what it already
/// owns (its claimed calls' posts), and the ticks after it queue what it
/// could not: every call and every trigger lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_that_lost_its_lease_creates_nothing_more() -> anyhow::Result<()> {
    let Some(spin) = spin_cli() else {
        return Ok(());
    };
    let (world, _) = seeded_world(quick_retries().claim_lease_secs(1).build()).await?;
    let state = tempfile::tempdir()?;
    let app = SpinApp::start_with(&spin, &world, state.path(), "fence", &LEASE)?;
    subscribe_through(&world, &app.base_url).await?;
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
    assert!(
        first.to_string().contains("lost tenant"),
        "the tick went on creating keys after losing its lease: {first}\n{}",
        app.logs()
    );

    // The other tick gives the lease back; the next ticks finish the job.
    app.store
        .put(state.path(), &lease_key, &lease("another-tick", 0)?)?;
    let ended = |w: &World| fired(w, "call.ended");
    for round in 0.. {
        assert!(round < 40, "not settled after 40 ticks\n{}", app.logs());
        app.tick().await;
        if world.crm.messages().len() >= CALLS && ended(&world) >= CALLS {
            break;
        }
        // Claims the fenced tick left expire after a second.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    app.tick().await;
    assert_eq!(world.crm.messages().len(), CALLS, "{}", app.logs());
    assert_each_call_once(&world, "after the fence");
    assert_eq!(ended(&world), CALLS, "a call.ended fired twice");
    Ok(())
}
