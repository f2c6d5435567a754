//! Shared set-up for the end-to-end tests: one compiled runtime per test
//! binary, a fresh simulator world per test.

#![allow(dead_code)]

use connectzero::config::TenantOptions;
use connectzero::demo::{self, CallPlan, Expect, LegPlan, PlacedCall, Placer};
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
pub fn build_component(package: &str, crate_name: &str) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let target_dir = root.join("target").join("components");
    let mut build = connectzero_stages::wasm_build(root, &target_dir);
    build.args(["-p", package]);
    let output = build.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "building {package} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let wasm = target_dir.join(format!("wasm32-wasip2/release/{crate_name}.wasm"));
    assert!(wasm.exists(), "{} missing after the build", wasm.display());
    wasm
}

/// The runtime, compiled once for every test in the binary.
pub fn runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| Runtime::new(None).expect("components compile"))
        .clone()
}

/// A world with the demo's users and contacts, no CRM rate limit.
pub async fn seeded_world(options: TenantOptions) -> (World, HashMap<&'static str, String>) {
    let world = World::start(runtime(), Storage::in_memory().unwrap(), options, false)
        .await
        .unwrap();
    let contacts = demo::seed_directory(&world);
    (world, contacts)
}

/// Default tenant options.
pub fn defaults() -> TenantOptions {
    TenantOptions::default()
}

/// Tick until `done` holds, at most `max` times; returns the last report.
pub async fn tick_until(world: &World, max: usize, done: impl Fn(&World) -> bool) -> TickReport {
    let mut last = TickReport::default();
    for _ in 0..max {
        last = world.tick().await.unwrap();
        if done(world) {
            return last;
        }
    }
    panic!("condition not reached after {max} ticks; last report: {last:?}");
}

/// A one-leg call plan.
pub fn one_leg(call_id: i32, src: SimParty, dst: SimParty, answered: bool, secs: i64) -> CallPlan {
    CallPlan {
        label: "test call",
        call_id,
        first_segment_id: None,
        legs: vec![LegPlan {
            src,
            dst,
            answered,
            secs,
        }],
        expect: Expect::Skipped("unused"),
        recording: None,
    }
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
    TenantOptions {
        retry_base_ms: 0,
        ..TenantOptions::default()
    }
}

/// A seeded world whose database is the file `dir/cz.db`, with the
/// tenant's secrets kept encrypted there under the key file
/// `dir/cz.db.key` (created on first use).
pub async fn world_with_secrets(
    dir: &std::path::Path,
    options: TenantOptions,
) -> (
    World,
    HashMap<&'static str, String>,
    connectzero::secrets::SecretStore,
) {
    let db = dir.join("cz.db");
    let storage = Storage::open(&db).unwrap();
    let world = World::start(runtime(), storage.clone(), options, false)
        .await
        .unwrap();
    let key =
        connectzero::secrets::MasterKey::load_file(&connectzero::secrets::default_key_file(&db))
            .unwrap();
    let store = connectzero::secrets::SecretStore::new(storage, key);
    connectzero::credentials::of(&world.tenant)
        .use_store(store.clone())
        .unwrap();
    let contacts = demo::seed_directory(&world);
    (world, contacts, store)
}

/// Subscribe workflow `id` to trigger `key` through the pipeline, as
/// HighLevel does when a workflow using the trigger is published; its
/// executions land in the CRM simulator.
pub async fn subscribe(world: &World, key: &str, id: &str) {
    subscribe_on(&world.pipeline, world, key, id).await;
}

/// [`subscribe`] through `pipeline` (another process's view of the
/// database, say) for `world`'s tenant.
pub async fn subscribe_on(pipeline: &Pipeline, world: &World, key: &str, id: &str) {
    use connectzero::bindings::trigger::exports::connectzero::pipeline::trigger::{
        Subscription, SubscriptionChange,
    };
    let subscription = Subscription {
        id: id.into(),
        kind: guest_support::triggers::TriggerKind::from_key(key)
            .unwrap_or_else(|| panic!("{key} is no trigger key"))
            .into(),
        target_url: format!(
            "{}/workflows-marketplace/triggers/execute/app/{id}",
            world.crm.base_url()
        ),
        workflow_id: Some(format!("wf-{id}")),
    };
    pipeline
        .subscribe_trigger(&world.tenant, SubscriptionChange::Created, subscription)
        .await
        .unwrap()
        .unwrap();
}

/// Serve the host's endpoints and the status page (admin `token`) for
/// `world`'s tenant on a loopback port; returns its base URL.
pub async fn serve_admin(world: &World, token: &str) -> String {
    use connectzero::server::ServerState;
    use connectzero::web::{AdminToken, WebOptions};
    let state = Arc::new(ServerState {
        pipeline: world.pipeline.clone(),
        tenants: HashMap::from([(world.tenant.id().to_string(), world.tenant.clone())]),
    });
    let options = WebOptions {
        token: Some(AdminToken::new(token).unwrap()),
        demo: None,
        metrics_token: None,
    };
    let app =
        connectzero::server::router(state.clone()).merge(connectzero::web::router(state, options));
    // Bound before spawning: connections wait in the backlog, no race.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = connectzero::server::listen::Limits::default();
    tokio::spawn(async move { connectzero::server::listen::serve(listener, app, limits).await });
    format!("http://{addr}")
}

/// Serve the host's endpoints (no status page) for `world`'s tenant on a
/// loopback port, as `connectzero run` does; returns its base URL.
pub async fn serve_endpoints(world: &World) -> String {
    use connectzero::server::ServerState;
    let state = Arc::new(ServerState {
        pipeline: world.pipeline.clone(),
        tenants: HashMap::from([(world.tenant.id().to_string(), world.tenant.clone())]),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(connectzero::server::serve(listener, state));
    format!("http://{addr}")
}

/// GET `url` as the admin (bearer `token`) and return the page; anything
/// but 200 fails the test, naming the URL.
pub async fn admin_page(http: &reqwest::Client, url: &str, token: &str) -> String {
    let response = http.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.text().await.unwrap()
}
