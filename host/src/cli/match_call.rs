//! `connectzero match`: a dry run of the match stage. Shows which contact a
//! call from (or to) a number would match, by which rule, and any
//! ambiguity, using the real match component and the tenant's CRM; posts
//! nothing.

use clap::ValueEnum;
use connectzero::bindings::types::Direction;
use connectzero::dry_run;
use connectzero::location::Location;
use std::path::PathBuf;

/// The arguments of `connectzero match`.
#[derive(clap::Args)]
pub struct MatchArgs {
    /// Tenant id (the configuration file's or the database's).
    #[arg(long, value_name = "ID")]
    tenant: String,
    /// The outside number, as 3CX would report it.
    number: String,
    /// Inbound: NUMBER called in; outbound: NUMBER was called.
    #[arg(long, value_enum, default_value = "inbound")]
    direction: CallDirection,
    /// Where the tenants are.
    #[command(flatten)]
    location: Location,
}

/// The call's direction as `--direction` takes it: `inbound` (the number
/// called in) or `outbound` (the number was called). (The values carry no
/// doc comments of their own: clap would print them in `--help`.)
#[derive(Clone, Copy, ValueEnum)]
enum CallDirection {
    Inbound,
    Outbound,
}

/// `connectzero match`: open the tenant as `run` does, match the number and
/// print what was found.
pub async fn run(components: Option<PathBuf>, args: MatchArgs) -> anyhow::Result<()> {
    let MatchArgs {
        tenant: tenant_id,
        number,
        direction,
        location,
    } = args;
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
