//! Opening one tenant for a one-off command (`backfill`, `replay`): found
//! in the configuration file or the database, linked with the others as
//! `run` links them, with its secrets in the encrypted store.

use crate::config::TenantConfig;
use crate::engine::Runtime;
use crate::location::{Location, Resolved};
use crate::pipeline::{Pipeline, Tenant};
use crate::secrets::SecretStore;
use crate::storage::Storage;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
/// A tenant opened for a one-off command: its pipeline, with its secrets
/// in the encrypted store as `run` keeps them (a rotated HighLevel refresh
/// token is stored, so the live host keeps working).
pub struct OpenTenant {
    /// The pipeline.
    pub pipeline: Pipeline,
    /// The tenant.
    pub tenant: Arc<Tenant>,
    /// The database.
    pub storage: Storage,
    /// The database file.
    pub database: PathBuf,
    /// Held while open: `keys rotate` waits for the command to end.
    pub host_lock: crate::secrets::HostLock,
}

/// Find `tenant_id` in the configuration file at `location`, or else among
/// the tenants kept in its database (`crate::location`), and open it.
pub fn open_tenant(
    components: Option<&Path>,
    location: &Location,
    tenant_id: &str,
) -> anyhow::Result<OpenTenant> {
    let found = location.resolve()?;
    let database = found.database.clone();
    let storage = Storage::open(&database)?;
    let (secrets, host_lock) = crate::secrets::open_store_held(&storage, &database, None)?;
    let tenant_config = find_tenant(found, tenant_id, &secrets)?;
    let runtime = Runtime::new(components)?;
    let pipeline = Pipeline::new(runtime, storage.clone());
    let http = crate::upstream::client(Duration::from_secs(30))?;
    let tenant = Arc::new(crate::connect::tenant(tenant_config, http));
    crate::connect::on_database(&tenant, secrets).with_context(|| format!("tenant {tenant_id}"))?;
    Ok(OpenTenant {
        pipeline,
        tenant,
        storage,
        database,
        host_lock,
    })
}

fn find_tenant(
    found: Resolved,
    tenant_id: &str,
    secrets: &SecretStore,
) -> anyhow::Result<TenantConfig> {
    let looked_in = found.describe();
    let config = found.config;
    let mut known: Vec<String> = config.tenants.iter().map(|t| t.id.clone()).collect();
    // Every tenant `run` serves, linked as `run` links them, so a backfill
    // routes calls and keys them for the CRM exactly as `run` does. A
    // database that cannot be read only matters when the tenant is there.
    let stored = crate::tenants::load_for_run(secrets);
    let mut all = config.tenants;
    if let Ok(stored) = &stored {
        all.extend(stored.iter().filter(|s| !known.contains(&s.id)).cloned());
    }
    crate::config::link_tenants(&mut all);
    if let Some(found) = all
        .iter()
        .find(|t| t.id == tenant_id && known.contains(&t.id))
    {
        return Ok(found.clone());
    }
    let stored = stored?;
    known.extend(stored.iter().map(|t| t.id.clone()));
    all.into_iter()
        .find(|t| t.id == tenant_id)
        .with_context(|| {
            format!(
                "no tenant {tenant_id:?} in {looked_in}; known tenants: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        })
}
