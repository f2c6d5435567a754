//! # connectzero-config: the bundled host's configuration
//!
//! The tenants and their settings (`connectzero.toml`): their types, how
//! they are read and checked, and who a URL points at ([`authority`]).
//! It owns no state and does no I/O beyond reading the file; it depends
//! only on `guest-support`'s plain rules (policy, route, settings), never
//! on wasmtime, the runtime, storage or the operator features, which all
//! read it.
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
//! # stores one. Secrets are stored encrypted (`connectzero::secrets`) on first
//! # run and the client secrets may then be removed from this file.
//! [tenants.settings]
//! default_country = "GB"
//! tie_breakers = ["assigned-user", "recent-conversation", "first-contact"]
//! [tenants.settings.crm_user_overrides] # extension = HighLevel user id
//! "101" = "0IHuJvc2ofPAAA8GzTRi"
//! [tenants.settings.oauth]            # all optional
//! public_url = "https://cz.example.com"
//! # per_tenant_redirect = true      # links name /t/acme/oauth/callback, not /oauth/callback
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

pub mod authority;

mod access;
mod options;
mod routing;
mod tenant;

pub use access::{ActionsConfig, CrmConfig, CrmRateLimit, PbxConfig};
pub use options::{DiagnosticsConfig, OAuthConfig, TenantOptions};
pub use routing::{Peers, link_tenants, pbx_identity, routing_warnings};
pub use tenant::{MAX_POLL_INTERVAL_MS, TenantConfig};

use anyhow::{Context, bail};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::path::Path;
/// The HighLevel API's production base URL.
pub const HIGHLEVEL_API: &str = "https://services.leadconnectorhq.com";

/// A secret value: never printed, never logged. Empty means "not given"
/// (then the one stored encrypted in the database is used, see
/// `connectzero::secrets`).
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
    /// add` keeps more in the database (`connectzero::tenants`), and `run`
    /// serves both.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
}

fn default_database() -> String {
    "connectzero.db".into()
}

/// The tie-breakers a tenant gets by default, in order (shared with the
/// Spin app's default).
pub use guest_support::settings::DEFAULT_TIE_BREAKERS;

impl HostConfig {
    /// Read and check a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let config = Self::read(path)?;
        config.validate()?;
        Ok(config)
    }

    /// Read a configuration file without checking its tenants (`doctor`
    /// reports each problem instead of stopping at the first; see
    /// `connectzero::location`).
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
}
