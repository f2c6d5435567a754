//! Release 8fe53d6's demo, resumed by this release. That run was killed
//! with calls posted, one parked (a partner's matcher refused its number),
//! a recording and a trigger still queued, calls in progress (their
//! `call.started` fired) and a missed call waiting for its callback. This
//! release opens its database two minutes later (the upgrade's downtime,
//! in which the shorter calls in progress end) against simulators holding
//! what the run left there, on clocks reading that time:
//!
//! - 3CX: the demo's users and calls, laid out by the demo's own plan at
//!   the times the database recorded (so the rows re-read through the poll
//!   overlap are the very rows that release handled), the calls that were
//!   in progress (the longest still is), the late recordings now final;
//! - HighLevel: the demo's users and contacts, and every message that run
//!   posted, with the ids its database refers to; the trigger subscriptions
//!   it stored, now served on this run's port.
//!
//! Then the rest of the demo happens, and the operator replays the parked
//! call. Every call must end up posted (or skipped) once, every recording
//! attached once, every trigger fired once across both releases, and
//! nothing the first run finished is done again.
//!
//! The simulators cannot be the ones that run used (they lived in the
//! killed process), so this is a reconstruction from the fixture: the
//! CRM's state is what the database says was posted there. What the
//! reconstruction cannot hold (a write the old release made but never
//! recorded) is the crash window the exactly-once tests cover.

use super::copy_fixture;
use crate::common::posted_keys;
use anyhow::{Context as _, Result, bail, ensure};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use connectzero::config::TenantOptions;
use connectzero::demo::{self, CallPlan, Expect, PlacedCall, Placer};
use connectzero::engine::Runtime;
use connectzero::pipeline::TickReport;
use connectzero::storage::{CallRecord, Storage};
use connectzero::testbed::{TENANT, World};
use connectzero_simulators::highlevel::PriorMessage;
use connectzero_simulators::threecx::SegmentWrites;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How long the upgrade kept the host down.
const DOWNTIME_MS: i64 = 2 * 60 * 1000;

/// Ticks allowed for each phase to settle: far more than it needs.
const MAX_TICKS: usize = 30;

/// What the previous release left in the demo tenant's namespace and log.
struct Left {
    kv: BTreeMap<String, Vec<u8>>,
    calls: Vec<CallRecord>,
}

impl Left {
    fn read(db: &std::path::Path, storage: &Storage) -> Result<Self> {
        let conn = rusqlite::Connection::open(db)?;
        let kv = conn
            .prepare("SELECT key, value FROM kv WHERE namespace = ?1")?
            .query_map([TENANT], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Self {
            kv,
            calls: storage.calls(TENANT)?,
        })
    }

    fn json(&self, key: &str) -> Result<serde_json::Value> {
        let raw = self.kv.get(key).with_context(|| format!("{key} missing"))?;
        Ok(serde_json::from_slice(raw)?)
    }

    /// `(event, call key)` of every trigger that release delivered.
    fn delivered(&self) -> BTreeSet<(String, String)> {
        self.triggers_under("trigger/done/")
    }

    /// `(event, call key)` of every trigger that release left queued.
    fn queued_triggers(&self) -> BTreeSet<(String, String)> {
        self.triggers_under("trigger/job/")
    }

    /// The `<event>/<call key>` ids of the trigger queue's keys under
    /// `prefix`.
    fn triggers_under(&self, prefix: &str) -> BTreeSet<(String, String)> {
        self.kv
            .keys()
            .filter_map(|k| k.strip_prefix(prefix))
            .filter_map(|rest| rest.split_once('/'))
            .map(|(event, call)| (event.to_owned(), call.to_owned()))
            .collect()
    }

    /// The calls that release parked.
    fn parked(&self) -> Vec<String> {
        self.calls
            .iter()
            .filter(|c| c.outcome == "parked")
            .map(|c| c.call_key.clone())
            .collect()
    }

    /// When the run stopped, as near as the database tells: when it
    /// handled its last call (it was killed within a tick of that).
    fn stopped_at_ms(&self) -> i64 {
        self.calls
            .iter()
            .map(|c| c.handled_at_ms)
            .max()
            .unwrap_or(0)
    }
}

/// The 3CX call id and the start (ms) in a call key: `3cx:<id>@<ms>`, or
/// `3cx-active:<id>@<ms>` for a call seen in progress.
fn parse_key(key: &str) -> Result<(i32, i64)> {
    let (id, ms) = key
        .split_once(':')
        .and_then(|(_, rest)| rest.split_once('@'))
        .with_context(|| format!("call key {key}"))?;
    Ok((id.parse()?, ms.parse()?))
}

fn call_id_of(key: &str) -> Result<i32> {
    Ok(parse_key(key)?.0)
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("a time in range")
}

fn plan_of(plans: &[CallPlan], call_id: i32) -> Result<CallPlan> {
    plans
        .iter()
        .find(|p| p.call_id == call_id)
        .cloned()
        .with_context(|| format!("call {call_id} is not in the demo's plan"))
}

/// The CRM as the run left it: Bob's user, the demo's contacts (with the
/// ids the database names where it names them) and every posted message.
/// Returns the contact ids by name.
fn restore_crm(
    world: &World,
    left: &Left,
    plans: &[CallPlan],
) -> Result<HashMap<&'static str, String>> {
    let users = left.json("post/crm-users")?;
    let bob = users["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["email"] == "bob@acme.example"))
        .context("Bob in post/crm-users")?;
    let bob_id = bob["id"].as_str().context("Bob's id")?;
    world
        .crm
        .restore_user(bob_id, "Bob", "Jones", "bob@acme.example");

    // A contact's id, from the calls that release posted to it.
    let mut known: HashMap<&'static str, String> = HashMap::new();
    for call in &left.calls {
        let plan = plan_of(plans, call_id_of(&call.call_key)?)?;
        if let (Expect::Posted { contact, .. }, Some(id)) = (&plan.expect, &call.contact_id) {
            known.insert(*contact, id.clone());
        }
    }
    let base = at(left.stopped_at_ms()) - ChronoDuration::days(30);
    let mut contacts = HashMap::new();
    for (i, (name, contact)) in demo::demo_contacts(bob_id).into_iter().enumerate() {
        let added = base + ChronoDuration::days(i as i64);
        let id = match known.get(name) {
            Some(id) => {
                world.crm.restore_contact(id, contact, added);
                id.clone()
            }
            None => world.crm.add_contact_at(contact, added),
        };
        contacts.insert(name, id);
    }

    for call in left.calls.iter().filter(|c| c.outcome == "posted") {
        let contact_id = call
            .contact_id
            .clone()
            .context("posted without a contact")?;
        let conversation = left.json(&format!("post/conversation/{contact_id}"))?;
        let sending = left.json(&format!("post/sending/{}", call.call_key))?;
        let attachments = match left.kv.get(&format!("attach/done/{}", call.call_key)) {
            Some(raw) => serde_json::from_slice::<serde_json::Value>(raw)?["urls"]
                .as_array()
                .map(|urls| {
                    urls.iter()
                        .filter_map(|u| u.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            None => Vec::new(),
        };
        world.crm.restore_message(PriorMessage {
            id: call.detail.clone(),
            conversation_id: conversation.as_str().context("conversation id")?.to_owned(),
            contact_id,
            direction: call.direction.clone(),
            alt_id: call.call_key.clone(),
            call_from: call.caller.clone(),
            call_to: call.callee.clone(),
            attachments,
            user_id: sending["user"].as_str().map(str::to_owned),
            // The release dated the message with the call's start and
            // ended its text with the call's reference line.
            body: format!("Ref: {}", call.call_key),
            date: at(parse_key(&call.call_key)?.1),
            stored_at: at(call.handled_at_ms),
        });
    }
    Ok(contacts)
}

/// 3CX as the run left it: the handled calls' rows as the demo's plan lays
/// them out at the times the database recorded (checked against the legs
/// the ledger names), and the calls that were in progress, still listed as
/// active. Their recordings are final by now. Returns the placed calls
/// (the handled ones first).
fn restore_pbx(
    world: &World,
    left: &Left,
    plans: &[CallPlan],
    placer: &mut Placer,
) -> Result<Vec<PlacedCall>> {
    demo::seed_pbx_users(world);
    let finished_by_now = |mut plan: CallPlan| {
        if let Some(recording) = &mut plan.recording {
            recording.finalise_after = std::time::Duration::ZERO;
            // That release's 3CX transcribed nothing (insights came
            // later): the calls it posted never get any.
            recording.transcribed = false;
        }
        plan
    };
    // In call id order, as the demo placed them: the segment ids follow.
    let mut handled: Vec<(i32, &CallRecord)> = left
        .calls
        .iter()
        .map(|c| Ok((call_id_of(&c.call_key)?, c)))
        .collect::<Result<_>>()?;
    handled.sort_by_key(|(id, _)| *id);
    let mut placed = Vec::new();
    for (call_id, call) in handled {
        let plan = finished_by_now(plan_of(plans, call_id)?);
        let call_placed = placer.place(world, &plan, at(call.ended_at_ms));
        // The reconstruction is the release's own layout: the same keys.
        ensure!(
            call_placed.key == call.call_key,
            "call {} laid out as {}, the database has {}",
            plan.call_id,
            call_placed.key,
            call.call_key
        );
        placed.push(call_placed);
    }
    // Leg for leg: the rows are the ones the ledger recorded (the new
    // release finds its entries by leg id and start, not by call).
    let ledgered: BTreeSet<String> = left
        .kv
        .keys()
        .filter_map(|k| k.strip_prefix("ledger/"))
        .map(str::to_owned)
        .collect();
    let written: BTreeSet<String> = world
        .pbx
        .written_segments()
        .iter()
        .map(|s| format!("{}@{}", s.segment_id, s.start.timestamp_millis()))
        .collect();
    ensure!(
        written == ledgered,
        "rebuilt legs {written:?}\nledger {ledgered:?}"
    );
    let started: Vec<String> = serde_json::from_value(left.json("tick/started")?)?;
    for key in started {
        let (call_id, since) = parse_key(&key)?;
        if placed
            .iter()
            .any(|p: &PlacedCall| p.plan.call_id == call_id)
        {
            // Handled already: 3CX no longer lists it.
            continue;
        }
        let plan = finished_by_now(plan_of(plans, call_id)?);
        placed.push(placer.begin(world, &plan, at(since), SegmentWrites::AtCallEnd));
    }
    Ok(placed)
}

/// HighLevel's workflows keep the `targetUrl`s they gave; only the port of
/// this run's simulator differs from the killed run's.
fn point_subscriptions_at(storage: &Storage, left: &Left, base_url: &str) -> Result<()> {
    let mut subscriptions = left.json("trigger/subscriptions")?;
    for sub in subscriptions.as_array_mut().context("subscriptions")? {
        let url = sub["target_url"].as_str().context("target_url")?;
        let path = url
            .find("/workflows-marketplace/")
            .map(|i| &url[i..])
            .context("target path")?;
        sub["target_url"] = format!("{base_url}{path}").into();
    }
    storage.kv_set(
        TENANT,
        "trigger/subscriptions",
        &serde_json::to_vec(&subscriptions)?,
    )?;
    Ok(())
}

/// Tick until a tick does nothing, no recording or trigger job is left
/// queued and `settled` holds; the reports of the ticks run.
async fn settle(
    world: &World,
    settled: impl Fn(&World) -> Result<bool>,
) -> Result<Vec<TickReport>> {
    let mut reports = Vec::new();
    for _ in 0..MAX_TICKS {
        let report = world.tick().await?;
        if let Some(error) = &report.error {
            bail!("the tick failed: {error}");
        }
        let busy = report.posted
            + report.skipped
            + report.parked
            + report.retrying
            + report.attached
            + report.triggers_delivered
            + report.calls_started
            + report.deferred
            + report.in_flight;
        reports.push(report);
        let queued = world.storage.kv_count_prefix(TENANT, "attach/job/")?
            + world.storage.kv_count_prefix(TENANT, "trigger/job/")?;
        if busy == 0 && queued == 0 && settled(world)? {
            return Ok(reports);
        }
    }
    let last = reports.last();
    let log: Vec<String> = world
        .storage
        .calls(TENANT)?
        .iter()
        .map(|c| {
            format!(
                "{} {} {} {} {}",
                c.call_key, c.outcome, c.detail, c.recording, c.triggers
            )
        })
        .collect();
    bail!(
        "not settled after {MAX_TICKS} ticks; last report {last:?}; call log:\n{}",
        log.join("\n")
    )
}

/// `(event, call key)` of every trigger execution the CRM received, in
/// order (`missed-call.recovered` names the missed call).
fn fired(world: &World) -> Vec<(String, String)> {
    world
        .crm
        .trigger_executions()
        .iter()
        .map(|e| {
            (
                e.body["event"].as_str().unwrap_or_default().to_owned(),
                e.body["callId"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Triggers as `(event, call key)` pairs.
type Fired = BTreeSet<(String, String)>;

/// `set` apart: the `call.started` triggers, and the calls' own (ended,
/// missed, recovered).
fn started_apart(set: &Fired) -> (Fired, Fired) {
    set.iter()
        .cloned()
        .partition(|(event, _)| event == "call.started")
}

/// Every execution reached the workflow subscribed to its event: the
/// target URL's last segment is the subscription's id.
fn check_targets(world: &World, left: &Left) -> Result<()> {
    let subscriptions = left.json("trigger/subscriptions")?;
    let key_of: HashMap<&str, &str> = subscriptions
        .as_array()
        .context("subscriptions")?
        .iter()
        .filter_map(|s| Some((s["id"].as_str()?, s["key"].as_str()?)))
        .collect();
    for execution in world.crm.trigger_executions() {
        let id = execution.target_path.rsplit('/').next().unwrap_or_default();
        let event = execution.body["event"].as_str().unwrap_or_default();
        ensure!(
            key_of.get(id) == Some(&event),
            "{event} delivered to {}",
            execution.target_path
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_previous_releases_demo_resumes_with_every_call_recording_and_trigger_once()
-> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = copy_fixture(dir.path())?;
    let storage = Storage::open(&db)?;
    let left = Left::read(&db, &storage)?;
    ensure!(
        left.calls.len() >= 10,
        "the fixture has {} calls",
        left.calls.len()
    );

    // This release starts two minutes after the old one stopped; the PBX's
    // clock reads the same time.
    let resumed_at = left.stopped_at_ms() + DOWNTIME_MS;
    let runtime = Runtime::new(None)?;
    runtime.clock.resume_at(resumed_at);
    let options = TenantOptions::default();
    // Every call the old run handled is read again (the poll's overlap
    // reaches back past the first): "not posted again" means something.
    let cursor: i64 = serde_json::from_value(left.json("poll/cursor")?)?;
    let reread_from = cursor - i64::from(options.overlap_window_secs) * 1000;
    for call in &left.calls {
        ensure!(
            parse_key(&call.call_key)?.1 >= reread_from,
            "{} is before the window read again",
            call.call_key
        );
    }
    let world = World::start(runtime.clone(), storage.clone(), options, false).await?;
    world.pbx.set_clock(resumed_at);
    let plans = demo::demo_calls();
    let contacts = restore_crm(&world, &left, &plans)?;
    let mut placer = Placer::default();
    let mut placed = restore_pbx(&world, &left, &plans, &mut placer)?;
    point_subscriptions_at(&storage, &left, &world.crm.base_url())?;
    let posted_before: BTreeSet<String> = posted_keys(&world).into_iter().collect();
    let hang_up = |call_id: i32| {
        world.pbx.remove_active_call(call_id);
        world.pbx.write_ended_call(call_id);
    };

    // 1. The calls in progress that ended during the downtime are written
    //    and no longer listed; the longer ones are still going on. The old
    //    run's calls are re-read (poll overlap): nothing is posted or fired
    //    again; the queued recording is attached, and the calls that
    //    ended meanwhile are posted.
    let in_progress: Vec<PlacedCall> = placed[left.calls.len()..].to_vec();
    ensure!(
        in_progress.iter().any(|p| p.ended > at(resumed_at)),
        "no call of the fixture is still going on at the upgrade"
    );
    for call in in_progress.iter().filter(|p| p.ended <= at(resumed_at)) {
        hang_up(call.plan.call_id);
    }
    let reports = settle(&world, |w| {
        Ok(w.storage
            .calls(TENANT)?
            .iter()
            .all(|c| c.recording != "pending"))
    })
    .await?;
    let reread: usize = reports.iter().map(|r| r.duplicates).sum();
    ensure!(
        reread >= left.calls.len(),
        "the old run's {} calls were read again {reread} times: {reports:?}",
        left.calls.len()
    );
    let reposted: Vec<String> = posted_keys(&world)
        .into_iter()
        .filter(|key| posted_before.contains(key))
        .collect();
    ensure!(
        reposted.len() == posted_before.len(),
        "calls the previous release posted were posted again: {reposted:?}"
    );

    // 2. Time passes: the last call in progress hangs up (and 3CX stops
    //    listing it long enough for the host to trust its rows), then the
    //    rest of the demo's calls happen, the callback to the missed
    //    caller last.
    let last_hang_up = in_progress
        .iter()
        .map(|p| p.ended)
        .max()
        .unwrap_or_default();
    let later = (last_hang_up + ChronoDuration::minutes(2)).timestamp_millis();
    runtime.clock.resume_at(later);
    world.pbx.set_clock(later);
    for call in in_progress.iter().filter(|p| p.ended > at(resumed_at)) {
        hang_up(call.plan.call_id);
    }
    let now = || at(runtime.clock.now_ms());
    for plan in &plans {
        if placed.iter().any(|p| p.plan.call_id == plan.call_id) {
            continue;
        }
        let ended = demo::callback_not_before(&placed, plan).map_or_else(now, |t| t.max(now()));
        placed.push(placer.place(&world, plan, ended));
    }
    let parked = left.parked();
    settle(&world, |w| {
        let rows = demo::rows(w, &placed, &contacts, false)?;
        // All final but the parked calls, which wait for an operator.
        Ok(rows
            .iter()
            .filter(|r| !parked.contains(&r.call.key))
            .all(|r| demo::all_final(std::slice::from_ref(r), false)))
    })
    .await?;

    // 3. The call the partner's matcher parked stayed parked (nothing
    //    posts a parked call by itself); the operator replays it, with
    //    this release's matcher, and it is posted once, with its triggers.
    ensure!(!parked.is_empty(), "the fixture has no parked call");
    for key in &parked {
        let outcome = storage.call_outcome(TENANT, key)?;
        ensure!(
            outcome.as_deref() == Some("parked"),
            "{key} is {outcome:?} after the upgrade"
        );
        ensure!(
            !world
                .crm
                .messages()
                .iter()
                .any(|m| m.alt_id.as_deref() == Some(key.as_str()))
                && !fired(&world).iter().any(|(_, call)| call == key),
            "{key} reached the CRM while parked"
        );
        world
            .pipeline
            .replay_call(&world.tenant, key, true)
            .await?
            .map_err(|refused| anyhow::anyhow!("replaying {key}: {refused}"))?;
    }
    settle(&world, |w| {
        let rows = demo::rows(w, &placed, &contacts, false)?;
        Ok(demo::all_final(&rows, false))
    })
    .await?;

    // Every call: its outcome, rule and contact as the demo expects, its
    // recording attached exactly when it has one.
    let rows = demo::rows(&world, &placed, &contacts, false)?;
    let wrong: Vec<String> = rows
        .iter()
        .filter(|r| !r.as_expected)
        .map(|r| {
            format!(
                "{} ({}): {:?}",
                r.call.plan.call_id, r.call.plan.label, r.record
            )
        })
        .collect();
    ensure!(
        wrong.is_empty(),
        "not as the demo expects:\n{}",
        wrong.join("\n")
    );
    ensure!(
        rows.len() == plans.len(),
        "{} of {} calls placed",
        rows.len(),
        plans.len()
    );

    // Every posted call has exactly one message, whichever release posted it.
    let posted = posted_keys(&world);
    let mut expected_posted: Vec<String> = placed
        .iter()
        .filter(|p| matches!(p.plan.expect, Expect::Posted { .. }))
        .map(|p| p.key.clone())
        .collect();
    expected_posted.sort();
    ensure!(
        posted == expected_posted,
        "messages {posted:?}, expected {expected_posted:?}"
    );

    // Every recording attached once: the old run's is not fetched again,
    // the queued one and the new one are uploaded once each.
    for (call, recording) in placed.iter().filter_map(|p| Some((p, p.plan.recording?))) {
        let uploads = world
            .crm
            .uploads()
            .iter()
            .filter(|u| u.file_name.ends_with(&format!("-{}.wav", recording.id)))
            .count();
        let attached_before = left.kv.contains_key(&format!("attach/done/{}", call.key));
        let want = usize::from(!attached_before);
        ensure!(
            uploads == want && world.pbx.download_count(recording.id) == want,
            "recording {} of call {}: {uploads} uploads, {} downloads, expected {want}",
            recording.id,
            call.key,
            world.pbx.download_count(recording.id)
        );
        let message = world
            .crm
            .messages()
            .into_iter()
            .find(|m| m.alt_id.as_deref() == Some(call.key.as_str()))
            .context("recorded call's message")?;
        ensure!(message.attachments.len() == 1, "{:?}", message.attachments);
    }

    // Every trigger fired once across both releases: what this release
    // fired, the previous one had not, and together they are what the
    // demo's calls should fire (the callback recovers the missed call;
    // the triggers left queued are delivered).
    let before = left.delivered();
    ensure!(
        before.iter().any(|(event, _)| event == "call.ended"),
        "the fixture delivered no call.ended: {before:?}"
    );
    check_targets(&world, &left)?;
    let now_fired = fired(&world);
    let fired_set: BTreeSet<(String, String)> = now_fired.iter().cloned().collect();
    ensure!(
        fired_set.len() == now_fired.len(),
        "a trigger fired twice: {now_fired:?}"
    );
    let again: Vec<_> = fired_set.intersection(&before).collect();
    ensure!(again.is_empty(), "fired again after the upgrade: {again:?}");
    // Every trigger the old run left queued (and had not delivered) is
    // delivered now.
    let queued: BTreeSet<_> = left
        .queued_triggers()
        .difference(&before)
        .cloned()
        .collect();
    ensure!(!queued.is_empty(), "the fixture has no trigger queued");
    let lost: Vec<_> = queued.difference(&fired_set).collect();
    ensure!(
        lost.is_empty(),
        "queued before the upgrade, never delivered: {lost:?}"
    );
    let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
    for p in &placed {
        for event in demo::expected_triggers(&p.plan) {
            expected.insert((event.to_owned(), p.key.clone()));
        }
        if demo::recovered_by(p.plan.call_id).is_some() {
            expected.insert(("missed-call.recovered".to_owned(), p.key.clone()));
        }
    }
    // The calls' own triggers: this release fires exactly those the old
    // one had not.
    let (_, ended_before) = started_apart(&before);
    ensure!(
        ended_before.is_subset(&expected),
        "the fixture fired {ended_before:?}, beyond {expected:?}"
    );
    let to_fire: BTreeSet<_> = expected.difference(&ended_before).cloned().collect();
    let (started_now, ended_now) = started_apart(&fired_set);
    ensure!(
        ended_now == to_fire,
        "fired after the upgrade:\n {ended_now:?}\nexpected\n {to_fire:?}"
    );
    // No call is seen starting twice: the calls in progress at the upgrade
    // had fired theirs (or left them queued: those are delivered now), and
    // the later ones were never seen in progress.
    let (started_queued, _) = started_apart(&queued);
    ensure!(
        started_now == started_queued,
        "call.started after the upgrade: {started_now:?}, left queued: {started_queued:?}"
    );

    // The call log names each call's triggers once, whichever release
    // fired them; and the old run's ledger entries are as that run left
    // them (but the replayed call's).
    let log: HashMap<String, String> = world
        .storage
        .calls(TENANT)?
        .into_iter()
        .map(|r| (r.call_key, r.triggers))
        .collect();
    for call in &placed {
        let mut want: Vec<&str> = expected
            .iter()
            .filter(|(_, key)| *key == call.key)
            .map(|(event, _)| event.as_str())
            .collect();
        want.sort_unstable();
        let logged = log.get(&call.key).map(String::as_str).unwrap_or_default();
        let mut got: Vec<&str> = logged
            .split_whitespace()
            .map(|t| t.strip_suffix("×1").unwrap_or(t))
            .collect();
        got.sort_unstable();
        ensure!(
            got == want,
            "{}: the call log says {logged:?}, expected {want:?}",
            call.key
        );
    }
    let after = Left::read(&db, &storage)?;
    let replayed = |value: &[u8]| {
        parked
            .iter()
            .any(|key| String::from_utf8_lossy(value).contains(&format!("\"{key}\"")))
    };
    for (key, value) in left
        .kv
        .iter()
        .filter(|(k, v)| k.starts_with("ledger/") && !replayed(v))
    {
        ensure!(after.kv.get(key) == Some(value), "{key} changed");
    }
    ensure!(
        world.pbx.violations().list().is_empty() && world.crm.violations().list().is_empty(),
        "requests against the official documents: {:?} {:?}",
        world.pbx.violations().list(),
        world.crm.violations().list()
    );
    Ok(())
}
