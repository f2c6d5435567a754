//! The settings record the components take (WIT `tenant-settings`),
//! from a tenant's configuration: the one place the host fills it.

use crate::bindings::types::{InsightsSettings, NoMatchPolicy, TenantSettings};
use crate::config::TenantConfig;

/// The settings record passed to components. Settings that do not
/// validate were refused at start-up (`TenantConfig::validate`); should
/// one slip through, the safe default is used (skip unmatched calls, the
/// default tie-breakers).
pub fn settings_record(config: &TenantConfig) -> TenantSettings {
    TenantSettings {
        tenant_id: config.id.clone(),
        pbx_base_url: config.pbx.base_url.trim_end_matches('/').to_string(),
        crm_base_url: config.crm.base_url.trim_end_matches('/').to_string(),
        crm_location_id: config.crm.location_id.clone(),
        crm_conversation_provider_id: config.crm.conversation_provider_id.clone(),
        default_country: config.settings.default_country.to_ascii_uppercase(),
        log_internal_calls: config.settings.log_internal_calls,
        no_match_policy: config
            .no_match_policy()
            .map_or(NoMatchPolicy::Skip, Into::into),
        overlap_window_secs: config.settings.overlap_window_secs,
        page_size: config.settings.page_size,
        recording_window_secs: config.settings.recording_window_secs,
        retry_base_ms: config.settings.retry_base_ms,
        missed_call_recovery_window_secs: config.settings.missed_call_recovery_window_secs,
        call_timeline: config.settings.call_timeline,
        crm_user_overrides: config
            .settings
            .crm_user_overrides
            .iter()
            .map(|(e, u)| (e.clone(), u.clone()))
            .collect(),
        tie_breakers: config
            .tie_breakers()
            .map(|breakers| breakers.into_iter().map(Into::into).collect())
            .unwrap_or_default(),
        call_reference_prefix: config.call_reference_prefix(),
        insights: InsightsSettings {
            summary: config.settings.insights.summary,
            sentiment: config.settings.insights.sentiment,
            transcript: config.settings.insights.transcript,
            window_secs: config.settings.insights.window_secs,
            // The field Update Call Record writes (`[tenants.actions]`).
            sentiment_field_key: config
                .actions
                .sentiment_field_key
                .clone()
                .filter(|k| !k.trim().is_empty())
                .unwrap_or_else(|| {
                    guest_support::insights::DEFAULT_SENTIMENT_FIELD_KEY.to_string()
                }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::TieBreaker;

    #[test]
    fn user_overrides_and_tie_breakers_reach_the_components() {
        let tenant: TenantConfig = toml::from_str(
            "id = \"t\"\n[pbx]\nbase_url = \"https://pbx.example.com/\"\nclient_id = \"c\"\n[crm]\nlocation_id = \"L\"\nconversation_provider_id = \"p\"\nclient_id = \"c\"\n[settings]\ndefault_country = \"gb\"\ntie_breakers = [\"recent-conversation\"]\n[settings.crm_user_overrides]\n\"101\" = \"user1\"\n",
        )
        .unwrap();
        let record = settings_record(&tenant);
        assert_eq!(
            record.crm_user_overrides,
            [("101".to_string(), "user1".to_string())]
        );
        assert_eq!(record.tie_breakers, [TieBreaker::RecentConversation]);
        assert!(matches!(record.no_match_policy, NoMatchPolicy::Skip));
        assert_eq!(record.default_country, "GB");
        assert_eq!(record.pbx_base_url, "https://pbx.example.com");
        // Insights default to summary and sentiment, into write-back's field.
        assert!(record.insights.summary && record.insights.sentiment);
        assert!(!record.insights.transcript);
        assert_eq!(record.insights.window_secs, 1800);
        assert_eq!(
            record.insights.sentiment_field_key,
            "connectzero_call_sentiment"
        );
    }
}
