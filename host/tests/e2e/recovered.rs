//! `missed-call.recovered` end to end: missed calls and callbacks placed in
//! the 3CX simulator, posted by the real host pipeline, and the workflow
//! trigger deliveries read back from the HighLevel simulator.

use crate::common;

use chrono::{DateTime, Duration, DurationRound, Utc};
use common::*;
use connectzero::config::TenantOptions;
use connectzero::demo::{PlacedCall, Placer, numbers};
use connectzero::testbed::World;
use connectzero_simulators::highlevel::TriggerExecution;

/// A world subscribed to every call trigger, with `options`.
async fn subscribed_world(
    options: TenantOptions,
) -> anyhow::Result<(World, std::collections::HashMap<&'static str, String>)> {
    let (world, contacts) = seeded_world(options).await?;
    subscribe(&world, "call.ended", "sub-ended").await?;
    subscribe(&world, "missed-call", "sub-missed").await?;
    subscribe(&world, "missed-call.recovered", "sub-recovered").await?;
    Ok((world, contacts))
}

/// Whole seconds, so the expected time-to-callback is exact.
fn now() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::seconds(1)).unwrap()
}

fn events(world: &World, event: &str) -> Vec<TriggerExecution> {
    world
        .crm
        .trigger_executions()
        .into_iter()
        .filter(|e| e.body["event"] == event)
        .collect()
}

/// A call from Fay nobody answered, ended at `ended`.
fn missed(world: &World, placer: &mut Placer, id: i32, ended: DateTime<Utc>) -> PlacedCall {
    placer.place(
        world,
        &one_leg(id, outside(numbers::FAY), ext("102"), false, 20),
        ended,
    )
}

/// Alice (101) calling Fay back, ended at `ended` after `secs`.
fn callback(
    world: &World,
    placer: &mut Placer,
    id: i32,
    ended: DateTime<Utc>,
    answered: bool,
    secs: i64,
) -> PlacedCall {
    placer.place(
        world,
        &one_leg(id, ext("101"), outside(numbers::FAY), answered, secs),
        ended,
    )
}

/// Tick until `n` call.ended deliveries arrived, then a few more ticks so
/// any event that would wrongly follow has had its chance.
async fn settle(world: &World, ended: usize) -> anyhow::Result<()> {
    tick_until(world, 6, |w| events(w, "call.ended").len() == ended).await?;
    for _ in 0..3 {
        world.tick().await?;
    }
    Ok(())
}

#[tokio::test]
async fn an_answered_callback_inside_the_window_recovers_the_missed_call_once() -> anyhow::Result<()>
{
    let (world, contacts) = subscribed_world(eager()).await?;
    let mut placer = Placer::default();
    let t = now();
    let missed = missed(&world, &mut placer, 1, t - Duration::seconds(3600));
    // A callback nobody picked up recovers nothing.
    let unanswered = callback(
        &world,
        &mut placer,
        2,
        t - Duration::seconds(1800),
        false,
        30,
    );
    settle(&world, 2).await?;
    assert_eq!(events(&world, "missed-call").len(), 1);
    assert!(events(&world, "missed-call.recovered").is_empty());
    assert!(!unanswered.key.is_empty());

    let answered = callback(&world, &mut placer, 3, t - Duration::seconds(600), true, 60);
    tick_until(&world, 6, |w| {
        !events(w, "missed-call.recovered").is_empty()
    })
    .await?;
    // A second answered callback (and Fay calling in, answered) closes
    // nothing more: the missed call was recovered already.
    callback(&world, &mut placer, 4, t - Duration::seconds(300), true, 45);
    placer.place(
        &world,
        &one_leg(5, outside(numbers::FAY), ext("102"), true, 30),
        t,
    );
    settle(&world, 5).await?;

    let recovered = events(&world, "missed-call.recovered");
    assert_eq!(recovered.len(), 1, "{recovered:#?}");
    let body = &recovered[0].body;
    assert!(recovered[0].target_path.ends_with("/sub-recovered"));
    assert_eq!(body["missedCallId"], missed.key.as_str());
    assert_eq!(body["callId"], missed.key.as_str());
    assert_eq!(body["recoveredByCallId"], answered.key.as_str());
    assert_eq!(body["contactId"], contacts["Fay Hart"].as_str());
    assert_eq!(body["phone"], numbers::FAY);
    assert_eq!(body["direction"], "outbound");
    assert_eq!(body["extension"], "101");
    assert_eq!(body["extensionOwner"]["name"], "Alice Smith");
    // Missed at t-3600 (its end), called back at t-600-60 (the callback's start).
    assert_eq!(body["timeToCallbackSeconds"], 2940);

    // The other triggers are unchanged: one call.ended per call, one
    // missed-call for the one missed inbound call.
    assert_eq!(events(&world, "call.ended").len(), 5);
    let missed_calls = events(&world, "missed-call");
    assert_eq!(missed_calls.len(), 1);
    assert_eq!(missed_calls[0].body["callId"], missed.key.as_str());
    assert_eq!(missed_calls[0].body["callStatus"], "missed");
    Ok(())
}

#[tokio::test]
async fn the_caller_calling_in_again_and_answered_recovers_every_missed_call() -> anyhow::Result<()>
{
    let (world, _) = subscribed_world(eager()).await?;
    let mut placer = Placer::default();
    let t = now();
    let first = missed(&world, &mut placer, 1, t - Duration::seconds(7200));
    let second = missed(&world, &mut placer, 2, t - Duration::seconds(3600));
    let back = placer.place(
        &world,
        &one_leg(3, outside(numbers::FAY), ext("102"), true, 30),
        t,
    );
    settle(&world, 3).await?;

    let mut recovered: Vec<_> = events(&world, "missed-call.recovered")
        .into_iter()
        .map(|e| {
            assert_eq!(e.body["recoveredByCallId"], back.key.as_str());
            assert_eq!(e.body["direction"], "inbound");
            assert_eq!(e.body["extension"], "102");
            (
                e.body["missedCallId"].as_str().unwrap().to_string(),
                e.body["timeToCallbackSeconds"].as_u64().unwrap(),
            )
        })
        .collect();
    recovered.sort();
    let mut expected = vec![(first.key.clone(), 7170), (second.key.clone(), 3570)];
    expected.sort();
    assert_eq!(recovered, expected);
    Ok(())
}

#[tokio::test]
async fn a_callback_after_the_window_recovers_nothing() -> anyhow::Result<()> {
    let options = options().eager().missed_call_recovery_window_secs(600);
    let (world, _) = subscribed_world(options.build()).await?;
    let mut placer = Placer::default();
    let t = now();
    missed(&world, &mut placer, 1, t - Duration::seconds(3600));
    callback(&world, &mut placer, 2, t, true, 60);
    settle(&world, 2).await?;
    assert_eq!(events(&world, "missed-call").len(), 1);
    assert!(events(&world, "missed-call.recovered").is_empty());
    Ok(())
}

#[tokio::test]
async fn a_window_of_zero_turns_recovery_off() -> anyhow::Result<()> {
    let options = options().eager().missed_call_recovery_window_secs(0);
    let (world, _) = subscribed_world(options.build()).await?;
    let mut placer = Placer::default();
    let t = now();
    missed(&world, &mut placer, 1, t - Duration::seconds(600));
    callback(&world, &mut placer, 2, t, true, 60);
    settle(&world, 2).await?;
    assert!(events(&world, "missed-call.recovered").is_empty());
    Ok(())
}
