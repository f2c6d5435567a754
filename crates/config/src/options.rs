//! A tenant's behaviour (`[tenants.settings]`) with the defaults a new
//! tenant gets, and its OAuth install and self-diagnostics sub-tables.

use super::{DEFAULT_TIE_BREAKERS, Peers};
use anyhow::bail;
use serde::{Deserialize, Serialize};
/// The HighLevel OAuth install of one tenant (`[tenants.settings.oauth]`;
/// `connectzero::server` serves `/t/{tenant}/oauth/install` and the one
/// redirect URL of every tenant, `/oauth/callback`, and still the older
/// `/t/{tenant}/oauth/callback`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthConfig {
    /// This host's public base URL as the installer's browser reaches it
    /// (`https://host[:port]`); the redirect URI is
    /// `<public_url>/oauth/callback` (with `per_tenant_redirect`,
    /// `<public_url>/t/<tenant>/oauth/callback`) and must be one of the
    /// app's redirect URLs in the marketplace. Default: the install
    /// request's `Host` (plain http only for loopback).
    pub public_url: Option<String>,
    /// `true`: install links name this tenant's own callback,
    /// `<public_url>/t/<tenant>/oauth/callback`, as before there was one
    /// redirect URL for every tenant; for an app whose marketplace entry
    /// still lists only per-tenant URLs (HighLevel refuses an authorize
    /// request whose `redirect_uri` the app does not list). Default
    /// `false`: `<public_url>/oauth/callback`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_tenant_redirect: Option<bool>,
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
/// `connectzero::diagnostics`): doctor's checks run every `interval_mins`, and a
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
    /// (`connectzero::diagnostics::alert_contact`).
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
    /// Poll interval, milliseconds. Default 1000; 100 to 60 000.
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
    /// (`connectzero::pipeline`). Default 100.
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
    /// 3CX's own call insights (`[tenants.settings.insights]`: `summary`,
    /// `sentiment`, `transcript`, `window_secs`; see
    /// `guest_support::insights`). Default: summary and sentiment on,
    /// transcript off, 1800 s.
    pub insights: guest_support::insights::InsightsConfig,
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
            insights: Default::default(),
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
