//! `connectzero tenant settings`: the settings a database tenant's
//! command line shows and changes, reading and checking `key=value`
//! assignments.

use super::{TenantsError, validate};
use crate::config::TenantConfig;
/// The settings `tenant settings` shows and changes, with what each takes.
pub const SETTINGS: [(&str, &str); 23] = [
    (
        "default_country",
        "two-letter ISO code for numbers without +, e.g. US or GB",
    ),
    (
        "log_internal_calls",
        "true or false: post extension-to-extension calls",
    ),
    ("no_match_policy", "skip or create-contact"),
    (
        "recording_window_secs",
        "seconds to wait for 3CX to finalise a recording",
    ),
    (
        "poll_interval_ms",
        "milliseconds between polls, 100 to 60000",
    ),
    (
        "overlap_window_secs",
        "seconds each poll re-reads behind the cursor",
    ),
    ("page_size", "rows per 3CX page, 1 to 1000"),
    (
        "retry_base_ms",
        "first retry delay in milliseconds (doubles)",
    ),
    (
        "claim_lease_secs",
        "seconds a worker's claim on a call lasts, at least 1",
    ),
    ("max_calls_per_tick", "new calls one tick posts, 1 to 10000"),
    (
        "missed_call_recovery_window_secs",
        "seconds after a missed call an answered callback fires missed-call.recovered, 0 for off",
    ),
    (
        "call_timeline",
        "true or false: list the segments (IVR, queue, transfers) of a multi-segment call in its message",
    ),
    (
        "insights.summary",
        "true or false: 3CX's summary of a call as a contact note",
    ),
    (
        "insights.sentiment",
        "true or false: 3CX's sentiment score into the contact's sentiment field",
    ),
    (
        "insights.transcript",
        "true or false: 3CX's transcript as a contact note",
    ),
    (
        "insights.window_secs",
        "seconds to wait for 3CX to transcribe a call's recording",
    ),
    (
        "oauth.public_url",
        "https://host[:port] of this host as browsers reach it, or none",
    ),
    (
        "route.dids",
        "comma-separated E.164 DIDs of a shared 3CX this tenant takes, e.g. +441615550100, or none",
    ),
    (
        "route.queues",
        "comma-separated queue extension numbers this tenant takes, e.g. 800,801, or none",
    ),
    (
        "route.default",
        "true or false: also take the calls no other tenant on the same 3CX takes",
    ),
    (
        "call_reference_prefix",
        "prefix of the call key HighLevel sees (letters, digits, . : _ -), none for no prefix, or auto",
    ),
    (
        "tie_breakers",
        "comma-separated, in order, of assigned-user and recent-conversation; none sends every shared number to review",
    ),
    (
        "crm_user_overrides",
        "comma-separated extension:HighLevel user id pairs, e.g. 101:0IHuJvc2ofPAAA8GzTRi, or none",
    ),
];

/// `(name, value)` of every setting of `config`.
pub fn settings_of(config: &TenantConfig) -> Vec<(&'static str, String)> {
    let s = &config.settings;
    let values = [
        s.default_country.clone(),
        s.log_internal_calls.to_string(),
        s.no_match_policy.clone(),
        s.recording_window_secs.to_string(),
        s.poll_interval_ms.to_string(),
        s.overlap_window_secs.to_string(),
        s.page_size.to_string(),
        s.retry_base_ms.to_string(),
        s.claim_lease_secs.to_string(),
        s.max_calls_per_tick.to_string(),
        s.missed_call_recovery_window_secs.to_string(),
        s.call_timeline.to_string(),
        s.insights.summary.to_string(),
        s.insights.sentiment.to_string(),
        s.insights.transcript.to_string(),
        s.insights.window_secs.to_string(),
        s.oauth.public_url.clone().unwrap_or_else(|| "none".into()),
        list_or_none(s.route.as_ref().map(|r| &r.dids)),
        list_or_none(s.route.as_ref().map(|r| &r.queues)),
        s.route.as_ref().is_some_and(|r| r.default).to_string(),
        match &s.call_reference_prefix {
            None => "auto".into(),
            Some(p) if p.is_empty() => "none".into(),
            Some(p) => p.clone(),
        },
        list_or_none(Some(&s.tie_breakers)),
        if s.crm_user_overrides.is_empty() {
            "none".into()
        } else {
            s.crm_user_overrides
                .iter()
                .map(|(e, u)| format!("{e}:{u}"))
                .collect::<Vec<_>>()
                .join(",")
        },
    ];
    SETTINGS.iter().map(|(k, _)| *k).zip(values).collect()
}

fn list_or_none(list: Option<&Vec<String>>) -> String {
    match list {
        Some(l) if !l.is_empty() => l.join(","),
        _ => "none".into(),
    }
}

/// A comma-separated list; "none" or nothing is empty.
fn parse_list(value: &str) -> Vec<String> {
    if value.is_empty() || value == "none" {
        return Vec::new();
    }
    value
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Apply `key=value` assignments to `config` and check the result; the
/// first problem names the setting and what it takes.
pub fn apply_settings(config: &mut TenantConfig, sets: &[String]) -> Result<(), TenantsError> {
    for set in sets {
        let Some((key, value)) = set.split_once('=') else {
            return Err(TenantsError::Invalid(format!(
                "{set:?} is not key=value: write e.g. --set default_country=GB"
            )));
        };
        apply_one(config, key.trim(), value.trim())?;
    }
    validate(config)
}

fn apply_one(config: &mut TenantConfig, key: &str, value: &str) -> Result<(), TenantsError> {
    let help = SETTINGS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, h)| *h)
        .ok_or_else(|| {
            TenantsError::Invalid(format!(
                "unknown setting {key:?}: the settings are {}",
                SETTINGS.map(|(k, _)| k).join(", ")
            ))
        })?;
    let bad = || TenantsError::Invalid(format!("{key} = {value:?} is not valid: it takes {help}"));
    let s = &mut config.settings;
    match key {
        "default_country" => s.default_country = value.to_ascii_uppercase(),
        "log_internal_calls" => s.log_internal_calls = value.parse().map_err(|_| bad())?,
        "no_match_policy" => s.no_match_policy = value.to_string(),
        "recording_window_secs" => s.recording_window_secs = value.parse().map_err(|_| bad())?,
        "poll_interval_ms" => s.poll_interval_ms = value.parse().map_err(|_| bad())?,
        "overlap_window_secs" => s.overlap_window_secs = value.parse().map_err(|_| bad())?,
        "page_size" => s.page_size = value.parse().map_err(|_| bad())?,
        "retry_base_ms" => s.retry_base_ms = value.parse().map_err(|_| bad())?,
        "claim_lease_secs" => s.claim_lease_secs = value.parse().map_err(|_| bad())?,
        "max_calls_per_tick" => s.max_calls_per_tick = value.parse().map_err(|_| bad())?,
        "missed_call_recovery_window_secs" => {
            s.missed_call_recovery_window_secs = value.parse().map_err(|_| bad())?
        }
        "call_timeline" => s.call_timeline = value.parse().map_err(|_| bad())?,
        "insights.summary" => s.insights.summary = value.parse().map_err(|_| bad())?,
        "insights.sentiment" => s.insights.sentiment = value.parse().map_err(|_| bad())?,
        "insights.transcript" => s.insights.transcript = value.parse().map_err(|_| bad())?,
        "insights.window_secs" => s.insights.window_secs = value.parse().map_err(|_| bad())?,
        "oauth.public_url" => {
            s.oauth.public_url = (!value.is_empty() && value != "none").then(|| value.to_string())
        }
        "route.dids" => s.route.get_or_insert_with(Default::default).dids = parse_list(value),
        "route.queues" => s.route.get_or_insert_with(Default::default).queues = parse_list(value),
        "route.default" => {
            s.route.get_or_insert_with(Default::default).default =
                value.parse().map_err(|_| bad())?
        }
        "call_reference_prefix" => {
            s.call_reference_prefix = match value {
                "auto" => None,
                "none" => Some(String::new()),
                v => Some(v.to_string()),
            }
        }
        "tie_breakers" => s.tie_breakers = parse_list(value),
        "crm_user_overrides" => {
            let mut map = std::collections::BTreeMap::new();
            for pair in parse_list(value) {
                let (extension, user) = pair.split_once(':').ok_or_else(bad)?;
                map.insert(extension.trim().to_string(), user.trim().to_string());
            }
            s.crm_user_overrides = map;
        }
        _ => return Err(bad()),
    }
    // A route that lists nothing and is not the default is no route: the
    // tenant takes every call again.
    if s.route
        .as_ref()
        .is_some_and(|r| r.claims().is_empty() && !r.default && r.elsewhere.is_empty())
    {
        s.route = None;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CrmConfig, PbxConfig, Secret};

    fn sample() -> TenantConfig {
        TenantConfig {
            id: "acme".into(),
            pbx: PbxConfig {
                base_url: "https://pbx.example.com".into(),
                client_id: "c".into(),
                client_secret: Secret::default(),
            },
            crm: CrmConfig {
                base_url: crate::config::HIGHLEVEL_API.into(),
                location_id: "l".into(),
                conversation_provider_id: "p".into(),
                client_id: "a".into(),
                client_secret: Secret::default(),
                access_token: None,
                refresh_token: Secret::default(),
                rate_limit: Default::default(),
            },
            settings: Default::default(),
            actions: Default::default(),
        }
    }

    #[test]
    fn settings_say_what_they_take() {
        let mut config: TenantConfig = sample();
        let e = apply_settings(&mut config, &["log_internal_calls=maybe".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("true or false"), "{e}");
        let e = apply_settings(&mut config, &["colour=blue".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("default_country"), "{e}");
        let e = apply_settings(&mut config, &["default_country=USA".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("two-letter"), "{e}");
        let mut config: TenantConfig = sample();
        apply_settings(
            &mut config,
            &[
                "default_country=gb".into(),
                "log_internal_calls=true".into(),
            ],
        )
        .unwrap();
        let shown = settings_of(&config);
        assert!(shown.contains(&("default_country", "GB".into())));
        assert!(shown.contains(&("log_internal_calls", "true".into())));
    }

    #[test]
    fn routes_are_set_checked_and_cleared_from_the_command_line() {
        let mut config: TenantConfig = sample();
        let e = apply_settings(&mut config, &["route.dids=01615550100".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("route.dids") && e.contains("E.164"), "{e}");
        let mut config: TenantConfig = sample();
        apply_settings(
            &mut config,
            &[
                "route.dids=+14155550900, +14155550901".into(),
                "route.queues=800".into(),
                "call_reference_prefix=pbx-b".into(),
            ],
        )
        .unwrap();
        let shown = settings_of(&config);
        assert!(shown.contains(&("route.dids", "+14155550900,+14155550901".into())));
        assert!(shown.contains(&("route.queues", "800".into())));
        assert!(shown.contains(&("route.default", "false".into())));
        assert!(shown.contains(&("call_reference_prefix", "pbx-b".into())));
        let e = apply_settings(&mut config, &["call_reference_prefix=a b".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("call_reference_prefix"), "{e}");
        // Listing nothing again means no route: every call, as before.
        let mut config: TenantConfig = sample();
        apply_settings(&mut config, &["route.queues=800".into()]).unwrap();
        apply_settings(&mut config, &["route.queues=none".into()]).unwrap();
        assert!(config.settings.route.is_none());
        assert!(settings_of(&config).contains(&("call_reference_prefix", "auto".into())));
    }

    #[test]
    fn tie_breakers_and_user_overrides_are_set_from_the_command_line() {
        let mut config = sample();
        apply_settings(
            &mut config,
            &[
                "tie_breakers=recent-conversation".into(),
                "crm_user_overrides=101:userA, 102:userB".into(),
            ],
        )
        .unwrap();
        assert_eq!(config.settings.tie_breakers, ["recent-conversation"]);
        assert_eq!(config.settings.crm_user_overrides["102"], "userB");
        let shown = settings_of(&config);
        assert!(shown.contains(&("crm_user_overrides", "101:userA,102:userB".into())));
        let e = apply_settings(&mut config, &["tie_breakers=oldest".into()]).unwrap_err();
        assert!(e.to_string().contains("assigned-user"), "{e}");
        let e = apply_settings(&mut config, &["crm_user_overrides=101".into()]).unwrap_err();
        assert!(e.to_string().contains("extension:HighLevel user id"), "{e}");
    }
}
