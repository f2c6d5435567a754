//! Tenants kept in the database: `connectzero tenant add | list | remove |
//! settings`.
//!
//! A tenant added here has what a `[[tenants]]` entry of the configuration
//! file has: its 3CX endpoint and API client, its HighLevel location,
//! conversation provider and app client, and its settings. The
//! configuration (without secrets) is a JSON row in the `tenants` table;
//! the 3CX and HighLevel client secrets (and the action secret) are sealed
//! in `secrets` like every other secret ([`crate::secrets`]); the CRM tokens
//! come from the OAuth install. Its cursor, ledger and queues live in the
//! key-value namespace named after its id, as for every tenant.
//!
//! `connectzero run` serves the union of the file's tenants and these
//! ([`union`]); an id in both is an error, never a silent choice.

mod new_secrets;
mod settings;

pub use new_secrets::{NewSecrets, SECRET_ENV};
pub use settings::{SETTINGS, apply_settings, settings_of};

use crate::config::{Secret, TenantConfig};
use crate::credentials::names::{CRM_CLIENT_SECRET, PBX_CLIENT_SECRET};
use crate::secrets::{SecretStore, SecretsError};
use crate::storage::Storage;
use std::time::{SystemTime, UNIX_EPOCH};

/// Name of the stored action/subscription secret (`[tenants.actions]
/// secret` of a file tenant).
pub const ACTION_SECRET: &str = "actions.secret";

/// Why a tenant command could not be done. Every message says what to fix;
/// none carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum TenantsError {
    /// `tenant add` of an id the database already has.
    #[error(
        "tenant {0:?} already exists in the database: change its settings with `connectzero tenant settings {0} --set key=value`, or remove it first with `connectzero tenant remove {0} --yes`"
    )]
    Exists(String),
    /// An id the configuration file defines.
    #[error(
        "tenant {id:?} is defined in {file}, not in the database: change or remove its [[tenants]] entry there"
    )]
    InConfigFile {
        /// Tenant id.
        id: String,
        /// The configuration file.
        file: String,
    },
    /// No such tenant in the database.
    #[error("no tenant {id:?} in the database{known}: check the id with `connectzero tenant list`")]
    NotFound {
        /// Tenant id.
        id: String,
        /// "; it has: a, b" or empty.
        known: String,
    },
    /// The same id in the file and the database.
    #[error(
        "tenant id {id:?} is both in {file} and in the database: remove one (`connectzero tenant remove {id} --yes`, or delete its [[tenants]] entry)"
    )]
    Duplicate {
        /// Tenant id.
        id: String,
        /// The configuration file.
        file: String,
    },
    /// A required secret was not given.
    #[error(
        "{name} was not given: set the environment variable {env} or pass it on standard input as a line `{name}=…` with --secrets-stdin (never as an argument: arguments are visible in `ps`)"
    )]
    MissingSecret {
        /// Secret name.
        name: &'static str,
        /// Its environment variable.
        env: &'static str,
    },
    /// The settings (or the tenant) are not valid.
    #[error("{0}")]
    Invalid(String),
    /// A stored row does not parse.
    #[error(
        "the stored configuration of tenant {id:?} cannot be read ({why}): remove it with `connectzero tenant remove {id} --yes` and add it again"
    )]
    Corrupt {
        /// Tenant id.
        id: String,
        /// The parse error.
        why: String,
    },
    /// The secrets could not be stored or read.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// The database failed.
    #[error("database: {0}")]
    Storage(#[from] rusqlite::Error),
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `config` with every secret taken out: what the `tenants` row holds.
fn without_secrets(config: &TenantConfig) -> TenantConfig {
    let mut stored = config.clone();
    stored.pbx.client_secret = Secret::default();
    stored.crm.client_secret = Secret::default();
    stored.crm.access_token = None;
    stored.crm.refresh_token = Secret::default();
    stored.actions.secret = None;
    stored
}

fn to_json(config: &TenantConfig) -> String {
    // A TenantConfig is plain data: serialising it cannot fail.
    serde_json::to_string(&without_secrets(config)).unwrap_or_default()
}

fn validate(config: &TenantConfig) -> Result<(), TenantsError> {
    config
        .validate()
        .map_err(|e| TenantsError::Invalid(format!("{e:#}")))
}

/// Add `config` to the database and store its secrets sealed. `file_ids`
/// are the ids the configuration file defines (refused here).
pub fn add(
    store: &SecretStore,
    config: &TenantConfig,
    secrets: &NewSecrets,
    file_ids: &[String],
    file: &str,
) -> Result<(), TenantsError> {
    validate(config)?;
    let id = config.id.as_str();
    if file_ids.iter().any(|f| f == id) {
        return Err(TenantsError::Duplicate {
            id: id.to_string(),
            file: file.to_string(),
        });
    }
    let storage = store.storage();
    if !storage.tenant_insert(id, &to_json(config), now_ms())? {
        return Err(TenantsError::Exists(id.to_string()));
    }
    let mut values = vec![
        (PBX_CLIENT_SECRET, &secrets.pbx_client_secret),
        (CRM_CLIENT_SECRET, &secrets.crm_client_secret),
    ];
    if let Some(action) = &secrets.action_secret {
        values.push((ACTION_SECRET, action));
    }
    if let Err(e) = store.put(id, &values) {
        // No tenant without its secrets: take the row back out.
        storage.tenant_purge(id)?;
        return Err(e.into());
    }
    tracing::info!(tenant = %id, "tenant added");
    Ok(())
}

/// Every tenant in the database, as stored (no secrets).
pub fn stored(storage: &Storage) -> Result<Vec<TenantConfig>, TenantsError> {
    storage
        .tenants_all()?
        .into_iter()
        .map(|row| {
            serde_json::from_str(&row.config).map_err(|e| TenantsError::Corrupt {
                id: row.id.clone(),
                why: e.to_string(),
            })
        })
        .collect()
}

/// One tenant from the database.
pub fn get(storage: &Storage, id: &str) -> Result<TenantConfig, TenantsError> {
    match storage.tenant_get(id)? {
        Some(row) => serde_json::from_str(&row.config).map_err(|e| TenantsError::Corrupt {
            id: id.to_string(),
            why: e.to_string(),
        }),
        None => Err(not_found(storage, id)),
    }
}

fn not_found(storage: &Storage, id: &str) -> TenantsError {
    let ids: Vec<String> = storage
        .tenants_all()
        .map(|rows| rows.into_iter().map(|r| r.id).collect())
        .unwrap_or_default();
    TenantsError::NotFound {
        id: id.to_string(),
        known: if ids.is_empty() {
            String::new()
        } else {
            format!("; it has: {}", ids.join(", "))
        },
    }
}

/// The database's tenants ready to run: validated, with the action secret
/// opened into their configuration (the write-back component reads it
/// from there). The client secrets stay in the store, where
/// `Credentials::use_store` reads them.
pub fn load_for_run(store: &SecretStore) -> Result<Vec<TenantConfig>, TenantsError> {
    let mut tenants = stored(store.storage())?;
    for tenant in &mut tenants {
        validate(tenant)?;
        tenant.actions.secret = store.get(&tenant.id, ACTION_SECRET)?;
    }
    Ok(tenants)
}

/// The file's tenants and the database's together; an id in both is an
/// error.
pub fn union(
    file_tenants: Vec<TenantConfig>,
    db_tenants: Vec<TenantConfig>,
    file: &str,
) -> Result<Vec<TenantConfig>, TenantsError> {
    if let Some(dup) = db_tenants
        .iter()
        .find(|d| file_tenants.iter().any(|f| f.id == d.id))
    {
        return Err(TenantsError::Duplicate {
            id: dup.id.clone(),
            file: file.to_string(),
        });
    }
    Ok(file_tenants.into_iter().chain(db_tenants).collect())
}

/// Delete tenant `id` from the database with its secrets, its key-value
/// namespace (cursor, ledger, queues), call log, authorisation mark and
/// install states.
pub fn remove(storage: &Storage, id: &str) -> Result<(), TenantsError> {
    if storage.tenant_get(id)?.is_none() {
        return Err(not_found(storage, id));
    }
    storage.tenant_purge(id)?;
    tracing::info!(tenant = %id, "tenant removed with its secrets and data");
    Ok(())
}

/// Store changed settings of database tenant `config`.
pub fn update(storage: &Storage, config: &TenantConfig) -> Result<(), TenantsError> {
    validate(config)?;
    if !storage.tenant_update(&config.id, &to_json(config), now_ms())? {
        return Err(not_found(storage, &config.id));
    }
    Ok(())
}
