//! OAuth grants: authorization codes, access tokens and rotating refresh tokens.
//!
//! Semantics (NOTES.md §2.3):
//! - access tokens live `access_token_lifetime_secs`;
//! - refresh tokens rotate and are single-use [ASSUMED strict]: redeeming one
//!   removes it and issues a new pair, while the access token issued with it
//!   stays valid until it expires;
//! - authorization codes are single-use;
//! - revoking the grant (an uninstall) invalidates every code and token
//!   issued so far; a later install starts a fresh grant.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::ids;
use super::model::SimTokens;

/// Why a grant could not be redeemed at `POST /oauth/token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrantError {
    /// Unknown, used, or revoked authorization code.
    InvalidCode,
    /// Unknown, used, or revoked refresh token.
    InvalidRefreshToken,
}

/// The identity an access token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenIdentity {
    /// The location the token may act on.
    pub location_id: String,
}

#[derive(Debug)]
struct AccessGrant {
    location_id: String,
    expires_at: Instant,
}

/// All credentials issued by the simulator.
#[derive(Debug, Default)]
pub(crate) struct TokenStore {
    access: HashMap<String, AccessGrant>,
    /// refresh token -> location id; removed when used or revoked.
    refresh: HashMap<String, String>,
    /// authorization code -> location id (`""`: an agency-level Company
    /// grant); removed when used or revoked.
    codes: HashMap<String, String>,
}

impl TokenStore {
    /// Issues a new access + refresh token pair for `location_id`.
    pub(crate) fn issue_pair(&mut self, location_id: &str, lifetime: Duration) -> SimTokens {
        let access_token = ids::secret("hlsim_at_");
        let refresh_token = ids::secret("hlsim_rt_");
        self.access.insert(
            access_token.clone(),
            AccessGrant {
                location_id: location_id.to_owned(),
                expires_at: Instant::now() + lifetime,
            },
        );
        self.refresh
            .insert(refresh_token.clone(), location_id.to_owned());
        SimTokens {
            access_token,
            refresh_token,
            expires_in: lifetime.as_secs(),
        }
    }

    /// Creates a single-use authorization code for `location_id`, as the
    /// chooselocation consent screen would hand to the app's redirect URI.
    pub(crate) fn new_code(&mut self, location_id: &str) -> String {
        let code = ids::secret("hlsim_code_");
        self.codes.insert(code.clone(), location_id.to_owned());
        code
    }

    /// Redeems an authorization code (grant_type `authorization_code`).
    pub(crate) fn redeem_code(
        &mut self,
        code: &str,
        lifetime: Duration,
    ) -> Result<(String, SimTokens), GrantError> {
        let location_id = self.codes.remove(code).ok_or(GrantError::InvalidCode)?;
        let pair = self.issue_pair(&location_id, lifetime);
        Ok((location_id, pair))
    }

    /// Redeems a refresh token (grant_type `refresh_token`): the token is
    /// consumed and a new pair issued.
    pub(crate) fn redeem_refresh(
        &mut self,
        refresh_token: &str,
        lifetime: Duration,
    ) -> Result<(String, SimTokens), GrantError> {
        let location_id = self
            .refresh
            .remove(refresh_token)
            .ok_or(GrantError::InvalidRefreshToken)?;
        let pair = self.issue_pair(&location_id, lifetime);
        Ok((location_id, pair))
    }

    /// The identity of a valid, unexpired access token.
    pub(crate) fn authenticate(&self, access_token: &str) -> Option<TokenIdentity> {
        let grant = self.access.get(access_token)?;
        (Instant::now() < grant.expires_at).then(|| TokenIdentity {
            location_id: grant.location_id.clone(),
        })
    }

    /// Makes every access token issued so far expired.
    pub(crate) fn expire_access_tokens(&mut self) {
        let now = Instant::now();
        for grant in self.access.values_mut() {
            grant.expires_at = now;
        }
    }

    /// Invalidates every code, access token and refresh token issued so far.
    pub(crate) fn revoke_all(&mut self) {
        self.access.clear();
        self.refresh.clear();
        self.codes.clear();
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_399);

    #[test]
    fn refresh_rotates_and_old_access_stays_valid() {
        let mut store = TokenStore::default();
        let first = store.issue_pair("loc", DAY);
        let (location, second) = store.redeem_refresh(&first.refresh_token, DAY).unwrap();
        assert_eq!(location, "loc");
        assert_ne!(first.refresh_token, second.refresh_token);
        assert_eq!(
            store.redeem_refresh(&first.refresh_token, DAY),
            Err(GrantError::InvalidRefreshToken)
        );
        assert!(store.authenticate(&first.access_token).is_some());
        assert!(store.authenticate(&second.access_token).is_some());
    }

    #[test]
    fn codes_are_single_use_and_zero_lifetime_expires_at_once() {
        let mut store = TokenStore::default();
        let code = store.new_code("loc");
        let (_, pair) = store.redeem_code(&code, Duration::ZERO).unwrap();
        assert_eq!(store.redeem_code(&code, DAY), Err(GrantError::InvalidCode));
        assert!(store.authenticate(&pair.access_token).is_none());
    }

    #[test]
    fn expire_and_revoke() {
        let mut store = TokenStore::default();
        let pair = store.issue_pair("loc", DAY);
        store.expire_access_tokens();
        assert!(store.authenticate(&pair.access_token).is_none());
        let (_, fresh) = store.redeem_refresh(&pair.refresh_token, DAY).unwrap();
        assert!(store.authenticate(&fresh.access_token).is_some());
        store.revoke_all();
        assert!(store.authenticate(&fresh.access_token).is_none());
        assert!(store.redeem_refresh(&fresh.refresh_token, DAY).is_err());
    }
}
