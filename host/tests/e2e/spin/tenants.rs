//! One Spin app serving many tenants kept in its key-value store: tenants
//! created through the admin API, ticked by one `POST /tick` (any number
//! of replicas splitting them under per-tenant leases), each tenant's keys
//! and settings its own.
//!
//! Each tenant here has its own 3CX and HighLevel simulators (a
//! `World`); a tenant's `crm_base_url` points at its own HighLevel.

mod marketplace;

use super::*;
use std::collections::BTreeMap;

/// The admin API's secret in these tests (a test value).
pub(super) const ADMIN_SECRET: &str = "spin-test-admin-secret-5d1e";

/// The app-wide variables of a multi-tenant app with no tenant of its own.
pub(super) fn app_variables() -> Vec<(String, String)> {
    // The marketplace app is the app's, one for every tenant: the
    // simulators' (every world's HighLevel knows the same app).
    let marketplace = connectzero_simulators::highlevel::HighLevelConfig::default();
    [
        ("crm_client_id", marketplace.client_id.as_str()),
        ("crm_client_secret", marketplace.client_secret.as_str()),
        ("token_key", TOKEN_KEY),
        ("tick_secret", TICK_SECRET),
        ("secret", SECRET),
        ("admin_secret", ADMIN_SECRET),
        ("pbx_allowed_hosts", LOOPBACK_HOSTS),
        ("crm_allowed_hosts", LOOPBACK_HOSTS),
        // Never used: every tenant names its own HighLevel.
        ("crm_base_url", "https://crm.invalid"),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect()
}

/// A seeded world for tenant number `n`, its HighLevel location its own
/// (`simLocation<n>`): tenants differ by location, and each location has
/// its own request budget.
pub(super) async fn tenant_world(n: usize) -> anyhow::Result<World> {
    use connectzero_simulators::highlevel::HighLevelConfig;
    let crm = HighLevelConfig {
        location_id: format!("simLocation{n:09}"),
        rate_limit: None,
        ..HighLevelConfig::default()
    };
    let world = World::start_with_crm(
        common::runtime(),
        connectzero::storage::Storage::in_memory()?,
        quick_retries().build(),
        crm,
    )
    .await?;
    demo::seed_directory(&world);
    Ok(world)
}

/// The admin API's settings for a tenant served by `world`'s simulators.
pub(super) fn tenant_settings(world: &World) -> BTreeMap<&'static str, String> {
    let config = world.config();
    BTreeMap::from([
        ("pbx_base_url", config.pbx.base_url.clone()),
        ("pbx_client_id", config.pbx.client_id.clone()),
        (
            "pbx_client_secret",
            config.pbx.client_secret.expose().to_string(),
        ),
        ("crm_base_url", config.crm.base_url.clone()),
        ("crm_location_id", config.crm.location_id.clone()),
        (
            "crm_conversation_provider_id",
            config.crm.conversation_provider_id.clone(),
        ),
        (
            "crm_refresh_token",
            config.crm.refresh_token.expose().to_string(),
        ),
        ("retry_base_ms", config.settings.retry_base_ms.to_string()),
    ])
}

/// The secrets a tenant's settings carry, which no answer, log or stored
/// value may show.
fn secrets_of(world: &World) -> [String; 2] {
    let config = world.config();
    [
        config.pbx.client_secret.expose().to_string(),
        config.crm.refresh_token.expose().to_string(),
    ]
}

/// A call of the admin API.
pub(super) async fn admin(
    app: &SpinApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    secret: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", app.base_url));
    if let Some(secret) = secret {
        request = request.header("authorization", format!("Bearer {secret}"));
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// Create tenant `id` for `world` through the admin API.
async fn add_tenant(app: &SpinApp, id: &str, world: &World) -> anyhow::Result<()> {
    let body = serde_json::json!({"settings": tenant_settings(world)});
    let (status, answer) = admin(
        app,
        reqwest::Method::PUT,
        &format!("/admin/tenants/{id}"),
        Some(body),
        Some(ADMIN_SECRET),
    )
    .await?;
    anyhow::ensure!(
        status == 201,
        "adding {id}: {status} {answer}\n{}",
        app.logs()
    );
    Ok(())
}

/// Tick both `apps` at the same moments until every world holds its
/// totals (bounded), then once more.
async fn tick_all_to_totals(
    apps: [&SpinApp; 2],
    worlds: &[(&str, &World, (usize, usize, usize))],
) -> anyhow::Result<()> {
    let tick = || async {
        tokio::join!(apps[0].tick(), apps[1].tick());
    };
    for _ in 0..80 {
        tick().await;
        if worlds.iter().all(|(_, w, want)| totals(w) == *want) {
            tick().await;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let got: Vec<String> = worlds
        .iter()
        .map(|(id, w, want)| format!("{id}: {:?} of {want:?}", totals(w)))
        .collect();
    let logs: Vec<String> = apps.iter().map(|a| a.logs()).collect();
    anyhow::bail!(
        "after 80 ticks: {} (messages, uploads, triggers)\n{}",
        got.join("; "),
        logs.join("\n")
    )
}

/// Three tenants in one app, two replicas on one store ticking at the same
/// moments: every tenant's calls land in its own HighLevel, each once, and
/// its triggers go to its own subscriptions only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_serve_three_tenants_from_the_store_each_call_once() -> anyhow::Result<()> {
    let Some(spin) = spin_cli() else {
        return Ok(());
    };
    let plans = demo_plans();
    let mut worlds = Vec::new();
    for n in 0..3 {
        worlds.push(tenant_world(n).await?);
    }
    let ids = ["north", "south", "west"];
    let state = tempfile::tempdir()?;
    let first = SpinApp::launch(&spin, state.path(), "first", &app_variables(), &Store::File)?;
    let second = SpinApp::launch(
        &spin,
        state.path(),
        "second",
        &app_variables(),
        &Store::File,
    )?;
    for (id, world) in ids.iter().zip(&worlds) {
        add_tenant(&first, id, world).await?;
    }
    // Only "north" subscribes to the workflow triggers: the others' calls
    // must fire nothing (their trigger stage reads their own
    // subscriptions, which are none).
    let north = &worlds[0];
    let url = format!("{}/t/north/triggers/subscription", second.base_url);
    for key in ["call.started", "call.ended", "missed-call", "call.insights"] {
        let sub = north
            .crm
            .subscribe_trigger(&url, key, "CREATED", &[("x-connectzero-secret", SECRET)])
            .await?;
        anyhow::ensure!(sub.status == 200, "subscribing {key}: {}", sub.status);
    }
    // A subscription for one tenant's location sent to another tenant's
    // route is refused: the route's tenant checks its own location.
    let wrong = worlds[1]
        .crm
        .subscribe_trigger(
            &format!("{}/t/north/triggers/subscription", first.base_url),
            "call.ended",
            "CREATED",
            &[("x-connectzero-secret", SECRET)],
        )
        .await?;
    assert_ne!(
        wrong.status, 200,
        "another location's subscription was taken"
    );

    let tick = || async {
        tokio::join!(first.tick(), second.tick());
    };
    for world in &worlds {
        ring_then_hang_up(world, &plans, tick).await;
    }
    let (posted, recordings, triggers) = expected_totals(&plans);
    let want: Vec<(&str, &World, (usize, usize, usize))> = ids
        .iter()
        .zip(&worlds)
        .map(|(id, w)| {
            let fired = if *id == "north" { triggers } else { 0 };
            (*id, w, (posted, recordings, fired))
        })
        .collect();
    tick_all_to_totals([&first, &second], &want).await?;

    for (id, world) in ids.iter().zip(&worlds) {
        assert_each_call_once(world, id);
    }
    // The report names every tenant.
    let report = first.tick().await;
    for id in ids {
        assert!(report["tenants"].get(id).is_some(), "{report}");
    }

    // Every key is in a tenant's namespace or the provider's, and no
    // secret is stored in clear.
    let keys = stored(&state.path().join("kv.db"))?;
    assert!(!keys.is_empty());
    let secrets: Vec<String> = worlds.iter().flat_map(secrets_of).collect();
    for (key, value) in &keys {
        assert!(
            ids.iter().any(|id| key.starts_with(&format!("t/{id}/")))
                || key.starts_with("tenancy/"),
            "key {key:?} is outside every tenant's namespace"
        );
        for secret in &secrets {
            assert!(
                !String::from_utf8_lossy(value).contains(secret.as_str()),
                "a secret is stored in clear under {key:?}"
            );
        }
    }
    for id in ids {
        assert!(
            keys.iter()
                .any(|(k, _)| k.starts_with(&format!("t/{id}/ledger/"))),
            "tenant {id} has no ledger of its own"
        );
    }
    let logs = format!("{}{}", first.logs(), second.logs());
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret was logged");
    }
    Ok(())
}

/// Every key and value in Spin's SQLite store at `path`.
fn stored(path: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut query = db.prepare("SELECT key, value FROM spin_key_value")?;
    let rows = query
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The admin API: off without `admin_secret`, refuses callers without it,
/// checks names and values before storing, never shows a secret, and a
/// removed tenant is no longer ticked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_guards_checks_and_hides_tenant_settings() -> anyhow::Result<()> {
    let Some(spin) = spin_cli() else {
        return Ok(());
    };
    let (world, _) = seeded_world(quick_retries().build()).await?;
    let state = tempfile::tempdir()?;
    let app = SpinApp::launch(&spin, state.path(), "admin", &app_variables(), &Store::File)?;
    let get = reqwest::Method::GET;
    let put = reqwest::Method::PUT;

    for secret in [None, Some("wrong")] {
        let (status, _) = admin(&app, get.clone(), "/admin/tenants", None, secret).await?;
        assert_eq!(status, 401, "{secret:?}");
    }
    let (status, answer) = admin(
        &app,
        put.clone(),
        "/admin/tenants/shop",
        Some(serde_json::json!({"settings": {"token_key": "x"}})),
        Some(ADMIN_SECRET),
    )
    .await?;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap_or("").contains("token_key"),
        "{answer}"
    );
    let (status, answer) = admin(
        &app,
        put.clone(),
        "/admin/tenants/Bad%20Id",
        Some(serde_json::json!({"settings": {}})),
        Some(ADMIN_SECRET),
    )
    .await?;
    assert_eq!(status, 400, "{answer}");
    // A plain-HTTP 3CX address is refused before anything is stored.
    let mut settings = tenant_settings(&world);
    settings.insert("pbx_base_url", "http://pbx.example.com".into());
    let (status, answer) = admin(
        &app,
        put.clone(),
        "/admin/tenants/shop",
        Some(serde_json::json!({"settings": settings})),
        Some(ADMIN_SECRET),
    )
    .await?;
    assert_eq!(status, 422, "{answer}");
    let (_, list) = admin(
        &app,
        get.clone(),
        "/admin/tenants",
        None,
        Some(ADMIN_SECRET),
    )
    .await?;
    assert_eq!(list["tenants"], serde_json::json!([]), "nothing was stored");

    add_tenant(&app, "shop", &world).await?;
    let (status, shown) = admin(
        &app,
        get.clone(),
        "/admin/tenants/shop",
        None,
        Some(ADMIN_SECRET),
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(shown["settings"]["pbx_client_secret"], "(set)");
    assert_eq!(shown["settings"]["crm_refresh_token"], "(set)");
    assert_eq!(
        shown["settings"]["crm_location_id"],
        world.config().crm.location_id.as_str()
    );
    let text = shown.to_string();
    for secret in secrets_of(&world) {
        assert!(!text.contains(&secret), "a secret was shown");
    }

    // Ticked, then paused, then removed.
    let plans = demo_plans();
    let tick = || async {
        app.tick().await;
    };
    ring_then_hang_up(&world, &plans, tick).await;
    // Calls just hung up wait until 3CX has surely written all their
    // segments (`protocol::completeness`): a fast tick may read none yet.
    let mut polled = serde_json::Value::Null;
    for _ in 0..60 {
        polled = app.tick().await;
        if polled["tenants"]["shop"]["polled"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        polled["tenants"]["shop"]["polled"].as_u64().unwrap_or(0) > 0,
        "the tenant's ticks never read its calls: {polled}"
    );
    let (status, _) = admin(
        &app,
        put.clone(),
        "/admin/tenants/shop",
        Some(serde_json::json!({"settings": {"paused": "true"}})),
        Some(ADMIN_SECRET),
    )
    .await?;
    assert_eq!(status, 200);
    let report = app.tick().await;
    assert_eq!(report["tenants"]["shop"]["skipped"], "paused", "{report}");
    let (status, answer) = admin(
        &app,
        reqwest::Method::DELETE,
        "/admin/tenants/shop",
        None,
        Some(ADMIN_SECRET),
    )
    .await?;
    assert_eq!(
        (status, &answer["removed"]),
        (200, &Value::Bool(true)),
        "{answer}"
    );
    let report = app.tick().await;
    assert!(report.get("tenants").is_none(), "{report}");
    let keys = stored(&state.path().join("kv.db"))?;
    assert!(
        keys.iter().all(|(k, _)| !k.starts_with("t/shop/")),
        "a removed tenant's keys remain"
    );
    let (status, _) = admin(&app, get, "/admin/tenants/shop", None, Some(ADMIN_SECRET)).await?;
    assert_eq!(status, 404);
    Ok(())
}

/// `connectzero tenant spin` against the deployment's admin API: secrets
/// from the environment, never printed.
fn cli(app: &SpinApp, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<(bool, String)> {
    let output = Command::new(env!("CARGO_BIN_EXE_connectzero"))
        .args(["tenant", "spin", "--url", &app.base_url])
        .args(args)
        .env("CONNECTZERO_SPIN_ADMIN_SECRET", ADMIN_SECRET)
        .env_remove("CONNECTZERO_PBX_CLIENT_SECRET")
        .env_remove("CONNECTZERO_CRM_REFRESH_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.success(), text))
}

/// The CLI manages a Spin deployment's tenants: set (secrets from the
/// environment), list, show without secrets, remove with confirmation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectzero_tenant_spin_manages_the_deployments_tenants() -> anyhow::Result<()> {
    let Some(spin) = spin_cli() else {
        return Ok(());
    };
    let (world, _) = seeded_world(quick_retries().build()).await?;
    let state = tempfile::tempdir()?;
    let app = SpinApp::launch(&spin, state.path(), "cli", &app_variables(), &Store::File)?;
    let [pbx_secret, refresh] = secrets_of(&world);
    let mut args = vec!["set".to_string(), "shop".to_string()];
    for (name, value) in tenant_settings(&world) {
        if name != "pbx_client_secret" && name != "crm_refresh_token" {
            args.push("--set".into());
            args.push(format!("{name}={value}"));
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let secrets = [
        ("CONNECTZERO_PBX_CLIENT_SECRET", pbx_secret.as_str()),
        ("CONNECTZERO_CRM_REFRESH_TOKEN", refresh.as_str()),
    ];
    let (ok, text) = cli(&app, &args, &secrets)?;
    assert!(ok && text.contains("created tenant shop"), "{text}");
    let (ok, text) = cli(&app, &["list"], &[])?;
    assert!(ok && text.lines().any(|l| l == "shop"), "{text}");
    let (ok, shown) = cli(&app, &["show", "shop"], &[])?;
    assert!(ok && shown.contains("pbx_client_secret = (set)"), "{shown}");
    assert!(
        !shown.contains(&pbx_secret) && !shown.contains(&refresh),
        "{shown}"
    );
    // A secret as an argument is refused before anything is sent.
    let (ok, text) = cli(&app, &["set", "shop", "--set", "pbx_client_secret=x"], &[])?;
    assert!(
        !ok && text.contains("CONNECTZERO_PBX_CLIENT_SECRET"),
        "{text}"
    );
    // The tenant works: its calls post.
    let plans = demo_plans();
    let tick = || async {
        app.tick().await;
    };
    ring_then_hang_up(&world, &plans, tick).await;
    let (posted, _, _) = expected_totals(&plans);
    for _ in 0..40 {
        app.tick().await;
        if world.crm.messages().len() == posted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(world.crm.messages().len(), posted, "{}", app.logs());
    let (ok, text) = cli(&app, &["remove", "shop"], &[])?;
    assert!(!ok && text.contains("--yes"), "{text}");
    let (ok, text) = cli(&app, &["remove", "shop", "--yes"], &[])?;
    assert!(ok && text.contains("removed tenant shop"), "{text}");
    let (ok, text) = cli(&app, &["show", "shop"], &[])?;
    assert!(!ok && text.contains("404"), "{text}");
    Ok(())
}

/// Without `admin_secret` the admin API is off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_is_off_without_its_secret() -> anyhow::Result<()> {
    let Some(spin) = spin_cli() else {
        return Ok(());
    };
    let state = tempfile::tempdir()?;
    let mut variables = app_variables();
    variables.retain(|(n, _)| n != "admin_secret");
    let app = SpinApp::launch(&spin, state.path(), "off", &variables, &Store::File)?;
    let (status, answer) = admin(
        &app,
        reqwest::Method::GET,
        "/admin/tenants",
        None,
        Some(ADMIN_SECRET),
    )
    .await?;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or("")
            .contains("admin_secret")
    );
    Ok(())
}

/// Calls each tenant places in the budget test.
const BUDGET_CALLS_EACH: i32 = 8;

/// Three tenants on one HighLevel location (three 3CX systems feeding one
/// sub-account), three replicas ticking at the same moments: together they
/// keep to the location's budget, so HighLevel never answers 429, and every
/// call lands once. The limit is HighLevel's shape scaled down (30 per 3 s
/// instead of 100 per 10 s, on the simulator and in the app) so the test
/// takes seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_locations_request_budget() -> anyhow::Result<()> {
    use connectzero::demo::{Placer, numbers};
    use connectzero_simulators::highlevel::{HighLevelConfig, RateLimit};
    let Some(spin) = spin_cli() else {
        return Ok(());
    };
    let crm_config = HighLevelConfig {
        rate_limit: Some(RateLimit {
            max: 30,
            interval: Duration::from_secs(3),
        }),
        ..HighLevelConfig::default()
    };
    let mut worlds = Vec::new();
    for _ in 0..3 {
        let world = World::start_with_crm(
            common::runtime(),
            connectzero::storage::Storage::in_memory()?,
            quick_retries().build(),
            crm_config.clone(),
        )
        .await?;
        demo::seed_directory(&world);
        worlds.push(world);
    }
    let shared = &worlds[0];
    let state = tempfile::tempdir()?;
    let mut variables = app_variables();
    variables.push(("crm_rate_limit_burst".into(), "30".into()));
    variables.push(("crm_rate_limit_interval_ms".into(), "3000".into()));
    let apps = [
        SpinApp::launch(&spin, state.path(), "r1", &variables, &Store::File)?,
        SpinApp::launch(&spin, state.path(), "r2", &variables, &Store::File)?,
        SpinApp::launch(&spin, state.path(), "r3", &variables, &Store::File)?,
    ];
    let ids = ["one", "two", "three"];
    for (id, world) in ids.iter().zip(&worlds) {
        // Its own 3CX, the shared location with a grant of its own (each
        // install issues one; a refresh token is single-use).
        let mut settings = tenant_settings(world);
        let crm = &shared.config().crm;
        let tokens = shared.crm.install();
        settings.insert("crm_base_url", crm.base_url.clone());
        settings.insert("crm_location_id", crm.location_id.clone());
        settings.insert(
            "crm_conversation_provider_id",
            crm.conversation_provider_id.clone(),
        );
        settings.insert("crm_refresh_token", tokens.refresh_token);
        settings.insert("call_reference_prefix", id.to_string());
        let body = serde_json::json!({ "settings": settings });
        let (status, answer) = admin(
            &apps[0],
            reqwest::Method::PUT,
            &format!("/admin/tenants/{id}"),
            Some(body),
            Some(ADMIN_SECRET),
        )
        .await?;
        anyhow::ensure!(status == 201, "adding {id}: {status} {answer}");
    }
    let now = chrono::Utc::now();
    let from = [numbers::DANA, numbers::ELI, numbers::FAY];
    for world in &worlds {
        let mut placer = Placer::default();
        for i in 0..BUDGET_CALLS_EACH {
            let who = common::outside(from[i as usize % from.len()]);
            placer.place(
                world,
                &common::one_leg(100 + i, who, common::ext("101"), true, 30),
                now,
            );
        }
    }
    let want = 3 * BUDGET_CALLS_EACH as usize;
    for round in 0.. {
        tokio::join!(apps[0].tick(), apps[1].tick(), apps[2].tick());
        if shared.crm.messages().len() >= want {
            break;
        }
        // Bounded: at 27 requests per 3 s the work needs about fifteen.
        anyhow::ensure!(
            round < 200,
            "{} of {want} calls posted\n{}",
            shared.crm.messages().len(),
            apps[0].logs()
        );
    }
    assert_eq!(shared.crm.messages().len(), want);
    assert_each_call_once(shared, "three replicas on one location's budget");
    assert_eq!(
        shared.crm.rate_limited_count(),
        0,
        "HighLevel answered 429: the replicas exceeded the location's budget"
    );
    Ok(())
}
