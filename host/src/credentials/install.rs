//! The HighLevel OAuth install: exchanging an authorization code for a
//! grant ([`Grant`]) and keeping it as a tenant's, or saying why not
//! ([`InstallError`]).

use super::names::*;
use super::token::{encode_access, exchange, lifetime, lock};
use super::{CachedToken, Credentials};
use crate::bindings::types::Service;
use crate::config::Secret;
use crate::secrets::SecretsError;
use guest_support::oauth::{InstallRefusal, TokenGrant, check_install};
use std::time::Duration;
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
        let grant = TokenGrant::CrmInstall {
            client_id: &crm.client_id,
            client_secret: client_secret.expose(),
            code,
            redirect_uri,
        };
        let token = exchange(
            &self.http,
            &grant,
            &crm.base_url,
            "HighLevel refused the install",
        )
        .await
        .map_err(|refusal| InstallError::Refused(guest_support::api::describe(&refusal.error)))?;
        let location_id = token.location_id().map(str::to_string);
        let lifetime = lifetime(&token, Service::Crm);
        let Some(refresh) = token.refresh_token.map(Secret::new) else {
            return Err(InstallError::Refused(
                "the token response has no refresh_token".into(),
            ));
        };
        Ok(Grant {
            location_id,
            lifetime,
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
        match check_install(grant.location_id.as_deref(), &crm.location_id) {
            Ok(()) => {}
            Err(InstallRefusal::NoLocation) => return Err(InstallError::NoLocation),
            Err(InstallRefusal::WrongLocation { installed }) => {
                return Err(InstallError::WrongLocation {
                    installed,
                    configured: crm.location_id.clone(),
                });
            }
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
        *lock(&crm.cached) = Some(CachedToken::lasting(grant.access, grant.lifetime));
        tracing::info!(tenant = %self.tenant_id, "HighLevel install stored; the tenant is authorised");
        Ok(())
    }
}
