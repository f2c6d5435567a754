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
//! tie_breakers = ["assigned-user", "recent-conversation", "first-contact"]
//! [tenants.settings.crm_user_overrides] # extension = HighLevel user id
//! "101" = "0IHuJvc2ofPAAA8GzTRi"
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
//! [tenants.settings.route]            # optional; see guest_support::routing
//! dids = ["+442079460100"]            # inbound calls to these DIDs…
//! queues = ["800"]                    # …or through these queues
//! default = false                     # true: also what no other tenant takes
//! ```

use crate::bindings::types::{NoMatchPolicy, TenantSettings, TieBreaker};
use anyhow::{Context, bail};
use guest_support::settings as shared;
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

/// Periodic self-diagnostics of one tenant (`[tenants.settings.diagnostics]`,
/// `crate::diagnostics`): doctor's checks run every `interval_mins`, and a
/// check that starts failing raises one alert in the CRM sub-account.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DiagnosticsConfig {
    /// Minutes between runs; 0 turns the runs off. Default 15.
    pub interval_mins: u32,
    /// Where a new failure is announced: "crm-task" (default: a task in
    /// the sub-account, besides the status page, logs and metrics) or
    /// "status-page" (status page, logs and metrics only).
    pub alert: String,
    /// The HighLevel contact the alert tasks are put on. Default: a
    /// contact ConnectZero creates for itself on the first alert
    /// (`crate::diagnostics::alert_contact`).
    pub alert_contact_id: Option<String>,
}

impl DiagnosticsConfig {
    /// The alert settings' accepted values.
    pub const ALERTS: [&str; 2] = ["crm-task", "status-page"];
    /// Longest interval accepted, minutes (a day).
    pub const MAX_INTERVAL_MINS: u32 = 24 * 60;

    /// Whether new failures raise a CRM task.
    pub fn alerts_in_crm(&self) -> bool {
        self.alert == "crm-task"
    }

    /// Check the values, naming the field and the fix.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.interval_mins > Self::MAX_INTERVAL_MINS {
            bail!(
                "settings.diagnostics.interval_mins must be at most {} (a day); 0 turns diagnostics off",
                Self::MAX_INTERVAL_MINS
            );
        }
        if !Self::ALERTS.contains(&self.alert.as_str()) {
            bail!(
                "settings.diagnostics.alert {:?} must be \"crm-task\" or \"status-page\"",
                self.alert
            );
        }
        if let Some(contact) = &self.alert_contact_id
            && (contact.trim().is_empty() || !contact.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            bail!(
                "settings.diagnostics.alert_contact_id {contact:?} must be a HighLevel contact id (letters and digits, as in the contact's URL), or be removed to let ConnectZero create its own alerts contact"
            );
        }
        Ok(())
    }
}

impl Default for DiagnosticsConfig {
    fn default() -> Self {
        Self {
            interval_mins: 15,
            alert: "crm-task".into(),
            alert_contact_id: None,
        }
    }
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

/// The tie-breakers a tenant gets by default, in order (shared with the
/// Spin app's default).
pub use guest_support::settings::DEFAULT_TIE_BREAKERS;

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
    /// List a multi-segment call's segments (IVR, queue, ring group,
    /// transfers) in its CRM message. Default on.
    pub call_timeline: bool,
    /// Days a call's exactly-once state (ledger entries, send marker,
    /// follow-up done markers) is kept after the call started; 0 keeps it
    /// forever, else at least 7. State the poll may still read is never
    /// forgotten, and a backfill may not reach further back than this
    /// less a day. Default 30 (`guest_support::retention`).
    pub state_retention_days: u32,
    /// Days a handled call stays in the call log (the status page, `calls`
    /// and `explain`); parked calls stay until an operator settles them.
    /// 0 keeps every row. Default 30.
    pub call_log_days: u32,
    /// The HighLevel OAuth install (`[tenants.settings.oauth]`).
    pub oauth: OAuthConfig,
    /// Periodic self-diagnostics (`[tenants.settings.diagnostics]`).
    pub diagnostics: DiagnosticsConfig,
    /// The logging policy (`[tenants.settings.policy]`, see
    /// `guest_support::policy`). Unset (the default): every call is
    /// handled as without a policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<guest_support::policy::PolicyConfig>,
    /// Extension → HighLevel user id (`[tenants.settings.crm_user_overrides]`,
    /// e.g. `"101" = "0IHuJvc2ofPAAA8GzTRi"`): the CRM user a call of that
    /// extension is logged for, winning over the e-mail mapping (the
    /// extension owner's 3CX e-mail = a HighLevel user's). Default: none.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub crm_user_overrides: std::collections::BTreeMap<String, String>,
    /// How a number shared by several contacts is settled, in order:
    /// `assigned-user`, `recent-conversation`; when none decides the call
    /// is parked "needs review". Default both, in that order.
    pub tie_breakers: Vec<String>,
    /// Agency routing (`[tenants.settings.route]`, see
    /// `guest_support::routing`): the DIDs and queues of a shared 3CX this
    /// tenant takes. Unset (the default): it takes every call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<guest_support::routing::RouteConfig>,
    /// Qualifies the call key the CRM sees (`altId`, "Ref:") as
    /// `<prefix>/<call key>` (letters, digits, `.`, `:`, `_`, `-`; at most
    /// 64). Unset (the default): the 3CX host when another 3CX system feeds
    /// the same CRM location from this host, else none (the bare key, as
    /// before); `""` forces none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_reference_prefix: Option<String>,
    /// What this host knows of its other tenants (`link_tenants`); never
    /// read from or written to a file or the database.
    #[serde(skip)]
    pub peers: Peers,
}

/// What a tenant's routing and call references depend on in the other
/// tenants this host serves, computed by [`link_tenants`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peers {
    /// The DIDs and queues other tenants on the same 3CX take; every
    /// routed tenant needs them for the routing precedence (and the
    /// `route.default` tenant leaves these calls to them).
    pub route_elsewhere: guest_support::routing::RouteClaims,
    /// Another 3CX system feeds this tenant's CRM location.
    pub location_shared_with_other_pbx: bool,
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
            call_timeline: true,
            state_retention_days: guest_support::retention::DEFAULT_DAYS,
            call_log_days: 30,
            oauth: OAuthConfig::default(),
            diagnostics: DiagnosticsConfig::default(),
            policy: None,
            crm_user_overrides: Default::default(),
            tie_breakers: DEFAULT_TIE_BREAKERS.iter().map(|t| t.to_string()).collect(),
            route: None,
            call_reference_prefix: None,
            peers: Peers::default(),
        }
    }
}

impl HostConfig {
    /// Read and check a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let config = Self::read(path)?;
        config.validate()?;
        Ok(config)
    }

    /// Read a configuration file without checking its tenants (`doctor`
    /// reports each problem instead of stopping at the first; see
    /// `crate::location`).
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("{} is not a valid configuration", path.display()))
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
        self.route()
            .with_context(|| format!("tenant {id}: settings"))?;
        if let Some(prefix) = &self.settings.call_reference_prefix
            && let Err(e) = shared::check_call_reference_prefix(prefix)
        {
            bail!("tenant {id}: settings.call_reference_prefix {e}");
        }
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
        if let Err(e) = shared::check_page_size(s.page_size) {
            bail!("tenant {id}: settings.page_size {e}");
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
        if let Err(e) = guest_support::retention::check_days(s.state_retention_days) {
            bail!("tenant {id}: settings.state_retention_days: {e}");
        }
        if let Err(e) = guest_support::retention::check_recovery_window(
            s.missed_call_recovery_window_secs,
            s.state_retention_days,
        ) {
            bail!("tenant {id}: settings.{e}");
        }
        self.tie_breakers()
            .with_context(|| format!("tenant {id}"))?;
        for (extension, user) in &s.crm_user_overrides {
            if let Err(e) = shared::check_crm_user_override(extension, user) {
                bail!("tenant {id}: settings.crm_user_overrides {e}");
            }
        }
        s.diagnostics
            .validate()
            .with_context(|| format!("tenant {id}"))?;
        let limit = &self.crm.rate_limit;
        if limit.burst > 0 && limit.interval_ms == 0 {
            bail!("tenant {id}: crm.rate_limit.interval_ms must be at least 1 when burst is set");
        }
        Ok(())
    }

    /// The no-match policy as the WIT enum.
    pub fn no_match_policy(&self) -> anyhow::Result<NoMatchPolicy> {
        shared::no_match_policy(&self.settings.no_match_policy)
            .map(Into::into)
            .map_err(|e| anyhow::anyhow!("settings.no_match_policy {e}"))
    }

    /// The tie-breakers as the WIT enum, in order; an unknown or repeated
    /// one is an error naming it (`guest_support::settings::tie_breakers`,
    /// shared with the Spin app).
    pub fn tie_breakers(&self) -> anyhow::Result<Vec<TieBreaker>> {
        let breakers = shared::tie_breakers(self.settings.tie_breakers.iter().map(String::as_str))
            .map_err(|e| anyhow::anyhow!("settings.tie_breakers {e}"))?;
        Ok(breakers.into_iter().map(Into::into).collect())
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
            call_timeline: self.settings.call_timeline,
            crm_user_overrides: self
                .settings
                .crm_user_overrides
                .iter()
                .map(|(e, u)| (e.clone(), u.clone()))
                .collect(),
            tie_breakers: self.tie_breakers().unwrap_or_default(),
            call_reference_prefix: self.call_reference_prefix(),
        }
    }

    /// The validated route filter, `None` when the tenant takes every
    /// call; the claims of the other tenants on the same 3CX
    /// (`link_tenants`) are added, for the precedence every route applies.
    pub fn route(&self) -> anyhow::Result<Option<guest_support::routing::Route>> {
        match &self.settings.route {
            None => Ok(None),
            Some(config) => Ok(Some(
                config
                    .validate()?
                    .with_elsewhere(&self.settings.peers.route_elsewhere),
            )),
        }
    }

    /// The prefix of the call key the CRM sees: the setting when given,
    /// else the 3CX host (with port) when another 3CX system feeds the
    /// same location, else none. The one place this is decided; the post
    /// component applies it (`components/post/src/summary.rs::crm_key`).
    pub fn call_reference_prefix(&self) -> String {
        match &self.settings.call_reference_prefix {
            Some(prefix) => prefix.trim().to_string(),
            None if self.settings.peers.location_shared_with_other_pbx => {
                pbx_identity(&self.pbx.base_url)
            }
            None => String::new(),
        }
    }
}

/// The 3CX system a base URL names: its host and port, lower case
/// ("pbx.example.com", "127.0.0.1:5001"). Tenants with the same identity
/// share one 3CX.
pub fn pbx_identity(base_url: &str) -> String {
    crate::authority::authority_of_url(base_url)
        .map(|a| a.strip_suffix(":443").map(str::to_string).unwrap_or(a))
        .unwrap_or_else(|| base_url.trim_end_matches('/').to_string())
        .to_ascii_lowercase()
}

/// Tell every tenant what it needs to know of the others this host
/// serves (`Peers`): the DIDs and queues the other tenants on its 3CX
/// take (for its route's precedence), and whether another 3CX feeds its
/// CRM location (for its call references). `run`, `backfill` and `replay`
/// call this on every tenant they know before building any.
pub fn link_tenants(tenants: &mut [TenantConfig]) {
    let snapshot: Vec<(
        String,
        String,
        String,
        Option<guest_support::routing::RouteClaims>,
    )> = tenants
        .iter()
        .map(|t| {
            (
                t.id.clone(),
                pbx_identity(&t.pbx.base_url),
                location_identity(t),
                t.settings.route.as_ref().map(|r| r.claims()),
            )
        })
        .collect();
    for tenant in tenants.iter_mut() {
        let pbx = pbx_identity(&tenant.pbx.base_url);
        let location = location_identity(tenant);
        let mut peers = Peers::default();
        for (id, other_pbx, other_location, claims) in &snapshot {
            if *id == tenant.id {
                continue;
            }
            if *other_pbx == pbx
                && let Some(claims) = claims
            {
                peers.route_elsewhere.extend(claims);
            }
            if *other_location == location && *other_pbx != pbx {
                peers.location_shared_with_other_pbx = true;
            }
        }
        tenant.settings.peers = peers;
    }
}

fn location_identity(tenant: &TenantConfig) -> String {
    format!(
        "{}|{}",
        tenant
            .crm
            .base_url
            .trim_end_matches('/')
            .to_ascii_lowercase(),
        tenant.crm.location_id
    )
}

/// Warnings about how tenants sharing one 3CX split its calls: a call two
/// tenants take (an overlap), calls no tenant takes (a gap: recorded as
/// `routed-elsewhere` by all), a tenant without a route next to routed
/// ones (it takes every call, the others' too). Each says what to change.
/// `run` logs them at start and `connectzero doctor` shows them.
pub fn routing_warnings(tenants: &[TenantConfig]) -> Vec<String> {
    use std::collections::BTreeMap;
    let mut by_pbx: BTreeMap<String, Vec<&TenantConfig>> = BTreeMap::new();
    for t in tenants {
        by_pbx
            .entry(pbx_identity(&t.pbx.base_url))
            .or_default()
            .push(t);
    }
    let mut warnings = Vec::new();
    for (pbx, group) in by_pbx {
        if group.len() < 2 || group.iter().all(|t| t.settings.route.is_none()) {
            continue;
        }
        let ids = |f: &dyn Fn(&TenantConfig) -> bool| -> Vec<String> {
            group
                .iter()
                .filter(|t| f(t))
                .map(|t| t.id.clone())
                .collect()
        };
        let unrouted = ids(&|t| t.settings.route.is_none());
        for id in &unrouted {
            warnings.push(format!(
                "3CX {pbx}: tenant {id} has no route and takes every call, including those routed to the other tenants on this 3CX: give it a [settings.route] (e.g. `default = true` to take only the calls nobody else claims)"
            ));
        }
        let defaults = ids(&|t| t.settings.route.as_ref().is_some_and(|r| r.default));
        if defaults.len() > 1 {
            warnings.push(format!(
                "3CX {pbx}: tenants {} all have route.default = true and all take the calls no other tenant claims: keep it on one",
                defaults.join(", ")
            ));
        }
        if unrouted.is_empty() && defaults.is_empty() {
            warnings.push(format!(
                "3CX {pbx}: no tenant has route.default = true, so calls matching no tenant's dids or queues (outbound and internal calls, new DIDs) are posted nowhere, only recorded as routed-elsewhere: set `default = true` on one tenant's route"
            ));
        }
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for t in &group {
            let Some(route) = &t.settings.route else {
                continue;
            };
            let dids = route.dids.iter().filter_map(|d| {
                guest_support::policy::canonical_e164(d).map(|d| format!("DID {d}"))
            });
            let queues = route.queues.iter().map(|q| format!("queue {}", q.trim()));
            for claim in dids.chain(queues) {
                if let Some(first) = seen.get(&claim) {
                    warnings.push(format!(
                        "3CX {pbx}: {claim} is routed to both {first} and {}, so both post those calls: list it in one tenant's route",
                        t.id
                    ));
                } else {
                    seen.insert(claim, t.id.clone());
                }
            }
        }
    }
    warnings
}

/// A base URL must be HTTPS, or plain HTTP to a loopback address (the
/// simulators), with no path.
pub fn check_base_url(url: &str) -> anyhow::Result<()> {
    // One rule for both runtimes (the Spin app's settings use it too).
    guest_support::settings::check_base_url(url)
        .map(drop)
        .map_err(|e| anyhow::anyhow!("{e}"))
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
                .contains("with no path")
        );
        assert!(check_base_url("pbx.example.com").is_err());
    }

    /// A tenant from TOML: `id` on 3CX `pbx`, with `extra` settings.
    fn routed(id: &str, pbx: &str, extra: &str) -> anyhow::Result<TenantConfig> {
        let tenant: TenantConfig = toml::from_str(&format!(
            "id = \"{id}\"\n[pbx]\nbase_url = \"{pbx}\"\nclient_id = \"c\"\n[crm]\nlocation_id = \"L-{id}\"\nconversation_provider_id = \"p\"\nclient_id = \"c\"\n[settings]\n{extra}"
        ))?;
        tenant.validate()?;
        Ok(tenant)
    }

    #[test]
    fn a_bad_route_is_refused_saying_what_to_fix() {
        let e = routed(
            "a",
            "https://pbx.example.com",
            "[settings.route]\ndids = [\"01615550100\"]",
        )
        .unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("route.dids") && e.contains("E.164"), "{e}");
        let e = routed(
            "a",
            "https://pbx.example.com",
            "[settings.route]\nqueues = [\"sales\"]",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("extension number"), "{e:#}");
        let e = routed(
            "a",
            "https://pbx.example.com",
            "[settings.route]\ncolour = 1",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("colour"), "{e:#}");
        // No route: the tenant takes every call, as before.
        assert!(
            routed("a", "https://pbx.example.com", "")
                .unwrap()
                .route()
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn routing_warnings_name_overlaps_gaps_and_unrouted_tenants_per_3cx() {
        let pbx = "https://pbx.example.com";
        let sales = routed(
            "sales",
            pbx,
            "[settings.route]\ndids = [\"+14155550900\"]\nqueues = [\"800\"]",
        )
        .unwrap();
        let support = routed("support", pbx, "[settings.route]\nqueues = [\"800\"]").unwrap();
        let all = routed("all", pbx, "").unwrap();
        let elsewhere = routed("other", "https://other.example.com", "").unwrap();
        let w = routing_warnings(&[sales.clone(), support.clone(), elsewhere.clone()]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w.iter()
                .any(|w| w.contains("queue 800 is routed to both sales and support")),
            "{w:?}"
        );
        assert!(
            w.iter().any(|w| w.contains("no tenant has route.default")),
            "{w:?}"
        );
        let w = routing_warnings(&[sales.clone(), all]);
        assert!(
            w.iter().any(|w| w.contains("tenant all has no route")),
            "{w:?}"
        );
        // Tenants alone on their 3CX, or none routed: nothing to say.
        assert!(routing_warnings(&[sales, elsewhere]).is_empty());

        // The default tenant leaves the others' claims to them.
        let default = routed("default", pbx, "[settings.route]\ndefault = true").unwrap();
        let mut linked = vec![default, support];
        link_tenants(&mut linked);
        assert_eq!(linked[0].settings.peers.route_elsewhere.queues, ["800"]);
        assert!(linked[1].settings.peers.route_elsewhere.is_empty());
        assert!(routing_warnings(&linked).is_empty());
    }

    #[test]
    fn a_retention_horizon_too_short_to_be_safe_is_refused() {
        let tenant: TenantConfig = toml::from_str(
            "id = \"t\"\n[pbx]\nbase_url = \"https://pbx.example.com\"\nclient_id = \"c\"\n[crm]\nlocation_id = \"L\"\nconversation_provider_id = \"p\"\nclient_id = \"c\"\n[settings]\nstate_retention_days = 3\ncall_log_days = 0\n",
        )
        .unwrap();
        let e = format!("{:#}", tenant.validate().unwrap_err());
        assert!(
            e.contains("settings.state_retention_days") && e.contains("at least 7"),
            "{e}"
        );
        let mut forever = tenant;
        forever.settings.state_retention_days = 0;
        forever.validate().unwrap();
        assert_eq!(TenantOptions::default().state_retention_days, 30);
    }

    #[test]
    fn user_overrides_and_tie_breakers_reach_the_components_or_say_what_to_fix() {
        let tenant: TenantConfig = toml::from_str(
            "id = \"t\"\n[pbx]\nbase_url = \"https://pbx.example.com\"\nclient_id = \"c\"\n[crm]\nlocation_id = \"L\"\nconversation_provider_id = \"p\"\nclient_id = \"c\"\n[settings]\ntie_breakers = [\"recent-conversation\"]\n[settings.crm_user_overrides]\n\"101\" = \"user1\"\n",
        )
        .unwrap();
        tenant.validate().unwrap();
        let wit = tenant.wit_settings();
        assert_eq!(
            wit.crm_user_overrides,
            [("101".to_string(), "user1".to_string())]
        );
        assert_eq!(wit.tie_breakers, [TieBreaker::RecentConversation]);
        // The default: assigned user, recent conversation, then the
        // product rule (the first contact with the number).
        assert_eq!(
            TenantOptions::default().tie_breakers,
            ["assigned-user", "recent-conversation", "first-contact"]
        );

        let mut bad = tenant.clone();
        bad.settings
            .crm_user_overrides
            .insert("102".into(), "  ".into());
        let e = format!("{:#}", bad.validate().unwrap_err());
        assert!(
            e.contains("crm_user_overrides maps extension \"102\"") && e.contains("user id"),
            "{e}"
        );
        let mut twice = tenant;
        twice.settings.tie_breakers = vec!["assigned-user".into(), "assigned-user".into()];
        let e = format!("{:#}", twice.validate().unwrap_err());
        assert!(e.contains("twice"), "{e}");
    }
}
