//! How a tenant reaches its 3CX and HighLevel sides and is reached by
//! HighLevel: `[tenants.pbx]`, `[tenants.crm]` with its request budget
//! (`[tenants.crm.rate_limit]`), and `[tenants.actions]`.

use super::{HIGHLEVEL_API, Secret};
use serde::{Deserialize, Serialize};
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
    /// (`connectzero-ratelimit`); default HighLevel's documented limit.
    #[serde(default, skip_serializing_if = "CrmRateLimit::is_highlevel")]
    pub rate_limit: CrmRateLimit,
}

/// HighLevel's per-location request limit as this host keeps to it
/// (`[tenants.crm.rate_limit]`). Tenants sharing an app and a location
/// share one budget (`connectzero-ratelimit`).
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
    /// these numbers live is `guest_support::budget`, which the Spin
    /// app's shared budget reads too.
    pub const HIGHLEVEL: CrmRateLimit = CrmRateLimit {
        burst: guest_support::budget::HIGHLEVEL_BURST,
        interval_ms: guest_support::budget::HIGHLEVEL_INTERVAL_MS,
        daily: guest_support::budget::HIGHLEVEL_DAILY,
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
