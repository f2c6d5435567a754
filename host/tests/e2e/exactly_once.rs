//! Every call exactly once as a real 3CX writes its history (issue 15):
//! a call's rows appear only when it ends (NOTES §8), so a long call shows
//! up far behind the calls that ended after it started; its segments may
//! appear all at once or one by one; the rows may follow a moment after
//! the call left `ActiveCalls`; a tick slowed by the CRM can outlive its
//! claim lease; a follow-up queue can refuse a job.

use crate::common;
use anyhow::Context;

use chrono::{DateTime, Duration, Utc};
use common::*;
use connectzero::demo::numbers;
use connectzero::testbed::World;
use connectzero_simulators::highlevel::Message;
use connectzero_simulators::threecx::{SegmentWrites, SimActiveCall, SimParty, SimSegment};

/// Call id of the long call in these tests.
const LONG: i32 = 900;

/// The long call: Dana waits `queue_secs` in the sales queue, then talks
/// to extension 101 until it hangs up. Begun `length` before now, listed in
/// `ActiveCalls`, its rows written as `writes` says. Returns its key.
fn begin_long_call(world: &World, length: Duration, writes: SegmentWrites) -> String {
    let queue_secs = 30;
    let start: DateTime<Utc> = Utc::now() - length;
    let answered = start + Duration::seconds(queue_secs);
    let queue = SimSegment::new(
        LONG * 10,
        LONG,
        (start, answered),
        with_participant(outside(numbers::DANA), 1),
        with_participant(SimParty::queue("800", "Sales", 0), 2),
        false,
    );
    // The agent's segment ends at the hang-up (`end_call` stretches it).
    let agent = SimSegment::new(
        LONG * 10 + 1,
        LONG,
        (answered, answered + Duration::seconds(1)),
        with_participant(outside(numbers::DANA), 3),
        with_participant(ext("101"), 4),
        true,
    );
    world.pbx.begin_call(
        SimActiveCall {
            id: LONG,
            caller: numbers::DANA.into(),
            callee: "800 Sales".into(),
            status: "Talking".into(),
            established_at: start,
        },
        vec![queue, agent],
        writes,
    );
    format!("3cx:{LONG}@{}", start.timestamp_millis())
}

fn with_participant(mut party: SimParty, id: i32) -> SimParty {
    party.participant_id = LONG * 100 + id;
    party
}

/// Short calls from other contacts that start and end while the long call
/// goes on, each just ended.
fn place_short_calls(world: &World) {
    let mut placer = connectzero::demo::Placer::default();
    for (i, number) in [numbers::ELI, numbers::FAY, numbers::GWEN]
        .into_iter()
        .enumerate()
    {
        place(
            world,
            &mut placer,
            &one_leg(i as i32 + 1, outside(number), ext("102"), true, 20),
        );
    }
}

/// The messages posted for the call keyed `key`.
fn messages_of(world: &World, key: &str) -> Vec<Message> {
    world
        .crm
        .messages()
        .into_iter()
        .filter(|m| m.alt_id.as_deref() == Some(key))
        .collect()
}

/// A long call that ends after later short calls posts once, whole and
/// answered, for each length and each way 3CX may write its rows.
async fn long_call_posts_once(length: Duration, writes: SegmentWrites) -> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    let key = begin_long_call(&world, length, writes);
    place_short_calls(&world);
    tick_until(&world, 5, |w| w.crm.messages().len() == 3).await?;
    // More ticks while the long call goes on: the cursor must not pass it,
    // and a queue segment already written must not post as a missed call.
    for _ in 0..3 {
        world.tick().await?;
    }
    assert!(
        messages_of(&world, &key).is_empty(),
        "{writes:?}: the long call was posted before it ended"
    );
    world.pbx.end_call(LONG, true);
    tick_until(&world, 5, |w| messages_of(w, &key).len() == 1).await?;
    for _ in 0..3 {
        world.tick().await?;
    }
    let posted = messages_of(&world, &key);
    assert_eq!(posted.len(), 1, "{writes:?}: posted {} times", posted.len());
    assert_eq!(
        posted[0].call_status.as_deref(),
        Some("completed"),
        "{writes:?}: the long call must post whole, answered"
    );
    assert_eq!(world.crm.messages().len(), 4);
    Ok(())
}

#[tokio::test]
async fn a_20_minute_call_written_at_its_end_posts_once_after_later_short_calls()
-> anyhow::Result<()> {
    long_call_posts_once(Duration::minutes(20), SegmentWrites::AtCallEnd).await?;
    Ok(())
}

#[tokio::test]
async fn a_3_hour_call_written_at_its_end_posts_once_after_later_short_calls() -> anyhow::Result<()>
{
    long_call_posts_once(Duration::hours(3), SegmentWrites::AtCallEnd).await?;
    Ok(())
}

#[tokio::test]
async fn a_20_minute_call_written_segment_by_segment_posts_once_whole() -> anyhow::Result<()> {
    long_call_posts_once(Duration::minutes(20), SegmentWrites::OneByOne).await?;
    Ok(())
}

#[tokio::test]
async fn a_3_hour_call_written_segment_by_segment_posts_once_whole() -> anyhow::Result<()> {
    long_call_posts_once(Duration::hours(3), SegmentWrites::OneByOne).await?;
    Ok(())
}

#[tokio::test]
async fn rows_written_a_moment_after_the_call_left_active_calls_are_still_read()
-> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    let key = begin_long_call(&world, Duration::minutes(20), SegmentWrites::AtCallEnd);
    place_short_calls(&world);
    tick_until(&world, 5, |w| w.crm.messages().len() == 3).await?;
    // Gone from ActiveCalls, rows not written yet: ticks in between must
    // not move the cursor past the call.
    world.pbx.end_call(LONG, false);
    for _ in 0..3 {
        world.tick().await?;
    }
    world.pbx.write_ended_call(LONG);
    tick_until(&world, 5, |w| messages_of(w, &key).len() == 1).await?;
    Ok(())
}

#[tokio::test]
async fn a_worker_past_its_lease_never_posts_a_call_another_worker_took_over() -> anyhow::Result<()>
{
    let (world, _) = seeded_world(options().eager().claim_lease_secs(1).build()).await?;
    subscribe(&world, "call.ended", "sub-ended").await?;
    let second = connectzero::pipeline::Pipeline::new(runtime(), world.storage.clone());
    // Each CRM request takes 300 ms and posting a message 800 ms, so a
    // tick posting 20 calls runs far past the one-second lease: the other
    // worker takes calls over, and is still sending one when the first
    // worker reaches it.
    world.crm.set_latency(std::time::Duration::from_millis(300));
    world.crm.set_latency_on(
        "/conversations/messages/inbound",
        std::time::Duration::from_millis(800),
    );
    let mut placer = connectzero::demo::Placer::default();
    let contacts = [
        numbers::DANA,
        numbers::ELI,
        numbers::FAY,
        numbers::GWEN,
        numbers::IAN,
    ];
    for i in 0..20 {
        place(
            &world,
            &mut placer,
            &one_leg(
                i + 1,
                outside(contacts[i as usize % contacts.len()]),
                ext("101"),
                true,
                10 + i64::from(i),
            ),
        );
    }
    let mut rounds = 0;
    while world.crm.messages().len() < 20 || world.crm.trigger_executions().len() < 20 || rounds < 2
    {
        rounds += 1;
        assert!(rounds <= 20, "not settled after 20 rounds");
        // The first worker's tick claims every call and runs for seconds;
        // the second ticks again and again meanwhile, taking over each
        // call whose claim is older than the lease.
        let first_done = std::sync::atomic::AtomicBool::new(false);
        let first = async {
            let report = world.tick().await;
            first_done.store(true, std::sync::atomic::Ordering::SeqCst);
            report
        };
        let other = async {
            // At a scheduler's pace (a poll every 200 ms), bounded.
            let mut pace = tokio::time::interval(std::time::Duration::from_millis(200));
            for _ in 0..300 {
                pace.tick().await;
                second.tick(&world.tenant).await.unwrap();
                if first_done.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
            }
        };
        let (report, ()) = tokio::join!(first, other);
        report?;
    }
    let mut alt_ids = posted_keys(&world);
    assert_eq!(alt_ids.len(), 20, "messages posted: {alt_ids:?}");
    alt_ids.dedup();
    assert_eq!(alt_ids.len(), 20, "a call was posted twice");
    assert_eq!(world.crm.trigger_executions().len(), 20);
    Ok(())
}

#[tokio::test]
async fn a_backlog_of_60000_rows_is_caught_up_a_bounded_read_per_tick_each_call_once()
-> anyhow::Result<()> {
    // A first start on a busy PBX: 60,000 calls behind the cursor, more
    // than 500 pages of 100 rows (where an unbounded read gave up). Most
    // are internal calls (skipped, no CRM request); one in a thousand is
    // Dana's and posts. The tick bound on new calls is raised so the test
    // needs few ticks; the read bound per tick is the poll stage's own.
    let (world, _) = seeded_world(options().max_calls_per_tick(10_000).build()).await?;
    const CALLS: i32 = 60_000;
    let first = Utc::now() - Duration::hours(20);
    for i in 0..CALLS {
        let start = first + Duration::seconds(i64::from(i));
        let (src, dst) = if i % 1_000 == 0 {
            (outside(numbers::DANA), ext("101"))
        } else {
            (ext("102"), ext("103"))
        };
        world.pbx.add_segment(SimSegment::new(
            100_000 + i,
            100_000 + i,
            (start, start + Duration::seconds(5)),
            src,
            dst,
            true,
        ));
    }
    let (mut handled, mut ticks) = (0, 0);
    while handled < CALLS as usize {
        ticks += 1;
        assert!(
            ticks <= 40,
            "not caught up after 40 ticks: {handled} handled"
        );
        let report = world.tick().await?;
        assert_eq!(report.error, None, "tick {ticks} failed");
        handled += report.posted + report.skipped;
    }
    // Once more: nothing is handled twice.
    let report = world.tick().await?;
    assert_eq!(report.posted + report.skipped, 0);
    assert_eq!(handled, CALLS as usize);
    assert_eq!(world.crm.messages().len(), (CALLS / 1_000) as usize);
    let logged = world.storage.calls(world.tenant.id())?;
    assert_eq!(logged.len(), CALLS as usize);
    Ok(())
}

#[tokio::test]
async fn a_call_whose_trigger_cannot_be_queued_is_retried_and_its_trigger_delivered_once()
-> anyhow::Result<()> {
    let (world, _) = seeded_world(eager()).await?;
    subscribe(&world, "call.ended", "sub-ended").await?;
    let tenant = world.tenant.id().to_string();
    // The trigger queue's page list unreadable, as a failing store
    // leaves it: the next enqueue fails.
    world
        .storage
        .kv_set(&tenant, "trigger/pages", b"\x00 not a page list")?;
    let call = place_dana_call(&world, 1);
    let report = world.tick().await?;
    assert_eq!(world.crm.messages().len(), 1);
    assert_eq!((report.posted, report.retrying), (0, 1), "{report:?}");
    // Not done: the next ticks find the message (no second post) and try
    // the queue again.
    world.tick().await?;
    assert_eq!(world.crm.messages().len(), 1);
    world.storage.kv_delete(&tenant, "trigger/pages")?;
    tick_until(&world, 5, |w| w.crm.trigger_executions().len() == 1).await?;
    for _ in 0..2 {
        world.tick().await?;
    }
    assert_eq!(world.crm.messages().len(), 1);
    assert_eq!(world.crm.trigger_executions().len(), 1);
    assert_eq!(
        world.storage.call_outcome(&tenant, &call.key)?.as_deref(),
        Some("posted")
    );
    Ok(())
}

/// Place Dana's call 1 with HighLevel refusing its message once (a 422),
/// tick, and check that the call is parked.
async fn park_dana_call(world: &World) -> anyhow::Result<connectzero::demo::PlacedCall> {
    world.crm.inject_failures_on(
        "/conversations/messages/inbound",
        connectzero_simulators::highlevel::Fault::Unprocessable("refused once".into()),
        1,
    );
    let parked = place_dana_call(world, 1);
    world.tick().await?;
    let outcome = world.storage.call_outcome(world.tenant.id(), &parked.key)?;
    assert_eq!(outcome.as_deref(), Some("parked"));
    Ok(parked)
}

/// A replayed call (the status page's Retry, `connectzero replay`) whose
/// follow-ups cannot be queued is released in the ledger, and the call
/// log must say so: a log still saying "posted" would make the next
/// replay refuse the call as done, and its recording and triggers would
/// never be queued (no live poll reaches a call behind the cursor).
#[tokio::test]
async fn a_replayed_call_whose_follow_ups_cannot_be_queued_is_replayed_again_and_triggers_once()
-> anyhow::Result<()> {
    use connectzero::bindings::types::{CallFate, CallOutcome};
    let (world, _) = seeded_world(eager()).await?;
    subscribe(&world, "call.ended", "sub-ended").await?;
    let tenant = world.tenant.id().to_string();
    let parked = park_dana_call(&world).await?;
    let outcome = |world: &World| world.storage.call_outcome(&tenant, &parked.key).unwrap();

    // The trigger queue's page list unreadable: the next enqueue fails.
    world
        .storage
        .kv_set(&tenant, "trigger/pages", b"\x00 not a page list")?;
    let first = world
        .pipeline
        .replay_call(&world.tenant, &parked.key, true)
        .await??;
    assert!(matches!(first.fate, CallFate::Retrying(_)), "{first:?}");
    assert_eq!(world.crm.messages().len(), 1, "posted once");
    assert_eq!(outcome(&world).as_deref(), Some("retrying"));

    world.storage.kv_delete(&tenant, "trigger/pages")?;
    let second = world
        .pipeline
        .replay_call(&world.tenant, &parked.key, true)
        .await??;
    assert!(
        matches!(second.fate, CallFate::Settled(CallOutcome::Posted(_))),
        "{second:?}"
    );
    assert_eq!(world.crm.messages().len(), 1, "found, not posted again");
    assert_eq!(outcome(&world).as_deref(), Some("posted"));
    tick_until(&world, 5, |w| w.crm.trigger_executions().len() == 1).await?;
    for _ in 0..2 {
        world.tick().await?;
    }
    assert_eq!(world.crm.trigger_executions().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_retried_parked_call_is_replayed_alone_and_the_cursor_never_moves_back()
-> anyhow::Result<()> {
    let (world, _) = seeded_world(eager()).await?;
    let tenant = world.tenant.id().to_string();
    let parked = park_dana_call(&world).await?;
    // Later calls post and the cursor moves past the parked one.
    let mut placer = connectzero::demo::Placer::default();
    for id in 2..5 {
        placer.place(
            &world,
            &one_leg(id, outside(numbers::DANA), ext("101"), true, 10),
            Utc::now(),
        );
    }
    tick_until(&world, 5, |w| w.crm.messages().len() == 3).await?;
    let cursor = world
        .storage
        .poll_cursor(&tenant)?
        .context("the poll cursor is set")?;
    let parked_start: i64 = parked
        .key
        .rsplit_once('@')
        .context("a call key ends in @<start>")?
        .1
        .parse()?;
    assert!(cursor > parked_start, "the cursor passed the parked call");

    // The status page's Retry.
    world
        .storage
        .request_retry(&tenant, &parked.key, Utc::now().timestamp_millis())?;
    world.tick().await?;
    assert_eq!(
        world.storage.call_outcome(&tenant, &parked.key)?.as_deref(),
        Some("posted")
    );
    assert!(
        world
            .storage
            .poll_cursor(&tenant)?
            .context("the poll cursor is set")?
            >= cursor
    );
    assert!(
        world
            .storage
            .pending_retries(&tenant, i64::MAX, 10)?
            .is_empty()
    );
    for _ in 0..2 {
        world.tick().await?;
    }
    let mut keys = posted_keys(&world);
    keys.dedup();
    assert_eq!(keys.len(), 4, "each call posted once");
    assert_eq!(world.crm.messages().len(), 4);
    Ok(())
}

#[tokio::test]
async fn a_call_whose_ledger_completion_fails_holds_the_cursor_and_posts_once() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("complete.db");
    let storage = connectzero::storage::Storage::open(&path)?;
    let world = World::start(runtime(), storage, eager(), false).await?;
    connectzero::demo::seed_directory(&world);
    let tenant = world.tenant.id().to_string();
    // The disk refuses every write that would mark a leg done, as a full
    // or failing disk would.
    let db = rusqlite::Connection::open(&path)?;
    db.execute_batch(
        "CREATE TRIGGER refuse_done_insert BEFORE INSERT ON kv
             WHEN NEW.key LIKE 'ledger/%' AND CAST(NEW.value AS TEXT) LIKE '%\"done\"%'
             BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;
         CREATE TRIGGER refuse_done_update BEFORE UPDATE ON kv
             WHEN NEW.key LIKE 'ledger/%' AND CAST(NEW.value AS TEXT) LIKE '%\"done\"%'
             BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;",
    )?;
    // Two calls that ended minutes ago: no grace period holds the cursor,
    // only their unrecorded outcomes do.
    let mut placer = connectzero::demo::Placer::default();
    let calls: Vec<_> = [(1, 6), (2, 5)]
        .into_iter()
        .map(|(id, minutes_ago)| {
            placer.place(
                &world,
                &one_leg(id, outside(numbers::DANA), ext("101"), true, 10),
                Utc::now() - Duration::minutes(minutes_ago),
            )
        })
        .collect();
    let start_of = |key: &str| -> i64 { key.rsplit_once('@').unwrap().1.parse().unwrap() };
    let (first, last) = (start_of(&calls[0].key), start_of(&calls[1].key));
    assert!(first < last);
    let report = world.tick().await?;
    assert_eq!(world.crm.messages().len(), 2, "{report:?}");
    // Not recorded as done: the cursor stays at the first call (read again
    // from there), not at the newest start read.
    let held = world.storage.poll_cursor(&tenant)?;
    assert!(held.is_none_or(|c| c <= first), "{held:?} passed {first}");
    world.tick().await?;
    assert_eq!(world.crm.messages().len(), 2, "posted again while undone");

    // The disk recovers: the calls are found posted (their send markers),
    // done, and the cursor moves on.
    db.execute_batch("DROP TRIGGER refuse_done_insert; DROP TRIGGER refuse_done_update;")?;
    tick_until(&world, 5, |w| {
        w.storage
            .poll_cursor(w.tenant.id())
            .unwrap()
            .is_some_and(|c| c >= last)
    })
    .await?;
    for _ in 0..2 {
        world.tick().await?;
    }
    let mut keys: Vec<String> = calls.iter().map(|c| c.key.clone()).collect();
    keys.sort();
    assert_eq!(posted_keys(&world), keys);
    for call in &calls {
        assert_eq!(
            world.storage.call_outcome(&tenant, &call.key)?.as_deref(),
            Some("posted")
        );
    }
    Ok(())
}
