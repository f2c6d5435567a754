//! `connectzero`: the ConnectZero host command line.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use connectzero::bench;
use connectzero::bindings::types::Direction;
use connectzero::config::{HostConfig, TenantOptions};
use connectzero::demo;
use connectzero::dry_run;
use connectzero::engine::Runtime;
use connectzero::engine::Stage;
use connectzero::pipeline::{Pipeline, Tenant};
use connectzero::scheduler;
use connectzero::secrets;
use connectzero::server::{self, ServerState};
use connectzero::storage::Storage;
use connectzero::testbed::{ACTION_SECRET, World};
use connectzero::verify;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Moves every 3CX call into the matching HighLevel contact's conversation.
#[derive(Parser)]
#[command(name = "connectzero", version, about)]
struct Cli {
    /// Directory of replacement components (e.g. `connectzero_match.wasm`);
    /// stages without a file there use the bundled component.
    #[arg(long, global = true, value_name = "DIR")]
    components: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline against built-in simulators and print what
    /// happened to each call. No accounts needed.
    Demo {
        /// Keep the simulators and the scheduler running after the table.
        #[arg(long)]
        keep_running: bool,
        /// Database file (default: a fresh temporary one).
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        /// Address for the action and trigger endpoints (port 0: any free port).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Run the configured tenants until interrupted.
    Run {
        /// Configuration file (see `docs/ARCHITECTURE.md` and `config.rs`).
        #[arg(long, value_name = "FILE", default_value = "connectzero.toml")]
        config: PathBuf,
        /// Address for HighLevel's calls: the Update Call Record action
        /// (`/t/{tenant}/actions/update-call-record`) and trigger
        /// subscriptions (`/t/{tenant}/triggers/subscription`).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8787")]
        listen: SocketAddr,
    },
    /// Check each tenant's set-up: 3CX over HTTPS, its API client, licence
    /// and role, the HighLevel grant and its scopes. Prints a checklist
    /// with a fix for each failure; exits non-zero when anything fails.
    Doctor {
        /// Configuration file (see `config.rs`).
        #[arg(long, value_name = "FILE", default_value = "connectzero.toml")]
        config: PathBuf,
        /// Check only this tenant.
        #[arg(long, value_name = "TENANT")]
        tenant: Option<String>,
    },
    /// Measure latency, throughput, memory and the component boundary
    /// against the built-in simulators and print the figures
    /// (see docs/BENCHMARKS.md). Build with --release for real figures.
    Bench {
        /// Scenario to run (repeatable; default: all).
        #[arg(long = "scenario", value_enum, value_name = "NAME")]
        scenarios: Vec<bench::Scenario>,
        /// Calls the throughput scenario places (default 2000).
        #[arg(long, value_name = "N")]
        calls: Option<usize>,
        /// Small samples and short runs: a smoke test, not figures to quote.
        #[arg(long)]
        quick: bool,
    },
    /// Show which contact a call from (or to) NUMBER would match, by which
    /// rule, and any ambiguity, using the real match component and the
    /// tenant's CRM. Posts nothing.
    Match {
        /// Configuration file.
        #[arg(long, value_name = "FILE", default_value = "connectzero.toml")]
        config: PathBuf,
        /// Tenant id from the configuration.
        #[arg(long, value_name = "ID")]
        tenant: String,
        /// The outside number, as 3CX would report it.
        number: String,
        /// Inbound: NUMBER called in; outbound: NUMBER was called.
        #[arg(long, value_enum, default_value = "inbound")]
        direction: CallDirection,
    },
    /// Work with stage components (partner kit, see docs/PARTNERS.md).
    Components {
        #[command(subcommand)]
        command: ComponentsCommand,
    },
    /// Manage the key that encrypts stored secrets (`<database>.key`).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Re-encrypt every stored secret under a new random key in one
    /// transaction and write it to the key file; the old key file is kept
    /// as `<key file>.old`. Stop the hosts using the database first.
    Rotate {
        /// Configuration file (for the database path).
        #[arg(long, value_name = "FILE", default_value = "connectzero.toml")]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CallDirection {
    Inbound,
    Outbound,
}

#[derive(Subcommand)]
enum ComponentsCommand {
    /// Check that FILE implements a stage's WIT world: it exports the stage
    /// interface with every function and imports nothing the world does not
    /// grant. Exits 1 with one line per problem otherwise.
    Verify {
        /// The component (`.wasm`).
        file: PathBuf,
        /// The stage it replaces (default: the stage whose interface it exports).
        #[arg(long, value_name = "STAGE", value_parser = connectzero::verify::parse_stage)]
        stage: Option<Stage>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The demo prints a table; keep its logs to warnings unless asked.
    let default_filter = match cli.command {
        Command::Demo { .. } => "warn",
        Command::Run { .. } => "warn,connectzero=info",
        Command::Doctor { .. } => "warn",
        // Failed ticks are counted and summarised by the bench itself.
        Command::Bench { .. } => "error,connectzero::scheduler=off",
        Command::Match { .. } | Command::Components { .. } => "warn",
        Command::Keys { .. } => "warn,connectzero=info",
    };
    init_logging(cli.log_format, default_filter);
    match cli.command {
        Command::Demo {
            keep_running,
            db,
            listen,
        } => run_demo(cli.components, db, keep_running, listen).await,
        Command::Run { config, listen } => run_tenants(cli.components, config, listen).await,
        Command::Doctor { config, tenant } => {
            let reports = connectzero::doctor::check(&config, tenant.as_deref()).await?;
            print!("{}", connectzero::doctor::render(&reports));
            if let Err(failed) = connectzero::doctor::verdict(&reports) {
                // The checklist already says what failed and how to fix
                // it: one line more, no error trace.
                eprintln!("{failed}");
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Bench {
            scenarios,
            calls,
            quick,
        } => {
            bench::run(bench::Options {
                scenarios,
                calls,
                quick,
                components: cli.components,
            })
            .await
        }
        Command::Match {
            config,
            tenant,
            number,
            direction,
        } => dry_run_match(cli.components, config, tenant, number, direction).await,
        Command::Keys {
            command: KeysCommand::Rotate { config },
        } => rotate_keys(&config),
        Command::Components {
            command: ComponentsCommand::Verify { file, stage },
        } => match verify::verify(&file, stage)? {
            Ok(verified) => {
                println!("{}: {verified}", file.display());
                Ok(())
            }
            Err(problem) => {
                eprintln!("{problem}");
                std::process::exit(1);
            }
        },
    }
}

async fn dry_run_match(
    components: Option<PathBuf>,
    config_path: PathBuf,
    tenant_id: String,
    number: String,
    direction: CallDirection,
) -> anyhow::Result<()> {
    let config = HostConfig::load(&config_path)?;
    let known: Vec<String> = config.tenants.iter().map(|t| t.id.clone()).collect();
    let tenant_config = config
        .tenants
        .into_iter()
        .find(|t| t.id == tenant_id)
        .with_context(|| {
            format!(
                "no tenant {tenant_id:?} in {}; it has: {}",
                config_path.display(),
                known.join(", ")
            )
        })?;
    let runtime = Runtime::new(components.as_deref())?;
    // The tenant's own database: token state the host keeps there (e.g. a
    // rotated refresh token) is shared with `run`. The match stage itself
    // writes nothing.
    let storage = Storage::open(config.database.as_ref())?;
    let pipeline = Pipeline::new(runtime, storage);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let tenant = Tenant::new(tenant_config, http);
    let direction = match direction {
        CallDirection::Inbound => Direction::Inbound,
        CallDirection::Outbound => Direction::Outbound,
    };
    let found = dry_run::run(&pipeline, &tenant, &number, direction).await?;
    print!("{}", found.text);
    Ok(())
}

fn init_logging(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Bind `listen` and serve the tenants' endpoints in the background.
async fn start_server(
    listen: SocketAddr,
    pipeline: Arc<Pipeline>,
    tenants: HashMap<String, Arc<Tenant>>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let state = Arc::new(ServerState { pipeline, tenants });
    let task = tokio::spawn(async move {
        if let Err(error) = server::serve(listener, state).await {
            tracing::error!(error = %format!("{error:#}"), "the HTTP server stopped");
        }
    });
    Ok((addr, task))
}

/// `connectzero keys rotate`.
fn rotate_keys(config_path: &std::path::Path) -> anyhow::Result<()> {
    let config = HostConfig::load(config_path)?;
    let database = std::path::Path::new(&config.database);
    let storage = Storage::open(database)?;
    let key_file = secrets::default_key_file(database);
    let done = secrets::rotate(&storage, &key_file)?;
    println!(
        "re-encrypted {} secrets under key {} (was {}); new key in {}, old key kept in {}",
        done.secrets,
        done.new_key_id,
        done.old_key_id,
        key_file.display(),
        done.old_key_file.display()
    );
    Ok(())
}

async fn run_tenants(
    components: Option<PathBuf>,
    config_path: PathBuf,
    listen: SocketAddr,
) -> anyhow::Result<()> {
    let config = HostConfig::load(&config_path)?;
    let runtime = Runtime::new(components.as_deref())?;
    let storage = Storage::open(config.database.as_ref())?;
    let secrets = secrets::open_store(&storage, config.database.as_ref(), None)?;
    let pipeline = Arc::new(Pipeline::new(runtime, storage));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let tenants: HashMap<String, Arc<Tenant>> = config
        .tenants
        .into_iter()
        .map(|tenant| {
            (
                tenant.id.clone(),
                Arc::new(Tenant::new(tenant, http.clone())),
            )
        })
        .collect();
    // Secrets move into the encrypted store (and rotated tokens persist)
    // before any tenant runs.
    for tenant in tenants.values() {
        tenant
            .credentials
            .use_store(secrets.clone())
            .with_context(|| format!("tenant {}", tenant.id()))?;
    }
    // Bind first: a busy port stops start-up before any tenant runs.
    let (addr, server_task) = start_server(listen, pipeline.clone(), tenants.clone()).await?;
    tracing::info!(%addr, "serving the action and trigger endpoints");
    let mut tasks = Vec::new();
    for tenant in tenants.into_values() {
        tracing::info!(tenant = %tenant.id(), "starting tenant");
        tasks.push(tokio::spawn(scheduler::run_tenant(
            pipeline.clone(),
            tenant,
            stop_rx.clone(),
            |_, _| {},
        )));
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tracing::info!("stopping");
    server_task.abort();
    stop_tx.send(true)?;
    for task in tasks {
        task.await?;
    }
    Ok(())
}

/// Calls placed per wave, and the pause between waves, so the demo shows
/// calls arriving while the pipeline runs.
const WAVE_SIZE: usize = 5;
const WAVE_PAUSE: Duration = Duration::from_millis(500);
/// Longest a wave's calls ring while waiting for their call.started.
const RING_LIMIT: Duration = Duration::from_secs(10);
/// Longest the demo waits for every call to be handled.
const DEMO_DEADLINE: Duration = Duration::from_secs(90);

async fn run_demo(
    components: Option<PathBuf>,
    db: Option<PathBuf>,
    keep_running: bool,
    listen: SocketAddr,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let runtime = Runtime::new(components.as_deref())?;
    let temp = tempfile_dir()?;
    let db = db.unwrap_or_else(|| temp.join("connectzero-demo.db"));
    let storage = Storage::open(&db)?;
    let world = World::start(runtime, storage, TenantOptions::default(), true).await?;
    let contacts = demo::seed_directory(&world);
    let tenants = HashMap::from([(world.tenant.id().to_string(), world.tenant.clone())]);
    let (addr, server_task) = start_server(listen, world.pipeline.clone(), tenants).await?;
    println!("ConnectZero demo");
    println!("  3CX simulator:       {}", world.pbx.base_url());
    println!("  HighLevel simulator: {}", world.crm.base_url());
    println!("  database:            {}", db.display());
    println!(
        "  action endpoint:     http://{addr}/t/{}/actions/update-call-record",
        world.tenant.id()
    );
    println!(
        "  components ready in  {:.2} s\n",
        started.elapsed().as_secs_f64()
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(scheduler::run_tenant(
        world.pipeline.clone(),
        world.tenant.clone(),
        stop_rx,
        |_, _| {},
    ));

    // HighLevel registers one workflow per trigger with our subscription
    // endpoint, the way a sub-account's workflows would.
    let subscription_url = format!(
        "http://{addr}/t/{}/triggers/subscription",
        world.tenant.id()
    );
    let secret_header = world.config().actions.header_name().to_string();
    for key in ["call.started", "call.ended", "missed-call"] {
        let sub = world
            .crm
            .subscribe_trigger(
                &subscription_url,
                key,
                "CREATED",
                &[(secret_header.as_str(), ACTION_SECRET)],
            )
            .await?;
        anyhow::ensure!(
            sub.status == 200,
            "subscribing {key} answered {}",
            sub.status
        );
    }

    let mut placer = demo::Placer::default();
    let mut placed = Vec::new();
    let mut started = 0;
    for wave in demo::demo_calls().chunks(WAVE_SIZE) {
        // The wave's calls ring and are talked through (3CX lists them as
        // active calls), then hang up and land in call history.
        for plan in wave {
            world
                .pbx
                .add_active_call(demo::active_call(plan, chrono::Utc::now()));
        }
        started += wave.len();
        // Keep them ringing until the workflows have heard call.started
        // (the next poll of 3CX active calls), at most a few seconds.
        let ringing_until = Instant::now() + RING_LIMIT;
        while count_started(&world) < started && Instant::now() < ringing_until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(WAVE_PAUSE).await;
        for plan in wave {
            world.pbx.remove_active_call(plan.call_id);
            placed.push(placer.place(&world, plan, chrono::Utc::now()));
        }
    }
    let deadline = Instant::now() + DEMO_DEADLINE;
    let rows = loop {
        let rows = demo::rows(&world, &placed, &contacts, true)?;
        if demo::all_final(&rows, true) || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("{}", demo::render(&rows, &contacts));
    let posted = rows
        .iter()
        .filter(|r| r.record.as_ref().is_some_and(|r| r.outcome == "posted"))
        .count();
    let skipped = rows
        .iter()
        .filter(|r| r.record.as_ref().is_some_and(|r| r.outcome == "skipped"))
        .count();
    let unexpected = rows.iter().filter(|r| !r.as_expected).count();
    println!(
        "{} calls: {posted} posted, {skipped} skipped, {} other; {} messages in the CRM; {unexpected} not as expected",
        rows.len(),
        rows.len() - posted - skipped,
        world.crm.messages().len(),
    );
    let attached = rows
        .iter()
        .filter(|r| r.record.as_ref().is_some_and(|r| r.recording == "attached"))
        .count();
    let executions = world.crm.trigger_executions();
    let fired = |event: &str| {
        executions
            .iter()
            .filter(|e| e.body["event"] == event)
            .count()
    };
    println!(
        "{attached} recordings attached ({} uploads); workflow triggers delivered: {} call.started, {} call.ended, {} missed-call",
        world.crm.uploads().len(),
        fired("call.started"),
        fired("call.ended"),
        fired("missed-call"),
    );

    if keep_running {
        println!(
            "\nStill serving (Ctrl-C to stop). Place more calls in the 3CX simulator and watch them arrive."
        );
        tokio::signal::ctrl_c().await?;
    }
    server_task.abort();
    stop_tx.send(true)?;
    task.await?;
    if !demo::all_final(&rows, true) || unexpected > 0 {
        anyhow::bail!("{unexpected} calls were not handled as expected");
    }
    Ok(())
}

/// `call.started` events the CRM simulator's workflows have received.
fn count_started(world: &World) -> usize {
    world
        .crm
        .trigger_executions()
        .iter()
        .filter(|e| e.body["event"] == "call.started")
        .count()
}

/// A fresh directory for the demo database.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "connectzero-demo-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
