//! The admin token, sign-in sessions, CSRF tokens and the sign-in throttle.
//!
//! A session is a random id in an `HttpOnly` cookie whose hash the
//! database keeps with its expiry ([`SESSION_LIFETIME`],
//! `crate::storage::Storage::session_start`): it ends when it expires or
//! when its holder signs out, and every host sharing the database accepts
//! it. The CSRF token is derived from the admin token (SHA-256 with a
//! label), so it survives a restart and reveals nothing. Wrong tokens are
//! throttled per client address ([`SignInThrottle`]).

use axum::http::HeaderMap;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// Environment variable holding the admin token.
pub const ADMIN_TOKEN_ENV: &str = "CONNECTZERO_ADMIN_TOKEN";
/// Environment variable naming a file that holds the admin token (for
/// secret mounts); used when [`ADMIN_TOKEN_ENV`] is unset.
pub const ADMIN_TOKEN_FILE_ENV: &str = "CONNECTZERO_ADMIN_TOKEN_FILE";

/// Shortest admin token accepted: long enough that guessing is hopeless.
const MIN_TOKEN_CHARS: usize = 16;

/// Name of the session cookie.
pub(super) const SESSION_COOKIE: &str = "cz_admin";

/// Why an admin token cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Too short to be safe.
    #[error(
        "the admin token is {0} characters long: use at least {MIN_TOKEN_CHARS}, e.g. `openssl rand -base64 32`"
    )]
    TooShort(usize),
    /// Contains whitespace or control characters, which cannot be typed or
    /// sent in a header reliably.
    #[error("the admin token contains spaces or control characters: use printable characters only")]
    NotPrintable,
    /// The token file could not be read.
    #[error("reading the admin token file {path}: {source}")]
    File {
        /// The file named by [`ADMIN_TOKEN_FILE_ENV`].
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// How long a sign-in lasts.
pub(super) const SESSION_LIFETIME: std::time::Duration =
    std::time::Duration::from_secs(12 * 60 * 60);

/// The admin token. Never printed by `Debug`.
#[derive(Clone)]
pub struct AdminToken {
    token: String,
    csrf: String,
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

fn derive(label: &str, token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(label.as_bytes())
        .chain_update([0])
        .chain_update(token.as_bytes())
        .finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Equal in time independent of where they differ (and of their lengths:
/// both sides are hashed first).
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    bool::from(a.ct_eq(&b))
}

impl AdminToken {
    /// Check and wrap `token`.
    pub fn new(token: impl Into<String>) -> Result<Self, TokenError> {
        let token = token.into().trim().to_string();
        let chars = token.chars().count();
        if chars < MIN_TOKEN_CHARS {
            return Err(TokenError::TooShort(chars));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(TokenError::NotPrintable);
        }
        Ok(Self {
            csrf: derive("connectzero admin csrf", &token),
            token,
        })
    }

    /// A fresh random token (256 bits, URL-safe base64), for the demo.
    pub fn random() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
            .expect("43 printable characters")
    }

    /// The token from [`ADMIN_TOKEN_ENV`], else from the file named by
    /// [`ADMIN_TOKEN_FILE_ENV`]; `None` when neither is set.
    pub fn from_env() -> Result<Option<Self>, TokenError> {
        if let Some(token) = std::env::var_os(ADMIN_TOKEN_ENV) {
            return Self::new(token.to_string_lossy()).map(Some);
        }
        let Some(path) = std::env::var_os(ADMIN_TOKEN_FILE_ENV) else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(&path).map_err(|source| TokenError::File {
            path: path.to_string_lossy().into_owned(),
            source,
        })?;
        Self::new(text).map(Some)
    }

    /// The token itself, for the one place that shows it (the demo's
    /// start-up banner).
    pub fn expose(&self) -> &str {
        &self.token
    }

    /// Whether `presented` is the token.
    pub(super) fn matches(&self, presented: &str) -> bool {
        same(presented.trim(), &self.token)
    }

    /// The CSRF token every form carries.
    pub(super) fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether `presented` is the CSRF token.
    pub(super) fn csrf_matches(&self, presented: &str) -> bool {
        same(presented, &self.csrf)
    }

    /// A new session: the cookie's value and the hash the database keeps.
    pub(super) fn new_session(&self) -> (String, String) {
        let id =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let hash = self.session_hash(&id);
        (id, hash)
    }

    /// What the database keeps of a session id: a hash keyed with the
    /// token, so changing the token ends every session, and a host with
    /// another token sharing the database accepts none of them.
    pub(super) fn session_hash(&self, id: &str) -> String {
        derive(
            "connectzero admin session",
            &format!("{}\0{id}", self.token),
        )
    }

    /// Whether the request carries the token as `Authorization: Bearer`.
    pub(super) fn bearer_in(&self, headers: &HeaderMap) -> bool {
        bearer_matches(headers, |token| self.matches(token))
    }
}

/// Whether an `Authorization: Bearer` header of the request passes `check`.
pub(super) fn bearer_matches(headers: &HeaderMap, check: impl Fn(&str) -> bool) -> bool {
    headers
        .get_all(axum::http::header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split_once(' '))
        .any(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && check(token))
}

/// The session id the request's cookie carries (the first: one lookup per
/// request, however many cookies a client sends).
pub(super) fn session_in(headers: &HeaderMap) -> Option<String> {
    cookies(headers, SESSION_COOKIE).into_iter().next()
}

/// Wrong admin tokens are throttled per client address: after
/// [`Self::ATTEMPTS`] within [`Self::WINDOW`], that address is refused
/// until the window has passed, so the token cannot be guessed at speed
/// (it is long enough that it cannot be guessed at all at this rate).
/// One process's memory: a restart clears it.
pub(super) struct SignInThrottle {
    failures: std::sync::Mutex<std::collections::HashMap<String, (u32, std::time::Instant)>>,
}

impl SignInThrottle {
    /// Wrong tokens a client may send per window.
    pub const ATTEMPTS: u32 = 5;
    /// The window.
    pub const WINDOW: std::time::Duration = std::time::Duration::from_secs(10 * 60);
    /// Clients remembered at once (the oldest windows go first).
    const CLIENTS: usize = 10_000;

    pub(super) fn new() -> Self {
        Self {
            failures: Default::default(),
        }
    }

    /// How long `client` must wait before presenting a token again, if
    /// it must.
    pub(super) fn wait(
        &self,
        client: &str,
        now: std::time::Instant,
    ) -> Option<std::time::Duration> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let (count, since) = failures.get(client)?;
        let ends = *since + Self::WINDOW;
        (*count >= Self::ATTEMPTS && ends > now).then(|| ends - now)
    }

    /// Note a wrong token from `client` (`crate::server::client::client_key`).
    pub(super) fn failed(&self, client: &str, now: std::time::Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.retain(|_, (_, since)| *since + Self::WINDOW > now);
        if failures.len() >= Self::CLIENTS
            && let Some(oldest) = failures
                .iter()
                .min_by_key(|(_, (_, since))| *since)
                .map(|(c, _)| c.clone())
        {
            failures.remove(&oldest);
        }
        let entry = failures.entry(client.to_string()).or_insert((0, now));
        entry.0 += 1;
    }
}

/// Every value of cookie `name` in the request.
fn cookies(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, value)| value.to_string())
        .collect()
}

/// `Set-Cookie` for a session (or, with `None`, one that ends it). Scoped
/// to the page's path; `SameSite=Strict` keeps other sites' forms from
/// sending it, `HttpOnly` keeps it from scripts. `Secure` is added when
/// the request came over HTTPS (as a reverse proxy reports it), since a
/// secure cookie would never come back over the plain-HTTP loopback.
pub(super) fn session_cookie(session: Option<&str>, https: bool) -> String {
    let secure = if https { "; Secure" } else { "" };
    match session {
        Some(value) => format!(
            "{SESSION_COOKIE}={value}; Path={}; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            super::PAGE_PATH,
            SESSION_LIFETIME.as_secs()
        ),
        None => format!(
            "{SESSION_COOKIE}=; Path={}; HttpOnly; SameSite=Strict; Max-Age=0{secure}",
            super::PAGE_PATH
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn short_or_spaced_tokens_are_refused_with_what_to_do() {
        let short = AdminToken::new("abc").unwrap_err().to_string();
        assert!(short.contains("at least 16"), "{short}");
        assert!(matches!(
            AdminToken::new("0123456789 abcdefgh"),
            Err(TokenError::NotPrintable)
        ));
        assert!(AdminToken::new("0123456789abcdefgh").is_ok());
    }

    #[test]
    fn only_the_token_is_a_bearer() {
        let token = AdminToken::new("0123456789abcdefgh").unwrap();
        let mut headers = HeaderMap::new();
        assert!(!token.bearer_in(&headers));
        headers.insert(
            "authorization",
            HeaderValue::from_static("Bearer 0123456789abcdefgX"),
        );
        assert!(!token.bearer_in(&headers));
        headers.insert(
            "authorization",
            HeaderValue::from_static("bearer 0123456789abcdefgh"),
        );
        assert!(token.bearer_in(&headers));
        let mut headers = HeaderMap::new();
        let cookie = format!("other=1; {SESSION_COOKIE}=abc");
        headers.insert("cookie", HeaderValue::from_str(&cookie).unwrap());
        assert_eq!(session_in(&headers).as_deref(), Some("abc"));
    }

    #[test]
    fn sessions_are_random_and_kept_only_as_hashes_keyed_by_the_token() {
        let token = AdminToken::new("0123456789abcdefgh").unwrap();
        let (a, a_hash) = token.new_session();
        let (b, _) = token.new_session();
        assert_ne!(a, b);
        assert_eq!(token.session_hash(&a), a_hash);
        assert!(!a_hash.contains(&a));
        let rotated = AdminToken::new("0123456789abcdefgX").unwrap();
        assert_ne!(rotated.session_hash(&a), a_hash, "a new token ends it");
        assert!(token.csrf_matches(token.csrf()));
        assert!(!token.csrf().contains("0123456789"));
        assert_eq!(format!("{token:?}"), "AdminToken(***)");
        let cookie = session_cookie(Some(&a), false);
        assert!(cookie.contains("HttpOnly; SameSite=Strict"), "{cookie}");
        assert!(cookie.contains("Max-Age=43200"), "{cookie}");
    }

    #[test]
    fn wrong_tokens_are_throttled_per_address_for_the_window() {
        let throttle = SignInThrottle::new();
        let (one, other) = ("10.0.0.1", "10.0.0.2");
        let t0 = std::time::Instant::now();
        for _ in 0..SignInThrottle::ATTEMPTS {
            assert_eq!(throttle.wait(one, t0), None);
            throttle.failed(one, t0);
        }
        assert!(
            throttle
                .wait(one, t0)
                .is_some_and(|w| w <= SignInThrottle::WINDOW)
        );
        assert_eq!(
            throttle.wait(other, t0),
            None,
            "another address is not held"
        );
        assert_eq!(throttle.wait(one, t0 + SignInThrottle::WINDOW), None);
    }
}
