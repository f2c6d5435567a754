//! The HighLevel OAuth install over the host's HTTP server, against the
//! HighLevel simulator: the authorize redirect, the `state` checks, the
//! code exchange, and a revoked grant that parks nothing and posts after a
//! new install.

use crate::common;
use anyhow::Context;

use common::*;
use connectzero::config::{Secret, TenantConfig};
use connectzero::credentials::names;
use connectzero::demo::{Placer, numbers};
use connectzero::pipeline::{Pipeline, Tenant};
use connectzero::secrets::SecretStore;
use connectzero::server::{self, ServerState};
use connectzero::storage::TenantAuth;
use connectzero::testbed::{TENANT, World};
use std::collections::HashMap;
use std::sync::Arc;

/// Serve `tenants` on a loopback port; returns the base URL.
pub(crate) async fn serve(
    pipeline: Arc<Pipeline>,
    tenants: &[Arc<Tenant>],
) -> anyhow::Result<String> {
    let tenants: HashMap<String, Arc<Tenant>> = tenants
        .iter()
        .map(|t| (t.id().to_string(), t.clone()))
        .collect();
    let state = Arc::new(ServerState { pipeline, tenants });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(server::serve(listener, state));
    Ok(format!("http://{addr}"))
}

/// A client that shows redirects instead of following them.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Another tenant on the same simulators and database, built from the
/// world's configuration changed by `change`.
pub(crate) fn tenant_like(
    world: &World,
    store: &SecretStore,
    change: impl FnOnce(&mut TenantConfig),
) -> anyhow::Result<Arc<Tenant>> {
    let mut config = world.config().clone();
    change(&mut config);
    let tenant = connectzero::connect::tenant(config, reqwest::Client::new());
    connectzero::credentials::of(&tenant).use_store(store.clone())?;
    Ok(Arc::new(tenant))
}

/// The query parameters of `url`, decoded.
pub(crate) fn query(url: &str) -> anyhow::Result<HashMap<String, String>> {
    let (_, query) = url.split_once('?').context("the URL has a query")?;
    Ok(query
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_string(), urlencoding::decode(v).unwrap().into_owned())
        })
        .collect())
}

/// Start an install of `tenant`: the authorize URL and its state.
pub(crate) async fn install(base: &str, tenant: &str) -> anyhow::Result<(String, String)> {
    let response = browser()
        .get(format!("{base}/t/{tenant}/oauth/install"))
        .send()
        .await?;
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str()?.to_string();
    let state = query(&location)?["state"].clone();
    Ok((location, state))
}

/// Present a callback; returns the status and body.
pub(crate) async fn callback(
    base: &str,
    tenant: &str,
    code: &str,
    state: &str,
) -> anyhow::Result<(u16, String)> {
    let response = browser()
        .get(format!("{base}/t/{tenant}/oauth/callback"))
        .query(&[("code", code), ("state", state)])
        .send()
        .await?;
    Ok((response.status().as_u16(), response.text().await?))
}

pub(crate) fn token_requests(world: &World) -> usize {
    world.crm.request_count("POST", "/oauth/token")
}

#[tokio::test]
async fn install_redirects_to_the_highlevel_authorize_page_with_the_apps_parameters()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (world, _contacts, _store) = world_with_secrets(dir.path(), defaults()).await?;
    let base = serve(world.pipeline.clone(), std::slice::from_ref(&world.tenant)).await?;

    let response = browser()
        .get(format!("{base}/t/{TENANT}/oauth/install"))
        .send()
        .await?;
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let location = response.headers()["location"].to_str()?;
    assert!(
        location.starts_with("https://marketplace.gohighlevel.com/v2/oauth/chooselocation?"),
        "{location}"
    );
    let params = query(location)?;
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["client_id"], world.config().crm.client_id);
    // The one redirect URL of every tenant: the state names the tenant.
    assert_eq!(params["redirect_uri"], format!("{base}/oauth/callback"));
    let scopes: Vec<&str> = params["scope"].split(' ').collect();
    for needed in [
        "contacts.readonly",
        "conversations/message.write",
        "workflows.readonly",
    ] {
        assert!(scopes.contains(&needed), "{scopes:?}");
    }
    // 256 random bits, and a new one per install.
    assert!(params["state"].len() >= 43, "{}", params["state"]);
    let (_, second) = install(&base, TENANT).await?;
    assert_ne!(second, params["state"]);

    let unknown = browser()
        .get(format!("{base}/t/nobody/oauth/install"))
        .send()
        .await?;
    assert_eq!(unknown.status(), 404);
    Ok(())
}

#[tokio::test]
async fn forged_reused_expired_and_foreign_states_are_refused_before_any_exchange()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (world, _contacts, store) = world_with_secrets(dir.path(), defaults()).await?;
    let other = tenant_like(&world, &store, |c| c.id = "other".into())?;
    let hasty = tenant_like(&world, &store, |c| {
        c.id = "hasty".into();
        c.settings.oauth.state_ttl_secs = Some(0);
    })?;
    let base = serve(
        world.pipeline.clone(),
        &[world.tenant.clone(), other, hasty],
    )
    .await?;
    let exchanges = token_requests(&world);

    let code = world.crm.authorization_code();
    let (status, body) = callback(&base, TENANT, &code, "made-up-state").await?;
    assert_eq!(status, 400);
    assert!(body.contains("unknown state"), "{body}");

    let (_, foreign) = install(&base, "other").await?;
    let (status, body) = callback(&base, TENANT, &code, &foreign).await?;
    assert_eq!(status, 400);
    assert!(body.contains("another tenant"), "{body}");

    // A zero lifetime: the state has expired by the time it comes back.
    let (_, expired) = install(&base, "hasty").await?;
    let (status, body) = callback(&base, "hasty", &code, &expired).await?;
    assert_eq!(status, 400);
    assert!(body.contains("expired"), "{body}");

    assert_eq!(token_requests(&world), exchanges, "no code was exchanged");

    let (_, good) = install(&base, TENANT).await?;
    let (status, body) = callback(&base, TENANT, &code, &good).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(token_requests(&world), exchanges + 1);

    let (status, body) = callback(&base, TENANT, &world.crm.authorization_code(), &good).await?;
    assert_eq!(status, 400);
    assert!(body.contains("already used"), "{body}");
    assert_eq!(token_requests(&world), exchanges + 1);
    Ok(())
}

/// A tenant "fresh" set up with no CRM tokens at all: an install provides
/// them.
pub(crate) fn uninstalled_tenant(
    world: &World,
    store: &SecretStore,
) -> anyhow::Result<Arc<Tenant>> {
    tenant_like(world, store, |c| {
        c.id = "fresh".into();
        c.crm.refresh_token = Secret::default();
        c.crm.access_token = None;
    })
}

/// Dana calls Alice; `tenant`, not installed yet, keeps the call waiting
/// (retrying) and posts nothing.
pub(crate) async fn a_call_waits_for_the_install(
    world: &World,
    tenant: &Arc<Tenant>,
) -> anyhow::Result<()> {
    place(
        world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 60),
    );
    let report = world.pipeline.tick(tenant).await?;
    assert_eq!(report.retrying, 1, "{report:?}");
    assert!(world.crm.messages().is_empty());
    Ok(())
}

/// Tick `tenant` until the one call waiting for its install is posted,
/// to `contact`.
pub(crate) async fn assert_the_waiting_call_posts(
    world: &World,
    tenant: &Arc<Tenant>,
    contact: &str,
) -> anyhow::Result<()> {
    for _ in 0..5 {
        world.pipeline.tick(tenant).await?;
        if !world.crm.messages().is_empty() {
            break;
        }
    }
    let messages = world.crm.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].contact_id, contact);
    Ok(())
}

/// The world's tenant, installed and served, with one call from Dana
/// posted: the world, its secrets, the server's base URL and the placer.
async fn installed_with_one_call_posted(
    dir: &std::path::Path,
) -> anyhow::Result<(World, SecretStore, String, Placer)> {
    let (world, _contacts, store) = world_with_secrets(dir, defaults()).await?;
    let base = serve(world.pipeline.clone(), std::slice::from_ref(&world.tenant)).await?;
    let mut placer = Placer::default();
    place(
        &world,
        &mut placer,
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 60),
    );
    tick_until(&world, 5, |w| w.crm.messages().len() == 1).await?;
    Ok((world, store, base, placer))
}

/// A callback with a `code` and no `state`, as a marketplace install
/// arrives (NOTES.md §8); returns the status and body.
async fn marketplace_callback(
    base: &str,
    tenant: &str,
    code: &str,
) -> anyhow::Result<(u16, String)> {
    let response = browser()
        .get(format!("{base}/t/{tenant}/oauth/callback"))
        .query(&[("code", code)])
        .send()
        .await?;
    Ok((response.status().as_u16(), response.text().await?))
}

#[tokio::test]
async fn a_marketplace_install_without_state_is_bound_by_the_tokens_location() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let (world, contacts, store) = world_with_secrets(dir.path(), defaults()).await?;
    let fresh = uninstalled_tenant(&world, &store)?;
    let base = serve(world.pipeline.clone(), std::slice::from_ref(&fresh)).await?;
    a_call_waits_for_the_install(&world, &fresh).await?;

    let (status, body) =
        marketplace_callback(&base, "fresh", &world.crm.authorization_code()).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        store.storage().tenant_auth_status("fresh")?,
        TenantAuth::Authorised
    );
    assert_the_waiting_call_posts(&world, &fresh, &contacts["Dana Fox"]).await?;
    Ok(())
}

#[tokio::test]
async fn a_stateless_callback_for_another_location_or_the_agency_never_replaces_the_grant()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (world, store, base, mut placer) = installed_with_one_call_posted(dir.path()).await?;
    let grant = store.get(TENANT, names::CRM_REFRESH_TOKEN)?;

    // A forger installs the app into their own sub-account and brings
    // that code to this tenant's callback.
    let forged = world.crm.authorization_code_for("forgerLocation000001");
    let (status, body) = marketplace_callback(&base, TENANT, &forged).await?;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("another sub-account"), "{body}");
    assert!(
        !body.contains(&world.config().crm.location_id),
        "a stranger learns no location: {body}"
    );
    // An agency-level install: a Company token with no location.
    let agency = world.crm.company_authorization_code();
    let (status, body) = marketplace_callback(&base, TENANT, &agency).await?;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("agency-level"), "{body}");

    assert_eq!(store.get(TENANT, names::CRM_REFRESH_TOKEN)?, grant);
    assert_eq!(
        store.storage().tenant_auth_status(TENANT)?,
        TenantAuth::Authorised
    );
    place(
        &world,
        &mut placer,
        &one_leg(2, outside(numbers::ELI), ext("102"), true, 30),
    );
    tick_until(&world, 5, |w| w.crm.messages().len() == 2).await?;
    Ok(())
}

/// One redirect URL for every tenant (`/oauth/callback`): a marketplace
/// install goes to the tenant serving the token's location, and is
/// refused when none or several do.
#[tokio::test]
async fn the_shared_marketplace_callback_binds_the_grant_to_the_tenant_of_its_location()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (world, contacts, store) = world_with_secrets(dir.path(), defaults()).await?;
    let fresh = uninstalled_tenant(&world, &store)?;
    let elsewhere = tenant_like(&world, &store, |c| {
        c.id = "elsewhere".into();
        c.crm.location_id = "otherLocation0000001".into();
    })?;
    let base = serve(world.pipeline.clone(), &[fresh.clone(), elsewhere]).await?;
    let shared = |code: String| {
        let base = base.clone();
        async move {
            let response = browser()
                .get(format!("{base}/oauth/callback"))
                .query(&[("code", code)])
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    a_call_waits_for_the_install(&world, &fresh).await?;

    let (status, body) = shared(world.crm.authorization_code_for("nobodysLocation00001")).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("no tenant"), "{body}");
    let (status, body) = shared(world.crm.company_authorization_code()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("agency-level"), "{body}");
    let (status, body) = shared(world.crm.authorization_code()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("tenant fresh"), "{body}");
    assert_eq!(
        store.storage().tenant_auth_status("fresh")?,
        TenantAuth::Authorised
    );
    assert_the_waiting_call_posts(&world, &fresh, &contacts["Dana Fox"]).await?;
    Ok(())
}

/// Two tenants serving one location: the shared URL cannot tell which
/// the install is for.
#[tokio::test]
async fn the_shared_marketplace_callback_refuses_a_location_two_tenants_serve() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let (world, _contacts, store) = world_with_secrets(dir.path(), defaults()).await?;
    let twin = tenant_like(&world, &store, |c| c.id = "twin".into())?;
    let base = serve(world.pipeline.clone(), &[world.tenant.clone(), twin]).await?;
    let grant = store.get(TENANT, names::CRM_REFRESH_TOKEN)?;
    let response = browser()
        .get(format!("{base}/oauth/callback"))
        .query(&[("code", world.crm.authorization_code())])
        .send()
        .await?;
    assert_eq!(response.status(), 409);
    assert_eq!(store.get(TENANT, names::CRM_REFRESH_TOKEN)?, grant);
    Ok(())
}

#[tokio::test]
async fn a_tenant_installed_through_oauth_posts_the_calls_that_waited_for_it() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let (world, contacts, store) = world_with_secrets(dir.path(), defaults()).await?;
    let fresh = uninstalled_tenant(&world, &store)?;
    let base = serve(world.pipeline.clone(), std::slice::from_ref(&fresh)).await?;
    a_call_waits_for_the_install(&world, &fresh).await?;
    let TenantAuth::NeedsReauthorisation { reason, .. } =
        store.storage().tenant_auth_status("fresh")?
    else {
        panic!("an uninstalled tenant must say so");
    };
    assert!(reason.contains("/t/fresh/oauth/install"), "{reason}");

    let (_, state) = install(&base, "fresh").await?;
    let (status, body) = callback(&base, "fresh", &world.crm.authorization_code(), &state).await?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("authorised"), "{body}");
    assert_eq!(
        store.storage().tenant_auth_status("fresh")?,
        TenantAuth::Authorised
    );
    assert!(store.get("fresh", names::CRM_REFRESH_TOKEN)?.is_some());
    assert!(store.get("fresh", names::CRM_ACCESS_TOKEN)?.is_some());

    assert_the_waiting_call_posts(&world, &fresh, &contacts["Dana Fox"]).await?;
    Ok(())
}

#[tokio::test]
async fn a_revoked_grant_holds_calls_until_a_new_install_then_posts_them_once() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let (world, store, base, mut placer) = installed_with_one_call_posted(dir.path()).await?;

    // The sub-account uninstalls the app: every token stops working.
    world.crm.revoke_grant();
    let waiting = place(
        &world,
        &mut placer,
        &one_leg(2, outside(numbers::ELI), ext("102"), true, 30),
    );
    let report = world.tick().await?;
    assert_eq!(report.retrying, 1, "{report:?}");
    let TenantAuth::NeedsReauthorisation { reason, .. } =
        store.storage().tenant_auth_status(TENANT)?
    else {
        panic!("a revoked grant must mark the tenant");
    };
    assert!(reason.contains("Invalid grant"), "{reason}");
    assert!(!reason.contains(world.config().crm.refresh_token.expose()));

    // While marked, ticks neither lose the call nor ask HighLevel again.
    let exchanges = token_requests(&world);
    let report = world.tick().await?;
    assert_eq!(report.retrying, 1, "{report:?}");
    assert_eq!(token_requests(&world), exchanges);
    assert_eq!(world.crm.messages().len(), 1);
    assert_eq!(
        world.storage.call_outcome(TENANT, &waiting.key)?.as_deref(),
        Some("retrying")
    );

    let (_, state) = install(&base, TENANT).await?;
    let (status, body) = callback(&base, TENANT, &world.crm.authorization_code(), &state).await?;
    assert_eq!(status, 200, "{body}");
    tick_until(&world, 5, |w| w.crm.messages().len() == 2).await?;
    world.tick().await?;
    assert_eq!(world.crm.messages().len(), 2, "posted once");
    assert_eq!(
        world.storage.call_outcome(TENANT, &waiting.key)?.as_deref(),
        Some("posted")
    );
    Ok(())
}
