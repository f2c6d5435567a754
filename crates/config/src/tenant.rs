//! One tenant's configuration (`[[tenants]]`) and what is derived from
//! it: its checks, the WIT settings record the components get, its
//! policy, route and call-reference prefix.

use super::{ActionsConfig, CrmConfig, PbxConfig, TenantOptions, check_base_url, pbx_identity};
use anyhow::{Context, bail};
use guest_support::settings as shared;
use serde::{Deserialize, Serialize};
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
        if !(100..=MAX_POLL_INTERVAL_MS).contains(&s.poll_interval_ms) {
            bail!(
                "tenant {id}: settings.poll_interval_ms must be between 100 and {MAX_POLL_INTERVAL_MS} (one minute): the ConnectZeroNoSuccessfulTick alert (deploy/prometheus) pages after 5 minutes without a successful poll"
            );
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

    /// The no-match policy.
    pub fn no_match_policy(&self) -> anyhow::Result<shared::NoMatchPolicy> {
        shared::no_match_policy(&self.settings.no_match_policy)
            .map_err(|e| anyhow::anyhow!("settings.no_match_policy {e}"))
    }

    /// The tie-breakers, in order; an unknown or repeated one is an error
    /// naming it (`guest_support::settings::tie_breakers`, shared with the
    /// Spin app).
    pub fn tie_breakers(&self) -> anyhow::Result<Vec<shared::TieBreaker>> {
        shared::tie_breakers(self.settings.tie_breakers.iter().map(String::as_str))
            .map_err(|e| anyhow::anyhow!("settings.tie_breakers {e}"))
    }

    /// The validated logging policy, `None` when none is configured.
    pub fn policy(&self) -> anyhow::Result<Option<guest_support::policy::Policy>> {
        match &self.settings.policy {
            None => Ok(None),
            Some(config) => Ok(Some(config.clone().validate()?)),
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

/// The longest poll interval accepted, in milliseconds: one minute, well
/// under the 5 minutes without a successful poll after which the
/// `ConnectZeroNoSuccessfulTick` alert pages.
pub const MAX_POLL_INTERVAL_MS: u64 = 60_000;

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_poll_interval_the_no_tick_alert_would_page_on_is_refused() {
        let mut tenant: TenantConfig = toml::from_str(
            "id = \"t\"\n[pbx]\nbase_url = \"https://pbx.example.com\"\nclient_id = \"c\"\n[crm]\nlocation_id = \"L\"\nconversation_provider_id = \"p\"\nclient_id = \"c\"\n[settings]\npoll_interval_ms = 60000\n",
        )
        .unwrap();
        tenant.validate().unwrap();
        tenant.settings.poll_interval_ms = 300_000;
        let e = format!("{:#}", tenant.validate().unwrap_err());
        assert!(
            e.contains("poll_interval_ms must be between 100 and 60000"),
            "{e}"
        );
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
        assert_eq!(tenant.settings.crm_user_overrides["101"], "user1");
        assert_eq!(
            tenant.tie_breakers().unwrap(),
            [shared::TieBreaker::RecentConversation]
        );
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
