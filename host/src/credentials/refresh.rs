//! Fetching new HighLevel tokens: the refresh-token grant, one refresh at
//! a time per tenant across every host on the database (the refresh
//! lease, which the 3CX token's fetch takes too, [`super::pbx`]), and
//! marking a tenant whose grant was revoked as needing re-authorisation.

use super::names::*;
use super::token::{
    encode_access, exchange, lifetime, lock, now_ms, stored_access_token, stored_fresh,
};
use super::{CachedToken, Credentials};
use crate::bindings::types::{Service, StageError};
use crate::config::Secret;
use crate::secrets::SecretStore;
use crate::storage::TenantAuth;
use guest_support::oauth::TokenGrant;
use std::time::{Duration, Instant};
/// How long a refresh lease lasts: longer than the token request may take
/// (the client's 30 s timeout), so it never lapses while in use.
const REFRESH_LEASE: Duration = Duration::from_secs(45);

/// How long a host waits for another's refresh before giving up for now.
const REFRESH_WAIT: Duration = Duration::from_secs(50);

/// How often a waiting host looks for the other's new token.
const REFRESH_POLL: Duration = Duration::from_millis(100);

/// The lease, given back when the refresh is over (or failed).
pub(super) struct RefreshLease<'a> {
    store: &'a SecretStore,
    key: String,
    holder: &'a str,
}

impl Drop for RefreshLease<'_> {
    fn drop(&mut self) {
        if let Err(e) = self
            .store
            .storage()
            .refresh_lease_release(&self.key, self.holder)
        {
            // It lapses by itself after REFRESH_LEASE.
            tracing::warn!(lease = %self.key, error = %e, "could not give the refresh lease back");
        }
    }
}

impl Credentials {
    /// Refresh-token grant at `POST /oauth/token` (operationId
    /// `get-access-token`). The refresh token rotates: the new one replaces
    /// the old (and is stored, when there is a store) before the new access
    /// token is used.
    pub(super) async fn refresh_crm_token(&self) -> Result<CachedToken, StageError> {
        let crm = &self.crm;
        let id = self.tenant_id.as_str();
        let mut _lease = None;
        if let Some(store) = self.store() {
            // One refresh at a time across every host on the database.
            match self.take_lease(store, id, CRM_ACCESS_TOKEN).await? {
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
                "the HighLevel app was never installed for this tenant: open /t/{id}/oauth/install on this host (the app's redirect URL: /oauth/callback on this host, or /t/{id}/oauth/callback with oauth.per_tenant_redirect)"
            );
            self.mark_needs_reauthorisation(&reason);
            return Err(needs_reauthorisation(id, &reason));
        }
        let client_secret = lock(&crm.client_secret).clone();
        let grant = TokenGrant::CrmRefresh {
            client_id: &crm.client_id,
            client_secret: client_secret.expose(),
            refresh_token: refresh_token.expose(),
        };
        let hint = format!(
            "HighLevel refused the refresh token of location {}: the app was uninstalled or the grant revoked; re-install the app for this location at /t/{id}/oauth/install",
            crm.location_id
        );
        let token = match exchange(&self.http, &grant, &crm.base_url, &hint).await {
            Ok(token) => token,
            Err(refusal) => {
                let (error, revoked) = (StageError::from(refusal.error), refusal.revoked);
                if revoked
                    && !self.rotated_elsewhere(&refresh_token)
                    && let StageError::Unauthorized(e) = &error
                {
                    self.mark_needs_reauthorisation(&e.message);
                }
                return Err(error);
            }
        };
        let lifetime = lifetime(&token, Service::Crm);
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
        Ok(CachedToken::lasting(access, lifetime))
    }

    /// The lease `key` (the tenant's id for its HighLevel grant, see
    /// [`super::pbx`] for its 3CX token), or the token another host stored
    /// under `name` while this one waited for it. Waits at most
    /// [`REFRESH_WAIT`].
    pub(super) async fn take_lease<'a>(
        &'a self,
        store: &'a SecretStore,
        key: &str,
        name: &str,
    ) -> Result<Result<RefreshLease<'a>, CachedToken>, StageError> {
        let id = self.tenant_id.as_str();
        let waited_since = Instant::now();
        loop {
            let now = now_ms();
            let until = now + REFRESH_LEASE.as_millis() as i64;
            let taken = store
                .storage()
                .refresh_lease_take(key, &self.holder, now, until)
                .map_err(|e| storage_error(&e))?;
            if taken {
                return Ok(Ok(RefreshLease {
                    store,
                    key: key.to_string(),
                    holder: &self.holder,
                }));
            }
            if let Some(token) = stored_fresh(store, id, name).map_err(|e| storage_error(&e))? {
                return Ok(Err(token));
            }
            if waited_since.elapsed() >= REFRESH_WAIT {
                return Err(StageError::Network(format!(
                    "another host has been fetching this tenant's token for too long ({key}); tried again later"
                )));
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

fn needs_reauthorisation(tenant: &str, reason: &str) -> StageError {
    StageError::Unauthorized(crate::bindings::types::UpstreamError {
        service: Service::Crm,
        status: 401,
        message: format!(
            "tenant {tenant} needs re-authorisation ({reason}); install the app again at /t/{tenant}/oauth/install"
        ),
    })
}

pub(super) fn storage_error(error: &dyn std::fmt::Display) -> StageError {
    StageError::Storage(error.to_string())
}
