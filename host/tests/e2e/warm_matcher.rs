//! Warm instances (`crates/runtime/src/engine/warm.rs`): a tenant's composed tick
//! (kept after a tick that matched calls) and its stand-alone matcher
//! (`connectzero match`) are reused across its invocations, never shared
//! with another tenant, dropped after a trap, and bounded in number and
//! age.
//!
//! Each test builds its own runtime, so the instantiation counters see only
//! that test's invocations.

use crate::common;

use common::*;
use connectzero::bindings::matcher::exports::connectzero::matcher::matcher::MatchOutcome;
use connectzero::bindings::types::{Call, StageError};
use connectzero::demo::{Placer, numbers};
use connectzero::engine::{Runtime, Stage, WarmLimits};
use connectzero::kv::KvCtx;
use connectzero::outbound::OutboundPolicy;
use connectzero::state::Grants;
use connectzero::storage::Storage;
use connectzero::testbed::World;
use std::collections::HashMap;
use std::sync::Arc;

/// A seeded world on `runtime`.
async fn world_on(runtime: Arc<Runtime>) -> anyhow::Result<(World, HashMap<&'static str, String>)> {
    let world = World::start(runtime, Storage::in_memory()?, eager(), false).await?;
    let contacts = connectzero::demo::seed_directory(&world);
    Ok((world, contacts))
}

/// Place one inbound call from Dana's number, just ended, call id `id`.
fn place_dana_call(world: &World, placer: &mut Placer, id: i32) {
    place(
        world,
        placer,
        &one_leg(id, outside(numbers::DANA), ext("101"), true, 20),
    );
}

/// Match `calls` for `world`'s tenant through the runtime directly, as the
/// pipeline does (same grants: the tenant's directory, nothing else).
async fn match_directly(
    runtime: &Runtime,
    world: &World,
    calls: &[Call],
) -> anyhow::Result<Vec<Result<MatchOutcome, StageError>>> {
    let tenant = &world.tenant;
    let new_store = || {
        let kv = KvCtx {
            namespace: tenant.id().to_string(),
            storage: world.storage.clone(),
        };
        let grants = Grants {
            directory: Some(tenant.directory.clone()),
            ..Grants::default()
        };
        runtime.new_store(Stage::Match, kv, OutboundPolicy::deny_all(), grants)
    };
    runtime
        .match_calls(
            tenant.id(),
            &tenant.directory,
            new_store,
            &tenant.settings,
            calls,
        )
        .await
}

/// An inbound call from `number` to extension 101, as the poll stage would
/// hand it to the matcher.
fn call_from(number: &str, leg_id: i32) -> Call {
    use connectzero::bindings::types::{CallLeg, Direction, DnKind, Party};
    let party = |number: &str, external: bool| Party {
        number: number.into(),
        display_name: None,
        extension: (!external).then(|| number.to_string()),
        external,
        owner: None,
        kind: if external {
            DnKind::ExternalLine
        } else {
            DnKind::Extension
        },
    };
    let (caller, callee) = (party(number, true), party("101", false));
    let start = chrono::Utc::now().timestamp_millis() - 20_000;
    let end = start + 20_000;
    Call {
        key: format!("3cx:{leg_id}@{start}"),
        legs: vec![CallLeg {
            leg_id,
            start_time: start,
            end_time: end,
            direction: Direction::Inbound,
            answered: true,
            duration_secs: 20,
            caller: caller.clone(),
            callee: callee.clone(),
            recording: None,
        }],
        direction: Direction::Inbound,
        answered: true,
        start_time: start,
        end_time: end,
        duration_secs: 20,
        caller,
        callee,
        answered_by: None,
        route: Vec::new(),
        missed_reason: None,
    }
}

fn matched_contact(results: &[Result<MatchOutcome, StageError>]) -> String {
    match results {
        [Ok(MatchOutcome::Matched(m))] => m.contact.id.clone(),
        other => panic!("expected one match, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_keeps_its_own_matcher_and_never_sees_another_tenants_contacts()
-> anyhow::Result<()> {
    let runtime = Runtime::new(None)?;
    // Two tenants with the same id (the testbed's), each with its own CRM in
    // which Dana has a different contact id: the strongest case, since an
    // instance filed under the id alone would search the other CRM.
    let (a, contacts_a) = world_on(runtime.clone()).await?;
    let (b, contacts_b) = world_on(runtime.clone()).await?;
    assert_eq!(a.tenant.id(), b.tenant.id());
    assert_ne!(contacts_a["Dana Fox"], contacts_b["Dana Fox"]);

    let (mut placer_a, mut placer_b) = (Placer::default(), Placer::default());
    for round in 0..3 {
        place_dana_call(&a, &mut placer_a, 10 + round);
        assert_eq!(a.tick().await?.posted, 1);
        place_dana_call(&b, &mut placer_b, 10 + round);
        assert_eq!(b.tick().await?.posted, 1);
    }

    for (world, contacts) in [(&a, &contacts_a), (&b, &contacts_b)] {
        let messages = world.crm.messages();
        assert_eq!(messages.len(), 3);
        for m in messages {
            assert_eq!(
                m.contact_id, contacts["Dana Fox"],
                "posted to its own CRM's Dana"
            );
        }
    }
    let ticks = runtime.tick_stats();
    // One composed tick per tenant, each reused for its two later ticks:
    // shared, there would be one; not kept, six.
    assert_eq!(ticks.instantiations, 2, "{ticks:?}");
    assert_eq!(ticks.reuses, 4, "{ticks:?}");
    assert_eq!(ticks.idle, 2, "{ticks:?}");
    // The ticks ran the matcher inside the composed tick, not the pool.
    assert_eq!(runtime.matcher_stats().instantiations, 0);
    // `connectzero match`'s path, three times per tenant, each answering
    // with its own CRM's Dana.
    let dana = call_from(numbers::DANA, 99);
    for _ in 0..3 {
        for (world, contacts) in [(&a, &contacts_a), (&b, &contacts_b)] {
            let results = world
                .pipeline
                .dry_run_match(&world.tenant, std::slice::from_ref(&dana))
                .await?;
            assert_eq!(matched_contact(&results), contacts["Dana Fox"]);
        }
    }
    let stats = runtime.matcher_stats();
    // One instance per tenant, each reused for its two later calls: shared,
    // there would be one; not kept, six.
    assert_eq!(stats.instantiations, 2, "{stats:?}");
    assert_eq!(stats.reuses, 4, "{stats:?}");
    assert_eq!(stats.idle, 2, "{stats:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matcher_that_trapped_is_dropped_and_the_next_call_gets_a_new_one() -> anyhow::Result<()>
{
    let runtime = Runtime::new(None)?;
    let (world, contacts) = world_on(runtime.clone()).await?;
    let dana = call_from(numbers::DANA, 1);

    for _ in 0..2 {
        let results = match_directly(&runtime, &world, std::slice::from_ref(&dana)).await?;
        assert_eq!(matched_contact(&results), contacts["Dana Fox"]);
    }
    assert_eq!(runtime.matcher_stats().instantiations, 1);

    // A caller id larger than the instance's 64 MiB memory limit: lowering
    // it into the guest makes its allocator fail, and the guest traps.
    let huge = call_from(&"5".repeat(80 << 20), 2);
    let trapped = match_directly(&runtime, &world, &[huge]).await;
    assert!(trapped.is_err(), "a call past the memory limit must trap");
    let stats = runtime.matcher_stats();
    assert_eq!(stats.discarded, 1, "{stats:?}");
    assert_eq!(stats.idle, 0, "the trapped instance is not kept: {stats:?}");

    let results = match_directly(&runtime, &world, std::slice::from_ref(&dana)).await?;
    assert_eq!(matched_contact(&results), contacts["Dana Fox"]);
    let stats = runtime.matcher_stats();
    assert_eq!(stats.instantiations, 2, "rebuilt after the trap: {stats:?}");
    // The second call and the trapping one ran on the first instance.
    assert_eq!(stats.reuses, 2, "{stats:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_matchers_are_bounded_in_number_and_in_uses() -> anyhow::Result<()> {
    let runtime = Runtime::with_warm_limits(
        None,
        WarmLimits {
            idle: 1,
            max_uses: 3,
        },
    )?;
    let (a, _) = world_on(runtime.clone()).await?;
    let (b, _) = world_on(runtime.clone()).await?;
    let dana = [call_from(numbers::DANA, 1)];

    // Alternating tenants with room for one idle instance: each call evicts
    // the other tenant's instance, so every call instantiates.
    for world in [&a, &b, &a, &b] {
        match_directly(&runtime, world, &dana).await?;
    }
    let stats = runtime.matcher_stats();
    assert_eq!((stats.instantiations, stats.evicted), (4, 3), "{stats:?}");
    assert_eq!(stats.idle, 1, "{stats:?}");

    // One tenant: its instance serves three calls, then is rebuilt.
    for _ in 0..6 {
        match_directly(&runtime, &b, &dana).await?;
    }
    let stats = runtime.matcher_stats();
    // b's instance from the loop above had served 1 call: it serves 2 more
    // and retires; a new one serves 3 and retires; a third serves the last.
    assert_eq!(stats.retired, 2, "{stats:?}");
    assert_eq!(stats.instantiations, 6, "{stats:?}");
    assert_eq!(stats.idle, 1, "{stats:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_that_matched_nothing_is_not_kept_warm() -> anyhow::Result<()> {
    let runtime = Runtime::new(None)?;
    let (world, _) = world_on(runtime.clone()).await?;
    // No calls: nothing to match, so the instance is not worth a slot
    // (10,000 idle tenants would only push the busy ones out).
    for _ in 0..3 {
        world.tick().await?;
    }
    let stats = runtime.tick_stats();
    assert_eq!(stats.instantiations, 3, "{stats:?}");
    assert_eq!((stats.reuses, stats.idle), (0, 0), "{stats:?}");
    // A call to match: the instance stays for the next ticks, quiet ones
    // included.
    place_dana_call(&world, &mut Placer::default(), 7);
    assert_eq!(world.tick().await?.posted, 1);
    world.tick().await?;
    world.tick().await?;
    let stats = runtime.tick_stats();
    assert_eq!(stats.instantiations, 4, "{stats:?}");
    assert_eq!((stats.reuses, stats.idle), (2, 1), "{stats:?}");
    Ok(())
}
