//! OAuth grants: authorization codes, access tokens and rotating refresh tokens.
//!
//! Semantics (NOTES.md §2.3):
//! - access tokens live `access_token_lifetime_secs`;
//! - refresh tokens rotate and are single-use [ASSUMED strict]: redeeming one
//!   removes it and issues a new pair, while the access token issued with it
//!   stays valid until it expires;
//! - authorization codes are single-use; a code handed to a redirect URI
//!   is redeemed only with that same `redirect_uri` (RFC 6749 §4.1.3
//!   [ASSUMED]: HighLevel does not document it), and a mismatch leaves the
//!   code unused, as node-oauth2-server does;
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
    /// The `redirect_uri` is not the one the code was handed to.
    RedirectUriMismatch,
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
    /// authorization code -> what it grants; removed when used or revoked.
    codes: HashMap<String, Code>,
}

/// What an authorization code grants.
#[derive(Debug)]
struct Code {
    /// The location (`""`: an agency-level Company grant).
    location_id: String,
    /// The redirect URI it was handed to, when known.
    redirect_uri: Option<String>,
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
    /// chooselocation consent screen would hand to the app's redirect URI
    /// (`redirect_uri`, when the test names it).
    pub(crate) fn new_code(&mut self, location_id: &str, redirect_uri: Option<&str>) -> String {
        let code = ids::secret("hlsim_code_");
        self.codes.insert(
            code.clone(),
            Code {
                location_id: location_id.to_owned(),
                redirect_uri: redirect_uri.map(str::to_owned),
            },
        );
        code
    }

    /// Redeems an authorization code (grant_type `authorization_code`)
    /// sent with `redirect_uri`.
    pub(crate) fn redeem_code(
        &mut self,
        code: &str,
        redirect_uri: Option<&str>,
        lifetime: Duration,
    ) -> Result<(String, SimTokens), GrantError> {
        let granted = self.codes.get(code).ok_or(GrantError::InvalidCode)?;
        if granted
            .redirect_uri
            .as_deref()
            .is_some_and(|bound| redirect_uri != Some(bound))
        {
            return Err(GrantError::RedirectUriMismatch);
        }
        let location_id = self
            .codes
            .remove(code)
            .map(|c| c.location_id)
            .ok_or(GrantError::InvalidCode)?;
        let pair = self.issue_pair(&location_id, lifetime);
        Ok((location_id, pair))
    }

    /// The location a refresh token that is still valid is for.
    pub(crate) fn refresh_token_location(&self, refresh_token: &str) -> Option<String> {
        self.refresh.get(refresh_token).cloned()
    }

    /// Every access and refresh token still valid.
    pub(crate) fn valid_tokens(&self) -> Vec<String> {
        let now = Instant::now();
        self.access
            .iter()
            .filter(|(_, g)| now < g.expires_at)
            .map(|(t, _)| t.clone())
            .chain(self.refresh.keys().cloned())
            .collect()
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
        let code = store.new_code("loc", None);
        let (_, pair) = store.redeem_code(&code, None, Duration::ZERO).unwrap();
        assert_eq!(
            store.redeem_code(&code, None, DAY),
            Err(GrantError::InvalidCode)
        );
        assert!(store.authenticate(&pair.access_token).is_none());
    }

    #[test]
    fn a_code_handed_to_a_redirect_uri_is_redeemed_only_with_it() {
        let mut store = TokenStore::default();
        let code = store.new_code("loc", Some("https://app.example/oauth/callback"));
        for wrong in [None, Some("https://app.example/t/x/oauth/callback")] {
            assert_eq!(
                store.redeem_code(&code, wrong, DAY),
                Err(GrantError::RedirectUriMismatch)
            );
        }
        // Left unused by the mismatch.
        let (location, pair) = store
            .redeem_code(&code, Some("https://app.example/oauth/callback"), DAY)
            .unwrap();
        assert_eq!(location, "loc");
        assert_eq!(
            store.refresh_token_location(&pair.refresh_token).as_deref(),
            Some("loc")
        );
        assert!(store.valid_tokens().contains(&pair.access_token));
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
