//! `connectzero backfill` and `connectzero replay`: post a tenant's calls of
//! a past window, or re-run one parked call, through the pipeline; the work
//! is done by `connectzero::backfill`.

use connectzero::location::Location;
use std::path::PathBuf;

/// The arguments of `connectzero backfill`.
#[derive(clap::Args)]
pub struct BackfillArgs {
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
    /// Where the tenants are.
    #[command(flatten)]
    location: Location,
}

/// The arguments of `connectzero replay`.
#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Tenant id.
    #[arg(long, value_name = "ID")]
    tenant: String,
    /// The call's key, e.g. `3cx:1234@1764201600000` (call log, status page).
    #[arg(long, value_name = "KEY")]
    call: String,
    /// Also fire call.ended / missed-call when it posts.
    #[arg(long)]
    with_triggers: bool,
    /// Where the tenants are.
    #[command(flatten)]
    location: Location,
}

/// `connectzero backfill`: run the backfill and print its summary; on
/// Ctrl-C, say how to resume and exit 130.
pub async fn backfill(components: Option<PathBuf>, args: BackfillArgs) -> anyhow::Result<()> {
    let BackfillArgs {
        tenant,
        since,
        until,
        with_triggers,
        restart,
        chunk_hours,
        location,
    } = args;
    let tenant_id = tenant.clone();
    let options = connectzero::backfill::BackfillOptions {
        location,
        tenant,
        since,
        until,
        with_triggers,
        restart,
        chunk_hours,
        components,
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

/// `connectzero replay`: re-run the call and print the result; exit 1 when
/// the call was not handled.
pub async fn replay(components: Option<PathBuf>, args: ReplayArgs) -> anyhow::Result<()> {
    let ReplayArgs {
        tenant,
        call,
        with_triggers,
        location,
    } = args;
    let result = connectzero::backfill::replay(connectzero::backfill::ReplayOptions {
        location,
        tenant,
        call,
        with_triggers,
        components,
    })
    .await?;
    let (text, handled) = connectzero::backfill::render_replay(&result);
    println!("{text}");
    if !handled {
        std::process::exit(1);
    }
    Ok(())
}
