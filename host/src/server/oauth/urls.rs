//! The install's addresses: HighLevel's authorize URL with the scopes
//! requested, and this host's redirect URI and public base URL.

use super::bad_request;
use crate::config::TenantConfig;
use crate::server::HttpError;
use axum::http::{HeaderMap, header};
/// Scopes ConnectZero uses (HighLevel NOTES §2.5): contact search and
/// creation, conversations and call messages (with recordings), and
/// `workflows.readonly` for the workflow triggers and action, and
/// `users.readonly` to name the CRM user of each call (optional: without
/// it calls are posted without a user, `components/post/src/users.rs`).
const DEFAULT_SCOPES: [&str; 8] = [
    "contacts.readonly",
    "contacts.write",
    "conversations.readonly",
    "conversations.write",
    "conversations/message.readonly",
    "conversations/message.write",
    "workflows.readonly",
    "users.readonly",
];

/// HighLevel's authorize page (NOTES §2.1, newest doc revision: `/v2/`).
const DEFAULT_AUTHORIZE_URL: &str = "https://marketplace.gohighlevel.com/v2/oauth/chooselocation";

/// The authorize URL the installer is sent to.
///
/// [ASSUMED] (NOTES §2.1): HighLevel documents `response_type`,
/// `redirect_uri`, `client_id` and `scope`, but not `state`. Standard
/// OAuth (RFC 6749 §4.1.2) has the server send `state` back unchanged,
/// and the callback depends on that: if HighLevel ever drops it, every
/// callback is refused as "missing state", never accepted unchecked.
pub fn authorize_url(config: &TenantConfig, redirect_uri: &str, state: &str) -> String {
    let base = config
        .settings
        .oauth
        .authorize_url
        .as_deref()
        .unwrap_or(DEFAULT_AUTHORIZE_URL);
    let scope = match &config.settings.oauth.scopes {
        Some(scopes) => scopes.join(" "),
        None => DEFAULT_SCOPES.join(" "),
    };
    let separator = if base.contains('?') { '&' } else { '?' };
    format!(
        "{base}{separator}response_type=code&client_id={}&redirect_uri={}&scope={}&state={}",
        urlencoding::encode(&config.crm.client_id),
        urlencoding::encode(redirect_uri),
        urlencoding::encode(&scope),
        urlencoding::encode(state),
    )
}

/// The redirect URI an install link of this tenant names: the one
/// redirect URL of every tenant, `<public url>/oauth/callback` (the
/// tenant travels in the state), or with `oauth.per_tenant_redirect` the
/// tenant's own `<public url>/t/<tenant>/oauth/callback`, for an app whose
/// marketplace entry lists only those. Without a configured public URL,
/// the request's `Host` (plain http is only assumed for loopback).
pub(super) fn redirect_uri(
    config: &TenantConfig,
    headers: &HeaderMap,
) -> Result<String, HttpError> {
    Ok(format!(
        "{}{}",
        public_base(config, headers)?,
        redirect_path(config)
    ))
}

/// The path of the redirect URL `config`'s install links name (after the
/// public URL): [`SHARED_CALLBACK`], or the tenant's own with
/// `oauth.per_tenant_redirect`. What messages telling the operator which
/// redirect URL to register use, so they name the one the install sends.
pub fn redirect_path(config: &TenantConfig) -> String {
    if config.settings.oauth.per_tenant_redirect == Some(true) {
        format!("/t/{}/oauth/callback", config.id)
    } else {
        SHARED_CALLBACK.to_string()
    }
}

/// The tenant's own, older callback: `<public url>/t/<tenant>/oauth/callback`.
pub(super) fn tenant_callback(
    config: &TenantConfig,
    headers: &HeaderMap,
) -> Result<String, HttpError> {
    Ok(format!(
        "{}/t/{}/oauth/callback",
        public_base(config, headers)?,
        config.id
    ))
}

/// The path of the one redirect URL of every tenant.
pub(super) const SHARED_CALLBACK: &str = "/oauth/callback";

/// The host's public base URL as `config` sets it (`oauth.public_url`),
/// else from the request's `Host`.
pub(super) fn public_base(config: &TenantConfig, headers: &HeaderMap) -> Result<String, HttpError> {
    let base = match &config.settings.oauth.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| !h.is_empty())
                .ok_or_else(|| {
                    bad_request(format!(
                        "the request has no Host header: set oauth.public_url for tenant {}",
                        config.id
                    ))
                })?;
            let plain = format!("http://{host}");
            if crate::config::check_base_url(&plain).is_ok() {
                plain
            } else {
                format!("https://{host}")
            }
        }
    };
    Ok(base)
}
