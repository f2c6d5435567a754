//! `connectzero demo`: run the whole pipeline against the built-in 3CX and
//! HighLevel simulators, place a scripted set of calls in waves, and print
//! what happened to each call. No accounts needed.

use anyhow::Context;
use connectzero::config::TenantOptions;
use connectzero::demo;
use connectzero::engine::Runtime;
use connectzero::storage::Storage;
use connectzero::testbed::{ACTION_SECRET, World};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

use crate::run::{metrics_token, start_server};

/// What 3CX's insights did for the demo's transcribed call: its summary
/// note, the sentiment field and the `call.insights` event.
fn insights_line(
    world: &connectzero::testbed::World,
    contacts: &std::collections::HashMap<&'static str, String>,
) -> String {
    let executions = world.crm.trigger_executions();
    let Some(event) = executions
        .iter()
        .map(|e| &e.body)
        .find(|b| b["event"] == "call.insights")
    else {
        return "3CX call insights: none arrived".into();
    };
    let contact_id = event["contactId"].as_str().unwrap_or_default();
    let name = contacts
        .iter()
        .find(|(_, id)| id.as_str() == contact_id)
        .map_or("-", |(name, _)| *name);
    let notes = world
        .crm
        .notes(contact_id)
        .into_iter()
        .filter(|n| n.title.as_deref() == Some("Call summary (3CX)"))
        .count();
    let field = world
        .crm
        .contacts()
        .into_iter()
        .find(|c| c.id == contact_id)
        .and_then(|c| {
            c.custom_field(guest_support::insights::DEFAULT_SENTIMENT_FIELD_KEY)
                .cloned()
        })
        .unwrap_or_default();
    format!(
        "3CX call insights: {name}'s call gained {notes} summary note (\"{}\") and sentiment {field} in {}; call.insights fired with sentimentScore {}",
        event["summary"].as_str().unwrap_or_default(),
        guest_support::insights::DEFAULT_SENTIMENT_FIELD_KEY,
        event["sentimentScore"],
    )
}

/// The arguments of `connectzero demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Keep the simulators and the scheduler running after the table.
    #[arg(long)]
    keep_running: bool,
    /// Database file (default: a fresh temporary one).
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,
    /// Address for the action and trigger endpoints (port 0: any free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
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
/// The pause between waves (see [`WAVE_SIZE`]).
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

/// `connectzero demo`: start the simulators and the endpoints, place the
/// demo calls, print the table and the totals, and fail when a call was not
/// handled as expected or a request broke the official API documents.
pub async fn run(components: Option<PathBuf>, args: DemoArgs) -> anyhow::Result<()> {
    let DemoArgs {
        keep_running,
        db,
        listen,
    } = args;
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
        demo: Some(Arc::new(connectzero::demo::web::DemoWorld::new(
            world.clone(),
        ))),
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
    // The page (`--keep-running`) changes settings and shows ticks.
    let task = tokio::spawn(connectzero::web::run_tenant(
        world.pipeline.clone(),
        world.tenant.clone(),
        stop_rx,
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
        "call.insights",
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
        "{attached} recordings attached ({} uploads); workflow triggers delivered: {} call.started, {} call.ended, {} missed-call, {} missed-call.recovered, {} call.insights",
        world.crm.uploads().len(),
        fired("call.started"),
        fired("call.ended"),
        fired("missed-call"),
        fired("missed-call.recovered"),
        fired("call.insights"),
    );
    println!("{}", insights_line(&world, &contacts));

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
