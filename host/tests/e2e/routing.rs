//! Agency routing through the real host: one 3CX system feeding two CRM
//! sub-accounts split by DID and by queue (each call in exactly one, the
//! rest recorded as `routed-elsewhere`, also when a call crosses both
//! tenants' DIDs and queues), `call.started` routed on what an active call
//! tells, a call no tenant takes (recorded by every tenant, and warned
//! about), and two 3CX systems feeding one sub-account with colliding call
//! ids and start times (both posted).

use crate::common;
use anyhow::Context;

use common::*;
use connectzero::config::{TenantOptions, link_tenants, pbx_identity, routing_warnings};
use connectzero::demo::{self, CallPlan, LegPlan, Placer, numbers};
use connectzero::testbed::{TENANT, World};
use connectzero_simulators::threecx::SimParty;
use guest_support::routing::{ROUTED_ELSEWHERE, RouteConfig};

const B: &str = "b";
/// The sales line: the DID tenant a takes.
const SALES_DID: &str = "+14155550900";
/// The same DID as 3CX writes it on a recording (`ToDidNumber`).
const SALES_DID_BARE: &str = "14155550900";
/// The support queue tenant b takes.
const SUPPORT_QUEUE: &str = "800";

fn route(dids: &[&str], queues: &[&str], default: bool) -> Option<RouteConfig> {
    Some(RouteConfig {
        dids: dids.iter().map(|d| d.to_string()).collect(),
        queues: queues.iter().map(|q| q.to_string()).collect(),
        default,
        ..Default::default()
    })
}

fn with_route(route: Option<RouteConfig>) -> TenantOptions {
    options().route(route).build()
}

/// Tell both tenants about each other, as `connectzero run` does.
fn link(a: &mut World, b: &mut World) -> anyhow::Result<()> {
    let mut configs = vec![a.config().clone(), b.config().clone()];
    link_tenants(&mut configs);
    a.reconfigure(|c| c.settings.peers = configs[0].settings.peers.clone())?;
    b.reconfigure(|c| c.settings.peers = configs[1].settings.peers.clone())?;
    Ok(())
}

/// Tenant a (its own CRM) and tenant b (its own CRM, on a's 3CX), both
/// with the demo's contacts, linked.
async fn one_pbx_two_locations(
    route_a: Option<RouteConfig>,
    route_b: Option<RouteConfig>,
) -> anyhow::Result<(World, World)> {
    one_pbx_two_locations_on(runtime(), route_a, route_b).await
}

/// [`one_pbx_two_locations`] on `runtime` (a test that moves the clock
/// needs its own).
async fn one_pbx_two_locations_on(
    runtime: std::sync::Arc<connectzero::engine::Runtime>,
    route_a: Option<RouteConfig>,
    route_b: Option<RouteConfig>,
) -> anyhow::Result<(World, World)> {
    let mut a = World::start(
        runtime.clone(),
        connectzero::storage::Storage::in_memory()?,
        with_route(route_a),
        false,
    )
    .await?;
    demo::seed_directory(&a);
    let mut b = World::start(runtime, a.storage.clone(), with_route(route_b), false).await?;
    demo::seed_directory(&b);
    let pbx = a.config().pbx.clone();
    b.reconfigure(|c| {
        c.id = B.into();
        c.pbx = pbx;
    })?;
    link(&mut a, &mut b)?;
    Ok((a, b))
}

fn call(call_id: i32, legs: Vec<LegPlan>) -> CallPlan {
    common::call("routing", call_id, legs)
}

/// An inbound call to the sales DID, answered by 101: 3CX names the
/// dialled number on the first segment's called side (`DstCallerNumber`),
/// the DN it was sent to being 101 ([ASSUMED], `routing::did_of`).
fn sales_call(call_id: i32) -> CallPlan {
    let mut alice = ext("101");
    alice.caller_number = SALES_DID.into();
    call(call_id, vec![leg(outside(numbers::DANA), alice, true, 60)])
}

/// An inbound call through the support queue, answered by 102.
fn support_call(call_id: i32) -> CallPlan {
    call(
        call_id,
        vec![
            leg(outside(numbers::ELI), ext(SUPPORT_QUEUE), false, 10),
            leg(outside(numbers::ELI), ext("102"), true, 50),
        ],
    )
}

/// An outbound call: no DID, no queue.
fn outbound_call(call_id: i32) -> CallPlan {
    call(
        call_id,
        vec![leg(ext("103"), outside(numbers::FAY), true, 30)],
    )
}

/// The outcome and detail tenant `tenant` recorded for `key`.
fn recorded(world: &World, tenant: &str, key: &str) -> Option<(String, String)> {
    world
        .storage
        .calls(tenant)
        .unwrap()
        .into_iter()
        .find(|c| c.call_key == key)
        .map(|c| (c.outcome, c.detail))
}

/// Tick both tenants until each has recorded every key, at most 10 times.
async fn tick_both_until_recorded(a: &World, b: &World, keys: &[&str]) -> anyhow::Result<()> {
    for _ in 0..10 {
        a.tick().await?;
        b.tick().await?;
        let done = |w: &World, t: &str| keys.iter().all(|k| recorded(w, t, k).is_some());
        if done(a, TENANT) && done(b, B) {
            return Ok(());
        }
    }
    panic!(
        "not every call recorded: a {:?}, b {:?}",
        a.storage.calls(TENANT)?,
        a.storage.calls(B)?
    );
}

fn assert_routed_elsewhere(world: &World, tenant: &str, key: &str) -> anyhow::Result<()> {
    let (outcome, detail) = recorded(world, tenant, key).context("the call is recorded")?;
    assert_eq!(outcome, "skipped", "{tenant} {key}: {detail}");
    assert!(
        detail.starts_with(ROUTED_ELSEWHERE),
        "{tenant} {key}: {detail}"
    );
    Ok(())
}

fn assert_posted(world: &World, tenant: &str, key: &str) -> anyhow::Result<String> {
    let (outcome, detail) = recorded(world, tenant, key).context("the call is recorded")?;
    assert_eq!(outcome, "posted", "{tenant} {key}: {detail}");
    Ok(detail)
}

#[tokio::test]
async fn one_3cx_feeds_two_sub_accounts_by_did_and_queue_and_each_call_lands_in_exactly_one()
-> anyhow::Result<()> {
    // a takes the sales DID and, as the default, whatever b does not claim;
    // b takes the support queue.
    let (a, b) = one_pbx_two_locations(
        route(&[SALES_DID], &[], true),
        route(&[], &[SUPPORT_QUEUE], false),
    )
    .await?;
    let mut placer = Placer::default();
    let sales = place(&a, &mut placer, &sales_call(1)).key;
    let support = place(&a, &mut placer, &support_call(2)).key;
    let outbound = place(&a, &mut placer, &outbound_call(3)).key;
    tick_both_until_recorded(&a, &b, &[&sales, &support, &outbound]).await?;

    // Each call is in exactly one sub-account.
    let mut in_a = vec![sales.clone(), outbound.clone()];
    in_a.sort();
    assert_eq!(posted_keys(&a), in_a);
    assert_eq!(posted_keys(&b), vec![support.clone()]);
    assert_posted(&a, TENANT, &sales)?;
    assert_posted(&a, TENANT, &outbound)?;
    assert_posted(&b, B, &support)?;
    // The other tenant accounts for each, with the reason.
    assert_routed_elsewhere(&a, TENANT, &support)?;
    assert_routed_elsewhere(&b, B, &sales)?;
    assert_routed_elsewhere(&b, B, &outbound)?;
    let (_, why) = recorded(&a, TENANT, &support).context("the call is recorded")?;
    assert!(why.contains("claimed by another tenant"), "{why}");
    // Nothing to warn about: one default, no overlap.
    assert_eq!(
        routing_warnings(&[a.config().clone(), b.config().clone()]),
        Vec::<String>::new()
    );

    // A later tick changes nothing (the ledger holds every decision).
    a.tick().await?;
    b.tick().await?;
    assert_eq!(a.crm.messages().len(), 2);
    assert_eq!(b.crm.messages().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_call_no_tenant_takes_is_recorded_by_every_tenant_and_the_gap_is_warned_about()
-> anyhow::Result<()> {
    let (a, b) = one_pbx_two_locations(
        route(&[SALES_DID], &[], false),
        route(&[], &[SUPPORT_QUEUE], false),
    )
    .await?;
    let mut placer = Placer::default();
    let outbound = place(&a, &mut placer, &outbound_call(7)).key;
    let sales = place(&a, &mut placer, &sales_call(8)).key;
    tick_both_until_recorded(&a, &b, &[&outbound, &sales]).await?;

    // Never lost: both ledgers and call logs hold it, with the reason.
    assert_routed_elsewhere(&a, TENANT, &outbound)?;
    assert_routed_elsewhere(&b, B, &outbound)?;
    let (_, why) = recorded(&a, TENANT, &outbound).context("the call is recorded")?;
    assert!(why.contains("not this tenant's DID or queue"), "{why}");
    assert_eq!(posted_keys(&a), vec![sales]);
    assert!(b.crm.messages().is_empty());
    // And the operator is told how to close the gap.
    let warnings = routing_warnings(&[a.config().clone(), b.config().clone()]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("route.default = true"), "{warnings:?}");
    Ok(())
}

#[tokio::test]
async fn two_3cx_systems_feeding_one_sub_account_never_collide_on_call_keys() -> anyhow::Result<()>
{
    let (mut a, contacts) = seeded_world(defaults()).await?;
    let mut b = World::start(runtime(), a.storage.clone(), defaults(), false).await?;
    demo::seed_directory(&b);
    // b: its own 3CX, a's CRM location (its own install of the app).
    let tokens = a.crm.install();
    let mut crm = a.config().crm.clone();
    crm.access_token = Some(connectzero::config::Secret::new(tokens.access_token));
    crm.refresh_token = connectzero::config::Secret::new(tokens.refresh_token);
    b.reconfigure(|c| {
        c.id = B.into();
        c.crm = crm;
    })?;
    link(&mut a, &mut b)?;

    // The same call id and start time on both systems (fresh 3CX systems
    // count call ids alike; a restore reissues them).
    let plan = one_leg(1, outside(numbers::DANA), ext("101"), true, 40);
    let ended = chrono::Utc::now();
    let key = Placer::default().place(&a, &plan, ended).key;
    assert_eq!(Placer::default().place(&b, &plan, ended).key, key);

    tick_until(&a, 5, |w| !w.crm.messages().is_empty()).await?;
    // b crashed after marking the call as being sent (a marker from before
    // call reference prefixes, the bare conversation id), so its takeover
    // looks for the call's message in the conversation a just posted to.
    a.storage.kv_set(
        B,
        &format!("post/sending/{key}"),
        &serde_json::to_vec("legacy-conversation-id")?,
    )?;
    tick_until(&b, 5, |w| recorded(w, B, &key).is_some()).await?;

    let a_message = assert_posted(&a, TENANT, &key)?;
    let b_message = assert_posted(&b, B, &key)?;
    assert_ne!(a_message, b_message, "b took a's message for its own call");
    let messages = a.crm.messages();
    assert_eq!(messages.len(), 2);
    assert!(
        messages
            .iter()
            .all(|m| m.contact_id == contacts["Dana Fox"])
    );
    let expected: Vec<String> = {
        let mut e = vec![
            format!("{}/{key}", pbx_identity(&a.pbx.base_url())),
            format!("{}/{key}", pbx_identity(&b.pbx.base_url())),
        ];
        e.sort();
        e
    };
    assert_eq!(posted_keys(&a), expected);
    for m in &messages {
        let alt = m.alt_id.as_deref().context("the message has a call key")?;
        assert!(
            m.body
                .as_deref()
                .context("the message has a body")?
                .ends_with(&format!("Ref: {alt}")),
            "{:?}",
            m.body
        );
    }
    // One conversation for the contact, shared by both tenants.
    assert_eq!(a.crm.conversations().len(), 1);
    Ok(())
}

#[test]
fn link_prefixes_call_keys_only_where_two_3cx_systems_share_a_location() -> anyhow::Result<()> {
    let base = |id: &str, pbx: &str, location: &str| {
        let mut c: connectzero::config::TenantConfig = toml::from_str(&format!(
            r#"id = "{id}"
            [pbx]
            base_url = "{pbx}"
            client_id = "cz"
            [crm]
            location_id = "{location}"
            conversation_provider_id = "p"
            client_id = "c""#
        ))
        .unwrap();
        c.validate().unwrap();
        c.settings.route = None;
        c
    };
    let mut tenants = vec![
        base("a", "https://pbx-a.example.com", "L1"),
        base("b", "https://pbx-b.example.com:5001", "L1"),
        base("c", "https://pbx-a.example.com", "L2"),
    ];
    link_tenants(&mut tenants);
    assert_eq!(tenants[0].call_reference_prefix(), "pbx-a.example.com");
    assert_eq!(tenants[1].call_reference_prefix(), "pbx-b.example.com:5001");
    assert_eq!(
        tenants[2].call_reference_prefix(),
        "",
        "alone on L2: keys unchanged"
    );
    // An explicit setting wins, "" included.
    tenants[0].settings.call_reference_prefix = Some(String::new());
    assert_eq!(tenants[0].call_reference_prefix(), "");
    tenants[0].settings.call_reference_prefix = Some("bad prefix!".into());
    let e = tenants[0].validate().unwrap_err().to_string();
    assert!(e.contains("call_reference_prefix"), "{e}");
    Ok(())
}

#[tokio::test]
async fn a_call_moved_between_two_tenants_queues_lands_in_exactly_one_sub_account()
-> anyhow::Result<()> {
    // a takes queue 800 (and is the default), b queue 801: the first
    // claimed queue in leg order owns the call.
    let (a, b) =
        one_pbx_two_locations(route(&[], &["800"], true), route(&[], &["801"], false)).await?;
    let mut placer = Placer::default();
    let a_first = call(
        11,
        vec![
            leg(outside(numbers::ELI), ext("800"), false, 10),
            leg(outside(numbers::ELI), ext("101"), true, 20),
            leg(outside(numbers::ELI), ext("801"), false, 5),
            leg(outside(numbers::ELI), ext("102"), true, 30),
        ],
    );
    let b_first = call(
        12,
        vec![
            leg(outside(numbers::DANA), ext("801"), false, 10),
            leg(outside(numbers::DANA), ext("102"), true, 20),
            leg(outside(numbers::DANA), ext("800"), false, 5),
            leg(outside(numbers::DANA), ext("101"), true, 30),
        ],
    );
    let a_first = place(&a, &mut placer, &a_first).key;
    let b_first = place(&a, &mut placer, &b_first).key;
    tick_both_until_recorded(&a, &b, &[&a_first, &b_first]).await?;

    assert_eq!(posted_keys(&a), vec![a_first.clone()]);
    assert_eq!(posted_keys(&b), vec![b_first.clone()]);
    assert_posted(&a, TENANT, &a_first)?;
    assert_posted(&b, B, &b_first)?;
    assert_routed_elsewhere(&b, B, &a_first)?;
    assert_routed_elsewhere(&a, TENANT, &b_first)?;
    let (_, why) = recorded(&b, B, &a_first).context("the call is recorded")?;
    assert!(why.contains("queue 800"), "{why}");
    Ok(())
}

#[tokio::test]
async fn a_call_to_one_tenants_did_sent_into_anothers_queue_lands_in_the_did_tenant_only()
-> anyhow::Result<()> {
    // a takes the sales DID; b takes the support queue and is the default.
    let (a, b) = one_pbx_two_locations(
        route(&[SALES_DID], &[], false),
        route(&[], &[SUPPORT_QUEUE], true),
    )
    .await?;
    // The inbound rule of a's DID sends the call to b's queue, where 101
    // answers: 3CX names the DID on the first segment's called side.
    let mut queue = ext(SUPPORT_QUEUE);
    queue.caller_number = SALES_DID.into();
    let plan = call(
        13,
        vec![
            leg(outside(numbers::DANA), queue, false, 10),
            leg(outside(numbers::DANA), ext("101"), true, 40),
        ],
    );
    let key = place(&a, &mut Placer::default(), &plan).key;
    tick_both_until_recorded(&a, &b, &[&key]).await?;

    assert_eq!(posted_keys(&a), vec![key.clone()]);
    assert!(b.crm.messages().is_empty(), "b posted a's DID call too");
    assert_posted(&a, TENANT, &key)?;
    assert_routed_elsewhere(&b, B, &key)?;
    let (_, why) = recorded(&b, B, &key).context("the call is recorded")?;
    assert!(why.contains("its DID"), "{why}");
    Ok(())
}

/// Dana through the main IVR to Alice: history shows only the IVR and the
/// extension, never the number dialled.
fn ivr_then_alice() -> Vec<LegPlan> {
    vec![
        leg(
            outside(numbers::DANA),
            SimParty::ivr("800", "Main IVR", 0),
            true,
            10,
        ),
        leg(outside(numbers::DANA), ext("101"), true, 40),
    ]
}

/// NOTES.md §8: 3CX's call history has no DID; the call's recording names
/// it (`ToDidNumber`, bare digits). A call to a's DID whose history shows
/// only the IVR it rang goes to a, read from the recording; the same call
/// unrecorded has no DID to read and goes to the default tenant b.
#[tokio::test]
async fn a_did_is_read_from_the_calls_recording_when_history_names_none() -> anyhow::Result<()> {
    let (a, b) =
        one_pbx_two_locations(route(&[SALES_DID], &[], false), route(&[], &[], true)).await?;
    let mut placer = Placer::default();
    let recorded_call = place(
        &a,
        &mut placer,
        &call(21, ivr_then_alice())
            .recorded(9_210, std::time::Duration::ZERO)
            .dialled(SALES_DID_BARE),
    )
    .key;
    let unrecorded_call = place(&a, &mut placer, &call(22, ivr_then_alice())).key;
    tick_both_until_recorded(&a, &b, &[&recorded_call, &unrecorded_call]).await?;

    assert_posted(&a, TENANT, &recorded_call)?;
    assert_routed_elsewhere(&b, B, &recorded_call)?;
    assert_posted(&b, B, &unrecorded_call)?;
    assert_routed_elsewhere(&a, TENANT, &unrecorded_call)?;
    Ok(())
}

/// Until 3CX lists a call's recording, no tenant can know its DID: both
/// wait (the call retries), then agree once it is listed.
#[tokio::test]
async fn tenants_wait_for_a_recording_listed_late_and_then_agree_on_its_did() -> anyhow::Result<()>
{
    let (a, b) =
        one_pbx_two_locations(route(&[SALES_DID], &[], false), route(&[], &[], true)).await?;
    // Listed late: hidden from the list before the call's rows appear.
    a.pbx.set_recording_listed(9_230, false);
    let key = place(
        &a,
        &mut Placer::default(),
        &call(23, ivr_then_alice())
            .recorded(9_230, std::time::Duration::ZERO)
            .dialled(SALES_DID_BARE),
    )
    .key;
    neither_posts(
        &a,
        &b,
        3,
        &key,
        "retrying",
        "does not list the call's recording",
    )
    .await?;
    a.pbx.set_recording_listed(9_230, true);
    tick_both_until_recorded(&a, &b, &[&key]).await?;
    for _ in 0..2 {
        a.tick().await?;
        b.tick().await?;
    }
    assert_posted(&a, TENANT, &key)?;
    assert_routed_elsewhere(&b, B, &key)?;
    assert_eq!(a.crm.messages().len(), 1);
    assert!(b.crm.messages().is_empty());
    Ok(())
}

/// Tick both tenants `ticks` times: neither posts, and each records `key`
/// with `outcome` and a reason containing `why`.
async fn neither_posts(
    a: &World,
    b: &World,
    ticks: usize,
    key: &str,
    outcome: &str,
    why: &str,
) -> anyhow::Result<()> {
    for _ in 0..ticks {
        a.tick().await?;
        b.tick().await?;
    }
    assert!(a.crm.messages().is_empty() && b.crm.messages().is_empty());
    for (world, tenant) in [(a, TENANT), (b, B)] {
        let (recorded_outcome, reason) =
            recorded(world, tenant, key).context("the call is recorded")?;
        assert_eq!(recorded_outcome, outcome, "{tenant}: {reason}");
        assert!(reason.contains(why), "{reason}");
    }
    Ok(())
}

/// A recording 3CX never lists: after the wait both tenants park the call
/// (Retry once it is listed) — neither routes it without its DID.
#[tokio::test]
async fn a_recording_never_listed_parks_the_call_in_both_tenants_after_the_wait()
-> anyhow::Result<()> {
    // Its own runtime: the test moves the components' clock.
    let runtime = connectzero::engine::Runtime::new(None)?;
    let (a, b) = one_pbx_two_locations_on(
        runtime.clone(),
        route(&[SALES_DID], &[], false),
        route(&[], &[], true),
    )
    .await?;
    a.pbx.set_recording_listed(9_240, false);
    let key = place(
        &a,
        &mut Placer::default(),
        &call(24, vec![leg(outside(numbers::DANA), ext("101"), true, 40)])
            .recorded(9_240, std::time::Duration::ZERO)
            .dialled(SALES_DID_BARE),
    )
    .key;
    a.tick().await?;
    b.tick().await?;
    assert_eq!(
        recorded(&a, TENANT, &key)
            .context("the call is recorded")?
            .0,
        "retrying"
    );
    runtime
        .clock
        .run_ahead(std::time::Duration::from_secs(11 * 60));
    neither_posts(&a, &b, 2, &key, "parked", "still does not list").await?;
    Ok(())
}

/// Subscribe `world`'s tenant to `call.started`.
async fn subscribe_started(world: &World) -> anyhow::Result<()> {
    use connectzero::bindings::trigger::exports::connectzero::pipeline::trigger::{
        Subscription, SubscriptionChange,
    };
    let subscription = Subscription {
        id: "sub-started".into(),
        kind: guest_support::triggers::TriggerKind::CallStarted.into(),
        target_url: format!(
            "{}/workflows-marketplace/triggers/execute/app/sub-started",
            world.crm.base_url()
        ),
        workflow_id: None,
    };
    world
        .pipeline
        .subscribe_trigger(&world.tenant, SubscriptionChange::Created, subscription)
        .await??;
    Ok(())
}

/// The active-call ids whose `call.started` reached `world`'s workflows.
fn started(world: &World) -> Vec<i32> {
    let mut ids: Vec<i32> = world
        .crm
        .trigger_executions()
        .iter()
        .filter(|e| e.body["event"] == "call.started")
        .filter_map(|e| {
            let id = e.body["callId"].as_str()?.strip_prefix("3cx-active:")?;
            id.split('@').next()?.parse().ok()
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn call_started_is_routed_on_what_the_active_call_tells() -> anyhow::Result<()> {
    use connectzero_simulators::threecx::SimActiveCall;
    // a routes by DID only; b takes queue 800 and is the default.
    let (a, b) = one_pbx_two_locations(
        route(&[SALES_DID], &[], false),
        route(&[], &[SUPPORT_QUEUE], true),
    )
    .await?;
    subscribe_started(&a).await?;
    subscribe_started(&b).await?;
    let active = |id: i32, caller: &str, callee: &str| SimActiveCall {
        id,
        caller: caller.into(),
        callee: callee.into(),
        status: "Ringing".into(),
        established_at: chrono::Utc::now(),
    };
    // 91: 3CX names a's DID: a's. 92: only the extension, the DID is
    // unknown and may be a's, so the default tenant starts nothing.
    // 93: through b's queue: b's. 94: outbound: the default's.
    a.pbx.add_active_call(active(91, numbers::DANA, SALES_DID));
    a.pbx
        .add_active_call(active(92, numbers::ELI, "102 Bob Jones"));
    a.pbx
        .add_active_call(active(93, numbers::ELI, "800 Support"));
    a.pbx
        .add_active_call(active(94, "103 Ext 103", numbers::FAY));
    for _ in 0..5 {
        a.tick().await?;
        b.tick().await?;
        if started(&a) == [91] && started(&b) == [93, 94] {
            break;
        }
    }
    assert_eq!(started(&a), [91], "a: its DID only");
    assert_eq!(started(&b), [93, 94], "b: its queue and the outbound call");
    Ok(())
}

/// A route the host cannot use (one that slipped past start-up's check)
/// crosses to the tick as `no-call`: the tick takes no call, says why,
/// and the call waits in 3CX for the tenant's next good tick, which posts
/// it once.
#[tokio::test]
async fn a_route_the_host_cannot_use_takes_no_call_says_why_and_loses_nothing() -> anyhow::Result<()>
{
    let (world, _) = seeded_world(defaults()).await?;
    let placed = place_dana_call(&world, 4100);
    let mut broken = world.config().clone();
    broken.settings.route = route(&["01615550100"], &[], false);
    assert!(broken.validate().is_err(), "start-up refuses this route");
    let broken = connectzero::connect::tenant(broken, reqwest::Client::new());

    let report = world.pipeline.tick(&broken).await?;
    let error = report.error.unwrap_or_default();
    assert!(error.contains("route.dids: "), "{error}");
    assert_eq!((report.polled, report.posted), (0, 0));
    assert!(posted_keys(&world).is_empty());

    let report = tick_until(&world, 5, |w| !posted_keys(w).is_empty()).await?;
    assert_eq!(report.error, None);
    assert_eq!(posted_keys(&world), vec![placed.key]);
    Ok(())
}
