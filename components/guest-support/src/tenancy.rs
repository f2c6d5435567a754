//! Many tenants in one Spin app: the names and the key layout, without I/O.
//!
//! The tenancy provider (`components/tenancy`) keeps each tenant's record
//! and namespace in the app's one key-value store; the app entry point and
//! the `connectzero tenant` commands that manage a Spin deployment use the
//! same names. What a tenant may set is [`TENANT_SETTINGS`]: everything
//! else (the marketplace app's OAuth client, the sealing key, the secrets
//! guarding the app's endpoints) is the app's, from its Spin variables.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The settings a tenant's record may hold: Spin variable names, the same
/// ones a single-tenant app sets as variables (spin.toml).
pub const TENANT_SETTINGS: [&str; 31] = [
    "pbx_base_url",
    "crm_base_url",
    "pbx_client_id",
    "pbx_client_secret",
    "crm_location_id",
    "crm_conversation_provider_id",
    "crm_refresh_token",
    "default_country",
    "log_internal_calls",
    "no_match_policy",
    "overlap_window_secs",
    "page_size",
    "recording_window_secs",
    "retry_base_ms",
    "missed_call_recovery_window_secs",
    "call_timeline",
    "claim_lease_secs",
    "max_calls_per_tick",
    "state_retention_days",
    "policy_json",
    "route_json",
    "call_reference_prefix",
    "crm_user_overrides_json",
    "tie_breakers",
    "sentiment_field_key",
    "max_notes_chars",
    "insights_summary",
    "insights_sentiment",
    "insights_transcript",
    "insights_window_secs",
    "paused",
];

/// The tenant settings that default to the app's variable of that name
/// when the tenant does not set them (every other tenant setting is the
/// tenant's alone: unset stays unset). A tenant's own HighLevel address is
/// for a regional endpoint or a test double; Spin's allow-list
/// (`crm_allowed_hosts`) still bounds where requests go.
pub const APP_DEFAULTED_SETTINGS: [&str; 1] = ["crm_base_url"];

/// The tenant settings that are secrets: sealed in the store, never shown.
pub const SECRET_SETTINGS: [&str; 2] = ["pbx_client_secret", "crm_refresh_token"];

/// What a tenant needs before it is ticked; until then (for example right
/// after a marketplace install created it) the tick driver skips it and
/// says what is missing.
pub const REQUIRED_SETTINGS: [&str; 5] = [
    "pbx_base_url",
    "pbx_client_id",
    "pbx_client_secret",
    "crm_location_id",
    "crm_conversation_provider_id",
];

/// Prefix of the keys the provider keeps for itself (records, index,
/// leases); no component sees them.
pub const RESERVED_PREFIX: &str = "tenancy/";

/// Prefix of every tenant namespace (`t/<id>/`).
pub const NAMESPACE_PREFIX: &str = "t/";

/// The lease id of the app's own tenant (the one its variables
/// configure); no stored tenant can have it, since ids start with a letter
/// or digit.
pub const APP_LEASE_ID: &str = "_app";

/// Key of the sorted list of tenant ids.
pub const INDEX_KEY: &str = "tenancy/index";

/// Why a tenant id or setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenancyError {
    /// The id is not `[a-z0-9][a-z0-9_-]{0,63}`.
    #[error(
        "tenant id {0:?} is not valid: use 1 to 64 lower-case letters, digits, '-' or '_', starting with a letter or digit (it becomes part of URLs and keys)"
    )]
    BadId(String),
    /// The name is not a tenant setting.
    #[error(
        "{0:?} is not a tenant setting: a tenant may set {list} (the others are the app's Spin variables)",
        list = TENANT_SETTINGS.join(", ")
    )]
    NotATenantSetting(String),
}

/// Check a tenant id: `[a-z0-9][a-z0-9_-]{0,63}`.
pub fn check_id(id: &str) -> Result<(), TenancyError> {
    let ok = id
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(TenancyError::BadId(id.to_string()))
    }
}

/// Check a setting's name.
pub fn check_setting(name: &str) -> Result<(), TenancyError> {
    if TENANT_SETTINGS.contains(&name) {
        Ok(())
    } else {
        Err(TenancyError::NotATenantSetting(name.to_string()))
    }
}

/// Whether `name` is sealed and never shown.
pub fn is_secret(name: &str) -> bool {
    SECRET_SETTINGS.contains(&name)
}

/// The prefix of tenant `id`'s keys.
pub fn namespace(id: &str) -> String {
    format!("{NAMESPACE_PREFIX}{id}/")
}

/// Key of tenant `id`'s record.
pub fn record_key(id: &str) -> String {
    format!("{RESERVED_PREFIX}tenants/{id}")
}

/// Key of tenant `id`'s tick lease.
pub fn lease_key(id: &str) -> String {
    format!("{RESERVED_PREFIX}leases/{id}")
}

/// The associated data a secret setting is sealed with: a sealed value
/// copied to another tenant or setting does not open.
pub fn sealing_name(id: &str, setting: &str) -> String {
    format!("tenant/{id}/{setting}")
}

/// Whether the app's own tenant (unprefixed keys) may see `key`: not the
/// provider's keys nor another tenant's namespace.
pub fn app_scope_may_use(key: &str) -> bool {
    !key.starts_with(RESERVED_PREFIX) && !key.starts_with(NAMESPACE_PREFIX)
}

/// A tenant's record as kept in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// Plain settings by name.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Secret settings by name, sealed and base64-encoded.
    #[serde(default)]
    pub sealed: BTreeMap<String, String>,
}

impl TenantRecord {
    /// The required settings this record lacks.
    pub fn missing(&self) -> Vec<&'static str> {
        REQUIRED_SETTINGS
            .into_iter()
            .filter(|name| !self.settings.contains_key(*name) && !self.sealed.contains_key(*name))
            .collect()
    }

    /// Whether the operator paused the tenant (`paused` = `true`).
    pub fn paused(&self) -> bool {
        self.settings.get("paused").is_some_and(|v| v == "true")
    }
}

/// A tenant's tick lease as kept in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Who holds it (the tick request's worker id).
    pub holder: String,
    /// Until when (ms since the epoch).
    pub until_ms: i64,
}

/// Whether `holder` may take a lease now held as `current`: when none is
/// held, it expired, or it is `holder`'s own.
pub fn may_take(current: Option<&Lease>, holder: &str, now_ms: i64) -> bool {
    match current {
        None => true,
        Some(lease) => lease.holder == holder || lease.until_ms <= now_ms,
    }
}

/// Insert `id` into the sorted index; false when it was there.
pub fn index_insert(index: &mut Vec<String>, id: &str) -> bool {
    match index.binary_search_by(|probe| probe.as_str().cmp(id)) {
        Ok(_) => false,
        Err(at) => {
            index.insert(at, id.to_string());
            true
        }
    }
}

/// Remove `id` from the sorted index; false when it was not there.
pub fn index_remove(index: &mut Vec<String>, id: &str) -> bool {
    match index.binary_search_by(|probe| probe.as_str().cmp(id)) {
        Ok(at) => {
            index.remove(at);
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_lower_case_url_safe_and_bounded() {
        for good in ["acme", "a", "tenant-1", "t_2", &"x".repeat(64)] {
            assert_eq!(check_id(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "Acme",
            "a/b",
            "a b",
            "ä",
            "../x",
            "_app",
            "-a",
            &"x".repeat(65),
        ] {
            assert!(check_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn only_tenant_settings_are_accepted_and_secrets_are_known() {
        assert_eq!(check_setting("pbx_base_url"), Ok(()));
        let refused = check_setting("token_key").unwrap_err().to_string();
        assert!(refused.contains("token_key") && refused.contains("pbx_base_url"));
        assert!(is_secret("pbx_client_secret") && is_secret("crm_refresh_token"));
        assert!(!is_secret("pbx_client_id"));
        for secret in SECRET_SETTINGS {
            assert!(TENANT_SETTINGS.contains(&secret));
        }
        for required in REQUIRED_SETTINGS {
            assert!(TENANT_SETTINGS.contains(&required));
        }
        for defaulted in APP_DEFAULTED_SETTINGS {
            assert!(TENANT_SETTINGS.contains(&defaulted));
        }
    }

    #[test]
    fn namespaces_do_not_overlap_and_the_app_scope_sees_neither() {
        assert_eq!(namespace("a"), "t/a/");
        // "a" and "a-b" must not share a prefix: the slash ends the id.
        assert!(!namespace("a-b").starts_with(&namespace("a")));
        assert!(!app_scope_may_use(&record_key("a")));
        assert!(!app_scope_may_use(&lease_key("a")));
        assert!(!app_scope_may_use(&format!("{}ledger/x", namespace("a"))));
        assert!(app_scope_may_use("ledger/x"));
        assert!(app_scope_may_use("credentials/pbx"));
    }

    #[test]
    fn a_lease_is_taken_when_free_expired_or_own() {
        let held = Lease {
            holder: "w1".into(),
            until_ms: 1_000,
        };
        assert!(may_take(None, "w2", 0));
        assert!(!may_take(Some(&held), "w2", 999));
        assert!(may_take(Some(&held), "w2", 1_000));
        assert!(may_take(Some(&held), "w1", 0));
    }

    #[test]
    fn the_index_stays_sorted_without_duplicates() {
        let mut index = Vec::new();
        assert!(index_insert(&mut index, "b"));
        assert!(index_insert(&mut index, "a"));
        assert!(!index_insert(&mut index, "b"));
        assert_eq!(index, ["a", "b"]);
        assert!(index_remove(&mut index, "a"));
        assert!(!index_remove(&mut index, "a"));
        assert_eq!(index, ["b"]);
    }

    #[test]
    fn a_record_says_what_it_lacks_and_whether_it_is_paused() {
        let mut record = TenantRecord::default();
        record
            .settings
            .insert("crm_location_id".into(), "loc".into());
        record.sealed.insert("pbx_client_secret".into(), "x".into());
        assert_eq!(
            record.missing(),
            [
                "pbx_base_url",
                "pbx_client_id",
                "crm_conversation_provider_id"
            ]
        );
        assert!(!record.paused());
        record.settings.insert("paused".into(), "true".into());
        assert!(record.paused());
    }
}
