//! The 3CX access token, one per tenant for every host on the database.
//!
//! 3CX keeps one active access token per API client (3CX NOTES §1, §8).
//! What it does when a second is asked for is not documented: NOTES §1
//! assumes the new one logs the old out; "one active token" could as well
//! mean it answers the active one again, or refuses while one is active.
//! Under the first reading, hosts fetching their own tokens log each other
//! out, each 401 making the loser fetch again. So the token is kept in the
//! tenant's secrets, sealed like the HighLevel access token
//! ([`PBX_ACCESS_TOKEN`], `<expires at ms> <token>`), and the host is right
//! under every reading (the simulator plays each, `TokenIssue`):
//!
//! - every host uses the stored token until a margin before it expires;
//! - one host at a time fetches a new one, under a refresh lease of its
//!   own ([`lease_key`]); the others wait for the token it stores;
//! - a host whose token 3CX refused forgets it and reads the store again,
//!   where another host may have put a newer one (the stored copy is
//!   deleted only when it is the refused token:
//!   `Credentials::token_rejected`);
//! - a fetch that fails while the current token still has time left keeps
//!   that token and tries again soon: 3CX refusing a second token while
//!   one is active, or down for a moment, costs no call.

use super::names::PBX_ACCESS_TOKEN;
use super::refresh::storage_error;
use super::token::{
    encode_access, exchange, fresh_enough, lifetime, lock, stored_fresh, stored_token,
};
use super::{CachedToken, Credentials};
use crate::bindings::types::{Service, StageError};
use crate::config::Secret;
use guest_support::oauth::{TokenGrant, pbx_refused_hint};
use std::time::{Duration, Instant};

/// A token with less than this left is not handed out, even when no new
/// one can be had: a request sent with it could arrive after it expired.
const LAST_USE: Duration = Duration::from_secs(5);

/// How soon a host tries again after keeping a token it could not
/// replace (at most; sooner when the token has less left).
const RETRY_WITHIN: Duration = Duration::from_secs(10);

/// The refresh lease of `tenant`'s 3CX token. Tenant ids are letters,
/// digits, '-' and '_', so this never names a tenant's HighLevel lease
/// (its bare id).
pub(super) fn lease_key(tenant: &str) -> String {
    format!("{tenant}:pbx")
}

impl Credentials {
    /// A 3CX token for this tenant: the one another host stored meanwhile,
    /// a new one (stored for every host), or, when none can be had, the
    /// current one while it lasts.
    pub(super) async fn fetch_pbx_token(&self) -> Result<CachedToken, StageError> {
        let id = self.tenant_id.as_str();
        let mut _lease = None;
        if let Some(store) = self.store() {
            match self
                .take_lease(store, &lease_key(id), PBX_ACCESS_TOKEN)
                .await?
            {
                Ok(lease) => _lease = Some(lease),
                Err(stored) => return Ok(stored),
            }
            // Stored by the host that held the lease just before.
            if let Some(token) =
                stored_fresh(store, id, PBX_ACCESS_TOKEN).map_err(|e| storage_error(&e))?
            {
                return Ok(token);
            }
        }
        match self.request_pbx_token().await {
            Ok((value, lifetime)) => {
                // 3CX may answer with the token already active (one reading
                // of "one active token per API client", 3CX NOTES §8): its
                // `expires_in` is then what that token has left, which the
                // lifetime reading may take for minutes. The expiry known
                // here wins when it is sooner.
                let lifetime = self
                    .known_pbx_lifetime(&value)
                    .map_or(lifetime, |left| left.min(lifetime));
                if let Some(store) = self.store()
                    && let Err(e) =
                        store.put(id, &[(PBX_ACCESS_TOKEN, &encode_access(&value, lifetime))])
                {
                    // Still a good token; the other hosts fetch their own.
                    tracing::warn!(tenant = %id, error = %e, "could not store the 3CX token for the other hosts");
                }
                Ok(retry_soon_if_due(CachedToken::lasting(value, lifetime)))
            }
            Err(error) => match self.current_pbx_token() {
                Some(current) => {
                    tracing::warn!(tenant = %id, error = %error, "no new 3CX token for now; the current one is used while it lasts");
                    Ok(retry_soon_if_due(current))
                }
                None => Err(error),
            },
        }
    }

    /// The client credentials grant at `POST /connect/token` (3CX NOTES §1):
    /// the token and its lifetime.
    async fn request_pbx_token(&self) -> Result<(Secret, Duration), StageError> {
        let pbx = &self.pbx;
        let client_secret = lock(&pbx.client_secret).clone();
        let grant = TokenGrant::PbxClientCredentials {
            client_id: &pbx.client_id,
            client_secret: client_secret.expose(),
        };
        let hint = pbx_refused_hint(&pbx.client_id);
        let token = exchange(&self.http, &grant, &pbx.base_url, &hint)
            .await
            .map_err(|refusal| StageError::from(refusal.error))?;
        let lifetime = lifetime(&token, Service::Pbx);
        Ok((Secret::new(token.access_token), lifetime))
    }

    /// The token in use (this host's or the stored one, whichever lasts
    /// longer), if it has more than [`LAST_USE`] left.
    fn current_pbx_token(&self) -> Option<CachedToken> {
        self.known_pbx_tokens()
            .into_iter()
            .filter(|token| fresh_enough(token, LAST_USE))
            .max_by_key(|token| token.expires_at)
    }

    /// How long `value` has left when it is a token already known here
    /// (this host's or the stored one), however little.
    fn known_pbx_lifetime(&self, value: &Secret) -> Option<Duration> {
        self.known_pbx_tokens()
            .into_iter()
            .filter(|token| token.value.expose() == value.expose())
            .map(|token| token.expires_at.saturating_duration_since(Instant::now()))
            .min()
    }

    /// This host's token and the stored one, expired or not.
    fn known_pbx_tokens(&self) -> Vec<CachedToken> {
        let cached = lock(&self.pbx.cached).clone();
        let stored = self
            .store()
            .and_then(|store| {
                stored_token(store, &self.tenant_id, PBX_ACCESS_TOKEN)
                    .ok()
                    .flatten()
            })
            .map(|(value, left_ms)| {
                CachedToken::lasting(value, Duration::from_millis(left_ms as u64))
            });
        [cached, stored].into_iter().flatten().collect()
    }
}

/// `token`, to be replaced within [`RETRY_WITHIN`] (at most half its
/// remaining life) when it is already due for renewal: a token 3CX gave
/// with less than the renewal margin left, or one kept after a failed
/// fetch, is used meanwhile, without asking 3CX on every call.
fn retry_soon_if_due(mut token: CachedToken) -> CachedToken {
    let now = Instant::now();
    if token.renew_at <= now {
        let left = token.expires_at.saturating_duration_since(now);
        token.renew_at = now + RETRY_WITHIN.min(left / 2);
    }
    token
}
