//! Host configuration: the tenants and their settings (`connectzero.toml`).
//!
//! ```toml
//! database = "connectzero.db"
//!
//! [[tenants]]
//! id = "acme"
//! [tenants.pbx]
//! base_url = "https://acme.3cx.eu"
//! client_id = "connectzero"          # Admin > Integrations > API: Client ID
//! client_secret = "…"                # the API key shown once by 3CX
//! [tenants.crm]
//! location_id = "ve9EPM428h8vShlRW1KT"
//! conversation_provider_id = "61d6d1f9cdac7612faf80753"
//! client_id = "…"
//! client_secret = "…"
//! # refresh_token: optional; the OAuth install (/t/acme/oauth/install)
//! # stores one. Secrets are stored encrypted (`crate::secrets`) on first
//! # run and the client secrets may then be removed from this file.
//! [tenants.settings]
//! default_country = "GB"
//! [tenants.settings.oauth]            # all optional
//! public_url = "https://cz.example.com"
//! [tenants.settings.policy]           # all optional; see guest_support::policy
//! outbound_no_answer = "ignore"       # log | log-and-create-contact | ignore
//! min_duration_secs = 10
//! own_numbers = ["+442079460000"]
//! blocked_numbers = ["+18005550199"]
//! [tenants.settings.policy.business_hours]
//! days = ["mon", "tue", "wed", "thu", "fri"]
//! start = "09:00"
//! end = "17:30"
//! time_zone = "Europe/London"         # or utc_offset = "+01:00" (fixed, no summer time)
//! ```

use crate::bindings::types::{NoMatchPolicy, TenantSettings};
use anyhow::{Context, bail};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::path::Path;

/// The HighLevel API's production base URL.
pub const HIGHLEVEL_API: &str = "https://services.leadconnectorhq.com";

/// A secret value: never printed, never logged. Empty means "not given"
/// (then the one stored encrypted in the database is used, see
/// `crate::secrets`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// SQLite database file (ledger, cursors, call log).
    #[serde(default = "default_database")]
    pub database: String,
    /// The tenants this host serves from this file; `connectzero tenant
    /// add` keeps more in the database (`crate::tenants`), and `run`
    /// serves both.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
}

fn default_database() -> String {
    "connectzero.db".into()
}

/// One tenant: a 3CX system feeding one CRM sub-account.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Tenant id: letters, digits, `-` and `_`.
    pub id: String,
    /// The 3CX side.
    pub pbx: PbxConfig,
    /// The HighLevel side.
    pub crm: CrmConfig,
    /// Behaviour.
    #[serde(default)]
    pub settings: TenantOptions,
    /// The Update Call Record action and trigger subscription endpoints.
    #[serde(default)]
    pub actions: ActionsConfig,
}

/// The HighLevel OAuth install of one tenant (`[tenants.settings.oauth]`;
/// `crate::server` serves `/t/{tenant}/oauth/install` and
/// `/t/{tenant}/oauth/callback`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthConfig {
    /// This host's public base URL as the installer's browser reaches it
    /// (`https://host[:port]`); the redirect URI is
    /// `<public_url>/t/<tenant>/oauth/callback` and must be one of the
    /// app's redirect URLs in the marketplace. Default: the install
    /// request's `Host` (plain http only for loopback).
    pub public_url: Option<String>,
    /// The authorize page (default HighLevel's `chooselocation`; agencies
    /// on a white-label domain use
    /// `https://marketplace.leadconnectorhq.com/v2/oauth/chooselocation`).
    pub authorize_url: Option<String>,
    /// Scopes requested (default: those ConnectZero uses).
    pub scopes: Option<Vec<String>>,
    /// How long an install link stays valid, seconds. Default 600.
    pub state_ttl_secs: Option<u64>,
}

/// How HighLevel authenticates to this tenant's endpoints (action calls
/// and trigger subscriptions). HighLevel does not sign these calls, so the
/// app's marketplace settings send a secret header; `x-wh-signature` is
/// verified too whenever it is present.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionsConfig {
    /// Name of the secret header (default `x-connectzero-secret`).
    pub secret_header: Option<String>,
    /// Its value; endpoints refuse every call while this is unset.
    pub secret: Option<Secret>,
    /// PEM public key for `x-wh-signature` (default: HighLevel's published
    /// webhook key, see `components/write-back/README.md`).
    pub signature_public_key: Option<String>,
    /// Contact custom field key that stores the call sentiment
    /// (default `connectzero_call_sentiment`).
    pub sentiment_field_key: Option<String>,
}

impl ActionsConfig {
    /// The secret header's name.
    pub fn header_name(&self) -> &str {
        self.secret_header
            .as_deref()
            .unwrap_or("x-connectzero-secret")
    }
}

/// 3CX XAPI access (Admin > Integrations > API).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PbxConfig {
    /// `https://<pbx-fqdn>[:port]`, without `/xapi/v1`.
    pub base_url: String,
    /// The API client's Client ID.
    pub client_id: String,
    /// The API key 3CX showed when the client was created. Stored
    /// encrypted on first run; may then be removed from the file.
    #[serde(default)]
    pub client_secret: Secret,
}

/// HighLevel marketplace app access for one location.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CrmConfig {
    /// API base URL.
    #[serde(default = "default_crm_url")]
    pub base_url: String,
    /// Sub-account (location) id.
    pub location_id: String,
    /// The app's Call conversation provider id.
    pub conversation_provider_id: String,
    /// The app's OAuth client id.
    pub client_id: String,
    /// The app's OAuth client secret. Stored encrypted on first run; may
    /// then be removed from the file.
    #[serde(default)]
    pub client_secret: Secret,
    /// A current Location access token, if one is at hand.
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// A Location refresh token from an install made elsewhere. Optional:
    /// the OAuth install (`/t/<tenant>/oauth/install`) stores one, and a
    /// stored (rotated) one always wins over this.
    #[serde(default)]
    pub refresh_token: Secret,
    /// The request budget this host keeps to for the location
    /// (`crate::ratelimit`); default HighLevel's documented limit.
    #[serde(default, skip_serializing_if = "CrmRateLimit::is_highlevel")]
    pub rate_limit: CrmRateLimit,
}

/// HighLevel's per-location request limit as this host keeps to it
/// (`[tenants.crm.rate_limit]`). Tenants sharing an app and a location
/// share one budget (`crate::ratelimit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrmRateLimit {
    /// Requests allowed per `interval_ms`; 0 turns the limiter off (only
    /// for a simulator without a limit).
    pub burst: u32,
    /// The burst window, milliseconds.
    pub interval_ms: u64,
    /// Requests allowed per day; 0 means no daily limit.
    pub daily: u32,
}

impl CrmRateLimit {
    /// HighLevel NOTES §6.1 ([DOC] docs/oauth/Authorization.md, "What are
    /// current rate limits for API 2.0?"): 100 requests per 10 seconds and
    /// 200,000 per day, per marketplace app per location. The one place
    /// these numbers live.
    pub const HIGHLEVEL: CrmRateLimit = CrmRateLimit {
        burst: 100,
        interval_ms: 10_000,
        daily: 200_000,
    };

    /// No limit (simulators without one, benchmarks).
    pub const OFF: CrmRateLimit = CrmRateLimit {
        burst: 0,
        interval_ms: 0,
        daily: 0,
    };

    /// Whether this is HighLevel's documented limit (the default).
    pub fn is_highlevel(&self) -> bool {
        *self == Self::HIGHLEVEL
    }
}

impl Default for CrmRateLimit {
    fn default() -> Self {
        Self::HIGHLEVEL
    }
}

fn default_crm_url() -> String {
    HIGHLEVEL_API.into()
}

/// Per-tenant behaviour, with the defaults a new tenant gets.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantOptions {
    /// Country for numbers without `+` (ISO 3166-1 alpha-2). Default "US".
    pub default_country: String,
    /// Post extension-to-extension calls. Default off.
    pub log_internal_calls: bool,
    /// "skip" (default) or "create-contact".
    pub no_match_policy: String,
    /// Re-read window behind the cursor, seconds. Default 300.
    pub overlap_window_secs: u32,
    /// Rows per 3CX page. Default 100.
    pub page_size: u32,
    /// Poll interval, milliseconds. Default 1000.
    pub poll_interval_ms: u64,
    /// How long to wait for 3CX to finalise a recording, seconds. Default 600.
    pub recording_window_secs: u32,
    /// First retry delay for recordings and trigger deliveries, ms
    /// (doubling per attempt). Default 2000.
    pub retry_base_ms: u32,
    /// How long a worker's claim on a call protects it from other workers,
    /// seconds. Must exceed the longest tick; a worker that dies hands its
    /// calls to the others after this. Default 120.
    pub claim_lease_secs: u32,
    /// Most new calls one tick claims and posts; the rest wait for the
    /// next tick, so a tenant with a large backlog yields its tick slot
    /// and its share of the CRM rate limit to other tenants
    /// (`crate::pipeline`). Default 100.
    pub max_calls_per_tick: u32,
    /// How long after a missed inbound call an answered callback (or an
    /// answered call in from the same number) fires
    /// `missed-call.recovered`, seconds; 0 turns it off. Default 86400
    /// (24 h).
    pub missed_call_recovery_window_secs: u32,
    /// The HighLevel OAuth install (`[tenants.settings.oauth]`).
    pub oauth: OAuthConfig,
    /// The logging policy (`[tenants.settings.policy]`, see
    /// `guest_support::policy`). Unset (the default): every call is
    /// handled as without a policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<guest_support::policy::PolicyConfig>,
}

impl Default for TenantOptions {
    fn default() -> Self {
        Self {
            default_country: "US".into(),
            log_internal_calls: false,
            no_match_policy: "skip".into(),
            overlap_window_secs: 300,
            page_size: 100,
            poll_interval_ms: 1000,
            recording_window_secs: 600,
            retry_base_ms: 2000,
            claim_lease_secs: 120,
            max_calls_per_tick: 100,
            missed_call_recovery_window_secs: 86_400,
            oauth: OAuthConfig::default(),
            policy: None,
        }
    }
}

impl HostConfig {
    /// Read and check a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let config: Self = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid configuration", path.display()))?;
        config.validate()?;
        Ok(config)
    }

    /// Check every tenant, naming the first problem and how to fix it.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut seen = std::collections::HashSet::new();
        for tenant in &self.tenants {
            tenant.validate()?;
            if !seen.insert(&tenant.id) {
                bail!("tenant id {:?} appears twice", tenant.id);
            }
        }
        Ok(())
    }
}

impl TenantConfig {
    /// Check this tenant's settings.
    pub fn validate(&self) -> anyhow::Result<()> {
        let id = &self.id;
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("tenant id {id:?} must be letters, digits, '-' or '_'");
        }
        for (name, url) in [
            ("pbx.base_url", &self.pbx.base_url),
            ("crm.base_url", &self.crm.base_url),
        ] {
            check_base_url(url).with_context(|| format!("tenant {id}: {name}"))?;
        }
        self.no_match_policy()
            .with_context(|| format!("tenant {id}"))?;
        self.policy()
            .with_context(|| format!("tenant {id}: settings"))?;
        if let Some(url) = &self.settings.oauth.public_url {
            check_base_url(url)
                .with_context(|| format!("tenant {id}: settings.oauth.public_url"))?;
        }
        let s = &self.settings;
        if s.default_country.len() != 2 {
            bail!(
                "tenant {id}: settings.default_country {:?} must be a two-letter ISO code such as \"US\" or \"GB\"",
                s.default_country
            );
        }
        if !(1..=1000).contains(&s.page_size) {
            bail!("tenant {id}: settings.page_size must be between 1 and 1000");
        }
        if s.claim_lease_secs == 0 {
            bail!("tenant {id}: settings.claim_lease_secs must be at least 1");
        }
        if s.poll_interval_ms < 100 {
            bail!("tenant {id}: settings.poll_interval_ms must be at least 100");
        }
        if !(1..=10_000).contains(&s.max_calls_per_tick) {
            bail!("tenant {id}: settings.max_calls_per_tick must be between 1 and 10000");
        }
        let limit = &self.crm.rate_limit;
        if limit.burst > 0 && limit.interval_ms == 0 {
            bail!("tenant {id}: crm.rate_limit.interval_ms must be at least 1 when burst is set");
        }
        Ok(())
    }

    /// The no-match policy as the WIT enum.
    pub fn no_match_policy(&self) -> anyhow::Result<NoMatchPolicy> {
        match self.settings.no_match_policy.as_str() {
            "skip" => Ok(NoMatchPolicy::Skip),
            "create-contact" => Ok(NoMatchPolicy::CreateContact),
            other => {
                bail!("settings.no_match_policy {other:?} must be \"skip\" or \"create-contact\"")
            }
        }
    }

    /// The validated logging policy, `None` when none is configured.
    pub fn policy(&self) -> anyhow::Result<Option<guest_support::policy::Policy>> {
        match &self.settings.policy {
            None => Ok(None),
            Some(config) => Ok(Some(config.clone().validate()?)),
        }
    }

    /// The settings record passed to components.
    pub fn wit_settings(&self) -> TenantSettings {
        TenantSettings {
            tenant_id: self.id.clone(),
            pbx_base_url: self.pbx.base_url.trim_end_matches('/').to_string(),
            crm_base_url: self.crm.base_url.trim_end_matches('/').to_string(),
            crm_location_id: self.crm.location_id.clone(),
            crm_conversation_provider_id: self.crm.conversation_provider_id.clone(),
            default_country: self.settings.default_country.to_ascii_uppercase(),
            log_internal_calls: self.settings.log_internal_calls,
            no_match_policy: self.no_match_policy().unwrap_or(NoMatchPolicy::Skip),
            overlap_window_secs: self.settings.overlap_window_secs,
            page_size: self.settings.page_size,
            recording_window_secs: self.settings.recording_window_secs,
            retry_base_ms: self.settings.retry_base_ms,
            missed_call_recovery_window_secs: self.settings.missed_call_recovery_window_secs,
        }
    }
}

/// A base URL must be HTTPS, or plain HTTP to a loopback address (the
/// simulators), with no path.
pub fn check_base_url(url: &str) -> anyhow::Result<()> {
    let Some(authority) = crate::outbound::authority_of_url(url) else {
        bail!("{url:?} is not a URL: use https://host[:port]");
    };
    if url.starts_with("http://")
        && !crate::outbound::OutboundPolicy::allow_urls([url]).permits(&authority, false)
    {
        bail!(
            "{url:?} uses plain http: use https:// (plain http is only accepted for loopback test servers)"
        );
    }
    let path = url.splitn(4, '/').nth(3).unwrap_or("");
    if !path.is_empty() {
        bail!("{url:?} has a path: give only https://host[:port]");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        let pbx = PbxConfig {
            base_url: "https://x".into(),
            client_id: "c".into(),
            client_secret: s,
        };
        assert!(!format!("{pbx:?}").contains("hunter2"));
    }

    #[test]
    fn base_urls_must_be_https_or_loopback_http_without_a_path() {
        assert!(check_base_url("https://pbx.example.com").is_ok());
        assert!(check_base_url("http://127.0.0.1:5000").is_ok());
        let plain = check_base_url("http://pbx.example.com")
            .unwrap_err()
            .to_string();
        assert!(plain.contains("use https://"), "{plain}");
        assert!(
            check_base_url("https://pbx.example.com/xapi/v1")
                .unwrap_err()
                .to_string()
                .contains("has a path")
        );
        assert!(check_base_url("pbx.example.com").is_err());
    }
}
