//! `connectzero run`: serve the tenants of the configuration file and the
//! database until interrupted. Also the HTTP server start-up, the status
//! page line and the `/metrics` token, which `connectzero demo` shares.

use anyhow::Context;
use connectzero::engine::Runtime;
use connectzero::location::Location;
use connectzero::pipeline::{Pipeline, Tenant};
use connectzero::secrets;
use connectzero::server::{self, ServerState};
use connectzero::storage::Storage;
use connectzero::tenants;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The arguments of `connectzero run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Address for HighLevel's calls: the Update Call Record action
    /// (`/t/{tenant}/actions/update-call-record`) and trigger
    /// subscriptions (`/t/{tenant}/triggers/subscription`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// Where the tenants are.
    #[command(flatten)]
    location: Location,
}

/// `connectzero run`: start every tenant's scheduler and diagnostics, serve
/// the endpoints and the status page, and stop on Ctrl-C.
pub async fn run(components: Option<PathBuf>, args: RunArgs) -> anyhow::Result<()> {
    let RunArgs { listen, location } = args;
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
                Arc::new(connectzero::connect::tenant(tenant, http.clone())),
            )
        })
        .collect();
    // Secrets move into the encrypted store (and rotated tokens persist),
    // and the location budgets into the database, before any tenant runs.
    for tenant in tenants.values() {
        connectzero::connect::on_database(tenant, secrets.clone())
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
        // The status page's saved settings apply from the next tick, and
        // the page shows each tick (`connectzero::web`).
        tasks.push(tokio::spawn(connectzero::web::run_tenant(
            pipeline.clone(),
            tenant,
            stop_rx.clone(),
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

/// The `/metrics` scrapers' token from `CONNECTZERO_METRICS_TOKEN`, if set.
pub fn metrics_token() -> anyhow::Result<Option<connectzero::web::AdminToken>> {
    let env = connectzero::web::METRICS_TOKEN_ENV;
    std::env::var_os(env)
        .map(|token| {
            connectzero::web::AdminToken::new(token.to_string_lossy())
                .with_context(|| env.to_string())
        })
        .transpose()
}

/// Bind `listen` and serve the tenants' endpoints in the background.
pub async fn start_server(
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
