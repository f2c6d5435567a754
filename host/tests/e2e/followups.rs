//! Recordings (attach) and workflow triggers (trigger) end to end.

use crate::common;

use common::*;
use connectzero::bindings::trigger::exports::connectzero::pipeline::trigger::{
    Subscription, SubscriptionChange,
};
use connectzero::demo::{Placer, numbers};
use connectzero::testbed::{TENANT, World};
use connectzero_simulators::highlevel::Fault as CrmFault;
use connectzero_simulators::threecx::SimActiveCall;

fn recording_status(world: &World, key: &str) -> String {
    world
        .storage
        .calls(TENANT)
        .unwrap()
        .into_iter()
        .find(|r| r.call_key == key)
        .map(|r| r.recording)
        .unwrap_or_default()
}

#[tokio::test]
async fn a_recording_that_finalises_late_is_attached_once() -> anyhow::Result<()> {
    let (world, _) = seeded_world(eager()).await?;
    world.pbx.add_recording(recording(501, false));
    let placed = place(
        &world,
        &mut Placer::default(),
        &one_leg(
            1,
            outside(numbers::DANA),
            ext("101").with_recording(501),
            true,
            30,
        ),
    );
    tick_until(&world, 5, |w| w.crm.messages().len() == 1).await?;
    world.tick().await?;
    assert_eq!(recording_status(&world, &placed.key), "pending");
    assert!(
        world.crm.uploads().is_empty(),
        "nothing is uploaded before 3CX finalises"
    );

    world.pbx.finalise_recording(501, chrono::Utc::now());
    tick_until(&world, 5, |w| {
        recording_status(w, &placed.key) == "attached"
    })
    .await?;
    for _ in 0..3 {
        world.tick().await?;
    }
    let uploads = world.crm.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(
        uploads[0].size,
        connectzero_simulators::threecx::silent_wav(1000).len()
    );
    assert_eq!(
        world.crm.messages()[0].attachments,
        vec![uploads[0].url.clone()]
    );
    assert_eq!(world.pbx.download_count(501), 1);
    Ok(())
}

#[tokio::test]
async fn a_recording_that_never_finalises_gives_up_and_the_call_stays_logged() -> anyhow::Result<()>
{
    let (world, _) = seeded_world(options().eager().recording_window_secs(0).build()).await?;
    world.pbx.add_recording(recording(502, false));
    let placed = place(
        &world,
        &mut Placer::default(),
        &one_leg(
            1,
            outside(numbers::DANA),
            ext("101").with_recording(502),
            true,
            30,
        ),
    );
    let report = tick_until(&world, 5, |w| {
        recording_status(w, &placed.key).starts_with("gave-up")
    })
    .await?;
    assert_eq!(report.attach_gave_up, 1);
    let status = recording_status(&world, &placed.key);
    assert!(
        status.contains("did not finalise recording 502 within 0 s"),
        "{status}"
    );
    assert_eq!(world.crm.messages().len(), 1, "the call stays logged");
    assert!(world.crm.messages()[0].attachments.is_empty());
    assert!(world.crm.uploads().is_empty());
    Ok(())
}

#[tokio::test]
async fn a_download_that_breaks_off_is_retried_and_attached_once() -> anyhow::Result<()> {
    let (world, _) = seeded_world(eager()).await?;
    world.pbx.add_recording(recording(503, true));
    world.pbx.fail_downloads(503, 100, 1);
    let placed = place(
        &world,
        &mut Placer::default(),
        &one_leg(
            1,
            outside(numbers::DANA),
            ext("101").with_recording(503),
            true,
            30,
        ),
    );
    tick_until(&world, 6, |w| {
        recording_status(w, &placed.key) == "attached"
    })
    .await?;
    assert_eq!(
        world.pbx.download_count(503),
        2,
        "one broken download, one good one"
    );
    assert_eq!(
        world.crm.uploads().len(),
        1,
        "the broken transfer left no upload behind"
    );
    assert_eq!(world.crm.messages()[0].attachments.len(), 1);
    Ok(())
}

#[tokio::test]
async fn call_ended_and_missed_call_fire_once_per_call_with_their_payload() -> anyhow::Result<()> {
    let (world, contacts) = seeded_world(eager()).await?;
    subscribe(&world, "call.ended", "sub-ended").await?;
    subscribe(&world, "missed-call", "sub-missed").await?;
    let mut placer = Placer::default();
    let answered = place(
        &world,
        &mut placer,
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 95),
    );
    let missed = place(
        &world,
        &mut placer,
        &one_leg(2, outside(numbers::FAY), ext("102"), false, 20),
    );
    tick_until(&world, 5, |w| w.crm.trigger_executions().len() == 3).await?;
    for _ in 0..3 {
        world.tick().await?;
    }
    let executions = world.crm.trigger_executions();
    assert_eq!(executions.len(), 3, "{executions:#?}");
    let find = |event: &str, key: &str| {
        executions
            .iter()
            .filter(|e| e.body["event"] == event && e.body["callId"] == key)
            .collect::<Vec<_>>()
    };
    let ended = find("call.ended", &answered.key);
    assert_eq!(ended.len(), 1);
    let body = &ended[0].body;
    assert_eq!(body["contactId"], contacts["Dana Fox"].as_str());
    assert_eq!(body["direction"], "inbound");
    assert_eq!(body["answered"], true);
    assert_eq!(body["durationSeconds"], 95);
    assert_eq!(body["extension"], "101");
    assert_eq!(body["extensionOwner"]["name"], "Alice Smith");
    assert_eq!(body["recordingStatus"], "none");
    assert!(ended[0].target_path.ends_with("/sub-ended"));
    assert_eq!(find("call.ended", &missed.key).len(), 1);
    let missed_events = find("missed-call", &missed.key);
    assert_eq!(missed_events.len(), 1);
    assert_eq!(missed_events[0].body["callStatus"], "missed");
    assert!(missed_events[0].target_path.ends_with("/sub-missed"));
    Ok(())
}

#[tokio::test]
async fn call_started_fires_on_the_first_tick_that_sees_the_active_call() -> anyhow::Result<()> {
    let (world, contacts) = seeded_world(eager()).await?;
    subscribe(&world, "call.started", "sub-started").await?;
    world.pbx.add_active_call(SimActiveCall {
        id: 77,
        caller: numbers::ELI.into(),
        callee: "102 Bob Jones".into(),
        status: "Ringing".into(),
        established_at: chrono::Utc::now(),
    });
    let report = world.tick().await?;
    assert_eq!(report.calls_started, 1);
    let executions = world.crm.trigger_executions();
    assert_eq!(executions.len(), 1);
    let body = &executions[0].body;
    assert_eq!(body["event"], "call.started");
    assert_eq!(body["contactId"], contacts["Eli Grant"].as_str());
    assert_eq!(body["extension"], "102");
    assert_eq!(body["callStatus"], "in-progress");
    for _ in 0..3 {
        world.tick().await?;
    }
    assert_eq!(world.crm.trigger_executions().len(), 1, "still once");
    Ok(())
}

#[tokio::test]
async fn a_rate_limited_delivery_is_retried_and_arrives_once() -> anyhow::Result<()> {
    let (world, _) = seeded_world(eager()).await?;
    subscribe(&world, "call.ended", "sub-ended").await?;
    world.crm.inject_failures_on(
        "/workflows-marketplace/triggers/execute",
        CrmFault::TooManyRequests {
            retry_after_secs: Some(0),
        },
        2,
    );
    place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 30),
    );
    let first = world.tick().await?;
    assert_eq!(
        (first.posted, first.triggers_delivered),
        (1, 0),
        "{first:?}"
    );
    tick_until(&world, 6, |w| w.crm.trigger_executions().len() == 1).await?;
    for _ in 0..2 {
        world.tick().await?;
    }
    assert_eq!(world.crm.trigger_executions().len(), 1);
    assert_eq!(
        world
            .crm
            .request_count("POST", "/workflows-marketplace/triggers/execute"),
        3,
        "two refusals, one delivery"
    );
    Ok(())
}

#[tokio::test]
async fn a_deleted_subscription_receives_nothing() -> anyhow::Result<()> {
    let (world, _) = seeded_world(eager()).await?;
    subscribe(&world, "call.ended", "sub-gone").await?;
    let gone = Subscription {
        id: "sub-gone".into(),
        kind: guest_support::triggers::TriggerKind::CallEnded.into(),
        target_url: String::new(),
        workflow_id: None,
    };
    world
        .pipeline
        .subscribe_trigger(&world.tenant, SubscriptionChange::Deleted, gone)
        .await??;
    place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 30),
    );
    tick_until(&world, 5, |w| w.crm.messages().len() == 1).await?;
    world.tick().await?;
    assert!(world.crm.trigger_executions().is_empty());
    Ok(())
}

#[tokio::test]
async fn a_pending_recording_survives_a_restart() -> anyhow::Result<()> {
    let (world, _) = seeded_world(eager()).await?;
    world.pbx.add_recording(recording(504, false));
    let placed = place(
        &world,
        &mut Placer::default(),
        &one_leg(
            1,
            outside(numbers::DANA),
            ext("101").with_recording(504),
            true,
            30,
        ),
    );
    tick_until(&world, 5, |w| w.crm.messages().len() == 1).await?;
    assert_eq!(recording_status(&world, &placed.key), "pending");

    // A new process: nothing in memory, only the database.
    let restarted = connectzero::pipeline::Pipeline::new(runtime(), world.storage.clone());
    let tenant = connectzero::connect::tenant(world.config().clone(), reqwest::Client::new());
    world.pbx.finalise_recording(504, chrono::Utc::now());
    for _ in 0..5 {
        restarted.tick(&tenant).await?;
        if recording_status(&world, &placed.key) == "attached" {
            break;
        }
    }
    assert_eq!(recording_status(&world, &placed.key), "attached");
    assert_eq!(world.crm.uploads().len(), 1);
    Ok(())
}
