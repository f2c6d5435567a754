//! End-to-end tests: the real host and components against the simulators,
//! asserting what the CRM simulator received.

use crate::common;
use anyhow::Context;

use common::*;
use connectzero::demo::{self, Placer, numbers};
use connectzero::storage::Storage;
use connectzero::testbed::World;
use connectzero_simulators::highlevel::{Fault as CrmFault, HighLevelConfig, MessagesPage};
use connectzero_simulators::threecx::{Fault as PbxFault, SimSegment};

#[tokio::test]
async fn an_inbound_call_posts_one_message_to_the_caller_with_its_details() -> anyhow::Result<()> {
    let (world, contacts) = seeded_world(defaults()).await?;
    let placed = place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 95),
    );
    tick_until(&world, 5, |w| !w.crm.messages().is_empty()).await?;

    let messages = world.crm.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.contact_id, contacts["Dana Fox"]);
    assert_eq!(m.direction, "inbound");
    assert_eq!(m.message_type, "Call");
    assert_eq!(m.call_status.as_deref(), Some("completed"));
    assert_eq!(m.call_from.as_deref(), Some(numbers::DANA));
    assert_eq!(m.alt_id.as_deref(), Some(placed.key.as_str()));
    assert_eq!(
        m.conversation_provider_id,
        world.crm.config().conversation_provider_id
    );
    let body = m.body.as_deref().context("the message has a body")?;
    assert!(
        body.contains("answered by Alice Smith (ext. 101)"),
        "{body}"
    );
    assert!(body.contains("Talk time 1m 35s"), "{body}");
    assert!(body.contains("Matched by caller number"), "{body}");
    let start = placed.key.rsplit('@').next().unwrap().parse::<i64>()?;
    assert_eq!(
        m.date.context("the message has a date")?.timestamp_millis(),
        start
    );
    // The contact's conversation was created once and reused.
    assert_eq!(world.crm.conversations().len(), 1);
    Ok(())
}

#[tokio::test]
async fn an_outbound_call_matches_the_called_number_and_a_missed_one_says_so() -> anyhow::Result<()>
{
    let (world, contacts) = seeded_world(defaults()).await?;
    let mut placer = Placer::default();
    place(
        &world,
        &mut placer,
        &one_leg(1, ext("102"), outside(numbers::ELI), true, 240),
    );
    place(
        &world,
        &mut placer,
        &one_leg(2, outside(numbers::FAY), ext("101"), false, 20),
    );
    tick_until(&world, 5, |w| w.crm.messages().len() == 2).await?;

    let messages = world.crm.messages();
    let eli = messages
        .iter()
        .find(|m| m.contact_id == contacts["Eli Grant"])
        .context("Eli's call was posted")?;
    assert_eq!(eli.direction, "outbound");
    assert!(
        eli.body
            .as_deref()
            .context("the message has a body")?
            .contains("Matched by called number")
    );
    let fay = messages
        .iter()
        .find(|m| m.contact_id == contacts["Fay Hart"])
        .context("Fay's call was posted")?;
    assert_eq!(fay.call_status.as_deref(), Some("no-answer"));
    assert!(
        fay.body
            .as_deref()
            .context("the message has a body")?
            .contains("missed")
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_number_falls_back_to_the_extension_owners_contact() -> anyhow::Result<()> {
    let (world, contacts) = seeded_world(defaults()).await?;
    place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside("+14155550198"), ext("101"), true, 70),
    );
    tick_until(&world, 5, |w| !w.crm.messages().is_empty()).await?;
    let m = &world.crm.messages()[0];
    assert_eq!(m.contact_id, contacts["Alice Smith"]);
    assert!(
        m.body
            .as_deref()
            .context("the message has a body")?
            .contains("Matched by extension owner")
    );
    Ok(())
}

#[tokio::test]
async fn internal_calls_are_skipped_by_default_and_posted_when_the_tenant_enables_them()
-> anyhow::Result<()> {
    let (mut world, contacts) = seeded_world(defaults()).await?;
    let mut placer = Placer::default();
    let first = place(
        &world,
        &mut placer,
        &one_leg(1, ext("102"), ext("101"), true, 30),
    );
    let report = tick_until(&world, 5, |w| {
        w.storage
            .call_outcome("demo", &first.key)
            .unwrap()
            .is_some()
    })
    .await?;
    assert_eq!(report.skipped, 1);
    assert!(world.crm.messages().is_empty());
    assert_eq!(world.storage.calls("demo")?[0].detail, "internal-call");

    world.reconfigure(|c| c.settings.log_internal_calls = true)?;
    place(
        &world,
        &mut placer,
        &one_leg(2, ext("102"), ext("101"), true, 30),
    );
    tick_until(&world, 5, |w| !w.crm.messages().is_empty()).await?;
    let messages = world.crm.messages();
    assert_eq!(messages.len(), 1, "the earlier skipped call stays skipped");
    // Bob called Alice: Alice (the callee) owns the contact that matches.
    assert_eq!(messages[0].contact_id, contacts["Alice Smith"]);
    Ok(())
}

/// An idle tick asks 3CX for its calls in progress once: the poll's
/// list also starts `call.started` (it used to be asked for again).
#[tokio::test]
async fn a_tick_asks_3cx_once_for_the_calls_in_progress() -> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    world.tick().await?;
    let count = |path: &str| world.pbx.request_count(path);
    let before = (
        count("/xapi/v1/ActiveCalls"),
        count("/xapi/v1/CallHistoryView"),
    );
    let report = world.tick().await?;
    assert_eq!(report.error, None);
    assert_eq!(
        (
            count("/xapi/v1/ActiveCalls") - before.0,
            count("/xapi/v1/CallHistoryView") - before.1
        ),
        (1, 1),
        "one read of each per idle tick"
    );
    Ok(())
}

#[tokio::test]
async fn polling_again_never_posts_a_call_twice() -> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 30),
    );
    tick_until(&world, 5, |w| !w.crm.messages().is_empty()).await?;
    for _ in 0..3 {
        let report = world.tick().await?;
        // The overlap window re-reads the call; the ledger recognises it.
        assert_eq!((report.polled, report.duplicates, report.posted), (1, 1, 0));
    }
    assert_eq!(world.crm.messages().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_leg_id_reissued_after_a_restore_posts_as_a_new_call() -> anyhow::Result<()> {
    let (world, contacts) = seeded_world(defaults()).await?;
    let mut placer = Placer::default();
    let original = place(
        &world,
        &mut placer,
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 30),
    );
    tick_until(&world, 5, |w| w.crm.messages().len() == 1).await?;

    // Same SegmentId, a later start: what 3CX does after a backup restore.
    let mut reissued = one_leg(2, outside(numbers::ELI), ext("103"), true, 40);
    reissued.first_segment_id = Some(demo::SEGMENT_BASE);
    let again = place(&world, &mut placer, &reissued);
    assert_ne!(original.key, again.key);
    tick_until(&world, 5, |w| w.crm.messages().len() == 2).await?;
    assert_eq!(world.crm.messages()[1].contact_id, contacts["Eli Grant"]);
    Ok(())
}

#[tokio::test]
async fn an_unmatched_number_is_skipped_by_default_and_gets_a_new_contact_when_configured()
-> anyhow::Result<()> {
    let (mut world, _) = seeded_world(defaults()).await?;
    let mut placer = Placer::default();
    let unknown = place(
        &world,
        &mut placer,
        &one_leg(1, outside("+14155550199"), ext("103"), true, 50),
    );
    tick_until(&world, 5, |w| {
        w.storage
            .call_outcome("demo", &unknown.key)
            .unwrap()
            .is_some()
    })
    .await?;
    assert!(world.crm.messages().is_empty());
    assert_eq!(world.storage.calls("demo")?[0].detail, "no-match");

    world.reconfigure(|c| c.settings.no_match_policy = "create-contact".into())?;
    let contacts_before = world.crm.contacts().len();
    place(
        &world,
        &mut placer,
        &one_leg(2, outside("+14155550177"), ext("103"), true, 50),
    );
    tick_until(&world, 5, |w| !w.crm.messages().is_empty()).await?;
    let created: Vec<_> = world
        .crm
        .contacts()
        .into_iter()
        .filter(|c| c.phone.as_deref() == Some("+14155550177"))
        .collect();
    assert_eq!(created.len(), 1);
    assert_eq!(world.crm.contacts().len(), contacts_before + 1);
    assert_eq!(world.crm.messages()[0].contact_id, created[0].id);
    Ok(())
}

#[tokio::test]
async fn wrong_3cx_credentials_give_a_clear_error_and_the_call_posts_once_they_are_fixed()
-> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    world.pbx.set_client_secret("rotated-by-the-admin");
    place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 30),
    );

    let report = world.tick().await?;
    let error = report.error.context("the tick reports the refusal")?;
    assert!(error.contains("3CX refused the credentials"), "{error}");
    assert!(error.contains("Admin > Integrations > API"), "{error}");
    assert!(
        !error.contains("sim-3cx-secret"),
        "no secret in errors: {error}"
    );
    assert!(world.crm.messages().is_empty());

    // The admin puts the old key back: the call that waited is posted.
    world.pbx.set_client_secret("sim-3cx-secret");
    tick_until(&world, 5, |w| w.crm.messages().len() == 1).await?;
    Ok(())
}

#[tokio::test]
async fn the_segments_of_a_queue_call_post_as_one_message_naming_who_answered() -> anyhow::Result<()>
{
    let (world, contacts) = seeded_world(defaults()).await?;
    let plan = demo::demo_calls()
        .into_iter()
        .find(|p| p.label.starts_with("Queue call"))
        .context("the demo has a queue call")?;
    place(&world, &mut Placer::default(), &plan);
    tick_until(&world, 5, |w| !w.crm.messages().is_empty()).await?;
    let messages = world.crm.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].contact_id, contacts["Gwen Lake"]);
    let body = messages[0]
        .body
        .as_deref()
        .context("the message has a body")?;
    assert!(
        body.contains("answered by Carol White (ext. 103)"),
        "{body}"
    );
    assert!(
        body.contains("via Main IVR (ext. 800) → Sales Queue (ext. 801)"),
        "{body}"
    );
    Ok(())
}

#[tokio::test]
async fn a_number_shared_by_two_contacts_goes_to_the_one_assigned_to_the_answering_user()
-> anyhow::Result<()> {
    let (world, contacts) = seeded_world(defaults()).await?;
    place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::IVY), ext("102"), true, 35),
    );
    tick_until(&world, 5, |w| !w.crm.messages().is_empty()).await?;
    // The demo data assigns Hal Ivy to Bob (ext. 102), who answered: the
    // default `assigned-user` tie-breaker settles it (host/tests/e2e/ambiguity.rs
    // covers the other outcomes).
    let m = &world.crm.messages()[0];
    assert_eq!(m.contact_id, contacts["Hal Ivy"]);
    assert!(
        m.body
            .as_deref()
            .context("the message has a body")?
            .contains(
                "Several contacts share this number: chose the contact assigned to the call's user"
            )
    );
    Ok(())
}

#[tokio::test]
async fn a_crm_outage_loses_nothing_and_the_call_posts_when_it_recovers() -> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    world.crm.inject_failures(CrmFault::ServerError, 50);
    let placed = place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 30),
    );
    let report = world.tick().await?;
    assert_eq!(report.retrying, 1, "{report:?}");
    assert_eq!(
        world.storage.call_outcome("demo", &placed.key)?.as_deref(),
        Some("retrying")
    );
    // Drain the remaining injected failures, then the call goes through.
    tick_until(&world, 60, |w| w.crm.messages().len() == 1).await?;
    assert_eq!(
        world.storage.call_outcome("demo", &placed.key)?.as_deref(),
        Some("posted")
    );
    world.tick().await?;
    assert_eq!(world.crm.messages().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_rate_limited_crm_asks_the_scheduler_to_wait_for_retry_after() -> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    world.crm.inject_failures(
        CrmFault::TooManyRequests {
            retry_after_secs: Some(7),
        },
        1,
    );
    place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 30),
    );
    let report = world.tick().await?;
    assert_eq!(
        report.backoff,
        Some(std::time::Duration::from_secs(7)),
        "{report:?}"
    );
    tick_until(&world, 3, |w| w.crm.messages().len() == 1).await?;
    Ok(())
}

#[tokio::test]
async fn a_3cx_outage_fails_the_tick_and_the_next_one_catches_up() -> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    world.pbx.inject_failures(PbxFault::ServerError, 1);
    place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 30),
    );
    let report = world.tick().await?;
    assert!(
        report
            .error
            .as_deref()
            .context("the tick reports an error")?
            .contains("3CX answered 500"),
        "{report:?}"
    );
    tick_until(&world, 3, |w| w.crm.messages().len() == 1).await?;
    Ok(())
}

#[tokio::test]
async fn an_expired_crm_token_is_refreshed_and_the_refresh_token_rotates() -> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    world.crm.expire_access_tokens();
    place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 30),
    );
    tick_until(&world, 3, |w| w.crm.messages().len() == 1).await?;
    // A second expiry needs the rotated refresh token: the old one is spent.
    world.crm.expire_access_tokens();
    place(
        &world,
        &mut Placer::default(),
        &one_leg(2, outside(numbers::ELI), ext("102"), true, 30),
    );
    tick_until(&world, 3, |w| w.crm.messages().len() == 2).await?;
    Ok(())
}

#[tokio::test]
async fn a_revoked_crm_grant_is_reported_and_the_call_waits() -> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    world.crm.revoke_grant();
    let placed = place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 30),
    );
    let report = world.tick().await?;
    assert_eq!(report.retrying, 1, "{report:?}");
    let record = world
        .storage
        .calls("demo")?
        .into_iter()
        .find(|r| r.call_key == placed.key)
        .context("the call is in the call log")?;
    assert_eq!(record.outcome, "retrying");
    assert!(
        record.detail.contains("re-install the app"),
        "{}",
        record.detail
    );
    assert!(world.crm.messages().is_empty());
    Ok(())
}

#[tokio::test]
async fn a_malformed_row_is_parked_with_its_reason_and_other_calls_proceed() -> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    world.pbx.add_raw_call_history_row(serde_json::json!({
        "SegmentId": 424242,
        "SegmentStartTime": chrono::Utc::now().to_rfc3339(),
        "SegmentEndTime": "not a date",
        "CallTime": "PT1S",
    }));
    place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 30),
    );
    let report = tick_until(&world, 5, |w| w.crm.messages().len() == 1).await?;
    assert_eq!(report.rejected_rows, 1);
    let parked = world
        .storage
        .calls("demo")?
        .into_iter()
        .find(|r| r.call_key == "3cx-row:424242")
        .context("the call is in the call log")?;
    assert_eq!(parked.outcome, "parked");
    assert!(
        parked.detail.contains("SegmentEndTime"),
        "{}",
        parked.detail
    );
    // The row breaks the document on purpose: every violation is its.
    let broke = world.pbx.violations().take();
    assert!(
        !broke.is_empty() && broke.iter().all(|v| v.problem.contains("/SegmentEndTime")),
        "{broke:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_row_written_late_inside_the_overlap_window_is_still_posted() -> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    let mut placer = Placer::default();
    place(
        &world,
        &mut placer,
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 30),
    );
    tick_until(&world, 5, |w| w.crm.messages().len() == 1).await?;
    // A call that started two minutes before the cursor appears only now.
    let ended = chrono::Utc::now() - chrono::Duration::seconds(90);
    placer.place(
        &world,
        &one_leg(2, outside(numbers::ELI), ext("102"), true, 30),
        ended,
    );
    tick_until(&world, 5, |w| w.crm.messages().len() == 2).await?;
    Ok(())
}

#[tokio::test]
async fn two_workers_on_one_database_post_each_call_once() -> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    let second = connectzero::pipeline::Pipeline::new(runtime(), world.storage.clone());
    let mut placer = Placer::default();
    for (i, number) in [numbers::DANA, numbers::ELI, numbers::FAY, numbers::GWEN]
        .iter()
        .enumerate()
    {
        place(
            &world,
            &mut placer,
            &one_leg(i as i32 + 1, outside(number), ext("101"), true, 30),
        );
    }
    for _ in 0..3 {
        let (a, b) = tokio::join!(world.tick(), second.tick(&world.tenant));
        a?;
        b?;
    }
    assert_eq!(world.crm.messages().len(), 4);
    let mut alt_ids = posted_keys(&world);
    alt_ids.dedup();
    assert_eq!(alt_ids.len(), 4);
    Ok(())
}

#[tokio::test]
async fn the_demo_data_set_is_handled_exactly_as_expected() -> anyhow::Result<()> {
    let (world, contacts) = seeded_world(eager()).await?;
    let mut placer = Placer::default();
    // The demo finalises one recording a few seconds late; here every
    // recording is final at hang-up so the test needs no waiting.
    let plans: Vec<_> = demo::demo_calls()
        .into_iter()
        .map(|mut plan| {
            if let Some(recording) = &mut plan.recording {
                recording.finalise_after = std::time::Duration::ZERO;
            }
            plan
        })
        .collect();
    let placed: Vec<_> = plans
        .iter()
        .map(|p| place(&world, &mut placer, p))
        .collect();
    tick_until(&world, 10, |w| {
        demo::all_final(&demo::rows(w, &placed, &contacts, false).unwrap(), false)
    })
    .await?;
    let rows = demo::rows(&world, &placed, &contacts, false)?;
    let wrong: Vec<_> = rows
        .iter()
        .filter(|r| !r.as_expected)
        .map(|r| (r.call.plan.label, r.record.clone()))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
    let posted = rows
        .iter()
        .filter(|r| matches!(r.call.plan.expect, demo::Expect::Posted { .. }))
        .count();
    assert_eq!(world.crm.messages().len(), posted);
    Ok(())
}

#[tokio::test]
async fn a_segment_with_a_reused_call_id_hours_later_is_a_separate_call() -> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    let now = chrono::Utc::now();
    let hour = chrono::Duration::hours(1);
    for (segment, start) in [
        (1, now - hour * 3),
        (2, now - chrono::Duration::seconds(60)),
    ] {
        world.pbx.add_segment(SimSegment::inbound(
            segment,
            77,
            (start, start + chrono::Duration::seconds(30)),
            numbers::DANA,
            "101",
            true,
        ));
    }
    tick_until(&world, 5, |w| w.crm.messages().len() == 2).await?;
    Ok(())
}

#[tokio::test]
async fn call_history_is_read_across_pages() -> anyhow::Result<()> {
    let (world, _) = seeded_world(options().page_size(2).build()).await?;
    let mut placer = Placer::default();
    let callers = [
        numbers::DANA,
        numbers::ELI,
        numbers::FAY,
        numbers::GWEN,
        numbers::IAN,
    ];
    for (i, number) in callers.iter().enumerate() {
        place(
            &world,
            &mut placer,
            &one_leg(i as i32 + 1, outside(number), ext("101"), true, 30),
        );
    }
    let report = tick_until(&world, 3, |w| w.crm.messages().len() == 5).await?;
    assert_eq!(report.polled, 5);
    // Five rows at two per page is three pages, each a separate request.
    assert!(world.pbx.request_count("/xapi/v1/CallHistoryView") >= 3);
    Ok(())
}

#[tokio::test]
async fn an_api_user_without_the_history_role_gets_a_fix_hint_and_the_call_waits()
-> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    world.pbx.set_forbidden(true);
    place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 30),
    );
    let report = world.tick().await?;
    let error = report.error.context("the tick reports an error")?;
    assert!(error.contains("3CX denied access (403)"), "{error}");
    assert!(error.contains("role"), "{error}");
    world.pbx.set_forbidden(false);
    tick_until(&world, 3, |w| w.crm.messages().len() == 1).await?;
    Ok(())
}

#[tokio::test]
async fn a_crash_between_posting_and_recording_the_post_does_not_post_twice() -> anyhow::Result<()>
{
    crash_between_posting_and_recording(MessagesPage::Nested).await?;
    Ok(())
}

/// The document's flat message page is read as well as the live nested one.
#[tokio::test]
async fn a_crash_between_posting_and_recording_is_recovered_from_a_flat_message_page()
-> anyhow::Result<()> {
    crash_between_posting_and_recording(MessagesPage::Flat).await?;
    Ok(())
}

/// Should HighLevel not list `altId`, the message is found by its text.
#[tokio::test]
async fn a_crash_between_posting_and_recording_is_recovered_by_the_message_text()
-> anyhow::Result<()> {
    crash_between_posting_and_recording_with(MessagesPage::Nested, false).await?;
    Ok(())
}

async fn crash_between_posting_and_recording(page: MessagesPage) -> anyhow::Result<()> {
    crash_between_posting_and_recording_with(page, true).await?;
    Ok(())
}

async fn crash_between_posting_and_recording_with(
    page: MessagesPage,
    alt_id_listed: bool,
) -> anyhow::Result<()> {
    let crm = HighLevelConfig {
        rate_limit: None,
        messages_page: page,
        ..HighLevelConfig::default()
    };
    let world = World::start_with_crm(runtime(), Storage::in_memory()?, defaults(), crm).await?;
    demo::seed_directory(&world);
    world.crm.set_list_alt_id(alt_id_listed);
    let placed = place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 30),
    );
    tick_until(&world, 5, |w| w.crm.messages().len() == 1).await?;
    let first_id = world.crm.messages()[0].id.clone();

    // As if the worker died after HighLevel accepted the message but before
    // the ledger recorded it: the claim is gone, the call is re-read.
    for key in world.storage.kv_list("demo", None)? {
        if key.starts_with("ledger/") {
            world.storage.kv_delete("demo", &key)?;
        }
    }
    let report = world.tick().await?;
    assert_eq!(report.posted, 1, "the call is handled again: {report:?}");
    assert_eq!(world.crm.messages().len(), 1, "but not posted twice");
    let record = world
        .storage
        .calls("demo")?
        .into_iter()
        .find(|r| r.call_key == placed.key)
        .context("the call is in the call log")?;
    assert_eq!(
        record.detail, first_id,
        "the ledger now points at the first message"
    );
    Ok(())
}

#[tokio::test]
async fn a_second_call_from_a_new_number_reuses_the_contact_created_for_the_first()
-> anyhow::Result<()> {
    let (world, _) = seeded_world(options().no_match_policy("create-contact").build()).await?;
    let mut placer = Placer::default();
    place(
        &world,
        &mut placer,
        &one_leg(1, outside("+14155550177"), ext("103"), true, 50),
    );
    place(
        &world,
        &mut placer,
        &one_leg(2, outside("+14155550177"), ext("102"), true, 20),
    );
    tick_until(&world, 5, |w| w.crm.messages().len() == 2).await?;
    let created: Vec<_> = world
        .crm
        .contacts()
        .into_iter()
        .filter(|c| c.phone.as_deref() == Some("+14155550177"))
        .collect();
    assert_eq!(created.len(), 1);
    assert!(
        world
            .crm
            .messages()
            .iter()
            .all(|m| m.contact_id == created[0].id)
    );
    Ok(())
}

#[tokio::test]
async fn a_row_with_huge_strings_is_parked_with_its_reason_and_other_calls_proceed()
-> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    // A well-formed row but for a 1 MB display name (e.g. a corrupted
    // caller-id): refused, not carried into the ledger, the CRM or the log.
    let start = chrono::Utc::now() - chrono::Duration::seconds(40);
    world.pbx.add_raw_call_history_row(serde_json::json!({
        "SegmentId": 434343,
        "SegmentStartTime": start.to_rfc3339(),
        "SegmentEndTime": (start + chrono::Duration::seconds(30)).to_rfc3339(),
        "SrcInternal": false, "SrcExternal": true, "SrcDn": "10000",
        "SrcCallerNumber": numbers::ELI, "SrcDisplayName": "x".repeat(1 << 20),
        "DstInternal": true, "DstExternal": false, "DstDn": "101",
        "DstCallerNumber": "101", "DstDisplayName": "Alice Smith",
        "CallTime": "PT30S", "CallAnswered": true,
    }));
    place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 30),
    );
    let report = tick_until(&world, 5, |w| w.crm.messages().len() == 1).await?;
    assert_eq!(report.rejected_rows, 1);
    let parked = world
        .storage
        .calls("demo")?
        .into_iter()
        .find(|r| r.call_key == "3cx-row:434343")
        .context("the call is in the call log")?;
    assert_eq!(parked.outcome, "parked");
    assert!(
        parked.detail.contains("SrcDisplayName") && parked.detail.contains("longer than"),
        "{}",
        parked.detail
    );
    assert!(
        parked.detail.len() < 1000,
        "the reason does not carry the string"
    );
    Ok(())
}
