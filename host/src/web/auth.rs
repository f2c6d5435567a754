//! The admin token, the session cookie and CSRF tokens.
//!
//! Stateless on purpose: the session cookie and the CSRF token are both
//! derived from the admin token (SHA-256 with distinct labels), so they
//! survive a restart, every host sharing the token accepts them, and
//! changing the token signs everyone out. Neither reveals the token.

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

/// The admin token. Never printed by `Debug`.
#[derive(Clone)]
pub struct AdminToken {
    token: String,
    session: String,
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
            session: derive("connectzero admin session", &token),
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

    /// The session cookie's value.
    pub(super) fn session(&self) -> &str {
        &self.session
    }

    /// The CSRF token every form carries.
    pub(super) fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether `presented` is the CSRF token.
    pub(super) fn csrf_matches(&self, presented: &str) -> bool {
        same(presented, &self.csrf)
    }

    /// Whether the request carries the token (bearer header) or a session
    /// cookie.
    pub(super) fn admits(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get_all(axum::http::header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split_once(' '))
            .any(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && self.matches(token));
        bearer
            || cookies(headers, SESSION_COOKIE)
                .iter()
                .any(|value| same(value, &self.session))
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
            "{SESSION_COOKIE}={value}; Path={}; HttpOnly; SameSite=Strict; Max-Age=43200{secure}",
            super::PAGE_PATH
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
    fn only_the_token_or_its_session_admits() {
        let token = AdminToken::new("0123456789abcdefgh").unwrap();
        let mut headers = HeaderMap::new();
        assert!(!token.admits(&headers));
        headers.insert(
            "authorization",
            HeaderValue::from_static("Bearer 0123456789abcdefgX"),
        );
        assert!(!token.admits(&headers));
        headers.insert(
            "authorization",
            HeaderValue::from_static("bearer 0123456789abcdefgh"),
        );
        assert!(token.admits(&headers));

        let mut headers = HeaderMap::new();
        let cookie = format!("other=1; {SESSION_COOKIE}={}", token.session());
        headers.insert("cookie", HeaderValue::from_str(&cookie).unwrap());
        assert!(token.admits(&headers));
        // The token itself is not a session.
        let cookie = format!("{SESSION_COOKIE}=0123456789abcdefgh");
        headers.insert("cookie", HeaderValue::from_str(&cookie).unwrap());
        assert!(!token.admits(&headers));
    }

    #[test]
    fn session_and_csrf_reveal_nothing_and_differ() {
        let token = AdminToken::new("0123456789abcdefgh").unwrap();
        assert_ne!(token.session(), token.csrf());
        assert!(!token.session().contains("0123456789"));
        assert!(token.csrf_matches(token.csrf()));
        assert!(!token.csrf_matches(token.session()));
        assert_eq!(format!("{token:?}"), "AdminToken(***)");
        let cookie = session_cookie(Some(token.session()), false);
        assert!(cookie.contains("HttpOnly; SameSite=Strict"), "{cookie}");
    }
}
