//! One redirect URL for every tenant (issue 21): install links name
//! `<public url>/oauth/callback` and a state that names the tenant; the
//! callback completes that tenant only, once, before the state expires,
//! exchanging the code with the redirect URI the authorize request named
//! (the simulator redeems a code only with it, RFC 6749 §4.1.3). The older
//! per-tenant URLs keep working.

use crate::common::*;
use crate::oauth::{
    a_call_waits_for_the_install, assert_the_waiting_call_posts, browser, install, query, serve,
    tenant_like, token_requests, uninstalled_tenant,
};
use connectzero::credentials::names;
use connectzero::storage::TenantAuth;
use connectzero::testbed::{TENANT, World};

/// Present `code` and `state` at the one redirect URL; status and body.
async fn shared_callback(base: &str, code: &str, state: &str) -> anyhow::Result<(u16, String)> {
    let response = browser()
        .get(format!("{base}/oauth/callback"))
        .query(&[("code", code), ("state", state)])
        .send()
        .await?;
    Ok((response.status().as_u16(), response.text().await?))
}

/// A code for `location` that HighLevel handed to the redirect URI the
/// authorize URL `link` named, as the consent screen does.
fn code_for(world: &World, location: &str, link: &str) -> anyhow::Result<String> {
    let redirect_uri = query(link)?["redirect_uri"].clone();
    Ok(world.crm.authorization_code_at(location, &redirect_uri))
}

#[tokio::test]
async fn an_install_link_comes_back_to_the_one_redirect_url_and_completes_its_tenant()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (world, contacts, store) = world_with_secrets(dir.path(), defaults()).await?;
    let fresh = uninstalled_tenant(&world, &store)?;
    let base = serve(
        world.pipeline.clone(),
        &[world.tenant.clone(), fresh.clone()],
    )
    .await?;
    a_call_waits_for_the_install(&world, &fresh).await?;

    let (link, state) = install(&base, "fresh").await?;
    assert_eq!(
        query(&link)?["redirect_uri"],
        format!("{base}/oauth/callback")
    );
    let location = world.config().crm.location_id.clone();
    let code = code_for(&world, &location, &link)?;
    let (status, body) = shared_callback(&base, &code, &state).await?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("tenant fresh"), "{body}");
    assert_eq!(
        store.storage().tenant_auth_status("fresh")?,
        TenantAuth::Authorised
    );
    assert_the_waiting_call_posts(&world, &fresh, &contacts["Dana Fox"]).await?;

    // Single use: the same state again is refused before any exchange.
    let exchanges = token_requests(&world);
    let again = code_for(&world, &location, &link)?;
    let (status, body) = shared_callback(&base, &again, &state).await?;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("already used"), "{body}");
    assert_eq!(token_requests(&world), exchanges);
    Ok(())
}

#[tokio::test]
async fn a_state_completes_only_the_tenant_it_was_issued_for() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (world, _contacts, store) = world_with_secrets(dir.path(), defaults()).await?;
    let fresh = uninstalled_tenant(&world, &store)?;
    let other_location = "otherLocation0000001";
    let elsewhere = tenant_like(&world, &store, |c| {
        c.id = "elsewhere".into();
        c.crm.location_id = other_location.into();
        c.crm.refresh_token = Default::default();
        c.crm.access_token = None;
    })?;
    let base = serve(world.pipeline.clone(), &[fresh, elsewhere]).await?;
    let location = world.config().crm.location_id.clone();

    // A state of "elsewhere" with a code of fresh's sub-account: the
    // state names "elsewhere", whose location the token is not for.
    let (link, state) = install(&base, "elsewhere").await?;
    let code = code_for(&world, &location, &link)?;
    let (status, body) = shared_callback(&base, &code, &state).await?;
    assert_eq!(status, 403, "{body}");
    assert!(
        !body.contains(&location),
        "a stranger learns no location: {body}"
    );
    for tenant in ["fresh", "elsewhere"] {
        assert!(
            store.get(tenant, names::CRM_REFRESH_TOKEN)?.is_none(),
            "{tenant} got no grant"
        );
    }

    // Fresh's state at elsewhere's own URL: refused, nothing exchanged.
    let exchanges = token_requests(&world);
    let (link, state) = install(&base, "fresh").await?;
    let code = code_for(&world, &location, &link)?;
    let response = browser()
        .get(format!("{base}/t/elsewhere/oauth/callback"))
        .query(&[("code", code.as_str()), ("state", state.as_str())])
        .send()
        .await?;
    assert_eq!(response.status(), 400);
    assert!(response.text().await?.contains("another tenant"));
    assert_eq!(token_requests(&world), exchanges);
    assert!(store.get("elsewhere", names::CRM_REFRESH_TOKEN)?.is_none());

    // Fresh's own state, at the one URL, with its own location: fresh only.
    let (link, state) = install(&base, "fresh").await?;
    let code = code_for(&world, &location, &link)?;
    let (status, body) = shared_callback(&base, &code, &state).await?;
    assert_eq!(status, 200, "{body}");
    assert!(store.get("fresh", names::CRM_REFRESH_TOKEN)?.is_some());
    assert!(store.get("elsewhere", names::CRM_REFRESH_TOKEN)?.is_none());
    Ok(())
}

#[tokio::test]
async fn forged_and_expired_states_are_refused_at_the_one_url_before_any_exchange()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (world, _contacts, store) = world_with_secrets(dir.path(), defaults()).await?;
    let hasty = tenant_like(&world, &store, |c| {
        c.id = "hasty".into();
        c.settings.oauth.state_ttl_secs = Some(0);
    })?;
    let base = serve(world.pipeline.clone(), &[world.tenant.clone(), hasty]).await?;
    let exchanges = token_requests(&world);
    let location = world.config().crm.location_id.clone();

    let code = world.crm.authorization_code();
    let (status, body) = shared_callback(&base, &code, "made-up-state").await?;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unknown state"), "{body}");

    // A zero lifetime: expired by the time it comes back.
    let (link, expired) = install(&base, "hasty").await?;
    let code = code_for(&world, &location, &link)?;
    let (status, body) = shared_callback(&base, &code, &expired).await?;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("expired"), "{body}");
    assert!(body.contains("/t/hasty/oauth/install"), "{body}");
    assert_eq!(token_requests(&world), exchanges, "no code was exchanged");
    Ok(())
}

#[tokio::test]
async fn an_app_registered_with_per_tenant_urls_still_completes_installs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (world, contacts, store) = world_with_secrets(dir.path(), defaults()).await?;
    let old = tenant_like(&world, &store, |c| {
        c.id = "old".into();
        c.crm.refresh_token = Default::default();
        c.crm.access_token = None;
        c.settings.oauth.per_tenant_redirect = Some(true);
    })?;
    let base = serve(world.pipeline.clone(), &[world.tenant.clone(), old.clone()]).await?;
    a_call_waits_for_the_install(&world, &old).await?;
    let location = world.config().crm.location_id.clone();

    let (link, state) = install(&base, "old").await?;
    assert_eq!(
        query(&link)?["redirect_uri"],
        format!("{base}/t/old/oauth/callback")
    );
    let code = code_for(&world, &location, &link)?;
    let response = browser()
        .get(format!("{base}/t/old/oauth/callback"))
        .query(&[("code", code.as_str()), ("state", state.as_str())])
        .send()
        .await?;
    let status = response.status();
    let body = response.text().await?;
    assert_eq!(status, 200, "{body}");
    assert_the_waiting_call_posts(&world, &old, &contacts["Dana Fox"]).await?;

    // A marketplace install (no state) at a per-tenant URL the listing
    // names: redeemed with that URL, which HighLevel handed the code to.
    let listed = format!("{base}/t/{TENANT}/oauth/callback");
    let code = world.crm.authorization_code_at(&location, &listed);
    let response = browser()
        .get(&listed)
        .query(&[("code", code.as_str())])
        .send()
        .await?;
    let status = response.status();
    let body = response.text().await?;
    assert_eq!(status, 200, "{body}");

    // A link handed out with the one URL (the default), whose callback
    // arrives at the tenant's old URL, still redeems with the URL the
    // authorize request named.
    let (link, state) = install(&base, TENANT).await?;
    let code = code_for(&world, &location, &link)?;
    let response = browser()
        .get(format!("{base}/t/{TENANT}/oauth/callback"))
        .query(&[("code", code.as_str()), ("state", state.as_str())])
        .send()
        .await?;
    let status = response.status();
    let body = response.text().await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}
