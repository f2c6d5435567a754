//! Access tokens for components (`connectzero:pipeline/credentials`).
//!
//! The host holds each tenant's secrets and hands components short-lived
//! bearer tokens only. Refreshes are serialised per tenant and service:
//! 3CX allows one active token per API client (a second request logs the
//! first out) and HighLevel refresh tokens are single-use, so two
//! concurrent refreshes would break either.
//!
//! With a [`SecretStore`] attached ([`Credentials::use_store`]) the
//! secrets live encrypted in the database: a rotated HighLevel refresh
//! token is stored (with its access token, in one transaction) before the
//! new access token is used, a stored refresh token wins over the config
//! file's after a restart, and a refused grant marks the tenant "needs
//! re-authorisation" (`Storage::tenant_auth_status`) until the OAuth
//! install (`crate::server`'s `/t/{tenant}/oauth/…`) stores a new one.

use crate::bindings::host_provided::connectzero::pipeline::credentials;
use crate::bindings::types::{Service, StageError};
use crate::config::{Secret, TenantConfig};
use crate::secrets::{SecretStore, SecretsError};
use crate::storage::TenantAuth;
use crate::upstream::{message_of, network_error, retry_after, status_error};
use serde::Deserialize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
}
use names::*;

/// Tokens are renewed this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Lifetime assumed for a configured HighLevel access token of unknown age.
const UNKNOWN_TOKEN_LIFETIME: Duration = Duration::from_secs(60 * 60);

#[derive(Clone)]
struct CachedToken {
    value: Secret,
    renew_at: Instant,
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

/// How long a refresh lease lasts: longer than the token request may take
/// (the client's 30 s timeout), so it never lapses while in use.
const REFRESH_LEASE: Duration = Duration::from_secs(45);

/// How long a host waits for another's refresh before giving up for now.
const REFRESH_WAIT: Duration = Duration::from_secs(50);

/// How often a waiting host looks for the other's new token.
const REFRESH_POLL: Duration = Duration::from_millis(100);

/// The lease, given back when the refresh is over (or failed).
struct RefreshLease<'a> {
    store: &'a SecretStore,
    tenant: &'a str,
    holder: &'a str,
}

impl Drop for RefreshLease<'_> {
    fn drop(&mut self) {
        if let Err(e) = self
            .store
            .storage()
            .refresh_lease_release(self.tenant, self.holder)
        {
            // It lapses by itself after REFRESH_LEASE.
            tracing::warn!(tenant = %self.tenant, error = %e, "could not give the refresh lease back");
        }
    }
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

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default, rename = "locationId")]
    location_id: Option<String>,
}

/// A HighLevel grant from an authorization code, not yet kept by any
/// tenant (see `Credentials::keep_grant`).
pub struct Grant {
    /// The location the token is for; `None` for a Company token.
    pub location_id: Option<String>,
    lifetime: Duration,
    access: Secret,
    refresh: Secret,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("location_id", &self.location_id)
            .finish_non_exhaustive()
    }
}

/// Why an OAuth install could not complete.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The host keeps no secrets store, so it could not keep the tokens.
    #[error("this host has no secrets store; run it with a database (`connectzero run`)")]
    NoStore,
    /// HighLevel did not exchange the code.
    #[error("HighLevel did not exchange the authorization code: {0}; start the install again")]
    Refused(String),
    /// The app was installed in another sub-account than configured.
    #[error(
        "the app was installed in location {installed:?} but this tenant is configured for {configured:?}: choose that sub-account when installing, or fix crm.location_id"
    )]
    WrongLocation {
        /// Location the token is for.
        installed: String,
        /// Location the tenant is configured with.
        configured: String,
    },
    /// The token names no location: an agency-level (Company) install.
    #[error(
        "HighLevel issued an agency-level token with no location: install the app into the sub-account (location) itself"
    )]
    NoLocation,
    /// The tokens could not be stored.
    #[error("the tokens could not be stored: {0}")]
    Store(#[from] SecretsError),
}

impl Credentials {
    /// Token sources for `tenant`.
    pub fn new(http: reqwest::Client, tenant: &TenantConfig) -> Self {
        let crm_cached = tenant.crm.access_token.clone().map(|value| CachedToken {
            value,
            renew_at: Instant::now() + UNKNOWN_TOKEN_LIFETIME,
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
            }
        }
        let configured = lock(&self.crm.refresh_token).clone();
        let imported = store.get(id, CRM_REFRESH_TOKEN_FROM_CONFIG)?;
        if !configured.expose().is_empty() && imported.as_ref() != Some(&configured) {
            // A refresh token put in the file since the last start is a new
            // install made elsewhere: it replaces the stored grant.
            store.put_authorised(
                id,
                &[
                    (CRM_REFRESH_TOKEN, &configured),
                    (CRM_REFRESH_TOKEN_FROM_CONFIG, &configured),
                ],
            )?;
            store.delete(id, CRM_ACCESS_TOKEN)?;
        } else if let Some(stored) = store.get(id, CRM_REFRESH_TOKEN)? {
            // The file's token is the one imported before: spent by now.
            *lock(&self.crm.refresh_token) = stored;
        }
        if let Some(token) = stored_access_token(&store, id)? {
            *lock(&self.crm.cached) = Some(token);
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

    /// Complete an OAuth install: exchange `code` (grant type
    /// `authorization_code`, with the `redirect_uri` the authorize request
    /// named) for tokens, then keep them ([`Self::keep_grant`]).
    pub async fn install(&self, code: &str, redirect_uri: &str) -> Result<(), InstallError> {
        let grant = self.exchange_code(code, redirect_uri).await?;
        self.keep_grant(grant).await
    }

    /// Exchange `code` for a grant with this tenant's app credentials,
    /// keeping nothing: [`Self::keep_grant`] decides whether the grant is
    /// this tenant's.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Grant, InstallError> {
        let crm = &self.crm;
        let client_secret = lock(&crm.client_secret).clone();
        let form = [
            ("client_id", crm.client_id.as_str()),
            ("client_secret", client_secret.expose()),
            ("grant_type", "authorization_code"),
            ("code", code),
            ("user_type", "Location"),
            ("redirect_uri", redirect_uri),
        ];
        let response = self
            .http
            .post(format!("{}/oauth/token", crm.base_url))
            .form(&form)
            .send()
            .await
            .map_err(|e| InstallError::Refused(describe_network(&e)))?;
        let token = read_token(Service::Crm, response, "HighLevel refused the install")
            .await
            .map_err(|e| InstallError::Refused(crate::names::describe(&e)))?;
        let Some(refresh) = token.refresh_token.map(Secret::new) else {
            return Err(InstallError::Refused(
                "the token response has no refresh_token".into(),
            ));
        };
        Ok(Grant {
            location_id: token.location_id.filter(|l| !l.is_empty()),
            lifetime: crm_lifetime(token.expires_in),
            access: Secret::new(token.access_token),
            refresh,
        })
    }

    /// Keep `grant` as this tenant's: store it encrypted and clear the
    /// tenant's "needs re-authorisation" mark in one transaction, then use
    /// it. Only a grant for this tenant's own location may replace its
    /// grant: a Company (agency) token names none (NOTES.md §8).
    pub async fn keep_grant(&self, grant: Grant) -> Result<(), InstallError> {
        let store = self.store().ok_or(InstallError::NoStore)?;
        let crm = &self.crm;
        match grant.location_id.as_deref() {
            None => return Err(InstallError::NoLocation),
            Some(installed) if installed != crm.location_id => {
                return Err(InstallError::WrongLocation {
                    installed: installed.to_string(),
                    configured: crm.location_id.clone(),
                });
            }
            Some(_) => {}
        }
        // Serialised with refreshes: a refresh still running with the old
        // grant must not overwrite the new tokens afterwards.
        let _guard = crm.refresh.lock().await;
        let stored_access = encode_access(&grant.access, grant.lifetime);
        store.put_authorised(
            &self.tenant_id,
            &[
                (CRM_REFRESH_TOKEN, &grant.refresh),
                (CRM_ACCESS_TOKEN, &stored_access),
            ],
        )?;
        *lock(&crm.refresh_token) = grant.refresh;
        *lock(&crm.cached) = Some(CachedToken {
            value: grant.access,
            renew_at: renew_at(grant.lifetime),
        });
        tracing::info!(tenant = %self.tenant_id, "HighLevel install stored; the tenant is authorised");
        Ok(())
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
        tokio::spawn(async move { this.access_token(service).await })
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
        // The stored copy too, or the next refresh would pick it up again.
        if service == Service::Crm
            && let Some(store) = self.store()
        {
            let stored = stored_access_token(store, &self.tenant_id);
            if let Ok(Some(stored)) = stored
                && stored.value.expose() == token
                && let Err(e) = store.delete(&self.tenant_id, CRM_ACCESS_TOKEN)
            {
                tracing::warn!(tenant = %self.tenant_id, error = %e, "could not forget a refused access token");
            }
        }
    }

    /// Client credentials grant at `POST /connect/token` (3CX NOTES §1).
    async fn fetch_pbx_token(&self) -> Result<CachedToken, StageError> {
        let pbx = &self.pbx;
        let client_secret = lock(&pbx.client_secret).clone();
        let form = [
            ("client_id", pbx.client_id.as_str()),
            ("client_secret", client_secret.expose()),
            ("grant_type", "client_credentials"),
        ];
        let response = self
            .http
            .post(format!("{}/connect/token", pbx.base_url))
            .form(&form)
            .send()
            .await
            .map_err(|e| network_error(Service::Pbx, &e))?;
        let hint = format!(
            "3CX refused API client {:?}: check its Client ID and API key under Admin > Integrations > API, and that XAPI access is enabled",
            pbx.client_id
        );
        let token = read_token(Service::Pbx, response, &hint).await?;
        Ok(CachedToken {
            value: Secret::new(token.access_token),
            renew_at: renew_at(pbx_lifetime(token.expires_in)),
        })
    }

    /// Refresh-token grant at `POST /oauth/token` (operationId
    /// `get-access-token`). The refresh token rotates: the new one replaces
    /// the old (and is stored, when there is a store) before the new access
    /// token is used.
    async fn refresh_crm_token(&self) -> Result<CachedToken, StageError> {
        let crm = &self.crm;
        let id = self.tenant_id.as_str();
        let mut _lease = None;
        if let Some(store) = self.store() {
            // One refresh at a time across every host on the database.
            match self.take_refresh_lease(store).await? {
                Ok(lease) => _lease = Some(lease),
                Err(refreshed) => return Ok(refreshed),
            }
            let status = store
                .storage()
                .tenant_auth_status(id)
                .map_err(|e| storage_error(&e))?;
            // Asking HighLevel again would only be refused again (and count
            // against the rate limit); the call waits for the install.
            if let TenantAuth::NeedsReauthorisation { reason, .. } = status {
                return Err(needs_reauthorisation(id, &reason));
            }
            // Another process, or the install callback, may have stored
            // newer tokens than this one holds.
            if let Some(token) = stored_access_token(store, id).map_err(|e| storage_error(&e))? {
                return Ok(token);
            }
            if let Some(stored) = store
                .get(id, CRM_REFRESH_TOKEN)
                .map_err(|e| storage_error(&e))?
            {
                *lock(&crm.refresh_token) = stored;
            }
        }
        let refresh_token = lock(&crm.refresh_token).clone();
        if refresh_token.expose().is_empty() {
            let reason = format!(
                "the HighLevel app was never installed for this tenant: open /t/{id}/oauth/install on this host"
            );
            self.mark_needs_reauthorisation(&reason);
            return Err(needs_reauthorisation(id, &reason));
        }
        let client_secret = lock(&crm.client_secret).clone();
        let form = [
            ("client_id", crm.client_id.as_str()),
            ("client_secret", client_secret.expose()),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("user_type", "Location"),
        ];
        let response = self
            .http
            .post(format!("{}/oauth/token", crm.base_url))
            .form(&form)
            .send()
            .await
            .map_err(|e| network_error(Service::Crm, &e))?;
        let hint = format!(
            "HighLevel refused the refresh token of location {}: the app was uninstalled or the grant revoked; re-install the app for this location at /t/{id}/oauth/install",
            crm.location_id
        );
        let token = match read_token_checked(Service::Crm, response, &hint).await {
            Ok(token) => token,
            Err((error, revoked)) => {
                if revoked
                    && !self.rotated_elsewhere(&refresh_token)
                    && let StageError::Unauthorized(e) = &error
                {
                    self.mark_needs_reauthorisation(&e.message);
                }
                return Err(error);
            }
        };
        let lifetime = crm_lifetime(token.expires_in);
        let access = Secret::new(token.access_token);
        if let Some(rotated) = token.refresh_token.map(Secret::new) {
            // The old refresh token is spent whatever happens next, so the
            // new one replaces it in memory first.
            *lock(&crm.refresh_token) = rotated.clone();
            if let Some(store) = self.store() {
                let stored_access = encode_access(&access, lifetime);
                store
                    .put(
                        id,
                        &[
                            (CRM_REFRESH_TOKEN, &rotated),
                            (CRM_ACCESS_TOKEN, &stored_access),
                        ],
                    )
                    .map_err(|e| {
                        // The new access token is not handed out before its
                        // refresh token is stored: a restart now would come
                        // back with the spent one and lose the grant. The
                        // next attempt refreshes again with the rotated
                        // token kept in memory above.
                        StageError::Storage(format!(
                            "the rotated HighLevel refresh token could not be stored: {e}"
                        ))
                    })?;
            }
        }
        Ok(CachedToken {
            value: access,
            renew_at: renew_at(lifetime),
        })
    }

    /// The tenant's refresh lease, or the token another host refreshed
    /// while this one waited for it. Waits at most [`REFRESH_WAIT`].
    async fn take_refresh_lease<'a>(
        &'a self,
        store: &'a SecretStore,
    ) -> Result<Result<RefreshLease<'a>, CachedToken>, StageError> {
        let id = self.tenant_id.as_str();
        let waited_since = Instant::now();
        loop {
            let now = now_ms();
            let until = now + REFRESH_LEASE.as_millis() as i64;
            let taken = store
                .storage()
                .refresh_lease_take(id, &self.holder, now, until)
                .map_err(|e| storage_error(&e))?;
            if taken {
                return Ok(Ok(RefreshLease {
                    store,
                    tenant: id,
                    holder: &self.holder,
                }));
            }
            if let Some(token) = stored_access_token(store, id).map_err(|e| storage_error(&e))? {
                return Ok(Err(token));
            }
            if waited_since.elapsed() >= REFRESH_WAIT {
                return Err(StageError::Network(
                    "another host has been refreshing the HighLevel grant for too long; tried again later".into(),
                ));
            }
            tokio::time::sleep(REFRESH_POLL).await;
        }
    }

    /// Whether the stored refresh token is no longer `sent`: another
    /// process sharing the database rotated it while our refresh was in
    /// flight, so HighLevel refusing `sent` does not mean the grant is gone.
    fn rotated_elsewhere(&self, sent: &Secret) -> bool {
        self.store()
            .and_then(|store| store.get(&self.tenant_id, CRM_REFRESH_TOKEN).ok().flatten())
            .is_some_and(|stored| &stored != sent)
    }

    fn mark_needs_reauthorisation(&self, reason: &str) {
        let Some(store) = self.store() else { return };
        tracing::warn!(tenant = %self.tenant_id, %reason, "the tenant needs re-authorisation; its calls wait");
        if let Err(e) = store
            .storage()
            .set_needs_reauthorisation(&self.tenant_id, reason, now_ms())
        {
            tracing::error!(tenant = %self.tenant_id, error = %e, "could not record that the tenant needs re-authorisation");
        }
    }
}

/// [ASSUMED] (HighLevel NOTES §2.2: the error body for a revoked refresh
/// token is undocumented): OAuth servers answer `invalid_grant` (RFC 6749
/// §5.2); node-oauth2-server, which the simulator follows, words it
/// "Invalid grant: …". Anything else (e.g. "Invalid client") is not a
/// revoked grant and stays an ordinary retryable refusal. `body` is the
/// token endpoint's raw error body.
fn is_revoked_grant(body: &str) -> bool {
    let body = body.to_ascii_lowercase();
    body.contains("invalid_grant") || body.contains("invalid grant")
}

fn needs_reauthorisation(tenant: &str, reason: &str) -> StageError {
    StageError::Unauthorized(crate::bindings::types::UpstreamError {
        service: Service::Crm,
        status: 401,
        message: format!(
            "tenant {tenant} needs re-authorisation ({reason}); install the app again at /t/{tenant}/oauth/install"
        ),
    })
}

fn storage_error(error: &dyn std::fmt::Display) -> StageError {
    StageError::Storage(error.to_string())
}

fn describe_network(error: &reqwest::Error) -> String {
    crate::names::describe(&network_error(Service::Crm, error))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The stored access token's value: `<expires at ms> <token>`.
fn encode_access(token: &Secret, lifetime: Duration) -> Secret {
    let expires_at = now_ms() + lifetime.as_millis() as i64;
    Secret::new(format!("{expires_at} {}", token.expose()))
}

/// The stored access token, if there is one that is not due for renewal.
fn stored_access_token(
    store: &SecretStore,
    tenant: &str,
) -> Result<Option<CachedToken>, SecretsError> {
    let Some(stored) = store.get(tenant, CRM_ACCESS_TOKEN)? else {
        return Ok(None);
    };
    let Some((expires_at, token)) = stored.expose().split_once(' ') else {
        return Ok(None);
    };
    let Ok(expires_at) = expires_at.parse::<i64>() else {
        return Ok(None);
    };
    let left = Duration::from_millis(u64::try_from(expires_at - now_ms()).unwrap_or(0));
    if left <= REFRESH_MARGIN {
        return Ok(None);
    }
    Ok(Some(CachedToken {
        value: Secret::new(token),
        renew_at: renew_at(left),
    }))
}

/// Read a token endpoint's answer; 400/401 become `unauthorized` with `hint`.
async fn read_token(
    service: Service,
    response: reqwest::Response,
    hint: &str,
) -> Result<TokenResponse, StageError> {
    read_token_checked(service, response, hint)
        .await
        .map_err(|(error, _)| error)
}

/// [`read_token`], also telling whether the refusal says the grant is
/// gone ([`is_revoked_grant`] of the raw body: `message_of` would prefer
/// `error_description` and hide an `"error": "invalid_grant"`).
async fn read_token_checked(
    service: Service,
    response: reqwest::Response,
    hint: &str,
) -> Result<TokenResponse, (StageError, bool)> {
    let status = response.status().as_u16();
    let retry = retry_after(&response);
    let body = crate::upstream::capped_text(response)
        .await
        .map_err(|e| (network_error(service, &e), false))?;
    if status == 200 {
        return serde_json::from_str(&body).map_err(|e| {
            let error = StageError::InvalidData(format!(
                "the token endpoint's answer is not a token response: {e}"
            ));
            (error, false)
        });
    }
    let revoked = matches!(status, 400 | 401) && is_revoked_grant(&body);
    let message = format!("{hint} ({})", message_of(&body));
    let status = if status == 400 { 401 } else { status };
    Err((status_error(service, status, retry, message), revoked))
}

/// A 3CX token's lifetime: one reading for both runtimes
/// (`guest_support::waits`).
fn pbx_lifetime(expires_in: Option<u64>) -> Duration {
    Duration::from_secs(guest_support::waits::pbx_token_lifetime_secs(expires_in))
}

/// A HighLevel access token's lifetime (`guest_support::waits`).
fn crm_lifetime(expires_in: Option<u64>) -> Duration {
    Duration::from_secs(guest_support::waits::crm_token_lifetime_secs(expires_in))
}

fn renew_at(lifetime: Duration) -> Instant {
    Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN)
}

fn fresh(cached: &Mutex<Option<CachedToken>>) -> Option<String> {
    lock(cached)
        .as_ref()
        .filter(|t| Instant::now() < t.renew_at)
        .map(|t| t.value.expose().to_string())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the `credentials` functions work with during one call: the
/// tenant's token source, when the component was granted one, and the
/// invocation's allowance (a token fetch is an upstream wait).
pub struct CredentialsView<'a> {
    /// The grant; `None` refuses every request.
    pub credentials: Option<&'a Arc<Credentials>>,
    /// Token fetches are credited to it.
    pub allowance: &'a crate::allowance::Allowance,
}

/// The `credentials` interface's [`wasmtime::component::HasData`].
pub struct CredentialsGrant;

impl wasmtime::component::HasData for CredentialsGrant {
    type Data<'a> = CredentialsView<'a>;
}

/// Link `connectzero:pipeline/credentials`, with `view` picking the grant
/// out of the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> CredentialsView<'_>,
) -> wasmtime::Result<()> {
    credentials::add_to_linker::<T, CredentialsGrant>(linker, view)
}

impl credentials::Host for CredentialsView<'_> {
    async fn access_token(
        &mut self,
        service: Service,
    ) -> wasmtime::Result<Result<String, StageError>> {
        let Some(credentials) = self.credentials.cloned() else {
            return Ok(Err(StageError::InvalidSettings(
                "this component was not granted credentials".into(),
            )));
        };
        // A refresh, or waiting for another host's, is an upstream wait.
        let _wait = self.allowance.credited();
        Ok(credentials.access_token_for_invocation(service).await)
    }

    fn token_rejected(&mut self, service: Service, token: String) -> wasmtime::Result<()> {
        if let Some(credentials) = self.credentials {
            credentials.token_rejected(service, &token);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_invalid_grant_answers_count_as_revoked() {
        assert!(is_revoked_grant(
            r#"{"statusCode":400,"message":"Invalid grant: refresh token is invalid"}"#
        ));
        assert!(is_revoked_grant(
            r#"{"error":"invalid_grant","error_description":"Invalid refresh token"}"#
        ));
        assert!(!is_revoked_grant(
            r#"{"statusCode":401,"message":"Invalid client: client is invalid"}"#
        ));
    }

    #[test]
    fn no_expires_in_overflows_the_refresh_schedule() {
        for expires_in in [
            Some(u64::MAX),
            Some(u64::MAX / 1000),
            Some(299),
            Some(0),
            None,
        ] {
            let (pbx, crm) = (pbx_lifetime(expires_in), crm_lifetime(expires_in));
            assert!(pbx.as_secs() <= guest_support::waits::MAX_TOKEN_LIFETIME_SECS);
            assert!(crm.as_secs() <= guest_support::waits::MAX_TOKEN_LIFETIME_SECS);
            // Neither the refresh time nor the stored expiry overflows.
            let _ = renew_at(pbx);
            let _ = encode_access(&Secret::new("t"), crm);
        }
    }

    #[test]
    fn pbx_token_lifetimes_accept_minutes_and_seconds() {
        assert_eq!(pbx_lifetime(Some(60)), Duration::from_secs(3600));
        assert_eq!(pbx_lifetime(Some(3600)), Duration::from_secs(3600));
        assert_eq!(pbx_lifetime(None), Duration::from_secs(3600));
    }
}
