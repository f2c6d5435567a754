//! Crashes and concurrency against the real binary: `connectzero run`
//! processes killed with SIGKILL at random moments, and two processes on one
//! database at once. After the dust settles the CRM simulator must hold
//! every call exactly once; in the kill test also every recording attached
//! exactly once and every workflow trigger delivered, duplicated only within
//! the bound the design allows (see
//! `assert_triggers_delivered_within_the_crash_bound`).

use crate::common;

use common::*;
use connectzero::config::{HostConfig, TenantOptions};
use connectzero::demo::{CallPlan, PlacedCall, Placer, numbers};
use connectzero::pipeline::Pipeline;
use connectzero::storage::Storage;
use connectzero::testbed::World;
use connectzero_simulators::threecx::SegmentWrites;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_connectzero");
/// Longest the final, uninterrupted run may take to catch up (a bound on
/// waiting, not a timing assertion: the tests go on as soon as it is done).
const CATCH_UP: Duration = Duration::from_secs(120);

/// The same for the kill test, which also drains ~2,400 trigger events at
/// 50 per tick.
const KILL_TEST_CATCH_UP: Duration = Duration::from_secs(300);

/// A short lease so a killed worker's claims pass to its successor in
/// seconds, not minutes; no waiting between retries.
fn short_lease() -> Options {
    options().eager().claim_lease_secs(3)
}

/// Options of the kill test. Every posted call queues trigger events, and
/// a tick works at most 50 (`FOLLOW_UP_BATCH`), so the ~2,400 events of
/// 2,000 calls need ~50 ticks: ticks 100 ms apart instead of 1 s, and an
/// overlap window of 2 s instead of 5 min so a tick does not re-read all
/// 2,000 handled calls (the overlap guards against 3CX writing rows late,
/// which the simulator never does; a killed worker's calls are protected by
/// the cursor being held at them, not by the overlap).
fn kill_test_options() -> TenantOptions {
    short_lease()
        .poll_interval_ms(100)
        .overlap_window_secs(2)
        .build()
}

/// Workflow subscriptions of the kill test: one workflow per trigger key
/// the calls fire. (Every posted call queues its events whatever is
/// subscribed; each subscription adds one HTTP delivery per event.)
const SUBSCRIPTIONS: [(&str, &str); 2] =
    [("sub-ended", "call.ended"), ("sub-missed", "missed-call")];

/// Register [`SUBSCRIPTIONS`] in the database at `db` as the host's
/// subscription endpoint would (the hosts listen on a random port).
async fn subscribe_all(world: &World, db: &Path) -> anyhow::Result<()> {
    let pipeline = Pipeline::new(runtime(), Storage::open(db)?);
    for (id, key) in SUBSCRIPTIONS {
        subscribe_on(&pipeline, world, key, id).await?;
    }
    Ok(())
}

/// Call ids of the kill test's long calls (the short ones count from 1).
const LONG_CALL_IDS: i32 = 80_000;

/// A call from Dana that waits 30 s in the sales queue, then talks to
/// extension 101 for the rest of `length` (until it is ended).
fn long_call_plan(call_id: i32, length: Duration) -> CallPlan {
    let mut plan = one_leg(
        call_id,
        outside(numbers::DANA),
        connectzero_simulators::threecx::SimParty::queue("800", "Sales", 0),
        false,
        30,
    );
    plan.legs.push(leg(
        outside(numbers::DANA),
        ext("101"),
        true,
        length.as_secs() as i64 - 30,
    ));
    plan
}

/// Every 10th call is recorded (finalised at hang-up: available), every 5th
/// is an unanswered inbound call (a missed call).
fn is_recorded(i: usize) -> bool {
    i % 10 == 3
}

fn is_missed(i: usize) -> bool {
    i % 5 == 1
}

/// Recording id of call `i`.
fn recording_id(i: usize) -> i32 {
    90_000 + i as i32
}

/// Place the kill test's calls `range` (indices into the whole run), the
/// last ending now: as [`place_calls`], with recordings and missed calls
/// mixed in.
fn place_mixed_calls(
    world: &World,
    placer: &mut Placer,
    range: std::ops::Range<usize>,
) -> Vec<PlacedCall> {
    let numbers = [
        numbers::DANA,
        numbers::ELI,
        numbers::FAY,
        numbers::GWEN,
        numbers::IAN,
    ];
    let now = chrono::Utc::now();
    let end = range.end;
    range
        .map(|i| {
            let mut plan: CallPlan = one_leg(
                i as i32 + 1,
                outside(numbers[i % numbers.len()]),
                ext("101"),
                !is_missed(i),
                20,
            );
            if is_recorded(i) {
                plan = plan.recorded(recording_id(i), Duration::ZERO);
            }
            placer.place(
                world,
                &plan,
                now - chrono::Duration::milliseconds((end - i) as i64 * 7),
            )
        })
        .collect()
}

/// (call key, trigger key, subscription id) of every delivery the calls
/// should cause.
fn expected_triggers(placed: &[PlacedCall]) -> HashSet<(String, String, String)> {
    placed
        .iter()
        .flat_map(|p| {
            let missed = !p.plan.legs.iter().any(|l| l.answered);
            SUBSCRIPTIONS
                .iter()
                .filter(move |(_, key)| *key == "call.ended" || missed)
                .map(|(id, key)| (p.key.clone(), key.to_string(), id.to_string()))
        })
        .collect()
}

/// How often the CRM simulator received each (call key, trigger key,
/// subscription id).
fn delivered_triggers(world: &World) -> HashMap<(String, String, String), usize> {
    let mut delivered = HashMap::new();
    for e in world.crm.trigger_executions() {
        let sub = e.target_path.rsplit('/').next().unwrap_or_default();
        let key = (
            e.body["callId"].as_str().unwrap_or_default().to_string(),
            e.body["event"].as_str().unwrap_or_default().to_string(),
            sub.to_string(),
        );
        *delivered.entry(key).or_insert(0) += 1;
    }
    delivered
}

/// Jobs waiting in a queue.
fn queued(storage: &Storage, tenant: &str, queue: &str) -> anyhow::Result<usize> {
    // One key per queued job (`guest-support/src/queue/`).
    Ok(storage.kv_count_prefix(tenant, &format!("{queue}/job/"))? as usize)
}

/// Whether the last host has finished everything the calls cause: every
/// message posted, every expected trigger delivered, and nothing left in the
/// recording or trigger queue (so no late redelivery can follow).
fn all_done(world: &World, storage: &Storage, placed: &[PlacedCall]) -> anyhow::Result<bool> {
    let tenant = world.config().id.as_str();
    let delivered = delivered_triggers(world);
    Ok(world.crm.messages().len() >= placed.len()
        && expected_triggers(placed)
            .iter()
            .all(|t| delivered.contains_key(t))
        && queued(storage, tenant, "trigger")? == 0
        && queued(storage, tenant, "attach")? == 0)
}

/// Write a configuration for `world`'s tenant with its database in `dir`.
fn write_config(world: &World, dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let config = HostConfig {
        database: dir.join("connectzero.db").display().to_string(),
        tenants: vec![world.config().clone()],
    };
    let path = dir.join("connectzero.toml");
    std::fs::write(&path, toml::to_string(&config)?)?;
    Ok(path)
}

fn start_host(config: &Path) -> anyhow::Result<Child> {
    Ok(Command::new(BIN)
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
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

/// `CONNECTZERO_CHAOS_LONG=1 cargo test -p connectzero --test e2e chaos::` runs
/// the long mode: 100 kills during 10,000 calls.
fn chaos_size() -> (u64, usize) {
    match std::env::var("CONNECTZERO_CHAOS_LONG").as_deref() {
        Ok("1") => (100, 10_000),
        _ => (20, 2_000),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kill_nines_during_two_thousand_calls_lose_and_duplicate_nothing()
-> anyhow::Result<()> {
    let (rounds, calls) = chaos_size();
    let (world, _) = seeded_world(kill_test_options()).await?;
    let dir = tempfile::tempdir()?;
    let config = write_config(&world, dir.path())?;
    let db = dir.path().join("connectzero.db");
    subscribe_all(&world, &db).await?;

    // The calls arrive in waves, one before each host starts, so the kills
    // land in every phase: claiming, posting, attaching, delivering
    // triggers. (This mode found a call posted twice and follow-ups lost
    // across a crash, both fixed.) `CONNECTZERO_CHAOS_BACKLOG=1` places the
    // whole run at once instead: most kills then land in the first claim of
    // one big backlog.
    let waves = std::env::var("CONNECTZERO_CHAOS_BACKLOG").as_deref() != Ok("1");
    let mut placer = Placer::default();
    let mut placed = Vec::new();
    let per_round = if waves {
        calls.div_ceil(rounds as usize)
    } else {
        calls
    };
    let mut kills = 0;
    // Long calls, as 3CX writes them (NOTES §8): in progress from the
    // first round to the middle one, far longer than the 2 s overlap
    // window, one written at its end, one segment by segment; their rows
    // appear behind hundreds of shorter calls.
    let long_calls = [
        (Duration::from_secs(20 * 60), SegmentWrites::AtCallEnd),
        (Duration::from_secs(3 * 60 * 60), SegmentWrites::OneByOne),
    ];
    let mut in_progress = Vec::new();
    for (i, (length, writes)) in long_calls.into_iter().enumerate() {
        let plan = long_call_plan(LONG_CALL_IDS + i as i32, length);
        let started = chrono::Utc::now() - chrono::Duration::from_std(length)?;
        in_progress.push(placer.begin(&world, &plan, started, writes));
    }
    for round in 0..rounds {
        let from = placed.len();
        let to = (from + per_round).min(calls);
        placed.extend(place_mixed_calls(&world, &mut placer, from..to));
        if round == rounds / 2 {
            for call in in_progress.drain(..) {
                world.pbx.end_call(call.plan.call_id, true);
                placed.push(call);
            }
        }
        let mut host = start_host(&config)?;
        // Kill at a different moment each round: some before the first poll,
        // some mid-batch, some between ticks.
        let wait = if waves { 300 } else { 150 } + (round * 7919 + rand::random::<u64>()) % 900;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        host.kill()?; // SIGKILL: no shutdown code runs.
        host.wait()?;
        kills += 1;
        println!(
            "kill {kills} after {wait} ms: {} calls placed, {} messages, {} trigger deliveries, {} uploads",
            placed.len(),
            world.crm.messages().len(),
            world.crm.trigger_executions().len(),
            world.crm.uploads().len()
        );
    }
    placed.extend(place_mixed_calls(&world, &mut placer, placed.len()..calls));
    let mut host = start_host(&config)?;
    let storage = Storage::open(&db)?;
    let deadline = Instant::now() + KILL_TEST_CATCH_UP;
    while !all_done(&world, &storage, &placed)? && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    host.kill()?;
    host.wait()?;

    let delivered = delivered_triggers(&world);
    println!(
        "{kills} kills; {} messages for {} calls; {} trigger deliveries for {} expected; {} uploads",
        world.crm.messages().len(),
        placed.len(),
        delivered.values().sum::<usize>(),
        expected_triggers(&placed).len(),
        world.crm.uploads().len(),
    );
    assert_exactly_once(&world, &placed);
    assert_recordings_attached_once(&world, &placed);
    assert_triggers_delivered_within_the_crash_bound(&world, &placed, kills as usize);
    Ok(())
}

/// Every available recording is the one attachment of its call's message,
/// and calls without a recording have none. (An upload interrupted by a kill
/// may leave an orphan upload in the CRM, attached to nothing; the attach
/// call replaces the message's attachments, so a retry never adds a second.)
fn assert_recordings_attached_once(world: &World, placed: &[PlacedCall]) {
    let messages: HashMap<String, Vec<String>> = world
        .crm
        .messages()
        .into_iter()
        .map(|m| (m.alt_id.unwrap_or_default(), m.attachments))
        .collect();
    let uploads: HashMap<String, String> = world
        .crm
        .uploads()
        .into_iter()
        .map(|u| (u.url, u.file_name))
        .collect();
    for p in placed {
        let attachments = &messages[&p.key];
        let Some(recording) = p.plan.recording else {
            assert!(attachments.is_empty(), "{}: {attachments:?}", p.key);
            continue;
        };
        assert_eq!(attachments.len(), 1, "{}: {attachments:?}", p.key);
        let file = uploads.get(&attachments[0]).unwrap_or_else(|| {
            panic!(
                "{}: attachment {} was never uploaded",
                p.key, attachments[0]
            )
        });
        assert!(
            file.ends_with(&format!("-{}.wav", recording.id)),
            "{}: attached {file}, not its recording",
            p.key
        );
    }
}

/// Workflow triggers: none lost, none delivered where it does not belong,
/// and duplicates only within the crash window the design leaves open.
///
/// HighLevel's trigger endpoint takes no idempotency key and offers no way
/// to ask whether an execution happened (HighLevel NOTES §5.2), so a kill
/// after HighLevel accepted a delivery and before the queue recorded it
/// delivers it again: at-least-once across a crash, exactly once otherwise.
/// The trigger queue records each event's progress after working it, one
/// event at a time, so a kill can repeat at most the deliveries of the one
/// event in flight: at most one per subscription of its key (1 here). The
/// bound asserted is therefore `kills × 1` duplicate deliveries in all.
fn assert_triggers_delivered_within_the_crash_bound(
    world: &World,
    placed: &[PlacedCall],
    kills: usize,
) {
    let expected = expected_triggers(placed);
    let delivered = delivered_triggers(world);
    let lost: Vec<_> = expected
        .iter()
        .filter(|t| !delivered.contains_key(*t))
        .collect();
    assert!(
        lost.is_empty(),
        "{} triggers never delivered, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    let stray: Vec<_> = delivered
        .keys()
        .filter(|t| !expected.contains(*t))
        .collect();
    assert!(
        stray.is_empty(),
        "deliveries no call should cause, e.g. {:?}",
        stray.first()
    );
    let per_event = SUBSCRIPTIONS
        .iter()
        .filter(|(_, key)| *key == "call.ended")
        .count();
    let duplicates: usize = delivered.values().map(|n| n - 1).sum();
    println!(
        "{duplicates} duplicated trigger deliveries (bound {})",
        kills * per_event
    );
    assert!(
        duplicates <= kills * per_event,
        "{duplicates} duplicated trigger deliveries after {kills} kills: more than one event's \
         deliveries per kill, e.g. {:?}",
        delivered.iter().find(|(_, n)| **n > 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_one_database_post_each_call_once() -> anyhow::Result<()> {
    let (world, _) = seeded_world(eager()).await?;
    let dir = tempfile::tempdir()?;
    let config = write_config(&world, dir.path())?;
    let placed = place_calls(&world, 500);
    let mut first = start_host(&config)?;
    let mut second = start_host(&config)?;
    wait_for_messages(&world, placed.len(), CATCH_UP).await;
    // Let both run a little longer: any duplicate would show up now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for host in [&mut first, &mut second] {
        host.kill()?;
        host.wait()?;
    }
    assert_exactly_once(&world, &placed);
    Ok(())
}

#[tokio::test]
async fn the_pipeline_catches_up_after_a_storm_of_faults() -> anyhow::Result<()> {
    use connectzero_simulators::highlevel::Fault as CrmFault;
    use connectzero_simulators::threecx::Fault as PbxFault;
    let (world, _) = seeded_world(eager()).await?;
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
        let report = world.tick().await?;
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
    Ok(())
}

#[tokio::test]
async fn a_3cx_restored_mid_run_reissues_leg_ids_and_every_new_call_still_posts()
-> anyhow::Result<()> {
    let (world, _) = seeded_world(eager()).await?;
    // The first calls ended three minutes ago: still inside the overlap
    // window, so every later poll reads them again next to the new ones.
    let before = place_calls_ending(
        &world,
        100,
        chrono::Utc::now() - chrono::Duration::minutes(3),
    );
    for _ in 0..5 {
        world.tick().await?;
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
        world.tick().await?;
    }
    let all: Vec<PlacedCall> = before.into_iter().chain(after).collect();
    assert_exactly_once(&world, &all);
    Ok(())
}
