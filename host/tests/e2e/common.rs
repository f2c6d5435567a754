//! Shared set-up for the end-to-end tests: one compiled runtime per test
//! binary, a fresh simulator world per test, and the builders of tenant
//! options and calls ([`builders`]). The helpers that can fail return
//! `anyhow::Result`.

#![allow(dead_code)]

// By path: `tests/memory.rs` includes this file as a module too.
#[path = "common/builders.rs"]
mod builders;

pub use builders::*;

use anyhow::Context;
use connectzero::config::TenantOptions;
use connectzero::demo::{self, CallPlan, PlacedCall, Placer};
use connectzero::engine::Runtime;
use connectzero::pipeline::{Pipeline, TickReport};
use connectzero::storage::Storage;
use connectzero::testbed::World;
use connectzero_simulators::threecx::SimParty;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Build `package` (a component crate of the workspace) for wasm32-wasip2
/// with cargo, into the same target directory as the bundled components
/// (so the shared dependencies are already built); the path of its
/// `<crate>.wasm`.
pub fn build_component(package: &str, crate_name: &str) -> anyhow::Result<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the host crate is inside the workspace")?;
    let target_dir = root.join("target").join("components");
    let mut build = connectzero_stages::wasm_build(root, &target_dir);
    build.args(["-p", package]);
    let output = build.output().context("cargo runs")?;
    assert!(
        output.status.success(),
        "building {package} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let wasm = target_dir.join(format!(
        "wasm32-wasip2/{}/{crate_name}.wasm",
        connectzero_stages::COMPONENT_PROFILE
    ));
    assert!(wasm.exists(), "{} missing after the build", wasm.display());
    Ok(wasm)
}

/// The runtime, compiled once for every test in the binary.
pub fn runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| Runtime::new(None).expect("components compile"))
        .clone()
}

/// A world with the demo's users and contacts, no CRM rate limit.
pub async fn seeded_world(
    options: TenantOptions,
) -> anyhow::Result<(World, HashMap<&'static str, String>)> {
    let world = World::start(runtime(), Storage::in_memory()?, options, false).await?;
    let contacts = demo::seed_directory(&world);
    Ok((world, contacts))
}

/// Default tenant options.
pub fn defaults() -> TenantOptions {
    options().build()
}

/// Tick until `done` holds, at most `max` times; returns the last report.
/// A tick that fails is an error; `done` never holding fails the test.
pub async fn tick_until(
    world: &World,
    max: usize,
    done: impl Fn(&World) -> bool,
) -> anyhow::Result<TickReport> {
    let mut last = TickReport::default();
    for _ in 0..max {
        last = world.tick().await?;
        if done(world) {
            return Ok(last);
        }
    }
    panic!("condition not reached after {max} ticks; last report: {last:?}");
}

/// A one-leg call plan.
pub fn one_leg(call_id: i32, src: SimParty, dst: SimParty, answered: bool, secs: i64) -> CallPlan {
    call("test call", call_id, vec![leg(src, dst, answered, secs)])
}

/// Place `plan` as a call that just ended.
pub fn place(world: &World, placer: &mut Placer, plan: &CallPlan) -> PlacedCall {
    placer.place(world, plan, chrono::Utc::now())
}

/// Place call `call_id`: Dana's number to extension 101, answered, 10 s,
/// just ended (the call most tests need one of).
pub fn place_dana_call(world: &World, call_id: i32) -> PlacedCall {
    place(
        world,
        &mut Placer::default(),
        &one_leg(
            call_id,
            outside(connectzero::demo::numbers::DANA),
            ext("101"),
            true,
            10,
        ),
    )
}

/// The call keys (`altId`) of every message the CRM holds, sorted, one
/// per message (a call posted twice appears twice).
pub fn posted_keys(world: &World) -> Vec<String> {
    let mut keys: Vec<String> = world
        .crm
        .messages()
        .into_iter()
        .filter_map(|m| m.alt_id)
        .collect();
    keys.sort();
    keys
}

/// Extension party.
pub fn ext(dn: &str) -> SimParty {
    SimParty::extension(dn, &format!("Ext {dn}"), 0)
}

/// Outside party.
pub fn outside(number: &str) -> SimParty {
    SimParty::external(number, 0)
}

/// A finished recording `id` with a second of silence, or one still being
/// written when `finished` is false.
pub fn recording(id: i32, finished: bool) -> connectzero_simulators::threecx::SimRecording {
    let now = chrono::Utc::now();
    connectzero_simulators::threecx::SimRecording {
        id,
        start: now - chrono::Duration::seconds(30),
        end: finished.then_some(now),
        from_dn: "10000".into(),
        to_dn: "101".into(),
        from_caller_number: connectzero::demo::numbers::DANA.into(),
        to_caller_number: "101".into(),
        from_did_number: None,
        to_did_number: None,
        audio: connectzero_simulators::threecx::silent_wav(1000),
    }
}

/// Options for tests of retries: no waiting between attempts.
pub fn eager() -> TenantOptions {
    options().eager().build()
}

/// A seeded world whose database is the file `dir/cz.db`, with the
/// tenant's secrets kept encrypted there under the key file
/// `dir/cz.db.key` (created on first use).
pub async fn world_with_secrets(
    dir: &std::path::Path,
    options: TenantOptions,
) -> anyhow::Result<(
    World,
    HashMap<&'static str, String>,
    connectzero::secrets::SecretStore,
)> {
    let db = dir.join("cz.db");
    let storage = Storage::open(&db)?;
    let world = World::start(runtime(), storage.clone(), options, false).await?;
    let key =
        connectzero::secrets::MasterKey::load_file(&connectzero::secrets::default_key_file(&db))?;
    let store = connectzero::secrets::SecretStore::new(storage, key);
    connectzero::credentials::of(&world.tenant).use_store(store.clone())?;
    let contacts = demo::seed_directory(&world);
    Ok((world, contacts, store))
}

/// Subscribe workflow `id` to trigger `key` through the pipeline, as
/// HighLevel does when a workflow using the trigger is published; its
/// executions land in the CRM simulator.
pub async fn subscribe(world: &World, key: &str, id: &str) -> anyhow::Result<()> {
    subscribe_on(&world.pipeline, world, key, id).await
}

/// [`subscribe`] through `pipeline` (another process's view of the
/// database, say) for `world`'s tenant.
pub async fn subscribe_on(
    pipeline: &Pipeline,
    world: &World,
    key: &str,
    id: &str,
) -> anyhow::Result<()> {
    use connectzero::bindings::trigger::exports::connectzero::pipeline::trigger::{
        Subscription, SubscriptionChange,
    };
    let subscription = Subscription {
        id: id.into(),
        kind: guest_support::triggers::TriggerKind::from_key(key)
            .with_context(|| format!("{key} is no trigger key"))?
            .into(),
        target_url: format!(
            "{}/workflows-marketplace/triggers/execute/app/{id}",
            world.crm.base_url()
        ),
        workflow_id: Some(format!("wf-{id}")),
    };
    pipeline
        .subscribe_trigger(&world.tenant, SubscriptionChange::Created, subscription)
        .await??;
    Ok(())
}

/// Serve the host's endpoints and the status page (admin `token`) for
/// `world`'s tenant on a loopback port; returns its base URL.
pub async fn serve_admin(world: &World, token: &str) -> anyhow::Result<String> {
    use connectzero::server::ServerState;
    use connectzero::web::{AdminToken, WebOptions};
    let state = Arc::new(ServerState {
        pipeline: world.pipeline.clone(),
        tenants: HashMap::from([(world.tenant.id().to_string(), world.tenant.clone())]),
    });
    let options = WebOptions {
        token: Some(AdminToken::new(token)?),
        demo: None,
        metrics_token: None,
    };
    let app =
        connectzero::server::router(state.clone()).merge(connectzero::web::router(state, options));
    // Bound before spawning: connections wait in the backlog, no race.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let limits = connectzero::server::listen::Limits::default();
    tokio::spawn(async move { connectzero::server::listen::serve(listener, app, limits).await });
    Ok(format!("http://{addr}"))
}

/// Serve the host's endpoints (no status page) for `world`'s tenant on a
/// loopback port, as `connectzero run` does; returns its base URL.
pub async fn serve_endpoints(world: &World) -> anyhow::Result<String> {
    use connectzero::server::ServerState;
    let state = Arc::new(ServerState {
        pipeline: world.pipeline.clone(),
        tenants: HashMap::from([(world.tenant.id().to_string(), world.tenant.clone())]),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(connectzero::server::serve(listener, state));
    Ok(format!("http://{addr}"))
}

/// GET `url` as the admin (bearer `token`) and return the page; anything
/// but 200 fails the test, naming the URL.
pub async fn admin_page(http: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<String> {
    let response = http.get(url).bearer_auth(token).send().await?;
    assert_eq!(response.status(), 200, "{url}");
    Ok(response.text().await?)
}
