//! A number several contacts share, end to end: the tenant's tie-breakers
//! settle it, or the call is parked "needs review" with its candidates —
//! never posted to every contact, never silently guessed — until an
//! operator assigns it on the status page.

use crate::common;
use anyhow::Context;

use common::*;
use connectzero::config::TenantOptions;
use connectzero::demo::{Placer, numbers};
use connectzero::testbed::{TENANT, World};

/// Options that hold an undecided shared number for review: the default
/// tie-breakers without `first-contact`.
fn hold_for_review() -> TenantOptions {
    options()
        .tie_breakers(&["assigned-user", "recent-conversation"])
        .build()
}

fn record(world: &World, key: &str) -> anyhow::Result<connectzero::storage::CallRecord> {
    world
        .storage
        .calls(TENANT)?
        .into_iter()
        .find(|r| r.call_key == key)
        .context("the call is in the call log")
}

/// The candidates the post stage kept for the review page.
fn review_candidates(world: &World, key: &str) -> anyhow::Result<Vec<String>> {
    let raw = world
        .storage
        .kv_get(TENANT, &format!("post/review/{key}"))?
        .context("a review entry")?;
    let review: serde_json::Value = serde_json::from_slice(&raw)?;
    Ok(review["candidates"]
        .as_array()
        .context("the review entry lists candidates")?
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect())
}

#[tokio::test]
async fn the_contact_assigned_to_the_answering_user_wins() -> anyhow::Result<()> {
    // Demo data: Hal Ivy is assigned to Bob, who answers on ext. 102.
    let (world, contacts) = seeded_world(defaults()).await?;
    place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::IVY), ext("102"), true, 35),
    );
    tick_until(&world, 5, |w| !w.crm.messages().is_empty()).await?;
    let messages = world.crm.messages();
    assert_eq!(messages.len(), 1, "posted once, to one contact");
    assert_eq!(messages[0].contact_id, contacts["Hal Ivy"]);
    let body = messages[0]
        .body
        .as_deref()
        .context("the message has a body")?;
    assert!(
        body.contains("chose the contact assigned to the call's user"),
        "{body}"
    );
    Ok(())
}

#[tokio::test]
async fn a_crash_before_the_ledger_then_a_changed_tie_breaker_still_leaves_one_message()
-> anyhow::Result<()> {
    // Bob answers the shared Ivy number: `assigned-user` picks Hal Ivy.
    let (world, contacts) = seeded_world(defaults()).await?;
    let placed = place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::IVY), ext("102"), true, 35),
    );
    tick_until(&world, 5, |w| !w.crm.messages().is_empty()).await?;
    let first = world.crm.messages()[0].clone();
    assert_eq!(first.contact_id, contacts["Hal Ivy"]);

    // The worker died after HighLevel accepted the message but before the
    // ledger recorded it: the claim is gone, the call is read again.
    for key in world.storage.kv_list(TENANT, None)? {
        if key.starts_with("ledger/") {
            world.storage.kv_delete(TENANT, &key)?;
        }
    }
    // Meanwhile Bob's contact changed: the tie-breaker now picks Gus Ivy.
    let bob = world
        .crm
        .users()
        .into_iter()
        .find(|u| u.email == "bob@acme.example")
        .context("the demo seeds Bob as a HighLevel user")?
        .id;
    world
        .crm
        .set_contact_assigned_to(&contacts["Hal Ivy"], None);
    world
        .crm
        .set_contact_assigned_to(&contacts["Gus Ivy"], Some(&bob));

    let report = world.tick().await?;
    assert_eq!(report.posted, 1, "the call is handled again: {report:?}");
    let messages = world.crm.messages();
    assert_eq!(messages.len(), 1, "but not posted again: {messages:#?}");
    let r = record(&world, &placed.key)?;
    assert_eq!(r.outcome, "posted");
    assert_eq!(r.detail, first.id, "the ledger points at the first message");
    Ok(())
}

#[tokio::test]
async fn without_an_assigned_contact_the_most_recent_conversation_wins() -> anyhow::Result<()> {
    let (world, contacts) = seeded_world(defaults()).await?;
    // Alice (ext. 101) is no HighLevel user: `assigned-user` cannot decide.
    // Hal Ivy talked to the business more recently than Gus Ivy.
    let now = chrono::Utc::now();
    world
        .crm
        .add_conversation_message_at(&contacts["Gus Ivy"], now - chrono::Duration::days(9));
    world
        .crm
        .add_conversation_message_at(&contacts["Hal Ivy"], now - chrono::Duration::days(2));
    place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::IVY), ext("101"), true, 35),
    );
    tick_until(&world, 5, |w| !w.crm.messages().is_empty()).await?;
    let messages = world.crm.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].contact_id, contacts["Hal Ivy"]);
    assert!(
        messages[0]
            .body
            .as_deref()
            .context("the message has a body")?
            .contains("chose the contact with the most recent conversation")
    );
    Ok(())
}

/// The product rule by default: the first contact with the number wins
/// and the call lands at once, its message saying the number is shared.
#[tokio::test]
async fn by_default_an_undecided_shared_number_is_logged_at_once_on_the_first_contact()
-> anyhow::Result<()> {
    let (world, contacts) = seeded_world(defaults()).await?;
    // Answered by Alice (no CRM user), and neither Ivy has a conversation.
    let placed = place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::IVY), ext("101"), true, 35),
    );
    let report = world.tick().await?;
    assert_eq!(report.posted, 1, "{report:?}");
    assert_eq!(report.parked, 0, "{report:?}");
    let messages = world.crm.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].contact_id, contacts["Gus Ivy"],
        "the oldest contact"
    );
    let body = messages[0]
        .body
        .as_deref()
        .context("the message has a body")?;
    assert!(
        body.contains("Several contacts share this number")
            && body.contains("first (oldest) contact"),
        "{body}"
    );
    assert_eq!(record(&world, &placed.key)?.outcome, "posted");
    world.tick().await?;
    assert_eq!(world.crm.messages().len(), 1, "posted once");
    Ok(())
}

#[tokio::test]
async fn when_no_tie_breaker_decides_the_call_is_parked_for_review_and_nothing_is_posted()
-> anyhow::Result<()> {
    let (world, contacts) = seeded_world(hold_for_review()).await?;
    // Answered by Alice (no CRM user), and neither Ivy has a conversation.
    let placed = place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::IVY), ext("101"), true, 35),
    );
    let report = tick_until(&world, 5, |w| {
        w.storage
            .calls(TENANT)
            .unwrap()
            .iter()
            .any(|r| r.call_key == placed.key)
    })
    .await?;
    assert_eq!(report.parked, 1, "{report:?}");
    assert_eq!(report.posted, 0, "{report:?}");
    for _ in 0..2 {
        world.tick().await?;
    }
    assert!(world.crm.messages().is_empty(), "nothing posted");
    let r = record(&world, &placed.key)?;
    assert_eq!(r.outcome, "parked");
    assert!(r.detail.starts_with("needs review"), "{}", r.detail);
    assert!(r.detail.contains(&contacts["Gus Ivy"]) && r.detail.contains(&contacts["Hal Ivy"]));
    assert_eq!(
        review_candidates(&world, &placed.key)?,
        ["Gus Ivy", "Hal Ivy"]
    );
    Ok(())
}

#[tokio::test]
async fn with_no_tie_breakers_every_shared_number_goes_to_review() -> anyhow::Result<()> {
    let (world, _) = seeded_world(options().tie_breakers(&[]).build()).await?;
    // Bob answers: `assigned-user` would pick Hal Ivy, but it is off.
    let placed = place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::IVY), ext("102"), true, 35),
    );
    let report = world.tick().await?;
    assert_eq!(report.parked, 1, "{report:?}");
    assert!(world.crm.messages().is_empty());
    assert!(
        record(&world, &placed.key)?
            .detail
            .starts_with("needs review")
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_tie_breaker_is_refused_with_what_to_write() -> anyhow::Result<()> {
    let (mut world, _) = seeded_world(defaults()).await?;
    let error = world
        .reconfigure(|c| c.settings.tie_breakers = vec!["oldest".into()])
        .unwrap_err();
    let error = format!("{error:#}");
    assert!(
        error.contains("tie_breakers") && error.contains("assigned-user"),
        "{error}"
    );
    Ok(())
}

// ---- the status page's "Needs review" list, over plain HTTP ----

const TOKEN: &str = "test-admin-token-0123456789";

/// The CSRF token in a page's forms.
fn csrf_of(html: &str) -> anyhow::Result<String> {
    let at = html
        .find("name=\"csrf\" value=\"")
        .context("a form with a CSRF token")?
        + 19;
    Ok(html[at..].split('"').next().unwrap().to_string())
}

#[tokio::test]
async fn assigning_a_review_call_on_the_page_posts_it_once_to_that_contact() -> anyhow::Result<()> {
    let (world, contacts) = seeded_world(hold_for_review()).await?;
    let base = serve_admin(&world, TOKEN).await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut live = connectzero::web::LiveTenant::new(world.tenant.clone());
    let placed = place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::IVY), ext("101"), true, 35),
    );
    for _ in 0..2 {
        world
            .pipeline
            .tick(&live.before_tick(world.pipeline.storage()))
            .await?;
    }
    assert_eq!(record(&world, &placed.key)?.outcome, "parked");

    let page = common::admin_page(&http, &format!("{base}/admin/t/demo"), TOKEN).await?;
    assert!(page.contains("Needs review"), "{page}");
    assert!(page.contains("id=\"review\""), "{page}");
    for name in ["Gus Ivy", "Hal Ivy"] {
        assert!(page.contains(name), "{name} is offered: {page}");
    }
    let csrf = csrf_of(&page)?;
    let hal = contacts["Hal Ivy"].clone();
    let assign = |contact: String, csrf: String| {
        http.post(format!("{base}/admin/t/demo/review"))
            .bearer_auth(TOKEN)
            .form(&[
                ("csrf", csrf),
                ("call_key", placed.key.clone()),
                ("contact_id", contact),
            ])
            .send()
    };
    // Without the page's CSRF token nothing happens.
    assert_eq!(assign(hal.clone(), "forged".into()).await?.status(), 403);
    // A contact that does not share the number is refused.
    assert_eq!(
        assign(contacts["Dana Fox"].clone(), csrf.clone())
            .await?
            .status(),
        400
    );
    assert_eq!(assign(hal.clone(), csrf.clone()).await?.status(), 303);
    // A second click (or another operator) is refused.
    let again = assign(contacts["Gus Ivy"].clone(), csrf.clone()).await?;
    assert_eq!(again.status(), 409);
    assert!(again.text().await?.contains("not waiting for review"));

    for _ in 0..5 {
        world
            .pipeline
            .tick(&live.before_tick(world.pipeline.storage()))
            .await?;
        if record(&world, &placed.key)?.outcome == "posted" {
            break;
        }
    }
    assert_eq!(record(&world, &placed.key)?.outcome, "posted");
    for _ in 0..3 {
        world
            .pipeline
            .tick(&live.before_tick(world.pipeline.storage()))
            .await?;
    }
    let messages = world.crm.messages();
    assert_eq!(messages.len(), 1, "posted exactly once: {messages:#?}");
    assert_eq!(messages[0].contact_id, hal);
    assert!(
        messages[0]
            .body
            .as_deref()
            .context("the message has a body")?
            .contains("assigned by an operator")
    );
    // Posted, the candidates and the operator's choice are no longer kept.
    for key in [
        format!("post/review/{}", placed.key),
        format!("post/assigned/{}", placed.key),
    ] {
        assert_eq!(world.storage.kv_get(TENANT, &key)?, None, "{key}");
    }
    // Once assigned, the call leaves the list.
    let page = common::admin_page(&http, &format!("{base}/admin/t/demo"), TOKEN).await?;
    assert!(page.contains("id=\"review-empty\""), "{page}");
    Ok(())
}

/// The wall clock, ms since the epoch.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A client for the page that does not follow redirects.
fn page_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// Place a call from the shared Ivy number answered by Alice (no CRM
/// user): the default tie-breakers log it on Gus Ivy, the first contact.
async fn ivy_call_on_first_contact(world: &World) -> anyhow::Result<String> {
    let placed = place(
        world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::IVY), ext("101"), true, 35),
    );
    let report = world.tick().await?;
    assert_eq!(report.posted, 1, "{report:?}");
    Ok(placed.key)
}

/// Press "also log on" for `contact` on the page.
async fn ask_copy(
    http: &reqwest::Client,
    base: &str,
    csrf: &str,
    call_key: &str,
    contact: &str,
) -> anyhow::Result<reqwest::Response> {
    Ok(http
        .post(format!("{base}/admin/t/demo/copy"))
        .bearer_auth(TOKEN)
        .form(&[
            ("csrf", csrf),
            ("call_key", call_key),
            ("contact_id", contact),
        ])
        .send()
        .await?)
}

/// Item 6 of the product rule: the call lands at once on the first
/// contact, flagged on the status page, and one click logs it on another
/// contact with the number too, once.
#[tokio::test]
async fn a_call_logged_on_the_first_contact_is_flagged_and_also_logged_on_another_once()
-> anyhow::Result<()> {
    let (world, contacts) = seeded_world(defaults()).await?;
    let base = serve_admin(&world, TOKEN).await?;
    let http = page_client()?;
    let key = ivy_call_on_first_contact(&world).await?;
    let (gus, hal) = (contacts["Gus Ivy"].clone(), contacts["Hal Ivy"].clone());
    assert_eq!(world.crm.messages()[0].contact_id, gus);

    let page = common::admin_page(&http, &format!("{base}/admin/t/demo"), TOKEN).await?;
    assert!(page.contains("Shared numbers"), "{page}");
    assert!(page.contains(&format!("data-call=\"{key}\"")), "{page}");
    assert!(
        page.contains("class=\"shared-number parked\""),
        "flagged in the call log: {page}"
    );
    assert!(
        page.contains(&format!("class=\"also-log\" data-contact=\"{hal}\"")),
        "Hal Ivy is offered: {page}"
    );
    assert!(
        !page.contains(&format!("class=\"also-log\" data-contact=\"{gus}\"")),
        "not the contact it is logged on: {page}"
    );
    let csrf = csrf_of(&page)?;

    assert_eq!(
        ask_copy(&http, &base, "forged", &key, &hal).await?.status(),
        403
    );
    for not_other in [&contacts["Dana Fox"], &gus] {
        assert_eq!(
            ask_copy(&http, &base, &csrf, &key, not_other)
                .await?
                .status(),
            400,
            "{not_other} is not another contact with the number"
        );
    }
    assert_eq!(
        ask_copy(&http, &base, &csrf, &key, &hal).await?.status(),
        303
    );
    let again = ask_copy(&http, &base, &csrf, &key, &hal).await?;
    assert_eq!(again.status(), 409, "a second click changes nothing");
    assert!(again.text().await?.contains("already being logged"));
    let page = common::admin_page(&http, &format!("{base}/admin/t/demo"), TOKEN).await?;
    assert!(page.contains("on the next poll"), "{page}");

    let report = world.tick().await?;
    assert_eq!(report.posted, 0, "{report:?}");
    for _ in 0..3 {
        world.tick().await?;
    }
    let messages = world.crm.messages();
    assert_eq!(messages.len(), 2, "the call and one copy: {messages:#?}");
    let copy = &messages[1];
    assert_eq!(copy.contact_id, hal);
    assert_eq!(
        copy.alt_id.as_deref(),
        Some(format!("{key}/also/{hal}").as_str())
    );
    let body = copy.body.as_deref().context("the message has a body")?;
    assert!(body.contains("also logged here by an operator"), "{body}");
    assert!(body.ends_with(&format!("Ref: {key}/also/{hal}")), "{body}");
    assert_ne!(copy.conversation_id, messages[0].conversation_id);
    // The call log still points at the call's own message.
    assert_eq!(record(&world, &key)?.detail, messages[0].id);

    let page = common::admin_page(&http, &format!("{base}/admin/t/demo"), TOKEN).await?;
    assert!(page.contains("also logged on Hal Ivy"), "{page}");
    let again = ask_copy(&http, &base, &csrf, &key, &hal).await?;
    assert_eq!(again.status(), 409);
    assert!(again.text().await?.contains("already logged on Hal Ivy"));
    // Carried out, the request is no longer handed to every tick.
    assert_eq!(
        world.storage.kv_get(TENANT, &format!("post/also/{key}"))?,
        None
    );
    assert!(world.storage.pending_copies(TENANT, now_ms())?.is_empty());
    Ok(())
}

/// A worker that died after HighLevel took the copy, before it noted the
/// message id, finds the copy on the next tick instead of sending another.
#[tokio::test]
async fn a_copy_cut_off_after_highlevel_took_it_is_found_not_sent_again() -> anyhow::Result<()> {
    let (world, contacts) = seeded_world(defaults()).await?;
    let key = ivy_call_on_first_contact(&world).await?;
    let hal = contacts["Hal Ivy"].clone();
    assert!(matches!(
        world.storage.ask_copy(TENANT, &key, &hal)?,
        connectzero::storage::CopyAsk::Queued(_)
    ));
    world.tick().await?;
    let messages = world.crm.messages();
    assert_eq!(messages.len(), 2);
    let copy_id = messages[1].id.clone();

    // Undo what the worker did after the send: the marker keeps its
    // conversation but not the message id, and the request is pending.
    let marker_key = format!("post/shared/{key}/copy/{hal}");
    let raw = world
        .storage
        .kv_get(TENANT, &marker_key)?
        .context("the key is set")?;
    let mut marker: serde_json::Value = serde_json::from_slice(&raw)?;
    assert_eq!(marker["messageId"], copy_id.as_str());
    marker
        .as_object_mut()
        .context("the marker is a JSON object")?
        .remove("messageId");
    world
        .storage
        .kv_set(TENANT, &marker_key, marker.to_string().as_bytes())?;
    world.storage.kv_set(
        TENANT,
        &format!("post/also/{key}"),
        serde_json::json!({ "contacts": [hal] })
            .to_string()
            .as_bytes(),
    )?;

    let report = world.tick().await?;
    assert!(report.error.is_none(), "{report:?}");
    assert_eq!(world.crm.messages().len(), 2, "not sent again");
    let raw = world
        .storage
        .kv_get(TENANT, &marker_key)?
        .context("the key is set")?;
    let marker: serde_json::Value = serde_json::from_slice(&raw)?;
    assert_eq!(marker["messageId"], copy_id.as_str(), "found again");
    assert!(world.storage.pending_copies(TENANT, now_ms())?.is_empty());
    Ok(())
}

/// A copy HighLevel is down for waits for the next tick; one it refuses
/// is shown with the reason and can be asked for again.
#[tokio::test]
async fn a_copy_highlevel_refuses_is_shown_and_can_be_asked_again() -> anyhow::Result<()> {
    use connectzero_simulators::highlevel::Fault;
    // Its own runtime: the test moves the clock past the request's lease.
    let runtime = connectzero::engine::Runtime::new(None)?;
    let world = World::start(
        runtime.clone(),
        connectzero::storage::Storage::in_memory()?,
        defaults(),
        false,
    )
    .await?;
    let contacts = connectzero::demo::seed_directory(&world);
    let base = serve_admin(&world, TOKEN).await?;
    let http = page_client()?;
    let key = ivy_call_on_first_contact(&world).await?;
    let hal = contacts["Hal Ivy"].clone();
    world.storage.ask_copy(TENANT, &key, &hal)?;

    world
        .crm
        .inject_failures_on("/conversations/messages/inbound", Fault::ServerError, 1);
    world.tick().await?;
    assert_eq!(world.crm.messages().len(), 1);
    let page = common::admin_page(&http, &format!("{base}/admin/t/demo"), TOKEN).await?;
    assert!(
        page.contains("being logged (attempt 1;"),
        "a 500 is for now: still pending: {page}"
    );
    // Held by its lease for a while: the next tick leaves it alone.
    world.tick().await?;
    assert_eq!(
        world
            .crm
            .request_count("POST", "/conversations/messages/inbound"),
        2
    );
    // Past the lease, another tick takes it, but the marker says a send
    // began minutes ago: it may still be on its way (a 500 does not say
    // HighLevel made nothing), so the tick waits rather than send again.
    runtime
        .clock
        .run_ahead(std::time::Duration::from_secs(3 * 60));
    world.tick().await?;
    assert_eq!(
        world
            .crm
            .request_count("POST", "/conversations/messages/inbound"),
        2
    );
    let page = common::admin_page(&http, &format!("{base}/admin/t/demo"), TOKEN).await?;
    assert!(page.contains("being logged (attempt 2;"), "{page}");
    runtime
        .clock
        .run_ahead(std::time::Duration::from_secs(11 * 60));

    world.crm.inject_failures_on(
        "/conversations/messages/inbound",
        Fault::Unprocessable("contact is in DND".into()),
        1,
    );
    world.tick().await?;
    assert_eq!(world.crm.messages().len(), 1);
    assert!(
        world
            .storage
            .pending_copies(TENANT, runtime.clock.now_ms())?
            .is_empty(),
        "a refusal is not sent again by itself"
    );
    let page = common::admin_page(&http, &format!("{base}/admin/t/demo"), TOKEN).await?;
    assert!(
        page.contains("not logged: HighLevel refused it (HTTP 422)"),
        "{page}"
    );
    assert!(
        page.contains(&format!("class=\"also-log\" data-contact=\"{hal}\"")),
        "offered again: {page}"
    );

    let csrf = csrf_of(&page)?;
    assert_eq!(
        ask_copy(&http, &base, &csrf, &key, &hal).await?.status(),
        303
    );
    world.tick().await?;
    let messages = world.crm.messages();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert_eq!(messages[1].contact_id, hal);
    Ok(())
}
