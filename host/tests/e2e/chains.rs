//! Call chains end to end: the segments of one call (IVR, queue, ring
//! group, transfers) post as ONE CRM message with a leg timeline,
//! attributed to the extension that finally answered, and a missed call
//! carries the reason derived from 3CX's segment data, in the message and
//! in the `missed-call` / `call.ended` trigger payloads.

use crate::common;
use anyhow::Context;

use chrono::{Duration, Utc};
use common::*;
use connectzero::demo::numbers;
use connectzero::testbed::World;
use connectzero_simulators::highlevel::Message;
use connectzero_simulators::threecx::{SimParty, SimSegment};
use serde_json::Value;

/// One segment of a scripted call.
struct Leg {
    src: SimParty,
    dst: SimParty,
    answered: bool,
    secs: i64,
    /// `CallLogData.Reason` of the segment.
    reason: Option<&'static str>,
}

fn leg(src: SimParty, dst: SimParty, answered: bool, secs: i64) -> Leg {
    Leg {
        src,
        dst,
        answered,
        secs,
        reason: None,
    }
}

fn ivr(dn: &str, name: &str) -> SimParty {
    SimParty::ivr(dn, name, 0)
}

fn queue(dn: &str, name: &str) -> SimParty {
    SimParty::queue(dn, name, 0)
}

/// Put the legs into the 3CX simulator back to back, as call `call_id`
/// that just ended; returns its key in ConnectZero.
fn place_chain(world: &World, call_id: i32, legs: Vec<Leg>) -> String {
    let total: i64 = legs.iter().map(|l| l.secs).sum();
    let first = Utc::now() - Duration::seconds(total);
    let mut start = first;
    for (i, leg) in legs.into_iter().enumerate() {
        let end = start + Duration::seconds(leg.secs);
        let segment_id = call_id * 10 + i as i32;
        let (mut src, mut dst) = (leg.src, leg.dst);
        src.participant_id = segment_id * 10 + 1;
        dst.participant_id = segment_id * 10 + 2;
        let mut segment =
            SimSegment::new(segment_id, call_id, (start, end), src, dst, leg.answered);
        if let Some(reason) = leg.reason {
            segment = segment.with_reason(reason);
        }
        world.pbx.add_segment(segment);
        start = end;
    }
    format!("3cx:{call_id}@{}", first.timestamp_millis())
}

/// A seeded world with `call.ended` and `missed-call` subscribed.
async fn world_with_triggers()
-> anyhow::Result<(World, std::collections::HashMap<&'static str, String>)> {
    let (world, contacts) = seeded_world(eager()).await?;
    subscribe(&world, "call.ended", "sub-ended").await?;
    subscribe(&world, "missed-call", "sub-missed").await?;
    Ok((world, contacts))
}

/// Tick until `messages` messages are posted and `events` trigger events
/// delivered; returns the messages and the event bodies.
async fn run(
    world: &World,
    messages: usize,
    events: usize,
) -> anyhow::Result<(Vec<Message>, Vec<Value>)> {
    tick_until(world, 10, |w| {
        w.crm.messages().len() == messages && w.crm.trigger_executions().len() == events
    })
    .await?;
    // A few more ticks: nothing is posted or fired twice.
    for _ in 0..2 {
        world.tick().await?;
    }
    let bodies = world
        .crm
        .trigger_executions()
        .into_iter()
        .map(|e| e.body)
        .collect::<Vec<_>>();
    assert_eq!(bodies.len(), events, "{bodies:#?}");
    Ok((world.crm.messages(), bodies))
}

fn event<'a>(bodies: &'a [Value], event: &str, key: &str) -> &'a Value {
    let found: Vec<&Value> = bodies
        .iter()
        .filter(|b| b["event"] == event && b["callId"] == key)
        .collect();
    assert_eq!(found.len(), 1, "{event} for {key}: {bodies:#?}");
    found[0]
}

#[tokio::test]
async fn a_transferred_queue_call_is_one_message_attributed_to_the_extension_it_ended_with()
-> anyhow::Result<()> {
    let (world, contacts) = world_with_triggers().await?;
    let caller = || outside(numbers::DANA);
    let key = place_chain(
        &world,
        4101,
        vec![
            // The IVR picks up to play its menu: no answer by a person.
            leg(caller(), ivr("800", "Main IVR"), true, 20),
            leg(caller(), queue("801", "Sales Queue"), true, 15),
            // The queue polls Bob, who does not pick up, then Alice, who does...
            leg(caller(), ext("102"), false, 5),
            leg(caller(), ext("101"), true, 60),
            // ...and transfers the caller to Carol.
            leg(caller(), ext("103"), true, 120),
        ],
    );
    let (messages, events) = run(&world, 1, 1).await?;

    assert_eq!(messages.len(), 1, "one call, one message");
    let m = &messages[0];
    assert_eq!(m.contact_id, contacts["Dana Fox"]);
    assert_eq!(m.alt_id.as_deref(), Some(key.as_str()));
    assert_eq!(m.call_status.as_deref(), Some("completed"));
    let body = m.body.as_deref().context("the message has a body")?;
    assert!(
        body.contains("answered by Carol White (ext. 103)"),
        "{body}"
    );
    // Talk time is the people's: Alice's minute and Carol's two.
    assert!(body.contains("Talk time 3m 0s."), "{body}");
    assert!(
        body.contains(
            "Timeline: +0s IVR Main IVR (800), 20s; +20s queue Sales Queue (801), 15s; \
             +35s Bob Jones (ext. 102), not answered (rang 5s); \
             +40s Alice Smith (ext. 101), answered, talk 1m 0s; \
             +1m 40s transferred to Carol White (ext. 103), answered, talk 2m 0s."
        ),
        "{body}"
    );
    assert!(!body.contains("missed"), "{body}");

    let ended = event(&events, "call.ended", &key);
    assert_eq!(ended["answered"], true);
    assert_eq!(ended["extension"], "103");
    assert_eq!(ended["extensionOwner"]["name"], "Carol White");
    assert_eq!(ended["durationSeconds"], 180);
    assert_eq!(ended["missedReason"], Value::Null);
    Ok(())
}

#[tokio::test]
async fn a_caller_hanging_up_in_the_ivr_is_missed_abandoned_in_the_ivr() -> anyhow::Result<()> {
    let (world, contacts) = world_with_triggers().await?;
    // The IVR answered (3CX may mark it so); the caller left after 12 s.
    let key = place_chain(
        &world,
        4102,
        vec![leg(outside(numbers::FAY), ivr("800", "Main IVR"), true, 12)],
    );
    let (messages, events) = run(&world, 1, 2).await?;

    let m = &messages[0];
    assert_eq!(m.contact_id, contacts["Fay Hart"]);
    assert_eq!(m.call_status.as_deref(), Some("no-answer"));
    let body = m.body.as_deref().context("the message has a body")?;
    assert!(
        body.contains("missed (caller hung up in the IVR)"),
        "{body}"
    );
    assert!(body.contains("Talk time 0s."), "{body}");

    let missed = event(&events, "missed-call", &key);
    assert_eq!(missed["missedReason"], "abandoned-in-ivr");
    assert_eq!(missed["answered"], false);
    assert_eq!(missed["durationSeconds"], 0);
    assert_eq!(
        event(&events, "call.ended", &key)["missedReason"],
        "abandoned-in-ivr"
    );
    Ok(())
}

#[tokio::test]
async fn a_caller_giving_up_while_the_queue_polls_agents_is_abandoned_in_the_queue()
-> anyhow::Result<()> {
    let (world, _) = world_with_triggers().await?;
    let caller = || outside(numbers::GWEN);
    let key = place_chain(
        &world,
        4103,
        vec![
            leg(caller(), ivr("800", "Main IVR"), true, 10),
            leg(caller(), queue("801", "Sales Queue"), true, 30),
            leg(caller(), ext("101"), false, 10),
        ],
    );
    let (messages, events) = run(&world, 1, 2).await?;

    let body = messages[0]
        .body
        .as_deref()
        .context("the message has a body")?;
    assert!(
        body.contains("missed (caller hung up waiting in the queue)"),
        "{body}"
    );
    assert!(
        body.contains(
            "Timeline: +0s IVR Main IVR (800), 10s; +10s queue Sales Queue (801), 30s; \
             +40s Alice Smith (ext. 101), not answered (rang 10s)."
        ),
        "{body}"
    );
    assert_eq!(
        event(&events, "missed-call", &key)["missedReason"],
        "abandoned-in-queue"
    );
    Ok(())
}

#[tokio::test]
async fn a_ring_group_nobody_picks_up_ending_in_voicemail_is_a_voicemail_with_reason_no_answer()
-> anyhow::Result<()> {
    let (world, _) = world_with_triggers().await?;
    let caller = || outside(numbers::ELI);
    let key = place_chain(
        &world,
        4104,
        vec![
            leg(
                caller(),
                SimParty::ring_group("600", "Support", 0),
                false,
                1,
            ),
            leg(caller(), ext("101"), false, 15),
            leg(caller(), ext("102"), false, 15),
            leg(
                caller(),
                SimParty::voicemail("999", "Voicemail", 0),
                true,
                30,
            ),
        ],
    );
    let (messages, events) = run(&world, 1, 2).await?;

    let m = &messages[0];
    // `CallDataDTO.status` has "voicemail"; the missed reason stays
    // "no-answer" (nobody picked up).
    assert_eq!(m.call_status.as_deref(), Some("voicemail"));
    let body = m.body.as_deref().context("the message has a body")?;
    assert!(body.contains("missed (not answered)"), "{body}");
    assert!(
        body.contains("+31s voicemail Voicemail (999), 30s."),
        "{body}"
    );
    assert_eq!(
        event(&events, "missed-call", &key)["missedReason"],
        "no-answer"
    );
    Ok(())
}

/// Busy and out of office hours are not visible in the segments; they are
/// read from `CallLogData.Reason`, whose values the spec does not list
/// ([ASSUMED] texts, `components/poll/src/missed.rs::reason_from_text`).
/// This shows the reason travels from the call log to the CRM and the
/// triggers; that a real PBX writes these words is the assumption.
#[tokio::test]
async fn busy_and_out_of_hours_come_through_from_the_call_log_reason() -> anyhow::Result<()> {
    let (world, _) = world_with_triggers().await?;
    let busy = place_chain(
        &world,
        4105,
        vec![Leg {
            reason: Some("Busy"),
            ..leg(ext("102"), outside(numbers::ELI), false, 5)
        }],
    );
    let closed = place_chain(
        &world,
        4106,
        vec![Leg {
            reason: Some("Out of office hours"),
            ..leg(outside(numbers::DANA), ivr("810", "After hours"), true, 8)
        }],
    );
    // Outbound: call.ended only; inbound missed: call.ended + missed-call.
    let (messages, events) = run(&world, 2, 3).await?;

    let by_key = |key: &str| {
        messages
            .iter()
            .find(|m| m.alt_id.as_deref() == Some(key))
            .unwrap()
    };
    let m = by_key(&busy);
    assert_eq!(m.call_status.as_deref(), Some("busy"));
    assert!(
        m.body
            .as_deref()
            .context("the message has a body")?
            .contains("missed (busy)")
    );
    assert_eq!(event(&events, "call.ended", &busy)["missedReason"], "busy");

    let m = by_key(&closed);
    assert_eq!(m.call_status.as_deref(), Some("no-answer"));
    assert!(
        m.body
            .as_deref()
            .context("the message has a body")?
            .contains("missed (outside office hours)")
    );
    assert_eq!(
        event(&events, "missed-call", &closed)["missedReason"],
        "out-of-hours"
    );
    Ok(())
}

/// NOTES.md §8: DN type 12 (EndCall) ends the call, typically out of
/// office hours; 3CX may mark its segment answered, nobody talked.
#[tokio::test]
async fn a_call_ended_by_an_end_call_rule_is_missed_ended_by_rule() -> anyhow::Result<()> {
    let (world, _) = world_with_triggers().await?;
    let closed = place_chain(
        &world,
        4108,
        vec![
            leg(outside(numbers::DANA), ivr("800", "Main IVR"), true, 6),
            leg(
                outside(numbers::DANA),
                SimParty::end_call("EndCall", "Closed", 0),
                true,
                1,
            ),
        ],
    );
    let (messages, events) = run(&world, 1, 2).await?;
    let m = messages
        .iter()
        .find(|m| m.alt_id.as_deref() == Some(closed.as_str()))
        .context("the call closed by a PBX rule was posted")?;
    assert_eq!(m.call_status.as_deref(), Some("no-answer"));
    assert!(
        m.body
            .as_deref()
            .context("the message has a body")?
            .contains("missed (ended by a PBX rule)"),
        "{:?}",
        m.body
    );
    assert_eq!(
        event(&events, "missed-call", &closed)["missedReason"],
        "ended-by-rule"
    );
    Ok(())
}

#[tokio::test]
async fn a_tenant_can_turn_the_timeline_off_and_keep_the_one_line_summary() -> anyhow::Result<()> {
    let (world, _) = seeded_world(options().eager().call_timeline(false).build()).await?;
    let caller = || outside(numbers::DANA);
    place_chain(
        &world,
        4107,
        vec![
            leg(caller(), ivr("800", "Main IVR"), true, 20),
            leg(caller(), ext("101"), true, 60),
        ],
    );
    let (messages, _) = run(&world, 1, 0).await?;
    let body = messages[0]
        .body
        .as_deref()
        .context("the message has a body")?;
    assert!(
        body.contains(
            "answered by Alice Smith (ext. 101) via Main IVR (ext. 800). Talk time 1m 0s."
        ),
        "{body}"
    );
    assert!(!body.contains("Timeline"), "{body}");
    Ok(())
}
