//! Extension ↔ CRM user mapping end to end: the posted message and the
//! trigger payloads name the HighLevel user whose e-mail is the handling
//! extension owner's, unless a per-tenant override names another.

use crate::common;
use anyhow::Context;

use common::*;
use connectzero::attribution::Attribution;
use connectzero::demo::{Placer, numbers};
use connectzero::testbed::{TENANT, World};

/// The HighLevel user the demo data seeds for Bob Jones (ext. 102).
fn bob(world: &World) -> anyhow::Result<String> {
    Ok(world
        .crm
        .users()
        .into_iter()
        .find(|u| u.email == "bob@acme.example")
        .context("the demo seeds Bob as a HighLevel user")?
        .id)
}

/// The `call.ended` payload of `key`, once delivered.
async fn ended_payload(world: &World, key: &str) -> anyhow::Result<serde_json::Value> {
    tick_until(world, 6, |w| {
        w.crm
            .trigger_executions()
            .iter()
            .any(|e| e.body["event"] == "call.ended" && e.body["callId"] == key)
    })
    .await?;
    Ok(world
        .crm
        .trigger_executions()
        .into_iter()
        .find(|e| e.body["event"] == "call.ended" && e.body["callId"] == key)
        .context("the call.ended payload was delivered")?
        .body)
}

/// Dana calls Bob (ext. 102), answered, 40 s; the messages once it posted.
async fn dana_calls_bob_and_it_posts(
    world: &World,
    placer: &mut Placer,
) -> anyhow::Result<Vec<connectzero_simulators::highlevel::Message>> {
    place(
        world,
        placer,
        &one_leg(1, outside(numbers::DANA), ext("102"), true, 40),
    );
    tick_until(world, 5, |w| !w.crm.messages().is_empty()).await?;
    Ok(world.crm.messages())
}

/// Subscribe a workflow to `call.ended`, place an answered 40 s call from
/// Dana to `extension`, and return its `call.ended` payload once delivered.
async fn answered_call_from_dana(
    world: &World,
    extension: &str,
) -> anyhow::Result<serde_json::Value> {
    subscribe(world, "call.ended", "sub-ended").await?;
    let placed = place(
        world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::DANA), ext(extension), true, 40),
    );
    ended_payload(world, &placed.key).await
}

#[tokio::test]
async fn the_answering_extensions_owner_is_mapped_by_email_into_the_message_and_trigger()
-> anyhow::Result<()> {
    let (world, contacts) = seeded_world(eager()).await?;
    let body = answered_call_from_dana(&world, "102").await?;
    let messages = world.crm.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].contact_id, contacts["Dana Fox"]);
    assert_eq!(messages[0].user_id.as_deref(), Some(bob(&world)?.as_str()));
    assert_eq!(body["userId"], bob(&world)?.as_str());
    assert_eq!(body["extension"], "102");
    // The message was read back: HighLevel kept the user.
    let found = Attribution::read(&world.storage, TENANT)?;
    assert!(matches!(found, Attribution::Working { .. }), "{found:?}");
    assert_eq!(found.describe(), "working");
    Ok(())
}

/// NOTES.md §8 (api-docs issue #214): HighLevel may accept `userId` on an
/// inbound call message and keep the message without it. The call posts
/// all the same, the read-back says attribution is ignored, and it is
/// read back once a day, not per call.
#[tokio::test]
async fn a_crm_that_silently_drops_user_id_is_found_out_by_reading_the_message_back()
-> anyhow::Result<()> {
    let (world, contacts) = seeded_world(eager()).await?;
    world.crm.set_drop_inbound_user_id(true);
    let reads = |w: &World| w.crm.request_count("GET", "/conversations/messages/");
    assert_eq!(
        Attribution::read(&world.storage, TENANT)?,
        Attribution::Unknown
    );
    let mut placer = Placer::default();
    let messages = dana_calls_bob_and_it_posts(&world, &mut placer).await?;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].contact_id, contacts["Dana Fox"]);
    assert_eq!(messages[0].user_id, None, "dropped by the CRM");
    let found = Attribution::read(&world.storage, TENANT)?;
    assert!(matches!(found, Attribution::Ignored { .. }), "{found:?}");
    assert!(
        found
            .describe()
            .contains("ignored by HighLevel for inbound calls")
    );
    assert_eq!(reads(&world), 1);

    place(
        &world,
        &mut placer,
        &one_leg(2, outside(numbers::FAY), ext("102"), true, 30),
    );
    tick_until(&world, 5, |w| w.crm.messages().len() == 2).await?;
    assert_eq!(reads(&world), 1, "read back once a day, not per call");
    Ok(())
}

#[tokio::test]
async fn an_override_wins_over_the_email_mapping() -> anyhow::Result<()> {
    let (world, _) = seeded_world(
        options()
            .eager()
            .crm_user_override("102", "manualUser0000000001")
            .build(),
    )
    .await?;
    let body = answered_call_from_dana(&world, "102").await?;
    let messages = world.crm.messages();
    assert_eq!(messages[0].user_id.as_deref(), Some("manualUser0000000001"));
    assert_eq!(body["userId"], "manualUser0000000001");
    // The override needs no user list.
    assert_eq!(world.crm.request_count("GET", "/users/"), 0);
    Ok(())
}

#[tokio::test]
async fn an_owner_whose_email_is_no_crm_user_is_still_posted_without_a_user() -> anyhow::Result<()>
{
    let (world, contacts) = seeded_world(eager()).await?;
    // Alice (ext. 101) has no HighLevel user in the demo data.
    let body = answered_call_from_dana(&world, "101").await?;
    let messages = world.crm.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].contact_id, contacts["Dana Fox"]);
    assert_eq!(messages[0].user_id, None);
    assert!(body["userId"].is_null(), "{body}");
    Ok(())
}

#[tokio::test]
async fn an_outbound_call_is_for_the_calling_extensions_owner() -> anyhow::Result<()> {
    let (world, contacts) = seeded_world(eager()).await?;
    place(
        &world,
        &mut Placer::default(),
        &one_leg(1, ext("102"), outside(numbers::ELI), false, 20),
    );
    tick_until(&world, 5, |w| !w.crm.messages().is_empty()).await?;
    let m = &world.crm.messages()[0];
    assert_eq!(m.contact_id, contacts["Eli Grant"]);
    assert_eq!(m.user_id.as_deref(), Some(bob(&world)?.as_str()));
    Ok(())
}

#[tokio::test]
async fn the_user_list_is_read_once_for_many_calls_not_per_call() -> anyhow::Result<()> {
    let (world, _) = seeded_world(eager()).await?;
    let mut placer = Placer::default();
    for (i, number) in [numbers::DANA, numbers::FAY, numbers::GWEN]
        .into_iter()
        .enumerate()
    {
        place(
            &world,
            &mut placer,
            &one_leg(i as i32 + 1, outside(number), ext("102"), true, 30),
        );
        tick_until(&world, 5, |w| w.crm.messages().len() == i + 1).await?;
    }
    let bob = bob(&world)?;
    assert!(
        world
            .crm
            .messages()
            .iter()
            .all(|m| m.user_id.as_deref() == Some(bob.as_str()))
    );
    assert_eq!(world.crm.request_count("GET", "/users/"), 1);
    Ok(())
}

#[tokio::test]
async fn a_crm_refusing_user_id_gets_the_call_once_without_it_and_later_calls_skip_it()
-> anyhow::Result<()> {
    let (world, contacts) = seeded_world(eager()).await?;
    // As HighLevel's DTO whitelist would: 422 "property userId should not
    // exist" (`ProcessMessageBodyDto` does not list `userId`).
    world.crm.set_reject_message_user_id(true);
    let posts = |w: &World| {
        w.crm
            .request_count("POST", "/conversations/messages/inbound")
    };
    let mut placer = Placer::default();
    let messages = dana_calls_bob_and_it_posts(&world, &mut placer).await?;
    assert_eq!(messages.len(), 1, "posted once: {messages:#?}");
    assert_eq!(messages[0].contact_id, contacts["Dana Fox"]);
    assert_eq!(messages[0].user_id, None);
    assert_eq!(posts(&world), 2, "refused with userId, accepted without");

    place(
        &world,
        &mut placer,
        &one_leg(2, outside(numbers::FAY), ext("102"), true, 30),
    );
    tick_until(&world, 5, |w| w.crm.messages().len() == 2).await?;
    assert_eq!(
        posts(&world),
        3,
        "the next call is posted without userId at once"
    );
    assert!(world.crm.messages().iter().all(|m| m.user_id.is_none()));
    Ok(())
}
