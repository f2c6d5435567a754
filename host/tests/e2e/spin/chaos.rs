//! Chaos on the scale-out path: three `spin up` replicas of one
//! multi-tenant app on one Redis, 100 tenants, the demo's 21 calls each
//! (2,100 calls, with recordings and workflow triggers), a replica killed
//! with SIGKILL in the middle of its ticks and restarted, round after
//! round. Every call must land once, every recording once, every trigger
//! once, and nothing may be left behind.

use super::tenants::{ADMIN_SECRET, admin, app_variables, tenant_settings, tenant_world};
use super::*;
use crate::redis::Redis;

/// Tenants in the run.
const TENANTS: usize = 100;

/// Replicas on the one store.
const REPLICAS: usize = 3;

/// Rounds before the run counts as stuck (each round ticks every replica
/// once).
const MAX_ROUNDS: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_on_redis_killed_and_restarted_land_every_call_once() -> anyhow::Result<()> {
    let Some(spin) = spin_cli() else {
        return Ok(());
    };
    let Some(redis) = Redis::start()? else {
        return Ok(());
    };
    let store = Store::Redis(std::sync::Arc::new(redis));
    let state = tempfile::tempdir()?;
    let mut variables = app_variables();
    // A killed replica's tenants are taken over within seconds.
    variables.push(("tenant_lease_secs".into(), "3".into()));
    let mut starts = 0;
    let launch = |starts: &mut usize| {
        *starts += 1;
        SpinApp::launch(
            &spin,
            state.path(),
            &format!("replica-{starts}"),
            &variables,
            &store,
        )
    };
    let mut replicas = Vec::new();
    for _ in 0..REPLICAS {
        replicas.push(launch(&mut starts)?);
    }

    eprintln!("chaos: {REPLICAS} replicas up");
    let plans = demo_plans();
    let mut worlds = Vec::new();
    for i in 0..TENANTS {
        let world = tenant_world(i).await?;
        let id = format!("t{i:03}");
        let mut settings = tenant_settings(&world);
        // A killed replica's claims are taken over within seconds too.
        settings.insert("claim_lease_secs", "5".into());
        let (status, answer) = admin(
            &replicas[i % REPLICAS],
            reqwest::Method::PUT,
            &format!("/admin/tenants/{id}"),
            Some(serde_json::json!({ "settings": settings })),
            Some(ADMIN_SECRET),
        )
        .await?;
        anyhow::ensure!(status == 201, "adding {id}: {status} {answer}");
        let url = format!("{}/t/{id}/triggers/subscription", replicas[0].base_url);
        for key in ["call.started", "call.ended", "missed-call", "call.insights"] {
            let sub = world
                .crm
                .subscribe_trigger(&url, key, "CREATED", &[("x-connectzero-secret", SECRET)])
                .await?;
            anyhow::ensure!(sub.status == 200, "{id} subscribing {key}: {}", sub.status);
        }
        worlds.push(world);
        if worlds.len() % 10 == 0 {
            eprintln!("chaos: {} tenants added", worlds.len());
        }
    }

    eprintln!("chaos: {TENANTS} tenants added and subscribed");
    // Every call rings first; rounds (no kills yet) until every tenant has
    // seen its calls ringing, so `call.started` fires for each.
    for world in &worlds {
        for plan in &plans {
            world
                .pbx
                .add_active_call(demo::active_call(plan, chrono::Utc::now()));
        }
    }
    let started = |w: &World| fired(w, "call.started");
    let mut rounds = 0;
    while !worlds.iter().all(|w| started(w) >= plans.len()) {
        rounds += 1;
        anyhow::ensure!(rounds <= 60, "calls still ringing unseen after 60 rounds");
        tick_round(&replicas).await;
    }
    eprintln!("chaos: every call seen ringing after {rounds} rounds");
    // Then they end and land in 3CX's call history.
    for world in &worlds {
        let mut placer = demo::Placer::default();
        for plan in &plans {
            world.pbx.remove_active_call(plan.call_id);
            placer.place(world, plan, chrono::Utc::now());
        }
    }

    // Rounds with a replica killed in the middle of its tick every third
    // round, restarted for the next.
    let want = expected_totals(&plans);
    let mut kills = 0;
    let mut round = 0;
    while !worlds.iter().all(|w| totals(w) == want) {
        round += 1;
        anyhow::ensure!(
            round <= MAX_ROUNDS,
            "after {MAX_ROUNDS} rounds {} of {TENANTS} tenants are complete",
            worlds.iter().filter(|w| totals(w) == want).count()
        );
        if round <= 3 || round % 3 == 1 {
            let victim = kills % REPLICAS;
            let pid = replicas[victim].child.id();
            // The kill lands somewhere inside the replicas' ticks: a
            // fault's timing, not a synchronisation.
            let delay = Duration::from_millis(20 + (round as u64 * 37) % 400);
            let kill = async {
                tokio::time::sleep(delay).await;
                signal_group(pid, "KILL");
            };
            tokio::join!(tick_round(&replicas), kill);
            // Reaped (and killed again, should it have survived).
            replicas[victim].kill_hard();
            kills += 1;
            let fresh = launch(&mut starts)?;
            replicas[victim] = fresh;
        } else {
            tick_round(&replicas).await;
        }
    }
    // A few more rounds: nothing further may arrive.
    for _ in 0..3 {
        tick_round(&replicas).await;
    }

    for (i, world) in worlds.iter().enumerate() {
        assert_each_call_once(world, &format!("tenant {i}"));
        // Totals equal to the demo's: no call, recording or trigger
        // missing, none twice.
        assert_eq!(totals(world), want, "tenant {i}");
    }
    assert!(kills >= 3, "only {kills} kills happened");
    eprintln!(
        "chaos: {TENANTS} tenants, {} calls, {kills} replicas killed, {round} rounds",
        TENANTS * plans.len()
    );
    Ok(())
}

/// Every replica ticks once, at the same moment; a replica that is down
/// or fails answers nothing, which the next round makes up for.
async fn tick_round(replicas: &[SpinApp]) {
    let _ = tokio::join!(
        replicas[0].try_tick(),
        replicas[1].try_tick(),
        replicas[2].try_tick()
    );
}
