//! The tenant's settings, read from `wasi:config/store` (Spin variables).
//!
//! One Spin app serves one tenant: its variables are that tenant's. The
//! names and defaults are the bundled host's `[tenants.settings]` ones
//! (see `crates/config/src/lib.rs`), spelt with `_`.

use guest_support::bindings::connectzero::pipeline::types::{
    InsightsSettings, NoMatchPolicy, TenantSettings, TieBreaker,
};
use guest_support::settings as shared;
use guest_support::{StageError, config};

/// HighLevel's production API.
const DEFAULT_CRM_BASE_URL: &str = "https://services.leadconnectorhq.com";

/// Where settings are read from: a setting's trimmed value, `None` when
/// unset or empty (`guest_support::config::get`'s contract).
pub type Lookup<'a> = dyn Fn(&str) -> Result<Option<String>, StageError> + 'a;

/// Settings read from a [`Lookup`], with `guest_support::config`'s errors.
struct Vars<'a>(&'a Lookup<'a>);

impl Vars<'_> {
    fn require(&self, key: &str) -> Result<String, StageError> {
        config::required(key, (self.0)(key)?)
    }

    fn parse_or<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, StageError> {
        config::parsed_or(key, (self.0)(key)?, default)
    }
}

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
    /// The route filter from the `route_json` variable (the host's
    /// `[tenants.settings.route]` as JSON); `None` when it is empty: the
    /// tenant takes every call. One app serves one tenant, so its route
    /// lists the other tenants' DIDs and queues in `"elsewhere"` itself
    /// (the precedence every tenant applies needs them).
    pub route: Option<guest_support::routing::Route>,
    /// Most new calls one tick claims (`max_calls_per_tick`, the host's
    /// setting of that name).
    pub max_calls_per_tick: u32,
    /// Days per-call state is kept (`state_retention_days`; 0: forever,
    /// else at least 7).
    pub state_retention_days: u32,
}

/// `call_reference_prefix`: the host's setting of that name, checked by
/// `guest_support::settings::check_call_reference_prefix`, as on the host
/// (`config::get` has already dropped the spaces around every variable's
/// value; a space inside is refused). Unset or empty: the bare call key
/// (the host derives a prefix when two 3CX systems feed one location; one
/// app cannot see the others, so set a distinct value per 3CX then, e.g.
/// the 3CX host name).
fn call_reference_prefix(value: Option<&str>) -> Result<String, StageError> {
    let prefix = value.unwrap_or_default();
    shared::check_call_reference_prefix(prefix)
        .map(str::to_string)
        .map_err(|e| invalid("call_reference_prefix", e))
}

/// The error of a variable the shared check refused; `e` says what to fix.
fn invalid(variable: &str, e: shared::SettingsError) -> StageError {
    StageError::InvalidSettings(format!("configuration \"{variable}\" {e}"))
}

impl AppSettings {
    /// Read every setting through `wasi:config` (the selected tenant's,
    /// see `components/tenancy`); a missing or bad one is an error naming
    /// it.
    pub fn load() -> Result<Self, StageError> {
        Self::load_from(&config::get)
    }

    /// Read every setting from `get` (a setting's trimmed value, `None`
    /// when unset or empty): the admin API checks a tenant's settings
    /// before it stores them.
    pub fn load_from(get: &Lookup<'_>) -> Result<Self, StageError> {
        let vars = Vars(get);
        let url = |key: &str, default: Option<&str>| -> Result<String, StageError> {
            let value = match (get(key)?, default) {
                (Some(v), _) => v,
                (None, Some(d)) => d.to_string(),
                (None, None) => config::required(key, None)?,
            };
            shared::check_base_url(&value).map_err(|e| invalid(key, e))
        };
        let no_match_policy = match get("no_match_policy")? {
            None => NoMatchPolicy::Skip,
            Some(value) => shared::no_match_policy(&value)
                .map_err(|e| invalid("no_match_policy", e))?
                .into(),
        };
        let tenant = TenantSettings {
            tenant_id: get("tenant_id")?.unwrap_or_else(|| "default".into()),
            pbx_base_url: url("pbx_base_url", None)?,
            crm_base_url: url("crm_base_url", Some(DEFAULT_CRM_BASE_URL))?,
            crm_location_id: vars.require("crm_location_id")?,
            crm_conversation_provider_id: vars.require("crm_conversation_provider_id")?,
            default_country: get("default_country")?
                .unwrap_or_else(|| "US".into())
                .to_ascii_uppercase(),
            log_internal_calls: vars.parse_or("log_internal_calls", false)?,
            no_match_policy,
            overlap_window_secs: vars.parse_or("overlap_window_secs", 300)?,
            page_size: shared::check_page_size(vars.parse_or("page_size", 100)?).map_err(|e| {
                StageError::InvalidSettings(format!("configuration \"page_size\" {e}"))
            })?,
            recording_window_secs: vars.parse_or("recording_window_secs", 600)?,
            retry_base_ms: vars.parse_or("retry_base_ms", 2000)?,
            missed_call_recovery_window_secs: vars
                .parse_or("missed_call_recovery_window_secs", 86_400)?,
            call_timeline: vars.parse_or("call_timeline", true)?,
            crm_user_overrides: crm_user_overrides(
                &get("crm_user_overrides_json")?.unwrap_or_default(),
            )?,
            tie_breakers: tie_breakers(get("tie_breakers")?.as_deref())?,
            call_reference_prefix: call_reference_prefix(get("call_reference_prefix")?.as_deref())?,
            insights: insights(&vars, get)?,
        };
        let claim_lease_secs: u64 = vars.parse_or("claim_lease_secs", 120)?;
        let state_retention_days = guest_support::retention::check_days(vars.parse_or(
            "state_retention_days",
            guest_support::retention::DEFAULT_DAYS,
        )?)
        .map_err(|e| {
            StageError::InvalidSettings(format!("configuration \"state_retention_days\": {e}"))
        })?;
        guest_support::retention::check_recovery_window(
            tenant.missed_call_recovery_window_secs,
            state_retention_days,
        )
        .map_err(|e| StageError::InvalidSettings(format!("configuration: {e}")))?;
        let policy_json = get("policy_json")?.unwrap_or_default();
        let route_json = get("route_json")?.unwrap_or_default();
        Ok(Self {
            tenant,
            claim_lease_ms: claim_lease_secs * 1000,
            tick_secret: vars.require("tick_secret")?,
            policy: guest_support::policy::parse_json(&policy_json).map_err(|e| {
                StageError::InvalidSettings(format!("configuration \"policy_json\": {e}"))
            })?,
            route: guest_support::routing::parse_json(&route_json).map_err(|e| {
                StageError::InvalidSettings(format!("configuration \"route_json\": {e}"))
            })?,
            max_calls_per_tick: vars.parse_or("max_calls_per_tick", 100)?,
            state_retention_days,
        })
    }
}

/// The insights settings: `insights_summary`, `insights_sentiment`
/// (default on), `insights_transcript` (default off), `insights_window_secs`
/// (default 1800), and the sentiment into `sentiment_field_key` (the field
/// Update Call Record writes; empty: `connectzero_call_sentiment`).
fn insights(vars: &Vars<'_>, get: &Lookup<'_>) -> Result<InsightsSettings, StageError> {
    let defaults = guest_support::insights::InsightsConfig::default();
    Ok(InsightsSettings {
        summary: vars.parse_or("insights_summary", defaults.summary)?,
        sentiment: vars.parse_or("insights_sentiment", defaults.sentiment)?,
        transcript: vars.parse_or("insights_transcript", defaults.transcript)?,
        window_secs: vars.parse_or("insights_window_secs", defaults.window_secs)?,
        sentiment_field_key: get("sentiment_field_key")?
            .unwrap_or_else(|| guest_support::insights::DEFAULT_SENTIMENT_FIELD_KEY.into()),
    })
}

/// `crm_user_overrides_json`: the host's `[tenants.settings.crm_user_overrides]`
/// as a JSON object of extension → HighLevel user id; empty: none. Each
/// entry is checked as the host checks it
/// (`guest_support::settings::crm_user_overrides_json`).
fn crm_user_overrides(json: &str) -> Result<Vec<(String, String)>, StageError> {
    shared::crm_user_overrides_json(json).map_err(|e| invalid("crm_user_overrides_json", e))
}

/// `tie_breakers`: comma-separated, in order (the host's
/// `settings.tie_breakers`); unset or empty (Spin reads an empty variable
/// as unset): `assigned-user,recent-conversation`; `none`: every shared
/// number goes to review. Parsed by
/// `guest_support::settings::tie_breakers_from_list`.
fn tie_breakers(value: Option<&str>) -> Result<Vec<TieBreaker>, StageError> {
    let breakers = shared::tie_breakers_from_list(value).map_err(|e| invalid("tie_breakers", e))?;
    Ok(breakers.into_iter().map(Into::into).collect())
}
