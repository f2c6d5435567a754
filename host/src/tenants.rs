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

/// The secrets `tenant add` stores, read from the environment or stdin.
#[derive(Clone, Debug, Default)]
pub struct NewSecrets {
    /// The 3CX API client's key.
    pub pbx_client_secret: Secret,
    /// The HighLevel app's OAuth client secret.
    pub crm_client_secret: Secret,
    /// The action/subscription secret header value, if any.
    pub action_secret: Option<Secret>,
}

/// Environment variables `tenant add` reads the secrets from.
pub const SECRET_ENV: [(&str, &str); 3] = [
    (PBX_CLIENT_SECRET, "CONNECTZERO_PBX_CLIENT_SECRET"),
    (CRM_CLIENT_SECRET, "CONNECTZERO_CRM_CLIENT_SECRET"),
    (ACTION_SECRET, "CONNECTZERO_ACTION_SECRET"),
];

impl NewSecrets {
    /// Secrets from `name=value` lines (`stdin`, when given) and else the
    /// [`SECRET_ENV`] variables read by `env`. The 3CX and HighLevel client
    /// secrets are required.
    pub fn read(
        stdin: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, TenantsError> {
        let mut from_stdin = std::collections::HashMap::new();
        if let Some(text) = stdin {
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let Some((name, value)) = line.split_once('=') else {
                    return Err(TenantsError::Invalid(
                        "a line on standard input is not `name=value`: give lines `pbx.client_secret=…`, `crm.client_secret=…` and optionally `actions.secret=…`".into(),
                    ));
                };
                let name = name.trim();
                if !SECRET_ENV.iter().any(|(n, _)| *n == name) {
                    return Err(TenantsError::Invalid(format!(
                        "unknown secret {name:?} on standard input: the names are pbx.client_secret, crm.client_secret and actions.secret"
                    )));
                }
                from_stdin.insert(name.to_string(), value.trim().to_string());
            }
        }
        let get = |name: &str| -> Option<Secret> {
            let env_name = SECRET_ENV.iter().find(|(n, _)| *n == name)?.1;
            from_stdin
                .get(name)
                .cloned()
                .or_else(|| env(env_name))
                .filter(|v| !v.is_empty())
                .map(Secret::new)
        };
        let required = |name: &'static str| {
            get(name).ok_or(TenantsError::MissingSecret {
                name,
                env: SECRET_ENV
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or("", |(_, e)| e),
            })
        };
        Ok(Self {
            pbx_client_secret: required(PBX_CLIENT_SECRET)?,
            crm_client_secret: required(CRM_CLIENT_SECRET)?,
            action_secret: get(ACTION_SECRET),
        })
    }
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

/// The settings `tenant settings` shows and changes, with what each takes.
pub const SETTINGS: [(&str, &str); 19] = [
    (
        "default_country",
        "two-letter ISO code for numbers without +, e.g. US or GB",
    ),
    (
        "log_internal_calls",
        "true or false: post extension-to-extension calls",
    ),
    ("no_match_policy", "skip or create-contact"),
    (
        "recording_window_secs",
        "seconds to wait for 3CX to finalise a recording",
    ),
    (
        "poll_interval_ms",
        "milliseconds between polls, at least 100",
    ),
    (
        "overlap_window_secs",
        "seconds each poll re-reads behind the cursor",
    ),
    ("page_size", "rows per 3CX page, 1 to 1000"),
    (
        "retry_base_ms",
        "first retry delay in milliseconds (doubles)",
    ),
    (
        "claim_lease_secs",
        "seconds a worker's claim on a call lasts, at least 1",
    ),
    ("max_calls_per_tick", "new calls one tick posts, 1 to 10000"),
    (
        "missed_call_recovery_window_secs",
        "seconds after a missed call an answered callback fires missed-call.recovered, 0 for off",
    ),
    (
        "call_timeline",
        "true or false: list the segments (IVR, queue, transfers) of a multi-segment call in its message",
    ),
    (
        "oauth.public_url",
        "https://host[:port] of this host as browsers reach it, or none",
    ),
    (
        "route.dids",
        "comma-separated E.164 DIDs of a shared 3CX this tenant takes, e.g. +441615550100, or none",
    ),
    (
        "route.queues",
        "comma-separated queue extension numbers this tenant takes, e.g. 800,801, or none",
    ),
    (
        "route.default",
        "true or false: also take the calls no other tenant on the same 3CX takes",
    ),
    (
        "call_reference_prefix",
        "prefix of the call key HighLevel sees (letters, digits, . : _ -), none for no prefix, or auto",
    ),
    (
        "tie_breakers",
        "comma-separated, in order, of assigned-user and recent-conversation; none sends every shared number to review",
    ),
    (
        "crm_user_overrides",
        "comma-separated extension:HighLevel user id pairs, e.g. 101:0IHuJvc2ofPAAA8GzTRi, or none",
    ),
];

/// `(name, value)` of every setting of `config`.
pub fn settings_of(config: &TenantConfig) -> Vec<(&'static str, String)> {
    let s = &config.settings;
    let values = [
        s.default_country.clone(),
        s.log_internal_calls.to_string(),
        s.no_match_policy.clone(),
        s.recording_window_secs.to_string(),
        s.poll_interval_ms.to_string(),
        s.overlap_window_secs.to_string(),
        s.page_size.to_string(),
        s.retry_base_ms.to_string(),
        s.claim_lease_secs.to_string(),
        s.max_calls_per_tick.to_string(),
        s.missed_call_recovery_window_secs.to_string(),
        s.call_timeline.to_string(),
        s.oauth.public_url.clone().unwrap_or_else(|| "none".into()),
        list_or_none(s.route.as_ref().map(|r| &r.dids)),
        list_or_none(s.route.as_ref().map(|r| &r.queues)),
        s.route.as_ref().is_some_and(|r| r.default).to_string(),
        match &s.call_reference_prefix {
            None => "auto".into(),
            Some(p) if p.is_empty() => "none".into(),
            Some(p) => p.clone(),
        },
        list_or_none(Some(&s.tie_breakers)),
        if s.crm_user_overrides.is_empty() {
            "none".into()
        } else {
            s.crm_user_overrides
                .iter()
                .map(|(e, u)| format!("{e}:{u}"))
                .collect::<Vec<_>>()
                .join(",")
        },
    ];
    SETTINGS.iter().map(|(k, _)| *k).zip(values).collect()
}

fn list_or_none(list: Option<&Vec<String>>) -> String {
    match list {
        Some(l) if !l.is_empty() => l.join(","),
        _ => "none".into(),
    }
}

/// A comma-separated list; "none" or nothing is empty.
fn parse_list(value: &str) -> Vec<String> {
    if value.is_empty() || value == "none" {
        return Vec::new();
    }
    value
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Apply `key=value` assignments to `config` and check the result; the
/// first problem names the setting and what it takes.
pub fn apply_settings(config: &mut TenantConfig, sets: &[String]) -> Result<(), TenantsError> {
    for set in sets {
        let Some((key, value)) = set.split_once('=') else {
            return Err(TenantsError::Invalid(format!(
                "{set:?} is not key=value: write e.g. --set default_country=GB"
            )));
        };
        apply_one(config, key.trim(), value.trim())?;
    }
    validate(config)
}

fn apply_one(config: &mut TenantConfig, key: &str, value: &str) -> Result<(), TenantsError> {
    let help = SETTINGS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, h)| *h)
        .ok_or_else(|| {
            TenantsError::Invalid(format!(
                "unknown setting {key:?}: the settings are {}",
                SETTINGS.map(|(k, _)| k).join(", ")
            ))
        })?;
    let bad = || TenantsError::Invalid(format!("{key} = {value:?} is not valid: it takes {help}"));
    let s = &mut config.settings;
    match key {
        "default_country" => s.default_country = value.to_ascii_uppercase(),
        "log_internal_calls" => s.log_internal_calls = value.parse().map_err(|_| bad())?,
        "no_match_policy" => s.no_match_policy = value.to_string(),
        "recording_window_secs" => s.recording_window_secs = value.parse().map_err(|_| bad())?,
        "poll_interval_ms" => s.poll_interval_ms = value.parse().map_err(|_| bad())?,
        "overlap_window_secs" => s.overlap_window_secs = value.parse().map_err(|_| bad())?,
        "page_size" => s.page_size = value.parse().map_err(|_| bad())?,
        "retry_base_ms" => s.retry_base_ms = value.parse().map_err(|_| bad())?,
        "claim_lease_secs" => s.claim_lease_secs = value.parse().map_err(|_| bad())?,
        "max_calls_per_tick" => s.max_calls_per_tick = value.parse().map_err(|_| bad())?,
        "missed_call_recovery_window_secs" => {
            s.missed_call_recovery_window_secs = value.parse().map_err(|_| bad())?
        }
        "call_timeline" => s.call_timeline = value.parse().map_err(|_| bad())?,
        "oauth.public_url" => {
            s.oauth.public_url = (!value.is_empty() && value != "none").then(|| value.to_string())
        }
        "route.dids" => s.route.get_or_insert_with(Default::default).dids = parse_list(value),
        "route.queues" => s.route.get_or_insert_with(Default::default).queues = parse_list(value),
        "route.default" => {
            s.route.get_or_insert_with(Default::default).default =
                value.parse().map_err(|_| bad())?
        }
        "call_reference_prefix" => {
            s.call_reference_prefix = match value {
                "auto" => None,
                "none" => Some(String::new()),
                v => Some(v.to_string()),
            }
        }
        "tie_breakers" => s.tie_breakers = parse_list(value),
        "crm_user_overrides" => {
            let mut map = std::collections::BTreeMap::new();
            for pair in parse_list(value) {
                let (extension, user) = pair.split_once(':').ok_or_else(bad)?;
                map.insert(extension.trim().to_string(), user.trim().to_string());
            }
            s.crm_user_overrides = map;
        }
        _ => return Err(bad()),
    }
    // A route that lists nothing and is not the default is no route: the
    // tenant takes every call again.
    if s.route
        .as_ref()
        .is_some_and(|r| r.claims().is_empty() && !r.default && r.elsewhere.is_empty())
    {
        s.route = None;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CrmConfig, PbxConfig};

    fn sample() -> TenantConfig {
        TenantConfig {
            id: "acme".into(),
            pbx: PbxConfig {
                base_url: "https://pbx.example.com".into(),
                client_id: "c".into(),
                client_secret: Secret::default(),
            },
            crm: CrmConfig {
                base_url: crate::config::HIGHLEVEL_API.into(),
                location_id: "l".into(),
                conversation_provider_id: "p".into(),
                client_id: "a".into(),
                client_secret: Secret::default(),
                access_token: None,
                refresh_token: Secret::default(),
                rate_limit: Default::default(),
            },
            settings: Default::default(),
            actions: Default::default(),
        }
    }

    #[test]
    fn secrets_come_from_stdin_lines_or_the_environment() {
        let env = |name: &str| (name == "CONNECTZERO_CRM_CLIENT_SECRET").then(|| "env-crm".into());
        let read = NewSecrets::read(Some("pbx.client_secret = in-pbx\n"), env).unwrap();
        assert_eq!(read.pbx_client_secret.expose(), "in-pbx");
        assert_eq!(read.crm_client_secret.expose(), "env-crm");
        assert!(read.action_secret.is_none());
        let missing = NewSecrets::read(None, |_| None).unwrap_err().to_string();
        assert!(
            missing.contains("CONNECTZERO_PBX_CLIENT_SECRET"),
            "{missing}"
        );
        assert!(NewSecrets::read(Some("password=x"), |_| None).is_err());
    }

    #[test]
    fn settings_say_what_they_take() {
        let mut config: TenantConfig = sample();
        let e = apply_settings(&mut config, &["log_internal_calls=maybe".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("true or false"), "{e}");
        let e = apply_settings(&mut config, &["colour=blue".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("default_country"), "{e}");
        let e = apply_settings(&mut config, &["default_country=USA".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("two-letter"), "{e}");
        let mut config: TenantConfig = sample();
        apply_settings(
            &mut config,
            &[
                "default_country=gb".into(),
                "log_internal_calls=true".into(),
            ],
        )
        .unwrap();
        let shown = settings_of(&config);
        assert!(shown.contains(&("default_country", "GB".into())));
        assert!(shown.contains(&("log_internal_calls", "true".into())));
    }

    #[test]
    fn routes_are_set_checked_and_cleared_from_the_command_line() {
        let mut config: TenantConfig = sample();
        let e = apply_settings(&mut config, &["route.dids=01615550100".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("route.dids") && e.contains("E.164"), "{e}");
        let mut config: TenantConfig = sample();
        apply_settings(
            &mut config,
            &[
                "route.dids=+14155550900, +14155550901".into(),
                "route.queues=800".into(),
                "call_reference_prefix=pbx-b".into(),
            ],
        )
        .unwrap();
        let shown = settings_of(&config);
        assert!(shown.contains(&("route.dids", "+14155550900,+14155550901".into())));
        assert!(shown.contains(&("route.queues", "800".into())));
        assert!(shown.contains(&("route.default", "false".into())));
        assert!(shown.contains(&("call_reference_prefix", "pbx-b".into())));
        let e = apply_settings(&mut config, &["call_reference_prefix=a b".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("call_reference_prefix"), "{e}");
        // Listing nothing again means no route: every call, as before.
        let mut config: TenantConfig = sample();
        apply_settings(&mut config, &["route.queues=800".into()]).unwrap();
        apply_settings(&mut config, &["route.queues=none".into()]).unwrap();
        assert!(config.settings.route.is_none());
        assert!(settings_of(&config).contains(&("call_reference_prefix", "auto".into())));
    }

    #[test]
    fn tie_breakers_and_user_overrides_are_set_from_the_command_line() {
        let mut config = sample();
        apply_settings(
            &mut config,
            &[
                "tie_breakers=recent-conversation".into(),
                "crm_user_overrides=101:userA, 102:userB".into(),
            ],
        )
        .unwrap();
        assert_eq!(config.settings.tie_breakers, ["recent-conversation"]);
        assert_eq!(config.settings.crm_user_overrides["102"], "userB");
        let shown = settings_of(&config);
        assert!(shown.contains(&("crm_user_overrides", "101:userA,102:userB".into())));
        let e = apply_settings(&mut config, &["tie_breakers=oldest".into()]).unwrap_err();
        assert!(e.to_string().contains("assigned-user"), "{e}");
        let e = apply_settings(&mut config, &["crm_user_overrides=101".into()]).unwrap_err();
        assert!(e.to_string().contains("extension:HighLevel user id"), "{e}");
    }
}
