//! The Update Call Record action and the trigger subscription endpoint,
//! end to end: the host's HTTP server on loopback, the real write-back and
//! trigger components, the HighLevel simulator as the CRM.

use crate::common;
use anyhow::Context;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use connectzero::server::{self, ServerState};
use connectzero::testbed::{ACTION_SECRET, TENANT, World};
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::sha2::Sha256;
use rsa::{Generate, PrivateKey};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

const SECRET_HEADER: &str = "x-connectzero-secret";
/// The action's key in the marketplace app.
const ACTION_KEY: &str = "update_call_record";

/// The server for `world`'s tenant on a free loopback port; returns its base URL.
async fn serve(world: &World) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let state = Arc::new(ServerState {
        pipeline: world.pipeline.clone(),
        tenants: HashMap::from([(TENANT.to_string(), world.tenant.clone())]),
    });
    // Bound before spawning: connections wait in the backlog, no race.
    tokio::spawn(server::serve(listener, state));
    Ok(base)
}

fn action_url(base: &str) -> String {
    format!("{base}/t/{TENANT}/actions/update-call-record")
}

/// The body HighLevel sends for `data` on `contact`.
fn action(world: &World, contact: &str, data: Value) -> Value {
    world.crm.action_payload(ACTION_KEY, data, contact)
}

/// HighLevel POSTs exactly `body` with `headers`: status and JSON answer.
async fn post(
    world: &World,
    url: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, Value)> {
    world
        .crm
        .execute_action_raw(url, body.to_vec(), headers)
        .await
}

/// HighLevel executes the action with the tenant's secret.
async fn call(world: &World, url: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let bytes = body.to_string().into_bytes();
    post(world, url, &bytes, &[(SECRET_HEADER, ACTION_SECRET)]).await
}

fn error_text(answer: &Value) -> &str {
    answer["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {answer}"))
}

/// One test key pair per test binary: (private key, public PEM).
fn keypair() -> &'static (PrivateKey, String) {
    static KEY: OnceLock<(PrivateKey, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        let private = PrivateKey::generate();
        let pem = private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        (private, pem)
    })
}

fn sign(body: &[u8]) -> anyhow::Result<String> {
    Ok(STANDARD.encode(keypair().0.pkcs1v15_sign::<Sha256>(body)?))
}

#[tokio::test]
async fn notes_tags_and_sentiment_are_applied_to_the_contact() -> anyhow::Result<()> {
    let (world, contacts) = seeded_world(defaults()).await?;
    let url = action_url(&serve(&world).await?);
    let dana = &contacts["Dana Fox"];
    let body = action(
        &world,
        dana,
        json!({"messageId": "msg-1", "notes": "Wants a quote for 20 seats", "tags": "vip, follow-up", "sentiment": "positive", "score": "0.8"}),
    );
    let (status, answer) = call(&world, &url, &body).await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["applied"],
        json!({"notes": true, "tags": ["vip", "follow-up"], "sentiment": "positive", "score": 0.8})
    );
    assert_eq!(answer["contactId"], dana.as_str());

    let notes = world.crm.notes(dana);
    assert_eq!(notes.len(), 1);
    assert_eq!(answer["noteId"], notes[0].id.as_str());
    assert!(
        notes[0].body.contains("Wants a quote for 20 seats"),
        "{}",
        notes[0].body
    );
    assert!(notes[0].body.contains("msg-1"), "{}", notes[0].body);
    let contact = world
        .crm
        .contacts()
        .into_iter()
        .find(|c| &c.id == dana)
        .context("Dana is a contact")?;
    assert!(
        contact.tags.iter().any(|t| t == "vip"),
        "{:?}",
        contact.tags
    );
    assert!(
        contact.tags.iter().any(|t| t == "follow-up"),
        "{:?}",
        contact.tags
    );
    assert_eq!(
        contact.custom_field("connectzero_call_sentiment"),
        Some(&json!("positive (0.80)"))
    );
    Ok(())
}

#[tokio::test]
async fn the_same_call_twice_is_applied_once() -> anyhow::Result<()> {
    let (world, contacts) = seeded_world(defaults()).await?;
    let url = action_url(&serve(&world).await?);
    let eli = &contacts["Eli Grant"];
    let body = action(&world, eli, json!({"notes": "Call back on Monday"}));
    let first = call(&world, &url, &body).await?;
    let second = call(&world, &url, &body).await?;
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(first, second);
    assert_eq!(world.crm.notes(eli).len(), 1);
    assert_eq!(
        world
            .crm
            .request_count("POST", &format!("/contacts/{eli}/notes")),
        1
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_or_wrong_secret_is_refused() -> anyhow::Result<()> {
    let (world, contacts) = seeded_world(defaults()).await?;
    let url = action_url(&serve(&world).await?);
    let fay = &contacts["Fay Hart"];
    let body = action(&world, fay, json!({"notes": "x"})).to_string();
    let (status, answer) = post(&world, &url, body.as_bytes(), &[]).await?;
    assert_eq!(status, 401);
    assert!(error_text(&answer).contains(SECRET_HEADER));
    let (status, answer) = post(&world, &url, body.as_bytes(), &[(SECRET_HEADER, "guess")]).await?;
    assert_eq!(status, 401);
    assert!(!error_text(&answer).contains(ACTION_SECRET));
    assert!(world.crm.notes(fay).is_empty());
    Ok(())
}

#[tokio::test]
async fn a_signature_must_verify_when_present() -> anyhow::Result<()> {
    let (mut world, contacts) = seeded_world(defaults()).await?;
    let pem = keypair().1.clone();
    world.reconfigure(|c| c.actions.signature_public_key = Some(pem))?;
    let url = action_url(&serve(&world).await?);
    let gus = &contacts["Gus Ivy"];
    let signed = action(&world, gus, json!({"tags": ["signed"]})).to_string();
    let tampered = signed.replace("signed", "forged");
    let secret = (SECRET_HEADER, ACTION_SECRET);

    let signature = sign(signed.as_bytes())?;
    let (status, answer) = post(
        &world,
        &url,
        tampered.as_bytes(),
        &[secret, ("x-wh-signature", &signature)],
    )
    .await?;
    assert_eq!(status, 401, "{answer}");
    assert!(error_text(&answer).contains("x-wh-signature"));
    let (status, _) = post(
        &world,
        &url,
        signed.as_bytes(),
        &[secret, ("x-wh-signature", "bm90IGEgc2lnbmF0dXJl")],
    )
    .await?;
    assert_eq!(status, 401);
    let contact = world
        .crm
        .contacts()
        .into_iter()
        .find(|c| &c.id == gus)
        .context("Gus is a contact")?;
    assert!(contact.tags.is_empty(), "{:?}", contact.tags);

    let (status, answer) = post(
        &world,
        &url,
        signed.as_bytes(),
        &[secret, ("x-wh-signature", &signature)],
    )
    .await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["applied"]["tags"], json!(["signed"]));
    Ok(())
}

#[tokio::test]
async fn invalid_fields_are_refused_naming_the_field() -> anyhow::Result<()> {
    let (world, contacts) = seeded_world(defaults()).await?;
    let url = action_url(&serve(&world).await?);
    let hal = &contacts["Hal Ivy"];
    let many: Vec<String> = (0..30).map(|i| format!("tag{i}")).collect();
    for (data, field) in [
        (json!({"sentiment": "great"}), "data.sentiment"),
        (json!({"sentiment": "positive", "score": 2}), "data.score"),
        (json!({"tags": many}), "data.tags"),
    ] {
        let (status, answer) = call(&world, &url, &action(&world, hal, data.clone())).await?;
        assert_eq!(status, 422, "{data}: {answer}");
        assert!(error_text(&answer).contains(field), "{data}: {answer}");
    }
    assert_eq!(world.crm.request_count("POST", "/contacts/"), 0);
    assert_eq!(world.crm.request_count("PUT", "/contacts/"), 0);
    Ok(())
}

#[tokio::test]
async fn a_call_for_another_location_is_forbidden() -> anyhow::Result<()> {
    let (world, contacts) = seeded_world(defaults()).await?;
    let url = action_url(&serve(&world).await?);
    let ian = &contacts["Ian Moss"];
    let mut body = action(&world, ian, json!({"notes": "not yours"}));
    body["extras"]["locationId"] = json!("someoneElsesLocation");
    let (status, answer) = call(&world, &url, &body).await?;
    assert_eq!(status, 403, "{answer}");
    assert!(error_text(&answer).contains("someoneElsesLocation"));
    assert!(world.crm.notes(ian).is_empty());
    Ok(())
}

#[tokio::test]
async fn wrong_methods_sizes_contacts_and_tenants_get_clear_errors() -> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    let base = serve(&world).await?;
    let url = action_url(&base);
    let client = reqwest::Client::builder().no_proxy().build()?;

    // Without the secret, refused before anything else is looked at.
    let response = client.get(&url).send().await?;
    assert_eq!(response.status().as_u16(), 401);
    let response = client
        .get(&url)
        .header(SECRET_HEADER, ACTION_SECRET)
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "POST");

    let huge = vec![b' '; 64 * 1024 + 1];
    assert_eq!(
        post(&world, &url, &huge, &[(SECRET_HEADER, ACTION_SECRET)])
            .await?
            .0,
        413
    );
    assert_eq!(
        post(&world, &url, b"{oops", &[(SECRET_HEADER, ACTION_SECRET)])
            .await?
            .0,
        400
    );

    let (status, answer) = call(
        &world,
        &url,
        &action(&world, "noSuchContact1", json!({"tags": ["x"]})),
    )
    .await?;
    assert_eq!(status, 404, "{answer}");
    assert!(error_text(&answer).contains("noSuchContact1"));

    let other = format!("{base}/t/nobody/actions/update-call-record");
    let (status, answer) = call(&world, &other, &json!({})).await?;
    assert_eq!(status, 404);
    assert!(error_text(&answer).contains("nobody"));

    let health = client.get(format!("{base}/healthz")).send().await?;
    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(health.text().await?, "ok");
    Ok(())
}

#[tokio::test]
async fn trigger_subscriptions_are_checked_then_registered() -> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    let url = format!("{}/t/{TENANT}/triggers/subscription", serve(&world).await?);
    let secret = [(SECRET_HEADER, ACTION_SECRET)];
    let crm = &world.crm;

    let refused = crm.subscribe_trigger(&url, "call.ended", "CREATED", &[(SECRET_HEADER, "guess")]);
    assert_eq!(refused.await?.status, 401);
    let unknown = crm.subscribe_trigger(&url, "call.teleported", "CREATED", &secret);
    assert_eq!(unknown.await?.status, 422);
    let foreign = json!({
        "triggerData": {"id": "t1", "key": "call.ended", "filters": [], "eventType": "CREATED",
            "targetUrl": format!("{}/workflows-marketplace/triggers/execute/a/t1", crm.base_url())},
        "meta": {"key": "call.ended", "version": "1.0"},
        "extras": {"locationId": "elsewhere", "workflowId": "wf-1", "companyId": "co-1"}
    });
    let (status, answer) = call(&world, &url, &foreign).await?;
    assert_eq!(status, 403);
    assert!(error_text(&answer).contains("elsewhere"));

    let subscribed = crm
        .subscribe_trigger(&url, "call.ended", "CREATED", &secret)
        .await?;
    assert_eq!(subscribed.status, 200);
    let status = crm.unsubscribe_trigger(&url, &subscribed, &secret).await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn a_subscription_is_answered_only_once_it_is_on_disk() -> anyhow::Result<()> {
    // The trigger component writes the subscription without waiting for
    // the disk and sends nothing out: only the answer can sync it. An
    // answer that outran it would lose the subscription to a power cut,
    // and HighLevel never sends it again.
    let dir = tempfile::tempdir()?;
    let (world, _, _) = world_with_secrets(dir.path(), defaults()).await?;
    let url = format!("{}/t/{TENANT}/triggers/subscription", serve(&world).await?);
    let secret = [(SECRET_HEADER, ACTION_SECRET)];
    let storage = world.pipeline.storage();
    storage.sync()?;
    let subscribed = world
        .crm
        .subscribe_trigger(&url, "call.ended", "CREATED", &secret)
        .await?;
    assert_eq!(subscribed.status, 200);
    assert!(
        storage.nothing_to_sync(),
        "the subscription was on disk when its answer arrived"
    );
    Ok(())
}
