//! `connectzero doctor`: check each tenant's set-up and print a checklist
//! with a fix for each failure; exit 1 when anything fails.

use connectzero::location::Location;

/// The arguments of `connectzero doctor`.
#[derive(clap::Args)]
pub struct DoctorArgs {
    /// Check only this tenant.
    #[arg(long, value_name = "TENANT")]
    tenant: Option<String>,
    /// Where the tenants are.
    #[command(flatten)]
    location: Location,
}

/// `connectzero doctor`: run the checks (`connectzero::doctor`), print the
/// checklist, and exit 1 after one summary line when a check failed.
pub async fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let DoctorArgs { tenant, location } = args;
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
