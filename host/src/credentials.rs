//! Access tokens for components (`connectzero:pipeline/credentials`).
//!
//! The host holds each tenant's secrets and hands components short-lived
//! bearer tokens only. Refreshes are serialised per tenant and service:
//! 3CX allows one active token per API client (a second request may log
//! the first out) and HighLevel refresh tokens are single-use, so two
//! concurrent refreshes would break either.
//!
//! With a [`SecretStore`] attached ([`Credentials::use_store`]) the
//! secrets live encrypted in the database, with the 3CX access token
//! every host on the database shares (module `pbx`): a rotated HighLevel refresh
//! token is stored (with its access token, in one transaction) before the
//! new access token is used, a stored refresh token wins over the config
//! file's after a restart, and a refused grant marks the tenant "needs
//! re-authorisation" (`Storage::tenant_auth_status`) until the OAuth
//! install (`crate::server`'s `/t/{tenant}/oauth/…`) stores a new one.

mod install;
mod pbx;
mod refresh;
mod token;

pub use connectzero_runtime::credentials::{
    CredentialsGrant, CredentialsView, TokenSource, add_to_linker,
};
pub use install::{Grant, InstallError};

use crate::bindings::types::{Service, StageError};
use crate::config::{Secret, TenantConfig};
use crate::secrets::{SecretStore, SecretsError};
use crate::storage::TenantAuth;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use token::{fresh, lock, stored_access_token, stored_fresh};
/// Names of the secrets a tenant stores.
pub mod names {
    /// The 3CX API client's key.
    pub const PBX_CLIENT_SECRET: &str = "pbx.client_secret";
    /// The HighLevel app's OAuth client secret.
    pub const CRM_CLIENT_SECRET: &str = "crm.client_secret";
    /// The newest HighLevel refresh token.
    pub const CRM_REFRESH_TOKEN: &str = "crm.refresh_token";
    /// The refresh token the config file had when it was last imported: a
    /// different one in the file is a new install and wins; the same one is
    /// spent and the stored one wins.
    pub const CRM_REFRESH_TOKEN_FROM_CONFIG: &str = "crm.refresh_token.from_config";
    /// The newest HighLevel access token, stored as
    /// `<expires at, ms since the epoch> <token>`.
    pub const CRM_ACCESS_TOKEN: &str = "crm.access_token";
    /// The 3CX access token every host on the database uses (3CX keeps one
    /// per API client), stored as the HighLevel one is.
    pub const PBX_ACCESS_TOKEN: &str = "pbx.access_token";
}
use names::*;

/// Lifetime assumed for a configured HighLevel access token of unknown age.
const UNKNOWN_TOKEN_LIFETIME: Duration = Duration::from_secs(60 * 60);

#[derive(Clone)]
struct CachedToken {
    value: Secret,
    /// When to fetch the next one (a margin before it expires).
    renew_at: Instant,
    /// When the service stops taking it.
    expires_at: Instant,
}

/// One tenant's token source for 3CX and HighLevel.
pub struct Credentials {
    http: reqwest::Client,
    tenant_id: String,
    pbx: PbxSource,
    crm: CrmSource,
    /// Where secrets are persisted; unset in tests and benchmarks that
    /// keep them in memory only.
    store: OnceLock<SecretStore>,
    /// This instance's name on the shared refresh lease.
    holder: String,
}

struct PbxSource {
    base_url: String,
    client_id: String,
    client_secret: Mutex<Secret>,
    cached: Mutex<Option<CachedToken>>,
    refresh: tokio::sync::Mutex<()>,
}

struct CrmSource {
    base_url: String,
    client_id: String,
    client_secret: Mutex<Secret>,
    location_id: String,
    cached: Mutex<Option<CachedToken>>,
    refresh_token: Mutex<Secret>,
    refresh: tokio::sync::Mutex<()>,
}

impl Credentials {
    /// Token sources for `tenant`.
    pub fn new(http: reqwest::Client, tenant: &TenantConfig) -> Self {
        let crm_cached = tenant.crm.access_token.clone().map(|value| CachedToken {
            value,
            renew_at: Instant::now() + UNKNOWN_TOKEN_LIFETIME,
            expires_at: Instant::now() + UNKNOWN_TOKEN_LIFETIME,
        });
        Self {
            http,
            tenant_id: tenant.id.clone(),
            store: OnceLock::new(),
            holder: format!("{:016x}", rand::random::<u64>()),
            pbx: PbxSource {
                base_url: tenant.pbx.base_url.trim_end_matches('/').to_string(),
                client_id: tenant.pbx.client_id.clone(),
                client_secret: Mutex::new(tenant.pbx.client_secret.clone()),
                cached: Mutex::new(None),
                refresh: tokio::sync::Mutex::new(()),
            },
            crm: CrmSource {
                base_url: tenant.crm.base_url.trim_end_matches('/').to_string(),
                client_id: tenant.crm.client_id.clone(),
                client_secret: Mutex::new(tenant.crm.client_secret.clone()),
                location_id: tenant.crm.location_id.clone(),
                cached: Mutex::new(crm_cached),
                refresh_token: Mutex::new(tenant.crm.refresh_token.clone()),
                refresh: tokio::sync::Mutex::new(()),
            },
        }
    }

    /// Keep this tenant's secrets encrypted in `store` from now on.
    ///
    /// Client secrets given in the config file replace the stored ones (the
    /// file is the operator's latest word) and omitted ones are read from
    /// the store. The stored refresh token wins over the file's (the
    /// newest rotation; the file's is spent) unless the file's changed
    /// since it was last imported, which means a new install. A fresh
    /// stored access token is reused. Fails, naming the fix, when the
    /// stored secrets do not open with the store's key.
    pub fn use_store(&self, store: SecretStore) -> Result<(), SecretsError> {
        let id = self.tenant_id.as_str();
        for (name, slot) in [
            (PBX_CLIENT_SECRET, &self.pbx.client_secret),
            (CRM_CLIENT_SECRET, &self.crm.client_secret),
        ] {
            let configured = lock(slot).clone();
            let stored = store.get(id, name)?;
            if configured.expose().is_empty() {
                *lock(slot) = stored.ok_or_else(|| SecretsError::Missing {
                    tenant: id.to_string(),
                    name: name.to_string(),
                })?;
            } else if stored.as_ref() != Some(&configured) {
                store.put(id, &[(name, &configured)])?;
                if name == PBX_CLIENT_SECRET {
                    // A new API key may be a new API client: the token of
                    // the old one is not kept for it.
                    store.delete(id, PBX_ACCESS_TOKEN)?;
                }
            }
        }
        let configured = lock(&self.crm.refresh_token).clone();
        // A refresh token put in the file since the last start is a new
        // install made elsewhere and replaces the stored grant; else the
        // file's token is the one imported before: spent by now.
        if !import_refresh_token(&store, id, &configured)?
            && let Some(stored) = store.get(id, CRM_REFRESH_TOKEN)?
        {
            // The file's token is the one imported before: spent by now.
            *lock(&self.crm.refresh_token) = stored;
        }
        if let Some(token) = stored_access_token(&store, id)? {
            *lock(&self.crm.cached) = Some(token);
        }
        // The 3CX token another host on the database fetched.
        if let Some(token) = stored_fresh(&store, id, PBX_ACCESS_TOKEN)? {
            *lock(&self.pbx.cached) = Some(token);
        }
        if self.store.set(store).is_err() {
            tracing::warn!(tenant = %id, "a secrets store was already attached; keeping the first");
        }
        Ok(())
    }

    /// The secrets store, when one is attached.
    pub fn store(&self) -> Option<&SecretStore> {
        self.store.get()
    }

    /// Whether this tenant's CRM grant works, as far as is known (always
    /// `Authorised` without a store).
    pub fn auth_status(&self) -> Result<TenantAuth, SecretsError> {
        match self.store() {
            Some(store) => Ok(store.storage().tenant_auth_status(&self.tenant_id)?),
            None => Ok(TenantAuth::Authorised),
        }
    }

    /// A valid bearer token for `service`, fetching one when needed.
    pub async fn access_token(&self, service: Service) -> Result<String, StageError> {
        let (cached, refresh) = match service {
            Service::Pbx => (&self.pbx.cached, &self.pbx.refresh),
            Service::Crm => (&self.crm.cached, &self.crm.refresh),
        };
        if let Some(token) = fresh(cached) {
            return Ok(token);
        }
        let _guard = refresh.lock().await;
        // Another task may have refreshed while we waited for the lock.
        if let Some(token) = fresh(cached) {
            return Ok(token);
        }
        let token = match service {
            Service::Pbx => self.fetch_pbx_token().await?,
            Service::Crm => self.refresh_crm_token().await?,
        };
        let value = token.value.expose().to_string();
        *lock(cached) = Some(token);
        Ok(value)
    }

    /// The cached access token of `service`.
    fn cache_of(&self, service: Service) -> &Mutex<Option<CachedToken>> {
        match service {
            Service::Pbx => &self.pbx.cached,
            Service::Crm => &self.crm.cached,
        }
    }

    /// As [`Credentials::access_token`] for a component's invocation: a
    /// fetch it starts runs to its end even when the invocation is stopped
    /// (`crate::allowance`) while waiting. Cut mid-way, a HighLevel
    /// refresh would spend the single-use refresh token without keeping the
    /// new one, and the location would have to install the app again.
    pub async fn access_token_for_invocation(
        self: &Arc<Self>,
        service: Service,
    ) -> Result<String, StageError> {
        if let Some(token) = fresh(self.cache_of(service)) {
            return Ok(token);
        }
        let this = Arc::clone(self);
        tokio::spawn(async move { Credentials::access_token(&this, service).await })
            .await
            .unwrap_or_else(|e| {
                Err(StageError::Storage(format!(
                    "the token fetch ended abnormally: {e}"
                )))
            })
    }

    /// Forget `token` after the service answered 401 to it.
    pub fn token_rejected(&self, service: Service, token: &str) {
        let mut slot = lock(self.cache_of(service));
        if slot.as_ref().is_some_and(|t| t.value.expose() == token) {
            *slot = None;
        }
        drop(slot);
        // The stored copy too, or the next refresh would pick it up again;
        // a newer one another host stored stays, and is read next.
        let name = match service {
            Service::Pbx => PBX_ACCESS_TOKEN,
            Service::Crm => CRM_ACCESS_TOKEN,
        };
        if let Some(store) = self.store() {
            let stored = token::stored_token(store, &self.tenant_id, name);
            if let Ok(Some((stored, _))) = stored
                && stored.expose() == token
                && let Err(e) = store.delete(&self.tenant_id, name)
            {
                tracing::warn!(tenant = %self.tenant_id, error = %e, "could not forget a refused access token");
            }
        }
    }
}
impl TokenSource for Credentials {
    fn invocation_token(
        self: Arc<Self>,
        service: Service,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, StageError>> + Send>>
    {
        Box::pin(async move { self.access_token_for_invocation(service).await })
    }

    fn token_rejected(&self, service: Service, token: &str) {
        Credentials::token_rejected(self, service, token);
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

/// The concrete token source of a tenant the host built
/// ([`crate::connect::tenant`]), for the operator features that work it
/// (the OAuth install, the doctor, the alerts).
///
/// # Panics
/// When the tenant's token source is not the host's [`Credentials`]: the
/// host builds every tenant with them.
pub fn of(tenant: &crate::pipeline::Tenant) -> Arc<Credentials> {
    tenant
        .credentials
        .clone()
        .into_any()
        .downcast::<Credentials>()
        .unwrap_or_else(|_| panic!("tenant {} was not built by the host", tenant.id()))
}

/// Seal a refresh token a configuration file holds in clear, as `run`
/// imports it ([`Credentials::use_store`]): one the store has not
/// imported before is a new install made elsewhere and replaces the
/// stored grant (and its access token); the one imported before is spent
/// and changes nothing. Whether it was imported.
pub fn import_refresh_token(
    store: &SecretStore,
    id: &str,
    configured: &Secret,
) -> Result<bool, SecretsError> {
    let imported = store.get(id, CRM_REFRESH_TOKEN_FROM_CONFIG)?;
    if configured.expose().is_empty() || imported.as_ref() == Some(configured) {
        return Ok(false);
    }
    store.put_authorised(
        id,
        &[
            (CRM_REFRESH_TOKEN, configured),
            (CRM_REFRESH_TOKEN_FROM_CONFIG, configured),
        ],
    )?;
    store.delete(id, CRM_ACCESS_TOKEN)?;
    Ok(true)
}

/// Seal an access token a configuration file holds in clear (of unknown
/// age, so given the lifetime `run` assumes for it), unless the store
/// already has one.
pub fn import_access_token(
    store: &SecretStore,
    id: &str,
    configured: &Secret,
) -> Result<(), SecretsError> {
    if configured.expose().is_empty() || store.get(id, CRM_ACCESS_TOKEN)?.is_some() {
        return Ok(());
    }
    store.put(
        id,
        &[(
            CRM_ACCESS_TOKEN,
            &token::encode_access(configured, UNKNOWN_TOKEN_LIFETIME),
        )],
    )
}
