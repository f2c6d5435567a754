//! `connectzero tenant …`: add, list, remove and configure the tenants kept
//! in the database (beside the configuration file's).

use anyhow::Context;
use clap::Subcommand;
use connectzero::config::TenantOptions;
use connectzero::location::Location;
use connectzero::secrets;
use connectzero::storage::{Storage, TenantAuth};
use connectzero::tenants;
use std::path::PathBuf;

/// The arguments of `connectzero tenant`: one of its subcommands.
#[derive(clap::Args)]
pub struct TenantArgs {
    /// What to do with the tenants.
    #[command(subcommand)]
    command: TenantCommand,
}

/// The subcommands of `connectzero tenant`.
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
    /// The tenants of a Spin deployment, through its admin API (the admin
    /// secret in CONNECTZERO_SPIN_ADMIN_SECRET).
    Spin(crate::tenant_spin::SpinTenantArgs),
    /// Show a tenant's settings, or change them with --set key=value.
    ///
    /// Settings: default_country (two-letter ISO code), log_internal_calls
    /// (true/false), no_match_policy (skip or create-contact),
    /// recording_window_secs, poll_interval_ms (100 to 60000),
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
pub fn run(args: TenantArgs) -> anyhow::Result<()> {
    match args.command {
        TenantCommand::Spin(args) => crate::tenant_spin::run(args),
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
