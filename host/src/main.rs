//! `connectzero`: the ConnectZero host command line.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use connectzero::bench;
use connectzero::bindings::types::Direction;
use connectzero::config::TenantOptions;
use connectzero::demo;
use connectzero::dry_run;
use connectzero::engine::Runtime;
use connectzero::engine::Stage;
use connectzero::location::Location;
use connectzero::pipeline::{Pipeline, Tenant};
use connectzero::scheduler;
use connectzero::secrets;
use connectzero::server::{self, ServerState};
use connectzero::storage::{Storage, TenantAuth};
use connectzero::tenants;
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
    /// Run the tenants of the configuration file and the database until
    /// interrupted. With no configuration file, only the database's
    /// tenants (`connectzero tenant add`) run.
    Run {
        /// Address for HighLevel's calls: the Update Call Record action
        /// (`/t/{tenant}/actions/update-call-record`) and trigger
        /// subscriptions (`/t/{tenant}/triggers/subscription`).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8787")]
        listen: SocketAddr,
        #[command(flatten)]
        location: Location,
    },
    /// Check each tenant's set-up: 3CX over HTTPS, its API client, licence
    /// and role, the HighLevel grant and its scopes. Prints a checklist
    /// with a fix for each failure; exits non-zero when anything fails.
    Doctor {
        /// Check only this tenant.
        #[arg(long, value_name = "TENANT")]
        tenant: Option<String>,
        #[command(flatten)]
        location: Location,
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
        /// Tenant id (the configuration file's or the database's).
        #[arg(long, value_name = "ID")]
        tenant: String,
        /// The outside number, as 3CX would report it.
        number: String,
        /// Inbound: NUMBER called in; outbound: NUMBER was called.
        #[arg(long, value_enum, default_value = "inbound")]
        direction: CallDirection,
        #[command(flatten)]
        location: Location,
    },
    /// Post a tenant's calls of a past window through the pipeline, with a
    /// progress bar. Safe to interrupt and re-run: it resumes, and the
    /// ledger never posts a call twice. The live cursor is not touched;
    /// call.started never fires, call.ended / missed-call only with
    /// --with-triggers (see docs/OPERATIONS.md).
    Backfill {
        /// Tenant id.
        #[arg(long, value_name = "ID")]
        tenant: String,
        /// Start: YYYY-MM-DD (from that UTC midnight) or RFC 3339.
        #[arg(long, value_name = "DATE")]
        since: String,
        /// End: YYYY-MM-DD (that UTC day included) or RFC 3339 (excluded).
        /// Default: now.
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
        /// Also fire call.ended and missed-call for the backfilled calls.
        #[arg(long)]
        with_triggers: bool,
        /// Read the whole window again, ignoring the progress recorded by
        /// earlier runs (still posts nothing twice).
        #[arg(long)]
        restart: bool,
        /// Hours of call history read per chunk (1 to 744).
        #[arg(long, value_name = "HOURS", default_value_t = 24)]
        chunk_hours: u32,
        #[command(flatten)]
        location: Location,
    },
    /// Re-run one parked call through match and post, exactly once, and
    /// print the result. Refuses a call that was posted or skipped.
    Replay {
        /// Tenant id.
        #[arg(long, value_name = "ID")]
        tenant: String,
        /// The call's key, e.g. `3cx:1234@1764201600000` (call log, status page).
        #[arg(long, value_name = "KEY")]
        call: String,
        /// Also fire call.ended / missed-call when it posts.
        #[arg(long)]
        with_triggers: bool,
        #[command(flatten)]
        location: Location,
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
    /// Manage tenants kept in the database (beside the configuration
    /// file's); `connectzero run` serves both. Restart `run` after a change.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Add a tenant: its 3CX endpoint and API client, its HighLevel
    /// location, conversation provider and app client, and settings.
    ///
    /// Secrets are never taken as arguments (every user can read a
    /// process's arguments with `ps`): give the 3CX API key in
    /// CONNECTZERO_PBX_CLIENT_SECRET, the HighLevel app's client secret in
    /// CONNECTZERO_CRM_CLIENT_SECRET and, optionally, the action secret in
    /// CONNECTZERO_ACTION_SECRET; or pass --secrets-stdin and write lines
    /// `pbx.client_secret=…`, `crm.client_secret=…`, `actions.secret=…` on
    /// standard input. They are stored encrypted. The HighLevel tokens come
    /// from the OAuth install afterwards: open
    /// https://<host>/t/<ID>/oauth/install.
    Add {
        /// Tenant id: letters, digits, `-` and `_` (it names the URLs
        /// /t/<ID>/…).
        id: String,
        /// 3CX base URL, https://<pbx-fqdn>[:port].
        #[arg(long, value_name = "URL")]
        pbx_url: String,
        /// The 3CX API client's Client ID (Admin > Integrations > API).
        #[arg(long, value_name = "ID")]
        pbx_client_id: String,
        /// HighLevel location (sub-account) id.
        #[arg(long, value_name = "ID")]
        crm_location: String,
        /// The app's Call conversation provider id.
        #[arg(long, value_name = "ID")]
        crm_provider: String,
        /// The HighLevel app's OAuth client id.
        #[arg(long, value_name = "ID")]
        crm_client_id: String,
        /// HighLevel API base URL.
        #[arg(long, value_name = "URL", default_value = connectzero::config::HIGHLEVEL_API)]
        crm_url: String,
        /// Read the secrets from standard input (`name=value` lines)
        /// instead of the environment.
        #[arg(long)]
        secrets_stdin: bool,
        /// A setting, `key=value` (repeatable; see `tenant settings`).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        #[command(flatten)]
        location: Location,
    },
    /// List every tenant (configuration file and database) with its 3CX
    /// endpoint, HighLevel location and authorisation status. Never prints
    /// a secret.
    List {
        #[command(flatten)]
        location: Location,
    },
    /// Remove a database tenant with its secrets, cursor, ledger, queues
    /// and call log. Stop the hosts serving it first.
    Remove {
        /// Tenant id.
        id: String,
        /// Confirm: the tenant's data cannot be recovered.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        location: Location,
    },
    /// Show a tenant's settings, or change them with --set key=value.
    ///
    /// Settings: default_country (two-letter ISO code), log_internal_calls
    /// (true/false), no_match_policy (skip or create-contact),
    /// recording_window_secs, poll_interval_ms (at least 100),
    /// overlap_window_secs, page_size (1-1000), retry_base_ms,
    /// claim_lease_secs, max_calls_per_tick (1-10000) and oauth.public_url.
    /// A bad value is refused with what the setting takes; nothing is
    /// changed then. Tenants of the configuration file are changed in the
    /// file.
    Settings {
        /// Tenant id.
        id: String,
        /// A change, `key=value` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        #[command(flatten)]
        location: Location,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Re-encrypt every stored secret under a new random key in one
    /// transaction and write it to the key file; the old key file is kept
    /// as `<key file>.old`. Stop the hosts using the database first.
    Rotate {
        #[command(flatten)]
        location: Location,
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
        Command::Backfill { .. } | Command::Replay { .. } => "warn",
        Command::Keys { .. } => "warn,connectzero=info",
        Command::Tenant { .. } => "warn",
    };
    init_logging(cli.log_format, default_filter);
    match cli.command {
        Command::Demo {
            keep_running,
            db,
            listen,
        } => run_demo(cli.components, db, keep_running, listen).await,
        Command::Run { listen, location } => run_tenants(cli.components, location, listen).await,
        Command::Tenant { command } => tenant_command(command),
        Command::Doctor { tenant, location } => {
            let reports = connectzero::doctor::check(&location, tenant.as_deref()).await?;
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
            tenant,
            number,
            direction,
            location,
        } => dry_run_match(cli.components, location, tenant, number, direction).await,
        Command::Backfill {
            tenant,
            since,
            until,
            with_triggers,
            restart,
            chunk_hours,
            location,
        } => {
            let tenant_id = tenant.clone();
            let options = connectzero::backfill::BackfillOptions {
                location,
                tenant,
                since,
                until,
                with_triggers,
                restart,
                chunk_hours,
                components: cli.components,
            };
            tokio::select! {
                summary = connectzero::backfill::backfill(options) => {
                    print!("{}", summary?.render(&tenant_id));
                    Ok(())
                }
                // Chunks finished so far are recorded; calls claimed by the
                // unfinished one are taken over by the next run.
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("interrupted: run the same command again to resume (nothing is posted twice)");
                    std::process::exit(130);
                }
            }
        }
        Command::Replay {
            tenant,
            call,
            with_triggers,
            location,
        } => {
            let result = connectzero::backfill::replay(connectzero::backfill::ReplayOptions {
                location,
                tenant,
                call,
                with_triggers,
                components: cli.components,
            })
            .await?;
            let (text, handled) = connectzero::backfill::render_replay(&result);
            println!("{text}");
            if !handled {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Rotate { location },
        } => rotate_keys(&location),
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
    location: Location,
    tenant_id: String,
    number: String,
    direction: CallDirection,
) -> anyhow::Result<()> {
    // The tenant as `run` (and backfill) open it: the file's or the
    // database's, with its secrets in the encrypted store, so token state
    // the host keeps there (e.g. a rotated refresh token) is shared with
    // `run`. The match stage itself writes nothing.
    let opened = connectzero::backfill::open_tenant(components.as_deref(), &location, &tenant_id)?;
    let (pipeline, tenant) = (opened.pipeline, opened.tenant);
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

/// The `/metrics` scrapers' token from `CONNECTZERO_METRICS_TOKEN`, if set.
fn metrics_token() -> anyhow::Result<Option<connectzero::web::AdminToken>> {
    let env = connectzero::web::METRICS_TOKEN_ENV;
    std::env::var_os(env)
        .map(|token| {
            connectzero::web::AdminToken::new(token.to_string_lossy())
                .with_context(|| env.to_string())
        })
        .transpose()
}

/// Bind `listen` and serve the tenants' endpoints in the background.
async fn start_server(
    listen: SocketAddr,
    pipeline: Arc<Pipeline>,
    tenants: HashMap<String, Arc<Tenant>>,
    web: connectzero::web::WebOptions,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let state = Arc::new(ServerState { pipeline, tenants });
    // The status page (`connectzero::web`) beside HighLevel's endpoints.
    let app = server::router(state.clone()).merge(connectzero::web::router(state, web));
    let task = tokio::spawn(async move {
        let limits = server::listen::Limits::default();
        if let Err(error) = server::listen::serve(listener, app, limits).await {
            tracing::error!(error = %format!("{error:#}"), "the HTTP server stopped");
        }
    });
    Ok((addr, task))
}

/// `connectzero keys rotate`.
fn rotate_keys(location: &Location) -> anyhow::Result<()> {
    let found = location.resolve()?;
    let database = found.database.as_path();
    let storage = Storage::open(database)?;
    let key_file = secrets::default_key_file(database);
    let done = secrets::rotate(&storage, database, &key_file)?;
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
    location: Location,
    listen: SocketAddr,
) -> anyhow::Result<()> {
    // A database alone is enough when there is no configuration file.
    let found = location.resolve()?;
    let (looked_in, file_label) = (found.describe(), found.file_label());
    let mut config = found.config;
    let storage = Storage::open(config.database.as_ref())?;
    // The lock is held while serving: `keys rotate` refuses to run meanwhile.
    let (secrets, _host_lock) = secrets::open_store_held(&storage, config.database.as_ref(), None)?;
    let stored = tenants::load_for_run(&secrets)?;
    config.tenants = tenants::union(std::mem::take(&mut config.tenants), stored, &file_label)?;
    anyhow::ensure!(
        !config.tenants.is_empty(),
        "no tenants in {looked_in}: add a [[tenants]] section to the configuration file or run `connectzero tenant add`"
    );
    // Tenants sharing a 3CX split its calls by route; tenants sharing a
    // CRM location from different 3CX systems get distinct call keys.
    connectzero::config::link_tenants(&mut config.tenants);
    for warning in connectzero::config::routing_warnings(&config.tenants) {
        tracing::warn!("{warning}");
    }
    let runtime = Runtime::new(components.as_deref())?;
    let pipeline = Arc::new(Pipeline::new(runtime, storage));
    let http = connectzero::upstream::client(Duration::from_secs(30))?;
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
    let admin_token = connectzero::web::AdminToken::from_env()?;
    let web = connectzero::web::WebOptions {
        token: admin_token.clone(),
        demo: None,
        metrics_token: metrics_token()?,
    };
    let (addr, server_task) = start_server(listen, pipeline.clone(), tenants.clone(), web).await?;
    tracing::info!(%addr, "serving the action and trigger endpoints");
    print_status_page(addr, admin_token.is_some());
    let mut tasks = Vec::new();
    // Doctor's checks, periodically, per tenant (`connectzero::diagnostics`).
    let diagnostics = Arc::new(connectzero::diagnostics::Diagnostics::new(
        pipeline.storage().clone(),
        http.clone(),
    ));
    for tenant in tenants.into_values() {
        tasks.push(tokio::spawn(connectzero::diagnostics::run_tenant(
            diagnostics.clone(),
            tenant.clone(),
            stop_rx.clone(),
        )));
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

/// Say where the status page is and how to sign in.
fn print_status_page(addr: SocketAddr, token_set: bool) {
    let url = format!("http://{addr}{}", connectzero::web::PAGE_PATH);
    if token_set {
        println!(
            "status page: {url} (sign in with the value of {})",
            connectzero::web::ADMIN_TOKEN_ENV
        );
    } else {
        println!(
            "status page: {url} is off: set {} (at least 16 characters, e.g. `openssl rand -base64 32`) or {} and restart",
            connectzero::web::ADMIN_TOKEN_ENV,
            connectzero::web::ADMIN_TOKEN_FILE_ENV
        );
    }
}

/// Calls placed per wave, and the pause between waves, so the demo shows
/// calls arriving while the pipeline runs. The pause also keeps the demo
/// inside HighLevel's burst limit, which the CRM simulator enforces (100
/// requests per 10 s per location, NOTES §6.1): the demo makes ~110 CRM
/// requests (two contact searches per call — when it rings and when it is
/// posted — conversations, messages, uploads, ~40 trigger deliveries), so
/// with shorter pauses the last wave waits for budget and shows ~6 s
/// latencies: correct, but not what the demo is about.
const WAVE_SIZE: usize = 5;
const WAVE_PAUSE: Duration = Duration::from_millis(2500);
/// Between one wave hanging up and the next ringing.
const HANG_UP_GAP: Duration = Duration::from_millis(1500);
/// Longest the demo holds a callback back (its missed call is in an
/// earlier wave, so this is never reached in practice).
const CALLBACK_WAIT_LIMIT: Duration = Duration::from_secs(30);
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
    let world = Arc::new(World::start(runtime, storage, TenantOptions::default(), true).await?);
    let contacts = demo::seed_directory(&world);
    let tenants = HashMap::from([(world.tenant.id().to_string(), world.tenant.clone())]);
    // The demo signs in with CONNECTZERO_ADMIN_TOKEN when set, else with a
    // fresh random token printed below (it guards only this run).
    let (admin_token, token_from_env) = match connectzero::web::AdminToken::from_env()? {
        Some(token) => (token, true),
        None => (connectzero::web::AdminToken::random(), false),
    };
    let web = connectzero::web::WebOptions {
        token: Some(admin_token.clone()),
        demo: Some(Arc::new(connectzero::web::DemoWorld::new(world.clone()))),
        metrics_token: metrics_token()?,
    };
    let (addr, server_task) = start_server(listen, world.pipeline.clone(), tenants, web).await?;
    println!("ConnectZero demo");
    println!("  3CX simulator:       {}", world.pbx.base_url());
    println!("  HighLevel simulator: {}", world.crm.base_url());
    println!("  database:            {}", db.display());
    println!(
        "  action endpoint:     http://{addr}/t/{}/actions/update-call-record",
        world.tenant.id()
    );
    println!(
        "  status page:         http://{addr}{}/t/{}",
        connectzero::web::PAGE_PATH,
        world.tenant.id()
    );
    if token_from_env {
        println!(
            "  admin token:         the value of {}",
            connectzero::web::ADMIN_TOKEN_ENV
        );
    } else {
        println!("  admin token:         {}", admin_token.expose());
    }
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
    for key in [
        "call.started",
        "call.ended",
        "missed-call",
        "missed-call.recovered",
    ] {
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
        // The wave hangs up at once, then its calls land in history. (A
        // callback still listed as ringing while the call it returns is
        // written would look like that call going on, and hold it.)
        for plan in wave {
            world.pbx.remove_active_call(plan.call_id);
        }
        for plan in wave {
            // A callback starts after the call it returns has ended: hold
            // it until then (a few seconds at most in the demo).
            if let Some(not_before) = demo::callback_not_before(&placed, plan) {
                let wait = (not_before - chrono::Utc::now())
                    .to_std()
                    .unwrap_or_default();
                tokio::time::sleep(wait.min(CALLBACK_WAIT_LIMIT)).await;
            }
            placed.push(placer.place(&world, plan, chrono::Utc::now()));
        }
        // The next wave rings a moment after this one hung up, as calls
        // do: a call ringing the very instant another one of the same
        // caller ended could be that call's next segment (see
        // `guest_support::protocol::completeness`).
        tokio::time::sleep(HANG_UP_GAP).await;
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
        "{attached} recordings attached ({} uploads); workflow triggers delivered: {} call.started, {} call.ended, {} missed-call, {} missed-call.recovered",
        world.crm.uploads().len(),
        fired("call.started"),
        fired("call.ended"),
        fired("missed-call"),
        fired("missed-call.recovered"),
    );

    if keep_running {
        println!(
            "\nStill serving (Ctrl-C to stop). Place more calls from the status page and watch them arrive:\n  http://{addr}{}/t/{}",
            connectzero::web::PAGE_PATH,
            world.tenant.id()
        );
        tokio::signal::ctrl_c().await?;
    }
    server_task.abort();
    stop_tx.send(true)?;
    task.await?;
    // Every request the pipeline sent was refereed against the official
    // API documents (`connectzero_simulators::spec`).
    let broke: Vec<_> = world
        .pbx
        .violations()
        .take()
        .into_iter()
        .chain(world.crm.violations().take())
        .collect();
    if connectzero_simulators::spec::enabled() {
        println!("{} violations of the official API documents", broke.len());
        for violation in &broke {
            println!("  ✗ {violation}");
        }
    } else {
        println!("requests not checked against the official API documents (not found)");
    }
    if !demo::all_final(&rows, true) || unexpected > 0 {
        anyhow::bail!("{unexpected} calls were not handled as expected");
    }
    if !broke.is_empty() {
        anyhow::bail!(
            "{} requests or answers broke the official API documents",
            broke.len()
        );
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

/// The database a `tenant` command works on and the configuration file's
/// tenants (with the file's name for messages), if there is a file.
fn tenant_database(
    location: &Location,
) -> anyhow::Result<(PathBuf, Vec<connectzero::config::TenantConfig>, String)> {
    let found = location.resolve()?;
    let file = found.file_label();
    Ok((found.database, found.config.tenants, file))
}

/// `connectzero tenant …`.
fn tenant_command(command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Add {
            id,
            pbx_url,
            pbx_client_id,
            crm_location,
            crm_provider,
            crm_client_id,
            crm_url,
            secrets_stdin,
            sets,
            location,
        } => {
            let (db, file_tenants, file) = tenant_database(&location)?;
            let stdin = if secrets_stdin {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .context("reading the secrets from standard input")?;
                Some(text)
            } else {
                None
            };
            let new_secrets =
                tenants::NewSecrets::read(stdin.as_deref(), |name| std::env::var(name).ok())?;
            let mut config = connectzero::config::TenantConfig {
                id: id.clone(),
                pbx: connectzero::config::PbxConfig {
                    base_url: pbx_url,
                    client_id: pbx_client_id,
                    client_secret: Default::default(),
                },
                crm: connectzero::config::CrmConfig {
                    base_url: crm_url,
                    location_id: crm_location,
                    conversation_provider_id: crm_provider,
                    client_id: crm_client_id,
                    client_secret: Default::default(),
                    access_token: None,
                    refresh_token: Default::default(),
                    rate_limit: Default::default(),
                },
                settings: TenantOptions::default(),
                actions: Default::default(),
            };
            tenants::apply_settings(&mut config, &sets)?;
            let storage = Storage::open(&db)?;
            let (store, _host_lock) = secrets::open_store_held(&storage, &db, None)?;
            let file_ids: Vec<String> = file_tenants.iter().map(|t| t.id.clone()).collect();
            tenants::add(&store, &config, &new_secrets, &file_ids, &file)?;
            println!("added tenant {id} to {}", db.display());
            if new_secrets.action_secret.is_none() {
                println!(
                    "  no action secret given: /t/{id}/actions/… and /t/{id}/triggers/… refuse every call until one is (set CONNECTZERO_ACTION_SECRET and add the tenant again)"
                );
            }
            println!(
                "  next: restart `connectzero run`, then authorise HighLevel at https://<host>/t/{id}/oauth/install"
            );
            Ok(())
        }
        TenantCommand::List { location } => {
            let (db, file_tenants, file) = tenant_database(&location)?;
            let storage = Storage::open(&db)?;
            let stored = tenants::stored(&storage)?;
            let rows = file_tenants
                .iter()
                .map(|t| (t, file.as_str()))
                .chain(stored.iter().map(|t| (t, "database")));
            let mut any = false;
            for (tenant, source) in rows {
                any = true;
                let auth = match storage.tenant_auth_status(&tenant.id)? {
                    TenantAuth::Authorised
                        if storage
                            .secret_get(
                                &tenant.id,
                                connectzero::credentials::names::CRM_REFRESH_TOKEN,
                            )?
                            .is_some()
                            || !tenant.crm.refresh_token.expose().is_empty() =>
                    {
                        "authorised".to_string()
                    }
                    TenantAuth::Authorised => "not installed yet".to_string(),
                    TenantAuth::NeedsReauthorisation { reason, .. } => {
                        format!("needs re-authorisation ({reason})")
                    }
                };
                println!(
                    "{}  [{source}]\n  3CX {} (client {})\n  HighLevel location {} (provider {}, app {})\n  HighLevel: {auth}",
                    tenant.id,
                    tenant.pbx.base_url,
                    tenant.pbx.client_id,
                    tenant.crm.location_id,
                    tenant.crm.conversation_provider_id,
                    tenant.crm.client_id,
                );
            }
            if !any {
                println!("no tenants: add one with `connectzero tenant add`");
            }
            Ok(())
        }
        TenantCommand::Remove { id, yes, location } => {
            let (db, file_tenants, file) = tenant_database(&location)?;
            if file_tenants.iter().any(|t| t.id == id) {
                return Err(tenants::TenantsError::InConfigFile { id, file }.into());
            }
            let storage = Storage::open(&db)?;
            // Fails on an unknown id before asking for confirmation.
            tenants::get(&storage, &id)?;
            if !yes {
                anyhow::bail!(
                    "removing tenant {id} deletes its secrets, cursor, ledger, queues and call log for good: run again with --yes to confirm"
                );
            }
            tenants::remove(&storage, &id)?;
            println!("removed tenant {id} and its data from {}", db.display());
            Ok(())
        }
        TenantCommand::Settings { id, sets, location } => {
            let (db, file_tenants, file) = tenant_database(&location)?;
            let storage = Storage::open(&db)?;
            let mut config = match file_tenants.into_iter().find(|t| t.id == id) {
                Some(_) if !sets.is_empty() => {
                    return Err(tenants::TenantsError::InConfigFile { id, file }.into());
                }
                Some(config) => config,
                None => tenants::get(&storage, &id)?,
            };
            if !sets.is_empty() {
                tenants::apply_settings(&mut config, &sets)?;
                tenants::update(&storage, &config)?;
                println!("updated tenant {id}; restart `connectzero run` to apply");
            }
            for (key, value) in tenants::settings_of(&config) {
                println!("{key} = {value}");
            }
            Ok(())
        }
    }
}
