//! Crashes and concurrency against the real binary: `connectzero run`
//! processes killed with SIGKILL at random moments, and two processes on one
//! database at once. After the dust settles the CRM simulator must hold
//! every call exactly once.

mod common;

use common::*;
use connectzero::config::{HostConfig, TenantOptions};
use connectzero::demo::{CallPlan, PlacedCall, Placer, numbers};
use connectzero::testbed::World;
use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_connectzero");
/// Longest the final, uninterrupted run may take to catch up.
const CATCH_UP: Duration = Duration::from_secs(120);

fn options() -> TenantOptions {
    // A short lease so a killed worker's claims pass to its successor in
    // seconds, not minutes.
    TenantOptions {
        claim_lease_secs: 3,
        retry_base_ms: 0,
        ..TenantOptions::default()
    }
}

/// Write a configuration for `world`'s tenant with its database in `dir`.
fn write_config(world: &World, dir: &Path) -> std::path::PathBuf {
    let config = HostConfig {
        database: dir.join("connectzero.db").display().to_string(),
        tenants: vec![world.config().clone()],
    };
    let path = dir.join("connectzero.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    path
}

fn start_host(config: &Path) -> Child {
    Command::new(BIN)
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Place `count` calls from the seeded contacts' numbers.
fn place_calls(world: &World, count: usize) -> Vec<PlacedCall> {
    place_calls_ending(world, count, chrono::Utc::now())
}

/// Place `count` calls, the last one ending at `now`.
fn place_calls_ending(
    world: &World,
    count: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<PlacedCall> {
    let numbers = [
        numbers::DANA,
        numbers::ELI,
        numbers::FAY,
        numbers::GWEN,
        numbers::IAN,
    ];
    let mut placer = Placer::default();
    (0..count)
        .map(|i| {
            let plan: CallPlan = one_leg(
                i as i32 + 1,
                outside(numbers[i % numbers.len()]),
                ext("101"),
                true,
                20,
            );
            placer.place(
                world,
                &plan,
                now - chrono::Duration::milliseconds((count - i) as i64 * 7),
            )
        })
        .collect()
}

/// Wait (bounded) until the CRM holds `count` messages.
async fn wait_for_messages(world: &World, count: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while world.crm.messages().len() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_exactly_once(world: &World, placed: &[PlacedCall]) {
    let messages = world.crm.messages();
    let mut seen = HashSet::new();
    for m in &messages {
        let alt = m.alt_id.clone().unwrap_or_default();
        assert!(seen.insert(alt.clone()), "call {alt} was posted twice");
    }
    let missing: Vec<_> = placed
        .iter()
        .filter(|p| !seen.contains(&p.key))
        .map(|p| p.key.clone())
        .collect();
    assert!(
        missing.is_empty(),
        "{} calls never posted, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    assert_eq!(messages.len(), placed.len());
}

/// `CONNECTZERO_CHAOS_LONG=1 cargo test -p connectzero --test chaos` runs
/// the long mode: 100 kills during 10,000 calls.
fn chaos_size() -> (u64, usize) {
    match std::env::var("CONNECTZERO_CHAOS_LONG").as_deref() {
        Ok("1") => (100, 10_000),
        _ => (20, 2_000),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kill_nines_during_two_thousand_calls_lose_and_duplicate_nothing() {
    let (rounds, calls) = chaos_size();
    let (world, _) = seeded_world(options()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&world, dir.path());
    let placed = place_calls(&world, calls);

    let mut kills = 0;
    for round in 0..rounds {
        let mut host = start_host(&config);
        // Kill at a different moment each round: some before the first poll,
        // some mid-batch, some between ticks.
        let wait = 150 + (round * 7919 + rand::random::<u64>()) % 900;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        host.kill().unwrap(); // SIGKILL: no shutdown code runs.
        host.wait().unwrap();
        kills += 1;
    }
    let mut host = start_host(&config);
    wait_for_messages(&world, placed.len(), CATCH_UP).await;
    host.kill().unwrap();
    host.wait().unwrap();

    println!(
        "{kills} kills; {} messages for {} calls",
        world.crm.messages().len(),
        placed.len()
    );
    assert_exactly_once(&world, &placed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_one_database_post_each_call_once() {
    let (world, _) = seeded_world(TenantOptions {
        retry_base_ms: 0,
        ..TenantOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&world, dir.path());
    let placed = place_calls(&world, 500);
    let mut first = start_host(&config);
    let mut second = start_host(&config);
    wait_for_messages(&world, placed.len(), CATCH_UP).await;
    // Let both run a little longer: any duplicate would show up now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for host in [&mut first, &mut second] {
        host.kill().unwrap();
        host.wait().unwrap();
    }
    assert_exactly_once(&world, &placed);
}

#[tokio::test]
async fn the_pipeline_catches_up_after_a_storm_of_faults() {
    use connectzero_simulators::highlevel::Fault as CrmFault;
    use connectzero_simulators::threecx::Fault as PbxFault;
    let (world, _) = seeded_world(TenantOptions {
        retry_base_ms: 0,
        ..TenantOptions::default()
    })
    .await;
    let placed = place_calls(&world, 200);
    // Slow 3CX, a burst of 5xx and a 429 storm (Retry-After 0, so the test
    // does not wait), then every token expires mid-run.
    world
        .pbx
        .inject_failures(PbxFault::Slow(Duration::from_millis(300)), 3);
    world.pbx.inject_failures(PbxFault::ServerError, 2);
    world.crm.inject_failures(CrmFault::ServerError, 15);
    world.crm.inject_failures(
        CrmFault::TooManyRequests {
            retry_after_secs: Some(0),
        },
        30,
    );
    let mut expired = false;
    for _ in 0..60 {
        let report = world.tick().await.unwrap();
        if !expired && report.posted > 0 {
            world.pbx.expire_tokens();
            world.crm.expire_access_tokens();
            expired = true;
        }
        if world.crm.messages().len() == placed.len() {
            break;
        }
    }
    assert!(expired, "some calls posted before the tokens expired");
    assert_exactly_once(&world, &placed);
}

#[tokio::test]
async fn a_3cx_restored_mid_run_reissues_leg_ids_and_every_new_call_still_posts() {
    let (world, _) = seeded_world(TenantOptions {
        retry_base_ms: 0,
        ..TenantOptions::default()
    })
    .await;
    // The first calls ended three minutes ago: still inside the overlap
    // window, so every later poll reads them again next to the new ones.
    let before = place_calls_ending(
        &world,
        100,
        chrono::Utc::now() - chrono::Duration::minutes(3),
    );
    for _ in 0..5 {
        world.tick().await.unwrap();
    }
    assert_eq!(world.crm.messages().len(), 100);
    // The PBX is restored from a backup: its segment ids start over, so the
    // next 100 calls reuse the ids (and call ids) of the first 100.
    let after = place_calls(&world, 100);
    assert_eq!(
        after[0].key.split('@').next(),
        before[0].key.split('@').next()
    );
    for _ in 0..5 {
        world.tick().await.unwrap();
    }
    let all: Vec<PlacedCall> = before.into_iter().chain(after).collect();
    assert_exactly_once(&world, &all);
}
