//! Token exchanges without I/O, for both runtimes' token sources (the
//! bundled host's `credentials` and the Spin provider component): what is
//! sent to a token endpoint, how its answer is read, whether a refusal
//! means the grant is gone, when a token is renewed, and whether an
//! install's grant may be kept.
//!
//! Each runtime does its own I/O (reqwest on the host, `wasi:http` in the
//! component) and its own storage (sealed rows in SQLite, sealed entries in
//! the key-value store); the decisions in between are made here, once.

use crate::api::{error_message, status_error};
use crate::waits::{crm_token_lifetime_secs, pbx_token_lifetime_secs};
use crate::{Service, StageError};
use serde::Deserialize;

/// Tokens are renewed this long before they expire, so none is used in
/// its last minute (a request may take that long to arrive).
pub const REFRESH_MARGIN_SECS: u64 = 60;

/// A request to a token endpoint, with the secrets it carries.
#[derive(Clone, Copy)]
pub enum TokenGrant<'a> {
    /// 3CX: the client-credentials grant at `POST /connect/token`
    /// (3CX NOTES §1).
    PbxClientCredentials {
        /// The API client's id (Admin > Integrations > API).
        client_id: &'a str,
        /// The API client's key.
        client_secret: &'a str,
    },
    /// HighLevel: the refresh-token grant at `POST /oauth/token`
    /// (operationId `get-access-token`). The refresh token is single-use:
    /// the answer carries its successor.
    CrmRefresh {
        /// The marketplace app's client id.
        client_id: &'a str,
        /// The marketplace app's client secret.
        client_secret: &'a str,
        /// The newest refresh token.
        refresh_token: &'a str,
    },
    /// HighLevel: the authorization-code grant that ends an install.
    CrmInstall {
        /// The marketplace app's client id.
        client_id: &'a str,
        /// The marketplace app's client secret.
        client_secret: &'a str,
        /// The single-use code HighLevel redirected with.
        code: &'a str,
        /// The redirect URL the authorize request named.
        redirect_uri: &'a str,
    },
}

impl<'a> TokenGrant<'a> {
    /// The service whose token endpoint this goes to.
    pub fn service(&self) -> Service {
        match self {
            Self::PbxClientCredentials { .. } => Service::Pbx,
            Self::CrmRefresh { .. } | Self::CrmInstall { .. } => Service::Crm,
        }
    }

    /// The token endpoint under the service's base URL.
    pub fn url(&self, base_url: &str) -> String {
        let path = match self.service() {
            Service::Pbx => "/connect/token",
            Service::Crm => "/oauth/token",
        };
        format!("{}{path}", base_url.trim_end_matches('/'))
    }

    /// The form fields, in order. HighLevel's grants name the user type:
    /// ConnectZero works with location (sub-account) tokens only.
    pub fn form(&self) -> Vec<(&'static str, &'a str)> {
        match *self {
            Self::PbxClientCredentials {
                client_id,
                client_secret,
            } => vec![
                ("client_id", client_id),
                ("client_secret", client_secret),
                ("grant_type", "client_credentials"),
            ],
            Self::CrmRefresh {
                client_id,
                client_secret,
                refresh_token,
            } => vec![
                ("client_id", client_id),
                ("client_secret", client_secret),
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("user_type", "Location"),
            ],
            Self::CrmInstall {
                client_id,
                client_secret,
                code,
                redirect_uri,
            } => vec![
                ("client_id", client_id),
                ("client_secret", client_secret),
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("user_type", "Location"),
            ],
        }
    }

    /// The form as an `application/x-www-form-urlencoded` body.
    pub fn form_body(&self) -> String {
        self.form()
            .iter()
            .map(|(name, value)| format!("{name}={}", urlencoding::encode(value)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// What to tell an operator whose 3CX API client was refused.
pub fn pbx_refused_hint(client_id: &str) -> String {
    format!(
        "3CX refused API client {client_id:?}: check its Client ID and API key under Admin > Integrations > API, and that XAPI access is enabled"
    )
}

/// A token endpoint's answer.
#[derive(Deserialize)]
pub struct TokenAnswer {
    /// The bearer token.
    pub access_token: String,
    /// The lifetime as the service states it (3CX may state minutes:
    /// read it through [`TokenAnswer::lifetime_secs`]).
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// HighLevel: the rotated refresh token (it replaces the one sent).
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// HighLevel: the location the grant is for; none for an agency
    /// (Company) token.
    #[serde(default, rename = "locationId")]
    location_id: Option<String>,
}

impl TokenAnswer {
    /// The token's lifetime in seconds, as `service` states it
    /// (`crate::waits`).
    pub fn lifetime_secs(&self, service: Service) -> u64 {
        match service {
            Service::Pbx => pbx_token_lifetime_secs(self.expires_in),
            Service::Crm => crm_token_lifetime_secs(self.expires_in),
        }
    }

    /// The location the grant is for, when it names one.
    pub fn location_id(&self) -> Option<&str> {
        self.location_id.as_deref().filter(|l| !l.is_empty())
    }
}

impl std::fmt::Debug for TokenAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens.
        f.debug_struct("TokenAnswer")
            .field("expires_in", &self.expires_in)
            .field("location_id", &self.location_id)
            .finish_non_exhaustive()
    }
}

/// A token endpoint's refusal.
#[derive(Debug)]
pub struct Refusal {
    /// The typed error, the operator's `hint` first.
    pub error: StageError,
    /// Whether the refusal says the grant itself is gone
    /// ([`is_revoked_grant`]), not merely that this attempt failed.
    pub revoked: bool,
}

/// Read a token endpoint's answer: `status`, its `Retry-After` in seconds
/// and its `body`. A refused grant is 400 (OAuth's `invalid_grant`,
/// `invalid_client`) or 401: both mean the credentials, so both read as
/// unauthorized, with `hint` (what to fix) in front of the service's
/// message.
pub fn read_answer(
    service: Service,
    status: u16,
    retry_after: Option<u32>,
    body: &[u8],
    hint: &str,
) -> Result<TokenAnswer, Refusal> {
    // RFC 6749 §5.1: a token is issued with 200 (OK); any other answer,
    // 2xx included, is not one.
    if status == 200 {
        return serde_json::from_slice(body).map_err(|e| Refusal {
            error: StageError::InvalidData(format!(
                "the {} token endpoint's answer is not a token response: {e}",
                crate::api::service_name(service)
            )),
            revoked: false,
        });
    }
    let revoked = matches!(status, 400 | 401) && is_revoked_grant(body);
    let status = if status == 400 { 401 } else { status };
    // The hint is about credentials: a busy or broken endpoint is not
    // told as a refused grant.
    let message = match status {
        401 => format!("{hint} ({})", error_message(body)),
        _ => format!("the token endpoint failed: {}", error_message(body)),
    };
    Err(Refusal {
        error: status_error(service, status, retry_after, message),
        revoked,
    })
}

/// Whether a token endpoint's error `body` says the grant was revoked.
///
/// [ASSUMED] (HighLevel NOTES §2.2: the error body for a revoked refresh
/// token is undocumented): OAuth servers answer `invalid_grant` (RFC 6749
/// §5.2); node-oauth2-server, which the simulator follows, words it
/// "Invalid grant: …". Anything else (e.g. "Invalid client") is not a
/// revoked grant and stays an ordinary retryable refusal. The raw body is
/// read, not its message: `error_description` would hide an
/// `"error": "invalid_grant"`.
pub fn is_revoked_grant(body: &[u8]) -> bool {
    let body = String::from_utf8_lossy(body).to_ascii_lowercase();
    body.contains("invalid_grant") || body.contains("invalid grant")
}

/// How long after it was issued a token of `lifetime_secs` is renewed.
pub fn renew_after_secs(lifetime_secs: u64) -> u64 {
    lifetime_secs.saturating_sub(REFRESH_MARGIN_SECS)
}

/// Whether a token with `left_ms` milliseconds to live may still be used.
pub fn still_usable(left_ms: i64) -> bool {
    left_ms > (REFRESH_MARGIN_SECS * 1000) as i64
}

/// Why an install's grant may not become a tenant's.
#[derive(Debug, PartialEq, Eq)]
pub enum InstallRefusal {
    /// The token names no location: an agency-level (Company) install
    /// (HighLevel NOTES §8).
    NoLocation,
    /// The app was installed in another sub-account than configured.
    WrongLocation {
        /// The location the token is for.
        installed: String,
    },
}

/// Whether an install's grant, for `granted_location`
/// ([`TokenAnswer::location_id`]), may be kept by a tenant configured for
/// `configured_location`: only a grant for that very location may replace
/// its grant.
pub fn check_install(
    granted_location: Option<&str>,
    configured_location: &str,
) -> Result<(), InstallRefusal> {
    match granted_location {
        None => Err(InstallRefusal::NoLocation),
        Some(installed) if installed != configured_location => Err(InstallRefusal::WrongLocation {
            installed: installed.to_string(),
        }),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &str) -> TokenAnswer {
        read_answer(Service::Crm, 200, None, body.as_bytes(), "hint").unwrap()
    }

    #[test]
    fn each_grant_sends_its_endpoints_fields() {
        let pbx = TokenGrant::PbxClientCredentials {
            client_id: "cz",
            client_secret: "k&y=",
        };
        assert_eq!(
            pbx.url("https://pbx.example.com/"),
            "https://pbx.example.com/connect/token"
        );
        assert_eq!(
            pbx.form_body(),
            "client_id=cz&client_secret=k%26y%3D&grant_type=client_credentials"
        );
        let refresh = TokenGrant::CrmRefresh {
            client_id: "app",
            client_secret: "s",
            refresh_token: "r1",
        };
        assert_eq!(refresh.service(), Service::Crm);
        assert_eq!(refresh.url("https://h"), "https://h/oauth/token");
        assert!(refresh.form().contains(&("grant_type", "refresh_token")));
        assert!(refresh.form().contains(&("user_type", "Location")));
        let install = TokenGrant::CrmInstall {
            client_id: "app",
            client_secret: "s",
            code: "c",
            redirect_uri: "https://cz/oauth/callback",
        };
        assert!(
            install
                .form()
                .contains(&("grant_type", "authorization_code"))
        );
        assert!(
            install
                .form_body()
                .contains("redirect_uri=https%3A%2F%2Fcz%2Foauth%2Fcallback")
        );
    }

    #[test]
    fn only_invalid_grant_answers_count_as_revoked() {
        let read = |status: u16, body: &str| {
            read_answer(Service::Crm, status, None, body.as_bytes(), "re-install").unwrap_err()
        };
        let revoked = read(
            400,
            r#"{"statusCode":400,"message":"Invalid grant: refresh token is invalid"}"#,
        );
        assert!(revoked.revoked);
        // 400 reads as unauthorized, the hint first.
        match revoked.error {
            StageError::Unauthorized(e) => {
                assert_eq!(e.status, 401);
                assert!(
                    e.message.starts_with("re-install (Invalid grant"),
                    "{}",
                    e.message
                );
            }
            other => panic!("expected unauthorized, got {other:?}"),
        }
        let described = read(
            400,
            r#"{"error":"invalid_grant","error_description":"Invalid refresh token"}"#,
        );
        assert!(
            described.revoked,
            "the error code counts, not only the text"
        );
        assert!(
            !read(
                401,
                r#"{"statusCode":401,"message":"Invalid client: client is invalid"}"#
            )
            .revoked
        );
        // A server error mentioning a grant is not a refusal of it.
        let busy = read(503, "invalid_grant");
        assert!(!busy.revoked);
        match busy.error {
            StageError::Upstream(e) => assert!(!e.message.contains("re-install"), "{}", e.message),
            other => panic!("expected upstream, got {other:?}"),
        }
        let limited = read_answer(Service::Crm, 429, Some(7), b"slow down", "h").unwrap_err();
        assert!(
            matches!(limited.error, StageError::RateLimited(7)),
            "{:?}",
            limited.error
        );
    }

    #[test]
    fn an_answer_that_is_no_token_is_invalid_data() {
        let refusal = read_answer(Service::Pbx, 200, None, b"<html>", "h").unwrap_err();
        assert!(!refusal.revoked);
        assert!(matches!(refusal.error, StageError::InvalidData(_)));
        // Only 200 issues a token: another 2xx is an unexpected answer.
        let body = br#"{"access_token":"t"}"#;
        let other = read_answer(Service::Pbx, 204, None, body, "h").unwrap_err();
        assert!(
            matches!(other.error, StageError::Upstream(_)),
            "{:?}",
            other.error
        );
    }

    #[test]
    fn answers_give_lifetimes_and_locations_and_never_show_tokens() {
        let crm = answer(
            r#"{"access_token":"secret-a","expires_in":86399,"refresh_token":"secret-r","locationId":"loc1"}"#,
        );
        assert_eq!(crm.lifetime_secs(Service::Crm), 86_399);
        assert_eq!(crm.location_id(), Some("loc1"));
        let shown = format!("{crm:?}");
        assert!(!shown.contains("secret"), "{shown}");
        // 3CX may state minutes (crate::waits).
        let pbx = answer(r#"{"access_token":"t","expires_in":60}"#);
        assert_eq!(pbx.lifetime_secs(Service::Pbx), 3600);
        assert_eq!(
            answer(r#"{"access_token":"t","locationId":""}"#).location_id(),
            None
        );
    }

    #[test]
    fn tokens_are_renewed_a_minute_early() {
        assert_eq!(renew_after_secs(3600), 3540);
        assert_eq!(renew_after_secs(30), 0);
        assert!(still_usable(60_001));
        assert!(!still_usable(60_000));
        assert!(!still_usable(-5));
    }

    #[test]
    fn only_a_grant_for_the_configured_location_is_kept() {
        let mine = answer(r#"{"access_token":"t","locationId":"loc1"}"#);
        assert_eq!(check_install(mine.location_id(), "loc1"), Ok(()));
        assert_eq!(
            check_install(mine.location_id(), "loc2"),
            Err(InstallRefusal::WrongLocation {
                installed: "loc1".into()
            })
        );
        let agency = answer(r#"{"access_token":"t"}"#);
        assert_eq!(
            check_install(agency.location_id(), "loc1"),
            Err(InstallRefusal::NoLocation)
        );
    }
}
