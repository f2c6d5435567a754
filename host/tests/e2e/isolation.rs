//! One tenant cannot read or change another's data: not through the
//! host's endpoints (action, trigger subscription, OAuth callback), not
//! through a component (the matcher's directory answers only for the
//! tenant that invokes it). Two tenants share one host, one database and
//! one pipeline; each has its own 3CX and HighLevel simulators.
//! (`sandbox.rs` checks the key-value namespaces and outbound allow-lists;
//! `components.rs` that a matcher importing `wasi:http` is refused.)

use crate::common;
use anyhow::Context;

use common::*;
use connectzero::bindings::matcher::exports::connectzero::matcher::matcher::MatchOutcome;
use connectzero::bindings::types::Direction;
use connectzero::config::Secret;
use connectzero::credentials::names;
use connectzero::demo::numbers;
use connectzero::pipeline::Tenant;
use connectzero::server::{self, ServerState};
use connectzero::storage::Storage;
use connectzero::testbed::{ACTION_SECRET, TENANT, World};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

const SECRET_HEADER: &str = "x-connectzero-secret";
const B: &str = "b";
const B_SECRET: &str = "tenant-b-action-secret";

/// Tenant b: its own simulators, no contacts in its CRM, its own action
/// secret, on `storage`.
async fn tenant_b(storage: Storage) -> anyhow::Result<World> {
    let mut b = World::start(runtime(), storage, defaults(), false).await?;
    b.reconfigure(|c| {
        c.id = B.into();
        c.actions.secret = Some(Secret::new(B_SECRET));
    })?;
    Ok(b)
}

/// Serve `tenants` on a loopback port; the base URL.
async fn serve(a: &World, tenants: &[&Arc<Tenant>]) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let tenants: HashMap<String, Arc<Tenant>> = tenants
        .iter()
        .map(|t| (t.id().to_string(), Arc::clone(t)))
        .collect();
    let state = Arc::new(ServerState {
        pipeline: a.pipeline.clone(),
        tenants,
    });
    tokio::spawn(server::serve(listener, state));
    Ok(base)
}

#[tokio::test]
async fn a_tenants_action_secret_does_not_open_another_tenants_action_endpoint()
-> anyhow::Result<()> {
    let (a, _) = seeded_world(defaults()).await?;
    let b = tenant_b(a.storage.clone()).await?;
    let b_contacts = connectzero::demo::seed_directory(&b);
    let base = serve(&a, &[&a.tenant, &b.tenant]).await?;
    let dana_b = &b_contacts["Dana Fox"];
    let body = b
        .crm
        .action_payload("update_call_record", json!({"notes": "from a"}), dana_b)
        .to_string()
        .into_bytes();
    let b_url = format!("{base}/t/{B}/actions/update-call-record");

    // a's secret at b's endpoint: refused, nothing reaches b's CRM.
    let (status, answer) = b
        .crm
        .execute_action_raw(&b_url, body.clone(), &[(SECRET_HEADER, ACTION_SECRET)])
        .await?;
    assert_eq!(status, 401, "{answer}");
    assert!(b.crm.notes(dana_b).is_empty());
    assert_eq!(b.crm.request_count("POST", "/contacts"), 0);

    // a's own endpoint with b's contact id: a's component reaches only a's
    // CRM, where that contact does not exist; b's CRM sees nothing.
    let a_url = format!("{base}/t/{TENANT}/actions/update-call-record");
    a.crm
        .execute_action_raw(&a_url, body.clone(), &[(SECRET_HEADER, ACTION_SECRET)])
        .await?;
    assert!(b.crm.notes(dana_b).is_empty());
    assert_eq!(b.crm.request_count("POST", "/contacts"), 0);

    // b's own secret works (the refusals above were not for another reason).
    let (status, answer) = b
        .crm
        .execute_action_raw(&b_url, body, &[(SECRET_HEADER, B_SECRET)])
        .await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(b.crm.notes(dana_b).len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_tenants_secret_cannot_register_triggers_for_another_tenant() -> anyhow::Result<()> {
    let (a, _) = seeded_world(defaults()).await?;
    let b = tenant_b(a.storage.clone()).await?;
    let base = serve(&a, &[&a.tenant, &b.tenant]).await?;
    let b_url = format!("{base}/t/{B}/triggers/subscription");
    let subscriptions = |ns: &str| {
        a.storage
            .kv_list(ns, None)
            .unwrap()
            .into_iter()
            .filter(|k| k.starts_with("trigger/"))
            .count()
    };

    let refused = b
        .crm
        .subscribe_trigger(
            &b_url,
            "call.ended",
            "CREATED",
            &[(SECRET_HEADER, ACTION_SECRET)],
        )
        .await?;
    assert_eq!(refused.status, 401);
    assert_eq!(subscriptions(B), 0, "b's subscriptions changed");
    assert_eq!(subscriptions(TENANT), 0, "a's subscriptions changed");

    let accepted = b
        .crm
        .subscribe_trigger(
            &b_url,
            "call.ended",
            "CREATED",
            &[(SECRET_HEADER, B_SECRET)],
        )
        .await?;
    assert_eq!(accepted.status, 200);
    assert!(subscriptions(B) > 0);
    assert_eq!(
        subscriptions(TENANT),
        0,
        "b's subscription landed in a's namespace"
    );
    Ok(())
}

#[tokio::test]
async fn an_install_state_of_one_tenant_is_refused_at_another_tenants_callback()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (a, _, store) = world_with_secrets(dir.path(), defaults()).await?;
    let b = tenant_b(store.storage().clone()).await?;
    connectzero::credentials::of(&b.tenant).use_store(store.clone())?;
    let base = serve(&a, &[&a.tenant, &b.tenant]).await?;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let b_refresh = store.get(B, names::CRM_REFRESH_TOKEN)?;
    let tokens_before = (
        a.crm.request_count("POST", "/oauth/token"),
        b.crm.request_count("POST", "/oauth/token"),
    );

    let install = browser
        .get(format!("{base}/t/{TENANT}/oauth/install"))
        .send()
        .await?;
    assert_eq!(install.status(), 302);
    let location = install.headers()["location"].to_str()?.to_string();
    let a_state = location
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("state="))
        .map(|s| urlencoding::decode(s).unwrap().into_owned())
        .context("the install URL carries a state")?;

    // b's callback with a's state and a code b's HighLevel would accept.
    let code = b.crm.authorization_code();
    let answer = browser
        .get(format!("{base}/t/{B}/oauth/callback"))
        .query(&[("code", code.as_str()), ("state", a_state.as_str())])
        .send()
        .await?;
    assert_eq!(answer.status(), 400);
    let text = answer.text().await?;
    assert!(text.contains("another tenant"), "{text}");
    // Nothing was exchanged and b's grant is as it was.
    assert_eq!(
        (
            a.crm.request_count("POST", "/oauth/token"),
            b.crm.request_count("POST", "/oauth/token"),
        ),
        tokens_before
    );
    assert_eq!(store.get(B, names::CRM_REFRESH_TOKEN)?, b_refresh);
    // The state is spent: it no longer completes a's install either.
    let replay = browser
        .get(format!("{base}/t/{TENANT}/oauth/callback"))
        .query(&[
            ("code", a.crm.authorization_code().as_str()),
            ("state", a_state.as_str()),
        ])
        .send()
        .await?;
    assert_eq!(replay.status(), 400);
    Ok(())
}

/// The matcher's only way to contacts is the `directory` import, whose
/// functions take a number or an e-mail and no tenant or location: the
/// host binds it to the invoking tenant's location. A matcher looking up a
/// number only tenant a's CRM has, invoked for tenant b, finds nothing, and
/// a's CRM never hears of it, even right after a's own (warm) matcher
/// found that contact.
#[tokio::test]
async fn a_matcher_reads_only_the_invoking_tenants_directory() -> anyhow::Result<()> {
    let (a, contacts) = seeded_world(defaults()).await?;
    let b = tenant_b(a.storage.clone()).await?;
    let searches = |w: &World| w.crm.request_count("POST", "/contacts/search");

    let for_a =
        connectzero::dry_run::run(&a.pipeline, &a.tenant, numbers::DANA, Direction::Inbound)
            .await?;
    match &for_a.outcome {
        MatchOutcome::Matched(m) => assert_eq!(m.contact.id, contacts["Dana Fox"]),
        other => panic!("a's matcher should find Dana: {other:?}"),
    }
    let a_searches = searches(&a);

    let for_b =
        connectzero::dry_run::run(&a.pipeline, &b.tenant, numbers::DANA, Direction::Inbound)
            .await?;
    assert!(
        matches!(for_b.outcome, MatchOutcome::Unmatched(_)),
        "b's matcher saw a's contact: {:?}",
        for_b.outcome
    );
    assert_eq!(searches(&a), a_searches, "b's matcher reached a's CRM");
    assert!(searches(&b) > 0, "b's matcher searched its own CRM");
    Ok(())
}
