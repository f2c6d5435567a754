//! `connectzero`: the ConnectZero host command line.
//!
//! This file holds the parser (global options and the list of
//! subcommands), the logging set-up and the dispatch; each subcommand's
//! arguments and code live in a module of their own beside it.

mod backfill;
#[cfg(feature = "devkit")]
mod bench;
mod components;
#[cfg(feature = "devkit")]
mod demo;
mod doctor;
mod init;
mod keys;
mod match_call;
mod run;
mod tenant;
mod tenant_spin;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

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
    /// The subcommand to run.
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written to standard error (`--log-format`): `text`,
/// human-readable lines, or `json`, one JSON object per line. (The values
/// carry no doc comments of their own: clap would print them in `--help`.)
#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The subcommands; each one's arguments are defined in its module.
#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline against built-in simulators and print what
    /// happened to each call. No accounts needed.
    #[cfg(feature = "devkit")]
    Demo(demo::DemoArgs),
    /// Run the tenants of the configuration file and the database until
    /// interrupted. With no configuration file, only the database's
    /// tenants (`connectzero tenant add`) run.
    Run(run::RunArgs),
    /// Check each tenant's set-up: 3CX over HTTPS, its API client, licence
    /// and role, the HighLevel grant and its scopes. Prints a checklist
    /// with a fix for each failure; exits non-zero when anything fails.
    Doctor(doctor::DoctorArgs),
    /// Guided set-up of a tenant: asks for the 3CX address and API client,
    /// the HighLevel app and location; writes the configuration file
    /// (secrets encrypted in the database), runs doctor's checks and
    /// prints the install link. Safe to re-run: Enter keeps each value.
    Init(init::InitArgs),
    /// Measure latency, throughput, memory and the component boundary
    /// against the built-in simulators and print the figures
    /// (see docs/BENCHMARKS.md). Build with --release for real figures.
    #[cfg(feature = "devkit")]
    Bench(bench::BenchArgs),
    /// Show which contact a call from (or to) NUMBER would match, by which
    /// rule, and any ambiguity, using the real match component and the
    /// tenant's CRM. Posts nothing.
    Match(match_call::MatchArgs),
    /// Post a tenant's calls of a past window through the pipeline, with a
    /// progress bar. Safe to interrupt and re-run: it resumes, and the
    /// ledger never posts a call twice. The live cursor is not touched;
    /// call.started never fires, call.ended / missed-call only with
    /// --with-triggers (see docs/OPERATIONS.md).
    Backfill(backfill::BackfillArgs),
    /// Re-run one parked call through match and post, exactly once, and
    /// print the result. Refuses a call that was posted or skipped.
    Replay(backfill::ReplayArgs),
    /// Work with stage components (partner kit, see docs/PARTNERS.md).
    Components(components::ComponentsArgs),
    /// Manage the key that encrypts stored secrets (`<database>.key`).
    Keys(keys::KeysArgs),
    /// Manage tenants kept in the database (beside the configuration
    /// file's); `connectzero run` serves both. Restart `run` after a change.
    Tenant(tenant::TenantArgs),
}

/// Parse the command line, set up logging and run the subcommand.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The demo prints a table; keep its logs to warnings unless asked.
    // The runtime's lines (calls handled, ticks) come from its own crate.
    let default_filter = match cli.command {
        #[cfg(feature = "devkit")]
        Command::Demo(_) => "warn",
        Command::Run(_) => "warn,connectzero=info,connectzero_runtime=info",
        Command::Doctor(_) | Command::Init(_) => "warn",
        // Failed ticks are counted and summarised by the bench itself.
        #[cfg(feature = "devkit")]
        Command::Bench(_) => "error,connectzero_runtime::scheduler=off",
        Command::Match(_) | Command::Components(_) => "warn",
        Command::Backfill(_) | Command::Replay(_) => "warn",
        Command::Keys(_) => "warn,connectzero=info,connectzero_runtime=info",
        Command::Tenant(_) => "warn",
    };
    init_logging(cli.log_format, default_filter);
    // Every subcommand's runtime reports into the one metrics registry.
    connectzero::metrics::install();
    let components = cli.components;
    match cli.command {
        #[cfg(feature = "devkit")]
        Command::Demo(args) => demo::run(components, args).await,
        Command::Run(args) => run::run(components, args).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Init(args) => init::run(args).await,
        #[cfg(feature = "devkit")]
        Command::Bench(args) => bench::run(components, args).await,
        Command::Match(args) => match_call::run(components, args).await,
        Command::Backfill(args) => backfill::backfill(components, args).await,
        Command::Replay(args) => backfill::replay(components, args).await,
        Command::Components(args) => components::run(args),
        Command::Keys(args) => keys::run(args),
        Command::Tenant(args) => tenant::run(args),
    }
}

/// Log to standard error in `format`, with `RUST_LOG` when set and
/// `default_filter` otherwise.
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
