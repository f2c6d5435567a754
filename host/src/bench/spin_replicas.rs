//! `spin-replicas`: the Spin app as the scale-out path. One multi-tenant
//! app, 1, 2 and 3 `spin up` replicas on one Redis, the same tenants and
//! calls each time, next to the bundled host on the same workload.
//!
//! Each tenant has its own 3CX and HighLevel simulators (its own
//! location) in this process; its calls are distinct contacts' calls, as
//! in `throughput`. Each replica is driven by its own loop of `POST /tick`
//! requests, one at a time, as a tick driver would (a request ticks at
//! most `max_tenants_per_tick` tenants, 10). The HighLevel budget is
//! lifted on both runtimes, so the figures are the runtimes', not
//! HighLevel's limit.
//!
//! Needs `redis-server` (Debian's package) and the Spin CLI (`--spin`,
//! else `../shared/tools/spin/spin`, else `spin` on `PATH`), and runs from
//! the workspace root: `spin up` reads `spin.toml` and the composed
//! components the build wrote. Not part of the default scenario list.

use super::{call_plan, seed_contacts};
use crate::config::TenantOptions;
use crate::demo::Placer;
use crate::engine::Runtime;
use crate::storage::Storage;
use crate::testbed::World;
use anyhow::Context;
use connectzero_simulators::highlevel::HighLevelConfig;
use connectzero_simulators::threecx::SimUser;
use serde_json::{Value, json};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Secrets of the benchmark's app (bench values, never real ones).
const TICK_SECRET: &str = "bench-tick-secret";
const ADMIN_SECRET: &str = "bench-admin-secret";
/// base64 of 32 bytes of 0x2a.
const TOKEN_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// How long a run may take before it counts as stuck.
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// Run the scenario and print its table.
pub async fn run(
    runtime: Arc<Runtime>,
    dir: &Path,
    quick: bool,
    spin: Option<PathBuf>,
    figures: &super::figures::Figures,
) -> anyhow::Result<()> {
    let (tenants, calls) = if quick { (6, 5) } else { (30, 20) };
    let spin = spin_cli(spin)?;
    let redis_server = which("redis-server").context(
        "spin-replicas needs redis-server on PATH (Debian: apt-get install redis-server)",
    )?;
    println!(
        "{tenants} tenants x {calls} calls ({} calls), HighLevel budget lifted; \
         simulators, Redis and replicas share this machine's CPUs",
        tenants * calls
    );
    println!("| runtime | replicas | calls/s | tenants ticked/s per replica |");
    println!("|---|---|---|---|");
    let host = bundled_host(runtime.clone(), dir, tenants, calls).await?;
    println!(
        "| bundled host | 1 process | {:.0} | {:.1} |",
        host.0, host.1
    );
    for replicas in 1..=3 {
        let (calls_per_sec, ticked) = spin_run(
            &runtime,
            dir,
            &spin,
            &redis_server,
            replicas,
            tenants,
            calls,
        )
        .await?;
        println!("| Spin on Redis | {replicas} | {calls_per_sec:.0} | {ticked:.1} |");
        figures.record(
            &format!("spin.replicas-{replicas}.calls-per-s"),
            &format!("Spin on Redis, {replicas} replica(s)"),
            "calls/s",
            calls_per_sec,
            None,
        );
    }
    Ok(())
}

/// A tenant's world with its own location; its calls placed.
async fn tenant_world(runtime: Arc<Runtime>, n: usize, calls: usize) -> anyhow::Result<World> {
    let crm = HighLevelConfig {
        location_id: format!("benchLocation{n:07}"),
        rate_limit: None,
        ..HighLevelConfig::default()
    };
    let options = TenantOptions {
        max_calls_per_tick: u32::try_from(calls).unwrap_or(u32::MAX),
        ..TenantOptions::default()
    };
    let world = World::start_with_crm(runtime, Storage::in_memory()?, options, crm).await?;
    world.pbx.add_user(SimUser::new(
        1,
        "101",
        "Alice",
        "Smith",
        "alice@acme.example",
    ));
    seed_contacts(&world, 0, calls);
    let mut placer = Placer::default();
    for i in 0..calls {
        placer.place(&world, &call_plan(i), chrono::Utc::now());
    }
    Ok(world)
}

/// The bundled host: every tenant's ticks run concurrently, back to back.
/// Calls per second and ticks per second.
async fn bundled_host(
    runtime: Arc<Runtime>,
    _dir: &Path,
    tenants: usize,
    calls: usize,
) -> anyhow::Result<(f64, f64)> {
    let mut worlds = Vec::new();
    for n in 0..tenants {
        worlds.push(tenant_world(runtime.clone(), n, calls).await?);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for world in worlds {
        tasks.spawn(async move {
            let mut ticks = 0usize;
            while world.crm.messages().len() < calls {
                anyhow::ensure!(started.elapsed() < RUN_LIMIT, "the bundled host is stuck");
                world.tick().await?;
                ticks += 1;
            }
            Ok(ticks)
        });
    }
    let mut ticks = 0;
    while let Some(done) = tasks.join_next().await {
        ticks += done??;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(((tenants * calls) as f64 / secs, ticks as f64 / secs))
}

/// One Spin run with `replicas` replicas: calls per second and tenants
/// ticked per second per replica.
async fn spin_run(
    runtime: &Arc<Runtime>,
    dir: &Path,
    spin: &Path,
    redis_server: &Path,
    replicas: usize,
    tenants: usize,
    calls: usize,
) -> anyhow::Result<(f64, f64)> {
    let run_dir = dir.join(format!("spin-{replicas}"));
    std::fs::create_dir_all(&run_dir)?;
    let redis = Process::redis(redis_server, &run_dir)?;
    let mut apps = Vec::new();
    for r in 0..replicas {
        apps.push(Process::spin(spin, &run_dir, r, redis.port)?);
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let mut worlds = Vec::new();
    for n in 0..tenants {
        let world = tenant_world(runtime.clone(), n, calls).await?;
        let config = world.config();
        let settings = json!({"settings": {
            "pbx_base_url": config.pbx.base_url,
            "pbx_client_id": config.pbx.client_id,
            "pbx_client_secret": config.pbx.client_secret.expose(),
            "crm_base_url": config.crm.base_url,
            "crm_location_id": config.crm.location_id,
            "crm_conversation_provider_id": config.crm.conversation_provider_id,
            "crm_refresh_token": config.crm.refresh_token.expose(),
            "max_calls_per_tick": calls.to_string(),
        }});
        let answer = client
            .put(format!("{}/admin/tenants/b{n:04}", apps[0].url()))
            .bearer_auth(ADMIN_SECRET)
            .json(&settings)
            .send()
            .await?;
        anyhow::ensure!(
            answer.status().is_success(),
            "adding a tenant: {}",
            answer.status()
        );
        worlds.push(world);
    }
    let posted = |worlds: &[World]| worlds.iter().map(|w| w.crm.messages().len()).sum::<usize>();
    let total = tenants * calls;
    let started = Instant::now();
    let mut ticked = 0usize;
    while posted(&worlds) < total {
        anyhow::ensure!(
            started.elapsed() < RUN_LIMIT,
            "{replicas} replicas: {} of {total} calls posted after {RUN_LIMIT:?}",
            posted(&worlds)
        );
        // Every replica's driver sends its next request at once.
        let mut requests = tokio::task::JoinSet::new();
        for app in &apps {
            let request = client
                .post(format!("{}/tick", app.url()))
                .header("x-connectzero-tick-secret", TICK_SECRET);
            requests.spawn(async move {
                let report: Value = request.send().await?.json().await?;
                anyhow::Ok(report)
            });
        }
        while let Some(report) = requests.join_next().await {
            let report = report??;
            // A tenant the request did not tick says why in `skipped` (a
            // text); a tick's report counts skipped calls there (a number).
            ticked += report["tenants"].as_object().map_or(0, |t| {
                t.values().filter(|r| !r["skipped"].is_string()).count()
            });
        }
    }
    let secs = started.elapsed().as_secs_f64();
    // A figure from a run that posted a call twice would be no figure.
    anyhow::ensure!(
        posted(&worlds) == total,
        "{replicas} replicas posted {} messages for {total} calls",
        posted(&worlds)
    );
    Ok((total as f64 / secs, ticked as f64 / secs / replicas as f64))
}

/// The Spin CLI: `--spin`, the one beside the checkout, or `spin` on PATH.
fn spin_cli(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path);
    }
    let beside = PathBuf::from("../shared/tools/spin/spin");
    if beside.exists() {
        return Ok(beside);
    }
    which("spin").context("spin-replicas needs the Spin CLI: pass --spin PATH")
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.exists())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A child process in its own process group, killed with its group on
/// drop.
struct Process {
    child: Child,
    port: u16,
}

impl Process {
    /// `redis-server` on a free port, nothing kept on disk.
    fn redis(server: &Path, dir: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let child = Command::new(server)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir)
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let process = Self { child, port };
        process.wait_listening()?;
        Ok(process)
    }

    /// `spin up` of `spin.toml` on the Redis at `redis_port`.
    fn spin(spin: &Path, dir: &Path, n: usize, redis_port: u16) -> anyhow::Result<Self> {
        let port = free_port()?;
        let config = dir.join(format!("runtime-config-{n}.toml"));
        std::fs::write(
            &config,
            format!(
                "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:{redis_port}\"\n"
            ),
        )?;
        let defaults = HighLevelConfig::default();
        let variables = [
            ("crm_client_id", defaults.client_id.as_str()),
            ("crm_client_secret", defaults.client_secret.as_str()),
            ("token_key", TOKEN_KEY),
            ("tick_secret", TICK_SECRET),
            ("secret", "bench-action-secret"),
            ("admin_secret", ADMIN_SECRET),
            ("pbx_allowed_hosts", "http://127.0.0.1:*"),
            ("crm_allowed_hosts", "http://127.0.0.1:*"),
            ("crm_base_url", "https://crm.invalid"),
            ("crm_rate_limit_burst", "1000000"),
        ];
        let mut command = Command::new(spin);
        command
            .args(["up", "-f", "spin.toml", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--runtime-config-file")
            .arg(&config)
            .arg("--log-dir")
            .arg(dir.join(format!("spin-{n}-logs")))
            .env("SPIN_DATA_DIR", dir.join(format!("spin-{n}-data")))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (name, value) in variables {
            command.env(
                format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()),
                value,
            );
        }
        let process = Self {
            child: command.spawn().context("starting spin up")?,
            port,
        };
        process.wait_listening()?;
        Ok(process)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Wait (at most two minutes: Spin compiles the app first) until the
    /// port accepts connections.
    fn wait_listening(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        anyhow::bail!("nothing listened on port {} within two minutes", self.port)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}
