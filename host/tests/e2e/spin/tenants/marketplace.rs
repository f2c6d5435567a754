//! HighLevel marketplace installs at the app's one redirect URL
//! (`GET /oauth/callback`): the code arrives without a tenant and, from
//! the listing, without a `state` (HighLevel NOTES §8). The grant goes to
//! the tenant that names the granted location, or to a tenant created for
//! it that waits for its settings; strangers can create only a bounded
//! number of those.
//!
//! The app's HighLevel is one simulator that knows every location: its
//! codes are handed to the app's redirect URL and redeem only with it.

use super::*;

/// Where HighLevel sends a marketplace install back.
fn redirect_url(app: &SpinApp) -> String {
    format!("{}/oauth/callback", app.base_url)
}

/// `GET /oauth/callback` with `query`: status and JSON answer.
async fn arrive<V: AsRef<str>>(app: &SpinApp, query: &[(&str, V)]) -> anyhow::Result<(u16, Value)> {
    let url = reqwest::Url::parse_with_params(&redirect_url(app), query)?;
    let response = reqwest::Client::new().get(url).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// A multi-tenant app whose own HighLevel is `world`'s, with at most
/// `max_waiting` tenants created by installs waiting for settings, and
/// at most `max_per_tick` tenants ticked per request.
fn launch(
    spin: &Path,
    state: &Path,
    world: &World,
    max_waiting: &str,
    max_per_tick: &str,
) -> anyhow::Result<SpinApp> {
    let mut variables = app_variables();
    variables.push(("crm_base_url".into(), world.config().crm.base_url.clone()));
    variables.push(("max_waiting_tenants".into(), max_waiting.into()));
    variables.push(("max_tenants_per_tick".into(), max_per_tick.into()));
    SpinApp::launch(spin, state, "marketplace", &variables, &Store::File)
}

/// The tenant ids the admin API lists.
async fn tenant_ids(app: &SpinApp) -> anyhow::Result<Vec<String>> {
    let (status, list) = admin(
        app,
        reqwest::Method::GET,
        "/admin/tenants",
        None,
        Some(ADMIN_SECRET),
    )
    .await?;
    anyhow::ensure!(status == 200, "listing tenants: {status} {list}");
    Ok(serde_json::from_value(list["tenants"].clone())?)
}

/// The id an install gives `location`'s tenant.
fn id_of(location: &str) -> String {
    guest_support::install_tenants::tenant_id(location).expect("a short location id")
}

/// The value Spin's store holds at `key`, its stamp (if any) taken off.
fn value_at(keys: &[(String, Vec<u8>)], key: &str) -> Option<Vec<u8>> {
    const MARK: &[u8] = b"\0czs1";
    keys.iter().find(|(k, _)| k == key).map(|(_, v)| {
        if v.starts_with(MARK) && v.len() >= MARK.len() + 8 {
            v[MARK.len() + 8..].to_vec()
        } else {
            v.clone()
        }
    })
}

/// The refresh token of the grant sealed in tenant `id`'s namespace.
fn kept_refresh_token(keys: &[(String, Vec<u8>)], id: &str) -> anyhow::Result<String> {
    let sealed = value_at(keys, &format!("t/{id}/credentials/crm"))
        .with_context(|| format!("tenant {id} keeps no HighLevel grant"))?;
    let key = guest_support::sealing::store_key::Key::from_base64(TOKEN_KEY)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let entry = key
        .open("credentials/crm", &sealed)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let entry: Value = serde_json::from_slice(&entry)?;
    entry["refresh_token"]
        .as_str()
        .map(str::to_string)
        .context("the kept grant has a refresh token")
}

/// A marketplace install completes the tenant that names its location
/// (whose calls then post), creates a tenant waiting for settings for a
/// location no tenant names (its grant sealed), and refuses agency tokens,
/// replayed codes and another route's states.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marketplace_install_completes_or_creates_the_tenant_of_its_location()
-> anyhow::Result<()> {
    let Some(spin) = spin_cli() else {
        return Ok(());
    };
    let (world, _) = seeded_world(quick_retries().build()).await?;
    let state = tempfile::tempdir()?;
    let app = launch(&spin, state.path(), &world, "5", "10")?;
    let location = world.config().crm.location_id.clone();

    // "shop" names the world's location and has no grant yet.
    let mut settings = tenant_settings(&world);
    settings.remove("crm_refresh_token");
    let (status, answer) = admin(
        &app,
        reqwest::Method::PUT,
        "/admin/tenants/shop",
        Some(serde_json::json!({ "settings": settings })),
        Some(ADMIN_SECRET),
    )
    .await?;
    anyhow::ensure!(status == 201, "adding shop: {status} {answer}");
    let plan = demo::demo_calls().remove(0);
    demo::Placer::default().place(&world, &plan, chrono::Utc::now());
    app.tick().await;
    assert!(world.crm.messages().is_empty(), "posted without a grant");

    // Completes "shop": the grant is kept there and its calls post.
    let code = world
        .crm
        .authorization_code_at(&location, &redirect_url(&app));
    let (status, answer) = arrive(&app, &[("code", &code)]).await?;
    assert_eq!(status, 200, "{answer}\n{}", app.logs());
    assert_eq!(answer["tenant"], "shop", "{answer}");
    assert_eq!(answer["created"], false, "{answer}");
    for _ in 0..10 {
        app.tick().await;
        if !world.crm.messages().is_empty() {
            break;
        }
    }
    assert_eq!(world.crm.messages().len(), 1, "{}", app.logs());
    assert_eq!(tenant_ids(&app).await?, ["shop"]);

    // A location no tenant names: a tenant is created for it, waiting.
    let stranger = "newLocation000000001";
    let created = id_of(stranger);
    let code = world
        .crm
        .authorization_code_at(stranger, &redirect_url(&app));
    // The same code twice at once: HighLevel redeems it once.
    let query = [("code", code.as_str())];
    let (first, second) = tokio::join!(arrive(&app, &query), arrive(&app, &query));
    let mut statuses = [first?.0, second?.0];
    statuses.sort();
    assert_eq!(statuses, [200, 400], "{}", app.logs());
    let (status, answer) = arrive(&app, &[("code", &code)]).await?;
    assert_eq!(status, 400, "a replayed code: {answer}");
    assert_eq!(tenant_ids(&app).await?, [created.clone(), "shop".into()]);
    let (status, shown) = admin(
        &app,
        reqwest::Method::GET,
        &format!("/admin/tenants/{created}"),
        None,
        Some(ADMIN_SECRET),
    )
    .await?;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        shown["settings"],
        serde_json::json!({ "crm_location_id": stranger }),
        "only its location: no 3CX settings"
    );
    let report = app.tick().await;
    assert_eq!(
        report["tenants"][&created]["skipped"],
        "waiting for settings: pbx_base_url, pbx_client_id, pbx_client_secret, crm_conversation_provider_id",
        "{report}"
    );

    // The grant is kept, sealed, in the new tenant's namespace; no token
    // and no code is in the store in clear.
    let keys = stored(&state.path().join("kv.db"))?;
    let refresh = kept_refresh_token(&keys, &created)?;
    assert_eq!(
        world.crm.refresh_token_location(&refresh).as_deref(),
        Some(stranger),
        "the new tenant keeps the grant HighLevel issued for its location"
    );
    let secrets: Vec<String> = world.crm.valid_tokens().into_iter().chain([code]).collect();
    for (key, value) in &keys {
        let text = String::from_utf8_lossy(value);
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a token in clear under {key:?}"
            );
        }
    }

    // An agency-level token is refused; nothing is created.
    let (status, answer) =
        arrive(&app, &[("code", &world.crm.company_authorization_code())]).await?;
    assert_eq!(status, 403, "{answer}");
    // A code for the listing's URL redeemed at a tenant's is refused by
    // HighLevel (redirect_uri differs): the app sends the URL it serves.
    let other = world
        .crm
        .authorization_code_at("newLocation000000002", &redirect_url(&app));
    let tenant_url = format!("{}/t/shop/oauth/callback", app.base_url);
    let response = reqwest::Client::new()
        .get(reqwest::Url::parse_with_params(
            &tenant_url,
            [("code", other)],
        )?)
        .send()
        .await?;
    assert_eq!(response.status(), 400);
    assert_eq!(tenant_ids(&app).await?, [created.clone(), "shop".into()]);

    // Started at the app's own install link: its state comes back to the
    // app's URL and is spent there; a tenant's state is not the app's.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let state_of = |response: reqwest::Response| -> anyhow::Result<(String, String)> {
        let location = response.headers()["location"].to_str()?;
        let query: std::collections::HashMap<String, String> = reqwest::Url::parse(location)?
            .query_pairs()
            .into_owned()
            .collect();
        Ok((query["state"].clone(), query["redirect_uri"].clone()))
    };
    let start = client
        .get(format!("{}/oauth/install", app.base_url))
        .send()
        .await?;
    assert_eq!(start.status(), 302);
    let (app_state, redirect) = state_of(start)?;
    assert_eq!(redirect, redirect_url(&app));
    let start = client
        .get(format!("{}/t/shop/oauth/install", app.base_url))
        .send()
        .await?;
    let (tenant_state, _) = state_of(start)?;
    let code = world
        .crm
        .authorization_code_at(&location, &redirect_url(&app));
    let (status, answer) = arrive(&app, &[("state", &tenant_state), ("code", &code)]).await?;
    assert_eq!(status, 400, "a tenant's state at the app's URL: {answer}");
    let (status, answer) = arrive(&app, &[("state", &app_state), ("code", &code)]).await?;
    assert_eq!(
        (status, &answer["tenant"]),
        (200, &Value::from("shop")),
        "{answer}"
    );
    let code = world
        .crm
        .authorization_code_at(&location, &redirect_url(&app));
    let (status, _) = arrive(&app, &[("state", &app_state), ("code", &code)]).await?;
    assert_eq!(status, 400, "a spent state");
    assert!(!app.logs().contains(&refresh), "a token was logged");
    Ok(())
}

/// At most `max_waiting_tenants` tenants created by installs wait for
/// their settings: the next install is refused with 503 naming the
/// variable and creates nothing; once one gets its settings, its place is
/// free. Completing an existing tenant is never refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_create_at_most_max_waiting_tenants() -> anyhow::Result<()> {
    let Some(spin) = spin_cli() else {
        return Ok(());
    };
    let (world, _) = seeded_world(quick_retries().build()).await?;
    let state = tempfile::tempdir()?;
    // One tenant per tick: waiting tenants must not take that place.
    let app = launch(&spin, state.path(), &world, "2", "1")?;
    let install = |location: &str| {
        let code = world
            .crm
            .authorization_code_at(location, &redirect_url(&app));
        let app = &app;
        async move { arrive(app, &[("code", &code)]).await }
    };
    for location in ["capLocation000000001", "capLocation000000002"] {
        let (status, answer) = install(location).await?;
        assert_eq!(
            (status, &answer["created"]),
            (200, &Value::Bool(true)),
            "{answer}"
        );
    }
    let (status, answer) = install("capLocation000000003").await?;
    assert_eq!(status, 503, "{answer}");
    let message = answer["error"].as_str().unwrap_or_default();
    assert!(message.contains("max_waiting_tenants"), "{message}");
    let ids = tenant_ids(&app).await?;
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(!ids.contains(&id_of("capLocation000000003")));
    // A waiting tenant's own install again: completed, not refused.
    let (status, answer) = install("capLocation000000001").await?;
    assert_eq!(
        (status, &answer["created"]),
        (200, &Value::Bool(false)),
        "{answer}"
    );

    // The operator sets one up: it stops waiting, and its place is free.
    let first = id_of("capLocation000000001");
    let mut settings = tenant_settings(&world);
    settings.remove("crm_refresh_token");
    settings.remove("crm_location_id");
    let (status, answer) = admin(
        &app,
        reqwest::Method::PUT,
        &format!("/admin/tenants/{first}"),
        Some(serde_json::json!({ "settings": settings })),
        Some(ADMIN_SECRET),
    )
    .await?;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = install("capLocation000000003").await?;
    assert_eq!(
        (status, &answer["created"]),
        (200, &Value::Bool(true)),
        "{answer}"
    );
    assert_eq!(tenant_ids(&app).await?.len(), 3);

    // Two tenants wait, one is set up, and a request ticks one tenant:
    // wherever a request starts in the list, it ticks the set-up one (a
    // waiting tenant is skipped without using up the request's place).
    for _ in 0..6 {
        let report = app.tick().await;
        let ticked = &report["tenants"][first.as_str()];
        assert!(
            ticked.is_object() && !ticked["skipped"].is_string(),
            "{report}"
        );
    }
    Ok(())
}
