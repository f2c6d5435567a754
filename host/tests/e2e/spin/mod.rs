//! The Spin app under a real `spin up`: the composed components' imports,
//! the same results as the bundled host for the same calls, and two Spin
//! instances sharing one key-value store without a duplicate.
//!
//! Uses the Spin CLI at `../shared/tools/spin/spin` (next to the project).
//! Where it is absent the Spin tests print why and pass: every other test
//! still runs. Everything talks to loopback servers the test starts; each
//! `spin up` is stopped by its PID when its guard drops.

mod chaos;
mod leases;
mod tenants;

use crate::common;
use anyhow::Context;

use common::seeded_world;
use connectzero::config::TenantOptions;
use connectzero::demo::{self, CallPlan, Expect};
use connectzero::testbed::World;
use serde_json::Value;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

/// Tick secret and token key the tests give the Spin app (test values).
const TICK_SECRET: &str = "spin-test-tick-secret";
/// base64 of 32 bytes of 0x2a.
const TOKEN_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";
/// The shared secret for subscriptions (as the testbed's).
const SECRET: &str = connectzero::testbed::ACTION_SECRET;

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is in the workspace")
        .to_path_buf()
}

/// The Spin CLI, or `None` (with the reason printed) when it is absent
/// (a failure under `CI`).
pub(crate) fn spin_cli() -> Option<PathBuf> {
    let path = workspace_root().join("../shared/tools/spin/spin");
    if path.exists() {
        Some(path)
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have the Spin CLI at {} (../shared beside the checkout)",
            path.display()
        );
        eprintln!(
            "skipping: no Spin CLI at {} (the Spin tests need ../shared/tools/spin/spin)",
            path.display()
        );
        None
    }
}

fn composed(file: &str) -> PathBuf {
    Path::new(connectzero::engine::COMPONENTS_DIR).join(file)
}

/// Interfaces Spin's `platform` world provides (`spin:up@3.4.0`: the
/// `fermyon:spin/platform@2.0.0` WASI 0.2 imports, `wasi:keyvalue` and
/// `wasi:config`), without versions.
const SPIN_PLATFORM: [&str; 10] = [
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
    "wasi:http/types",
    "wasi:http/outgoing-handler",
    "wasi:keyvalue/",
    "wasi:config/store",
];

#[test]
fn every_composed_component_imports_only_what_spin_provides() -> anyhow::Result<()> {
    let engine = wasmtime::Engine::default();
    for deployable in connectzero_compose_files() {
        let component = Component::from_file(&engine, composed(deployable))?;
        let ty = component.component_type();
        let mut imports = Vec::new();
        for (name, item) in ty.imports(&engine) {
            imports.push(name.to_string());
            let on_platform = SPIN_PLATFORM.iter().any(|p| name.starts_with(p));
            // `connectzero:pipeline/types` carries type definitions only:
            // nothing to provide, so any runtime accepts it.
            let types_only = match &item.ty {
                ComponentItem::ComponentInstance(instance) => {
                    instance.exports(&engine).all(|(_, e)| {
                        matches!(e.ty, ComponentItem::Type(_) | ComponentItem::Resource(_))
                    })
                }
                _ => false,
            };
            assert!(
                on_platform || types_only,
                "{deployable} imports {name}, which Spin's platform world does not provide"
            );
            if let Some(version) = name.split('@').nth(1)
                && name.starts_with("wasi:")
                && !name.starts_with("wasi:keyvalue")
                && !name.starts_with("wasi:config")
            {
                assert!(
                    version.starts_with("0.2."),
                    "{deployable} imports {name}: Spin speaks WASI 0.2"
                );
            }
        }
        assert!(
            imports.iter().all(|i| !i.contains("credentials")
                && !i.contains("directory")
                && !i.contains("call-log")),
            "{deployable} still imports a host-only interface: {imports:?}"
        );
        let exports: Vec<String> = ty.exports(&engine).map(|(n, _)| n.to_string()).collect();
        assert_eq!(
            exports,
            ["wasi:http/incoming-handler@0.2.4"],
            "{deployable}"
        );
    }
    Ok(())
}

/// One graph, not two: the Spin app is built around the very tick and
/// stage binaries the bundled host composes at start-up (both from
/// `connectzero_compose::compose`'s one `pipeline` function), so each of
/// them is embedded, byte for byte, in the composed app and in the
/// host's composed tick.
#[test]
fn the_spin_app_and_the_host_compose_the_same_pipeline() -> anyhow::Result<()> {
    use connectzero_compose::Deployable;
    use connectzero_stages::Stage;
    let app = std::fs::read(composed(Deployable::App.file_name()))?;
    let host = std::fs::read(composed(Deployable::Tick.file_name()))?;
    let pipeline = std::iter::once(connectzero_stages::tick().file)
        .chain(Stage::PIPELINE.map(Stage::file_name));
    let contains =
        |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    for file in pipeline {
        let component = std::fs::read(composed(file))?;
        assert!(
            contains(&app, &component),
            "the Spin app does not embed {file}"
        );
        assert!(
            contains(&host, &component),
            "the host's tick does not embed {file}"
        );
    }
    // And the host composes its tick with the same function the build
    // used: the bytes it runs are the file's.
    let rebuilt = connectzero_compose::compose(
        connectzero_compose::Deployable::Tick,
        Path::new(connectzero::engine::COMPONENTS_DIR),
    )?;
    assert_eq!(rebuilt, host);
    Ok(())
}

/// The deployables `spin.toml` runs.
fn connectzero_compose_files() -> [&'static str; 2] {
    use connectzero_compose::Deployable;
    [Deployable::App, Deployable::WriteBack].map(Deployable::file_name)
}

/// `spin.toml` runs exactly the Spin deployables the composition makes,
/// and rebuilds them when the component table changes.
#[test]
fn spin_toml_runs_the_composed_deployables() -> anyhow::Result<()> {
    let manifest: toml::Table =
        std::fs::read_to_string(workspace_root().join("spin.toml"))?.parse()?;
    let components = manifest["component"]
        .as_table()
        .context("spin.toml lists components")?;
    let mut sources: Vec<&str> = components
        .values()
        .map(|c| c["source"].as_str().unwrap())
        .collect();
    sources.sort();
    let mut expected: Vec<String> = connectzero_compose_files()
        .map(|f| {
            format!(
                "target/components/wasm32-wasip2/{}/{f}",
                connectzero_stages::COMPONENT_PROFILE
            )
        })
        .into();
    expected.sort();
    assert_eq!(sources, expected);
    for component in components.values() {
        let watch = component["build"]["watch"]
            .as_array()
            .context("a component watches its sources")?;
        for needed in ["tools/compose/**/*.rs", "tools/stages/**/*.rs"] {
            assert!(
                watch.iter().any(|w| w.as_str() == Some(needed)),
                "spin.toml's build.watch lacks {needed}"
            );
        }
    }
    Ok(())
}

/// The loopback hosts the simulators listen on, as Spin's allow-list
/// writes them.
const LOOPBACK_HOSTS: &str = "http://127.0.0.1:*";

/// Where a `spin up`'s key-value store lives.
#[derive(Clone)]
enum Store {
    /// Spin's own SQLite file, `kv.db` in the state directory (shared by
    /// every app started on that directory).
    File,
    /// Spin's Redis store on this server (kept running while an app uses
    /// it).
    Redis(std::sync::Arc<crate::redis::Redis>),
}

impl Store {
    /// Spin's runtime configuration for it.
    fn runtime_config(&self, state_dir: &Path) -> String {
        match self {
            Store::File => format!(
                "[key_value_store.default]\ntype = \"spin\"\npath = {:?}\n",
                state_dir.join("kv.db").display().to_string()
            ),
            Store::Redis(redis) => format!(
                "[key_value_store.default]\ntype = \"redis\"\nurl = {:?}\n",
                redis.url()
            ),
        }
    }

    /// A fresh Redis store; Spin's SQLite file where `redis-server` is
    /// missing outside CI (under CI its absence fails the test).
    fn redis() -> anyhow::Result<Self> {
        Ok(match crate::redis::Redis::start()? {
            Some(redis) => Store::Redis(std::sync::Arc::new(redis)),
            None => Store::File,
        })
    }

    /// The store of the apps started on `state_dir` by [`SpinApp::start`]:
    /// one Redis per directory, so two apps on one directory share it.
    fn for_state_dir(state_dir: &Path) -> anyhow::Result<Self> {
        use std::collections::HashMap;
        use std::sync::{Arc, Mutex, Weak};
        static SHARED: Mutex<Option<HashMap<PathBuf, Weak<crate::redis::Redis>>>> =
            Mutex::new(None);
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        let map = shared.get_or_insert_with(HashMap::new);
        if let Some(redis) = map.get(state_dir).and_then(Weak::upgrade) {
            return Ok(Store::Redis(redis));
        }
        let store = Self::redis()?;
        if let Store::Redis(redis) = &store {
            map.insert(state_dir.to_path_buf(), Arc::downgrade(redis));
        }
        Ok(store)
    }
}

impl Store {
    /// Write `value` at `key` behind the app's back, as another writer
    /// (`state_dir` holds the SQLite file).
    fn put(&self, state_dir: &Path, key: &str, value: &[u8]) -> anyhow::Result<()> {
        match self {
            Store::File => {
                let db = rusqlite::Connection::open(state_dir.join("kv.db"))?;
                db.busy_timeout(Duration::from_secs(10))?;
                // Spin's schema: one row per (store, key).
                db.execute(
                    "INSERT OR REPLACE INTO spin_key_value (store, key, value) VALUES ('default', ?1, ?2)",
                    rusqlite::params![key, value],
                )?;
                Ok(())
            }
            Store::Redis(redis) => redis.set(key, value),
        }
    }
}

/// A `spin up` of the project's `spin.toml`, stopped by PID on drop.
struct SpinApp {
    child: Child,
    base_url: String,
    log: PathBuf,
    /// Its key-value store (keeps a Redis store running while the app
    /// uses it).
    store: Store,
}

impl SpinApp {
    /// Start `spin up` for `world`'s tenant, keeping its key-value store in
    /// `state_dir/kv.db`; returns once `/healthz` answers.
    fn start(spin: &Path, world: &World, state_dir: &Path, name: &str) -> anyhow::Result<Self> {
        Self::start_with(spin, world, state_dir, name, &[])
    }

    /// [`Self::start`] with some variables replaced.
    fn start_with(
        spin: &Path,
        world: &World,
        state_dir: &Path,
        name: &str,
        overrides: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let config = world.config();
        let variables = [
            ("tenant_id", config.id.clone()),
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
            ("crm_client_id", config.crm.client_id.clone()),
            (
                "crm_client_secret",
                config.crm.client_secret.expose().to_string(),
            ),
            (
                "crm_refresh_token",
                config.crm.refresh_token.expose().to_string(),
            ),
            ("token_key", TOKEN_KEY.into()),
            ("tick_secret", TICK_SECRET.into()),
            ("secret", SECRET.into()),
            ("retry_base_ms", config.settings.retry_base_ms.to_string()),
            (
                "claim_lease_secs",
                config.settings.claim_lease_secs.to_string(),
            ),
            // The same policy as the bundled host, as the JSON object Spin
            // takes; empty when the tenant has none.
            (
                "policy_json",
                config
                    .settings
                    .policy
                    .as_ref()
                    .map(|p| serde_json::to_string(p).unwrap())
                    .unwrap_or_default(),
            ),
            // The same route, with the claims the host links in from its
            // other tenants written out (one Spin app sees no others).
            (
                "route_json",
                config
                    .settings
                    .route
                    .as_ref()
                    .map(|r| {
                        let mut r = r.clone();
                        r.elsewhere.extend(&config.settings.peers.route_elsewhere);
                        serde_json::to_string(&r).unwrap()
                    })
                    .unwrap_or_default(),
            ),
            ("call_reference_prefix", config.call_reference_prefix()),
            // The simulators listen on loopback ports.
            ("pbx_allowed_hosts", LOOPBACK_HOSTS.into()),
            ("crm_allowed_hosts", LOOPBACK_HOSTS.into()),
        ];
        let mut all: Vec<(String, String)> = variables
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect();
        // Set after the tenant's, so they win; any other variable too.
        all.extend(
            overrides
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string())),
        );
        // The parity tests run on Redis, the scale-out store.
        let store = Store::for_state_dir(state_dir)?;
        Self::launch(spin, state_dir, name, &all, &store)
    }

    /// `spin up` of the project's `spin.toml` with exactly `variables`
    /// (set as `SPIN_VARIABLE_<NAME>`, later ones winning) on `store`, its
    /// logs and data in `state_dir`; returns once `/healthz` answers.
    fn launch(
        spin: &Path,
        state_dir: &Path,
        name: &str,
        variables: &[(String, String)],
        store: &Store,
    ) -> anyhow::Result<Self> {
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?.port()
        };
        let runtime_config = state_dir.join(format!("{name}-runtime-config.toml"));
        std::fs::write(&runtime_config, store.runtime_config(state_dir))?;
        let log = state_dir.join(format!("{name}.log"));
        let mut command = Command::new(spin);
        command
            .current_dir(workspace_root())
            .args(["up", "-f", "spin.toml", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--runtime-config-file")
            .arg(&runtime_config)
            .arg("--log-dir")
            .arg(state_dir.join(format!("{name}-logs")))
            .env("SPIN_DATA_DIR", state_dir.join(format!("{name}-data")))
            // Its own process group: `spin up` and the `spin trigger http`
            // it starts are stopped (or killed) together.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(log.with_extension("err"))?);
        for (name, value) in variables {
            command.env(
                format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()),
                value,
            );
        }
        let app = Self {
            child: command.spawn().context("spin up starts")?,
            base_url: format!("http://127.0.0.1:{port}"),
            log,
            store: store.clone(),
        };
        app.wait_healthy();
        Ok(app)
    }

    /// Wait (bounded) until `/healthz` answers 200.
    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(response) = ureq_get(&format!("{}/healthz", self.base_url))
                && response == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("spin up did not become healthy in 120 s:\n{}", self.logs());
    }

    fn logs(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            read(&self.log),
            read(&self.log.with_extension("err"))
        )
    }

    /// `POST /tick`: the report, or why there is none (the app may be
    /// down: the chaos test kills replicas).
    async fn try_tick(&self) -> Result<Value, String> {
        let response = reqwest::Client::new()
            .post(format!("{}/tick", self.base_url))
            .header("x-connectzero-tick-secret", TICK_SECRET)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status == 200 {
            Ok(body)
        } else {
            Err(format!("tick answered {status}: {body}"))
        }
    }

    /// `POST /tick`; returns the tick report (a failure, or no answer
    /// within a minute, fails the test with the app's logs).
    async fn tick(&self) -> Value {
        match self.try_tick().await {
            Ok(report) => report,
            Err(why) => panic!("{why}\n{}", self.logs()),
        }
    }
}

/// Send `signal` (e.g. "KILL") to the process group led by `pid`: a
/// `spin up` and the `spin trigger http` it started.
fn signal_group(pid: u32, signal: &str) {
    // `--`: a negative id is a process group, not an option.
    let _ = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pid}")])
        .status();
}

impl SpinApp {
    /// SIGKILL `spin up` and its trigger process (its process group), as
    /// a crash would: nothing is flushed, no request finishes.
    fn kill_hard(&mut self) {
        signal_group(self.child.id(), "KILL");
        let _ = self.child.wait();
    }
}

impl Drop for SpinApp {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            // `spin up` is gone; its trigger may not be.
            signal_group(self.child.id(), "KILL");
            return;
        }
        // SIGTERM to the group lets `spin up` and its trigger stop.
        signal_group(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        signal_group(self.child.id(), "KILL");
        let _ = self.child.wait();
    }
}

/// Status of a plain GET, without a client per call.
fn ureq_get(url: &str) -> Result<u16, String> {
    use std::io::{Read, Write};
    let rest = url.trim_start_matches("http://");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = std::net::TcpStream::connect(authority).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "no status line".to_string())
}

/// Settings both runtimes get: quick recording retries so the test's
/// late recording is attached within a few ticks.
fn quick_retries() -> common::Options {
    common::options().retry_base_ms(200)
}

/// What the CRM holds, without ids and times (they differ between runs):
/// one line per message, upload and trigger execution, sorted.
fn crm_summary(world: &World) -> Vec<String> {
    let contacts = world.crm.contacts();
    let name_of = |id: &str| {
        contacts
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.name.clone())
            .unwrap_or_else(|| format!("unknown contact {id}"))
    };
    // Each world's CRM has its own user ids: compare the users' e-mails.
    let users = world.crm.users();
    let user_of = |id: Option<&str>| {
        id.map(|id| {
            users
                .iter()
                .find(|u| u.id == id)
                .map_or_else(|| format!("unknown user {id}"), |u| u.email.clone())
        })
    };
    let mut lines: Vec<String> = world
        .crm
        .messages()
        .iter()
        .map(|m| {
            format!(
                "message to {}: {} {} {:?} from {:?} to {:?} for user {:?}",
                name_of(&m.contact_id),
                m.message_type,
                m.direction,
                m.call_status,
                m.call_from,
                m.call_to,
                user_of(m.user_id.as_deref())
            )
        })
        .collect();
    lines.push(format!("{} uploads", world.crm.uploads().len()));
    lines.push(format!("{} contacts", contacts.len()));
    for execution in world.crm.trigger_executions() {
        let body = &execution.body;
        let contact = body["contactId"]
            .as_str()
            .map(name_of)
            .unwrap_or_else(|| "no contact".into());
        lines.push(format!(
            "trigger {} for {contact}: {} {} answered={} status={} user={:?}",
            body["event"],
            body["direction"],
            body["phone"],
            body["answered"],
            body["callStatus"],
            user_of(body["userId"].as_str())
        ));
    }
    lines.sort();
    lines
}

/// The demo's calls, as both runtimes see them: ringing first (so
/// `call.started` fires), then in call history.
fn demo_plans() -> Vec<CallPlan> {
    demo::demo_calls()
}

/// How many messages, uploads and trigger executions the demo's calls end
/// with.
fn expected_totals(plans: &[CallPlan]) -> (usize, usize, usize) {
    let posted = plans
        .iter()
        .filter(|p| matches!(p.expect, Expect::Posted { .. }))
        .count();
    let recordings = plans.iter().filter(|p| p.recording.is_some()).count();
    // call.started for every call, the posted calls' own, and
    // call.insights for the one 3CX transcribes.
    let insights = plans
        .iter()
        .filter(|p| p.recording.is_some_and(|r| r.transcribed))
        .count();
    let triggers = plans.len()
        + insights
        + plans
            .iter()
            .map(|p| demo::expected_triggers(p).len())
            .sum::<usize>();
    (posted, recordings, triggers)
}

/// Fails when two of `world`'s messages carry the same call key
/// (`altId`): a call posted twice.
fn assert_each_call_once(world: &World, whose: &str) {
    let messages = world.crm.messages();
    let mut alt_ids: Vec<_> = messages.iter().map(|m| m.alt_id.clone()).collect();
    alt_ids.sort();
    alt_ids.dedup();
    assert_eq!(
        alt_ids.len(),
        messages.len(),
        "{whose}: a call was posted twice"
    );
}

/// How many `event` triggers (`call.started`, ...) `world`'s workflows got.
fn fired(world: &World, event: &str) -> usize {
    world
        .crm
        .trigger_executions()
        .iter()
        .filter(|e| e.body["event"] == event)
        .count()
}

fn totals(world: &World) -> (usize, usize, usize) {
    (
        world.crm.messages().len(),
        world.crm.uploads().len(),
        world.crm.trigger_executions().len(),
    )
}

/// Ring every call, tick, then hang them all up: the calls land in 3CX
/// history.
async fn ring_then_hang_up<F, Fut>(world: &World, plans: &[CallPlan], mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for plan in plans {
        world
            .pbx
            .add_active_call(demo::active_call(plan, chrono::Utc::now()));
    }
    tick().await;
    let mut placer = demo::Placer::default();
    for plan in plans {
        world.pbx.remove_active_call(plan.call_id);
        placer.place(world, plan, chrono::Utc::now());
    }
}

/// Tick with `tick` until the totals are reached (bounded), then once more
/// to show nothing further arrives.
async fn tick_to_totals<F, Fut>(
    label: &str,
    world: &World,
    want: (usize, usize, usize),
    mut tick: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..60 {
        tick().await;
        if totals(world) == want {
            tick().await;
            return;
        }
        // Recordings finalise on a clock (the demo has one 4 s late).
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "{label}: after 60 ticks the CRM holds {:?} (messages, uploads, triggers), expected {want:?}",
        totals(world)
    );
}

/// Register the triggers the demo's calls fire through the Spin app's
/// subscription route, as HighLevel does.
async fn subscribe_through(world: &World, base_url: &str) -> anyhow::Result<()> {
    let url = format!("{base_url}/t/{}/triggers/subscription", world.config().id);
    for key in ["call.started", "call.ended", "missed-call", "call.insights"] {
        let sub = world
            .crm
            .subscribe_trigger(&url, key, "CREATED", &[("x-connectzero-secret", SECRET)])
            .await?;
        assert_eq!(sub.status, 200, "subscribing {key}");
    }
    Ok(())
}

/// The bundled host's result for the demo's calls.
async fn bundled_host_summary(plans: &[CallPlan]) -> anyhow::Result<Vec<String>> {
    let (world, _) = seeded_world(quick_retries().build()).await?;
    for key in ["call.started", "call.ended", "missed-call", "call.insights"] {
        common::subscribe(&world, key, &format!("sub-{key}")).await?;
    }
    let tick = || async {
        world.tick().await.unwrap();
    };
    ring_then_hang_up(&world, plans, tick).await;
    tick_to_totals("bundled host", &world, expected_totals(plans), tick).await;
    Ok(crm_summary(&world))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_up_posts_exactly_what_the_bundled_host_posts() -> anyhow::Result<()> {
    let Some(spin) = spin_cli() else {
        return Ok(());
    };
    let plans = demo_plans();
    let expected = bundled_host_summary(&plans).await?;

    let (world, _) = seeded_world(quick_retries().build()).await?;
    let state = tempfile::tempdir()?;
    let app = SpinApp::start(&spin, &world, state.path(), "spin")?;
    subscribe_through(&world, &app.base_url).await?;
    let tick = || async {
        app.tick().await;
    };
    ring_then_hang_up(&world, &plans, tick).await;
    tick_to_totals("spin up", &world, expected_totals(&plans), tick).await;

    let actual = crm_summary(&world);
    assert_eq!(
        actual,
        expected,
        "the Spin app and the bundled host disagree\n{}",
        app.logs()
    );

    // The routes refuse callers without the secrets, or with a forged
    // signature, as the bundled host does.
    let tick = reqwest::Client::new()
        .post(format!("{}/tick", app.base_url))
        .header("x-connectzero-tick-secret", "wrong")
        .send()
        .await?;
    assert_eq!(tick.status(), 401);
    let url = format!(
        "{}/t/{}/triggers/subscription",
        app.base_url,
        world.config().id
    );
    let forged = world
        .crm
        .subscribe_trigger(
            &url,
            "call.ended",
            "CREATED",
            &[("x-connectzero-secret", SECRET), ("x-wh-signature", "AAAA")],
        )
        .await?;
    assert_eq!(
        forged.status, 401,
        "a forged x-wh-signature must be refused"
    );
    let no_secret = world
        .crm
        .subscribe_trigger(&url, "call.ended", "CREATED", &[])
        .await?;
    assert_eq!(no_secret.status, 401);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_spin_instances_on_one_store_post_each_call_once() -> anyhow::Result<()> {
    let Some(spin) = spin_cli() else {
        return Ok(());
    };
    let plans = demo_plans();
    let (world, _) = seeded_world(quick_retries().build()).await?;
    let state = tempfile::tempdir()?;
    let first = SpinApp::start(&spin, &world, state.path(), "first")?;
    let second = SpinApp::start(&spin, &world, state.path(), "second")?;
    subscribe_through(&world, &first.base_url).await?;
    // Both instances tick at the same moments, racing for every call.
    let tick = || async {
        tokio::join!(first.tick(), second.tick());
    };
    ring_then_hang_up(&world, &plans, tick).await;
    tick_to_totals("two spin ups", &world, expected_totals(&plans), tick).await;

    assert_each_call_once(
        &world,
        &format!("two spin ups\n{}\n{}", first.logs(), second.logs()),
    );
    assert_eq!(totals(&world), expected_totals(&plans));
    Ok(())
}

/// A seeded world and a Spin app for it with `overrides`. The state
/// directory comes first, so it is dropped after the app.
async fn started(
    spin: &Path,
    name: &str,
    overrides: &[(&str, &str)],
) -> anyhow::Result<(tempfile::TempDir, World, SpinApp)> {
    let (world, _) = common::seeded_world(quick_retries().build()).await?;
    let state = tempfile::tempdir()?;
    let app = SpinApp::start_with(spin, &world, state.path(), name, overrides)?;
    Ok((state, world, app))
}

/// A Spin app with no refresh token (the location installs it through the
/// routes), and a client that does not follow the install's redirect.
async fn not_installed(
    spin: &Path,
    name: &str,
) -> anyhow::Result<(tempfile::TempDir, World, SpinApp, reqwest::Client)> {
    let (state, world, app) = started(spin, name, &[("crm_refresh_token", "")]).await?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    Ok((state, world, app, client))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_install_under_spin_lets_calls_post() -> anyhow::Result<()> {
    let Some(spin) = spin_cli() else {
        return Ok(());
    };
    let (_state, world, app, client) = not_installed(&spin, "install").await?;
    let install = client
        .get(format!("{}/t/demo/oauth/install", app.base_url))
        .send()
        .await?;
    assert_eq!(install.status(), 302);
    let location = install.headers()["location"].to_str()?.to_string();
    let authorize = reqwest::Url::parse(&location)?;
    let query: std::collections::HashMap<String, String> =
        authorize.query_pairs().into_owned().collect();
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], world.config().crm.client_id);
    let callback = format!("{}/t/demo/oauth/callback", app.base_url);
    assert_eq!(query["redirect_uri"], callback);
    let state_value = &query["state"];

    let call = |state: String, code: String| {
        let client = client.clone();
        let url =
            reqwest::Url::parse_with_params(&callback, [("state", state), ("code", code)]).unwrap();
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        call("forged".into(), world.crm.authorization_code()).await,
        400,
        "a forged state is refused"
    );
    // Marketplace installs bring a code and no state (NOTES.md §8): kept
    // only for this app's own location, never an agency token.
    let stateless = |code: String| {
        let client = client.clone();
        let url = reqwest::Url::parse_with_params(&callback, [("code", code)]).unwrap();
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        stateless(world.crm.authorization_code_for("forgerLocation000001")).await,
        403,
        "another location's code is refused"
    );
    assert_eq!(
        stateless(world.crm.company_authorization_code()).await,
        403,
        "an agency-level code is refused"
    );
    assert_eq!(
        call(state_value.clone(), world.crm.authorization_code()).await,
        200,
        "{}",
        app.logs()
    );
    assert_eq!(
        call(state_value.clone(), world.crm.authorization_code()).await,
        400,
        "a used state is refused"
    );
    assert_eq!(
        stateless(world.crm.authorization_code()).await,
        200,
        "a marketplace install for this location is kept: {}",
        app.logs()
    );

    let plan = demo::demo_calls().remove(0);
    demo::Placer::default().place(&world, &plan, chrono::Utc::now());
    for _ in 0..10 {
        app.tick().await;
        if !world.crm.messages().is_empty() {
            break;
        }
    }
    assert_eq!(world.crm.messages().len(), 1, "{}", app.logs());
    Ok(())
}

/// With `signature_public_key` set, Spin refuses HighLevel's calls without
/// `x-wh-signature`, on both routes, as the host does
/// (`security::webhooks::a_configured_key_requires_a_signature`); spin.toml
/// lacked the variable before, so the key could not be configured at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_requires_a_signature_where_a_key_is_configured() -> anyhow::Result<()> {
    let Some(spin) = spin_cli() else {
        return Ok(());
    };
    let (_state, _world, app) = started(
        &spin,
        "signed",
        &[
            (
                "signature_public_key",
                connectzero::server::HIGHLEVEL_WEBHOOK_KEY,
            ),
            ("secret_header", "x-custom-secret"),
        ],
    )
    .await?;
    let http = reqwest::Client::new();
    for path in [
        "/t/demo/triggers/subscription",
        "/t/demo/actions/update-call-record",
    ] {
        let answer = http
            .post(format!("{}{path}", app.base_url))
            .header("x-custom-secret", SECRET)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await?;
        let status = answer.status();
        let text = answer.text().await?;
        assert_eq!(status, 401, "{path}: {text}\n{}", app.logs());
        assert!(text.contains("x-wh-signature"), "{path}: {text}");
    }
    Ok(())
}

/// Anonymous install starts cannot push out an admin's pending link on
/// Spin either: at most 3 pending per client (its own oldest goes), 20
/// per tenant (then 429 with `Retry-After`), as on the host
/// (`security::installs`). Spin connects from loopback here, so each
/// start's client is its `X-Forwarded-For`, as behind a proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_install_starts_are_capped_per_client_and_tenant() -> anyhow::Result<()> {
    let Some(spin) = spin_cli() else {
        return Ok(());
    };
    let (_state, world, app, client) = not_installed(&spin, "installs").await?;
    let start = |from: String| {
        let client = client.clone();
        let url = format!("{}/t/demo/oauth/install", app.base_url);
        async move {
            let response = client
                .get(url)
                .header("x-forwarded-for", from)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").is_some();
            let state = response
                .headers()
                .get("location")
                .and_then(|l| reqwest::Url::parse(l.to_str().ok()?).ok())
                .and_then(|url| {
                    url.query_pairs()
                        .find(|(k, _)| k == "state")
                        .map(|(_, v)| v.into_owned())
                });
            (status, retry_after, state)
        }
    };
    let (status, _, admin) = start("198.51.100.7".into()).await;
    assert_eq!(status, 302, "{}", app.logs());
    let admin = admin.context("a state")?;
    let mut first_anonymous = None;
    let mut refused = 0;
    for i in 0..200 {
        // One address a hundred times, then a hundred addresses.
        let from = if i < 100 {
            "203.0.113.1".to_string()
        } else {
            format!("203.0.113.{}", i - 98)
        };
        let (status, retry_after, state) = start(from).await;
        match status {
            302 => {
                if i == 0 {
                    first_anonymous = state;
                }
            }
            429 => {
                assert!(retry_after, "a 429 says when to come back");
                refused += 1;
            }
            other => panic!("install start answered {other}: {}", app.logs()),
        }
    }
    assert!(refused > 0, "the tenant's pending quota fills");

    let callback = |state: String| {
        let client = client.clone();
        let url = reqwest::Url::parse_with_params(
            &format!("{}/t/demo/oauth/callback", app.base_url),
            [("state", state), ("code", world.crm.authorization_code())],
        )
        .unwrap();
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    // The busy client's first link was replaced by its later ones.
    assert_eq!(callback(first_anonymous.context("a state")?).await, 400);
    // The admin's link still works.
    assert_eq!(callback(admin).await, 200, "{}", app.logs());
    Ok(())
}

/// Options with a logging policy that ignores, filters and creates.
fn policy_options() -> TenantOptions {
    use guest_support::policy::{Action, PolicyConfig};
    quick_retries()
        .policy(PolicyConfig {
            outbound_no_answer: Action::Ignore,
            missed: Action::LogAndCreateContact,
            min_duration_secs: 10,
            blocked_numbers: vec![demo::numbers::DANA.into()],
            ..Default::default()
        })
        .build()
}

/// Calls each rule of [`policy_options`] decides: blocked, outbound no
/// answer, too short, missed from an unknown number (created), and one
/// plain answered call.
fn policy_plans() -> Vec<CallPlan> {
    use common::{ext, one_leg, outside};
    use demo::numbers;
    vec![
        one_leg(1, outside(numbers::DANA), ext("101"), true, 60),
        one_leg(2, ext("102"), outside(numbers::ELI), false, 0),
        one_leg(3, outside(numbers::FAY), ext("101"), true, 5),
        one_leg(4, outside("+14155550188"), ext("103"), false, 0),
        one_leg(5, outside(numbers::ELI), ext("102"), true, 60),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_applies_the_same_logging_policy_as_the_bundled_host() -> anyhow::Result<()> {
    let Some(spin) = spin_cli() else {
        return Ok(());
    };
    let plans = policy_plans();
    let summary = |world: &World| {
        crm_summary(world)
            .into_iter()
            .filter(|l| l.starts_with("message") || l.ends_with("contacts"))
            .collect::<Vec<_>>()
    };

    // The bundled host: two calls posted (one to a created contact), three
    // skipped.
    let (host, _) = seeded_world(policy_options()).await?;
    let mut placer = demo::Placer::default();
    for plan in &plans {
        placer.place(&host, plan, chrono::Utc::now());
    }
    let mut skipped = 0;
    for _ in 0..10 {
        skipped += host.tick().await?.skipped;
        if host.crm.messages().len() == 2 && skipped == 3 {
            break;
        }
    }
    assert_eq!((host.crm.messages().len(), skipped), (2, 3));
    let expected = summary(&host);

    let (world, _) = seeded_world(policy_options()).await?;
    let state = tempfile::tempdir()?;
    let app = SpinApp::start(&spin, &world, state.path(), "spin-policy")?;
    let mut placer = demo::Placer::default();
    for plan in &plans {
        placer.place(&world, plan, chrono::Utc::now());
    }
    let mut skipped = 0;
    for _ in 0..10 {
        skipped += app.tick().await["skipped"].as_u64().unwrap_or(0);
        if world.crm.messages().len() == 2 && skipped == 3 {
            break;
        }
    }
    assert_eq!(
        (world.crm.messages().len(), skipped),
        (2, 3),
        "{}",
        app.logs()
    );
    assert_eq!(summary(&world), expected, "{}", app.logs());
    Ok(())
}

/// Tenant options routing only the calls through queue 800 here.
fn routed_options() -> TenantOptions {
    quick_retries()
        .route(Some(guest_support::routing::RouteConfig {
            queues: vec!["800".into()],
            ..Default::default()
        }))
        .build()
}

/// A call through queue 800 (taken), one straight to 101 and an outbound
/// one (both routed elsewhere).
fn routed_plans() -> Vec<CallPlan> {
    use common::{ext, leg, one_leg, outside};
    use demo::numbers;
    let mut queued = one_leg(1, outside(numbers::DANA), ext("800"), false, 10);
    queued
        .legs
        .push(leg(outside(numbers::DANA), ext("101"), true, 40));
    vec![
        queued,
        one_leg(2, outside(numbers::ELI), ext("102"), true, 60),
        one_leg(3, ext("103"), outside(numbers::FAY), true, 30),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_routes_calls_as_the_bundled_host_does() -> anyhow::Result<()> {
    let Some(spin) = spin_cli() else {
        return Ok(());
    };
    let plans = routed_plans();

    let (host, _) = seeded_world(routed_options()).await?;
    let mut placer = demo::Placer::default();
    let ended = chrono::Utc::now();
    for plan in &plans {
        placer.place(&host, plan, ended);
    }
    let mut skipped = 0;
    for _ in 0..10 {
        skipped += host.tick().await?.skipped;
        if host.crm.messages().len() == 1 && skipped == 2 {
            break;
        }
    }
    assert_eq!((host.crm.messages().len(), skipped), (1, 2));
    assert!(
        host.storage
            .calls(connectzero::testbed::TENANT)?
            .iter()
            .filter(|c| c.outcome == "skipped")
            .all(|c| c
                .detail
                .starts_with(guest_support::routing::ROUTED_ELSEWHERE))
    );
    let expected = crm_summary(&host);

    let (world, _) = seeded_world(routed_options()).await?;
    let state = tempfile::tempdir()?;
    let app = SpinApp::start(&spin, &world, state.path(), "spin-routing")?;
    let mut placer = demo::Placer::default();
    for plan in &plans {
        placer.place(&world, plan, ended);
    }
    let mut skipped = 0;
    for _ in 0..10 {
        skipped += app.tick().await["skipped"].as_u64().unwrap_or(0);
        if world.crm.messages().len() == 1 && skipped == 2 {
            break;
        }
    }
    assert_eq!(
        (world.crm.messages().len(), skipped),
        (1, 2),
        "{}",
        app.logs()
    );
    assert_eq!(crm_summary(&world), expected, "{}", app.logs());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_ticks_running_past_their_lease_post_each_call_once() -> anyhow::Result<()> {
    let Some(spin) = spin_cli() else {
        return Ok(());
    };
    let options = quick_retries().claim_lease_secs(1).build();
    let (world, _) = seeded_world(options).await?;
    let state = tempfile::tempdir()?;
    // Each request is its own worker under Spin (a new id per /tick). The
    // tenant's tick lease is as short as the claims', so a tick running
    // past it does not keep the other instance out.
    let short = [("tenant_lease_secs", "1")];
    let first = SpinApp::start_with(&spin, &world, state.path(), "first", &short)?;
    let second = SpinApp::start_with(&spin, &world, state.path(), "second", &short)?;
    subscribe_through(&world, &first.base_url).await?;
    // Posting a message takes 400 ms, so a tick posting 20 calls runs far
    // past the one-second leases: the other instance takes calls over
    // while the first is still sending.
    world.crm.set_latency_on(
        "/conversations/messages/inbound",
        Duration::from_millis(400),
    );
    let mut placer = demo::Placer::default();
    let numbers = [
        demo::numbers::DANA,
        demo::numbers::ELI,
        demo::numbers::FAY,
        demo::numbers::GWEN,
    ];
    for i in 0..20 {
        placer.place(
            &world,
            &common::one_leg(
                i + 1,
                common::outside(numbers[i as usize % numbers.len()]),
                common::ext("101"),
                true,
                10,
            ),
            chrono::Utc::now(),
        );
    }
    let ended = |w: &World| fired(w, "call.ended");
    let mut rounds = 0;
    while world.crm.messages().len() < 20 || ended(&world) < 20 || rounds < 2 {
        rounds += 1;
        assert!(
            rounds <= 20,
            "not settled after 20 rounds:\n{}",
            first.logs()
        );
        // Both instances tick at once; the second again while the first
        // is still posting.
        let other = async {
            second.tick().await;
            second.tick().await;
        };
        tokio::join!(first.tick(), other);
    }
    assert_eq!(world.crm.messages().len(), 20);
    assert_each_call_once(
        &world,
        &format!(
            "ticks past their lease\n{}\n{}",
            first.logs(),
            second.logs()
        ),
    );
    assert_eq!(ended(&world), 20);
    Ok(())
}

/// The Update Call Record action calls only HighLevel: the manifest gives
/// its component no 3CX client or host (before, it received the 3CX API
/// key for nothing).
#[test]
fn the_write_back_component_is_given_no_3cx_client() -> anyhow::Result<()> {
    let manifest: toml::Value = toml::from_str(&std::fs::read_to_string(
        workspace_root().join("spin.toml"),
    )?)?;
    let write_back = &manifest["component"]["write-back"];
    let variables = write_back["variables"]
        .as_table()
        .context("the write-back component has variables")?;
    assert!(
        variables.keys().all(|name| !name.starts_with("pbx_")),
        "{variables:?}"
    );
    let hosts = write_back["allowed_outbound_hosts"]
        .as_array()
        .context("the write-back component lists its outbound hosts")?;
    assert!(
        hosts.iter().all(|h| !h.as_str().unwrap().contains("pbx")),
        "{hosts:?}"
    );
    Ok(())
}

/// Spin refuses a plain-HTTP base URL as the bundled host does: the 3CX
/// API key and the tokens travel to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_refuses_a_plain_http_base_url_like_the_host() -> anyhow::Result<()> {
    let Some(spin) = spin_cli() else {
        return Ok(());
    };
    let (_state, world, app) = started(
        &spin,
        "plain-http",
        &[("pbx_base_url", "http://pbx.example.com")],
    )
    .await?;
    let response = reqwest::Client::new()
        .post(format!("{}/tick", app.base_url))
        .header("x-connectzero-tick-secret", TICK_SECRET)
        .send()
        .await?;
    let status = response.status();
    let body = response.text().await?;
    assert_ne!(status, 200, "{body}");
    assert!(
        body.contains("pbx_base_url") && body.contains("https://host"),
        "{body}\n{}",
        app.logs()
    );
    assert_eq!(world.pbx.request_count("/"), 0, "nothing was sent to 3CX");
    Ok(())
}
