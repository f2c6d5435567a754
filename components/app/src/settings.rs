//! The tenant's settings, read from `wasi:config/store` (Spin variables).
//!
//! One Spin app serves one tenant: its variables are that tenant's. The
//! names and defaults are the bundled host's `[tenants.settings]` ones
//! (see `host/src/config.rs`), spelt with `_`.

use guest_support::bindings::connectzero::pipeline::types::{NoMatchPolicy, TenantSettings};
use guest_support::{StageError, config};

/// HighLevel's production API.
const DEFAULT_CRM_BASE_URL: &str = "https://services.leadconnectorhq.com";

/// Everything one tick needs besides the stages.
pub struct AppSettings {
    /// The settings record the stages take.
    pub tenant: TenantSettings,
    /// A claim older than this (its instance died) may be taken over, in ms.
    pub claim_lease_ms: u64,
    /// Secret `POST /tick` must carry in `x-connectzero-tick-secret`.
    pub tick_secret: String,
    /// The logging policy from the `policy_json` variable (the host's
    /// `[tenants.settings.policy]` as JSON); `None` when it is empty.
    pub policy: Option<guest_support::policy::Policy>,
}

impl AppSettings {
    /// Read every setting; a missing or bad one is an error naming it.
    pub fn load() -> Result<Self, StageError> {
        let url = |key: &str, default: Option<&str>| -> Result<String, StageError> {
            let value = match (config::get(key)?, default) {
                (Some(v), _) => v,
                (None, Some(d)) => d.to_string(),
                (None, None) => config::require(key)?,
            };
            Ok(value.trim_end_matches('/').to_string())
        };
        let no_match_policy = match config::get("no_match_policy")?.as_deref() {
            None | Some("skip") => NoMatchPolicy::Skip,
            Some("create-contact") => NoMatchPolicy::CreateContact,
            Some(other) => {
                return Err(StageError::InvalidSettings(format!(
                    "configuration \"no_match_policy\" is {other:?}: use \"skip\" or \"create-contact\""
                )));
            }
        };
        let tenant = TenantSettings {
            tenant_id: config::get("tenant_id")?.unwrap_or_else(|| "default".into()),
            pbx_base_url: url("pbx_base_url", None)?,
            crm_base_url: url("crm_base_url", Some(DEFAULT_CRM_BASE_URL))?,
            crm_location_id: config::require("crm_location_id")?,
            crm_conversation_provider_id: config::require("crm_conversation_provider_id")?,
            default_country: config::get("default_country")?
                .unwrap_or_else(|| "US".into())
                .to_ascii_uppercase(),
            log_internal_calls: config::parse_or("log_internal_calls", false)?,
            no_match_policy,
            overlap_window_secs: config::parse_or("overlap_window_secs", 300)?,
            page_size: config::parse_or("page_size", 100)?,
            recording_window_secs: config::parse_or("recording_window_secs", 600)?,
            retry_base_ms: config::parse_or("retry_base_ms", 2000)?,
            missed_call_recovery_window_secs: config::parse_or(
                "missed_call_recovery_window_secs",
                86_400,
            )?,
        };
        let claim_lease_secs: u64 = config::parse_or("claim_lease_secs", 120)?;
        Ok(Self {
            tenant,
            claim_lease_ms: claim_lease_secs * 1000,
            tick_secret: config::require("tick_secret")?,
            policy: guest_support::policy::parse_json(
                &config::get("policy_json")?.unwrap_or_default(),
            )
            .map_err(|e| {
                StageError::InvalidSettings(format!("configuration \"policy_json\": {e}"))
            })?,
        })
    }
}
