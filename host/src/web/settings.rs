//! The settings the page edits, their validation and their storage.

use crate::config::TenantOptions;
use crate::storage::Storage;
use serde::{Deserialize, Serialize};

/// Settings saved on the page: each replaces the configured value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SettingsOverride {
    /// Post extension-to-extension calls.
    pub log_internal_calls: Option<bool>,
    /// Country for numbers written without `+`.
    pub default_country: Option<String>,
    /// `skip` or `create-contact`.
    pub no_match_policy: Option<String>,
    /// How long to wait for 3CX to finalise a recording, seconds.
    pub recording_window_secs: Option<u32>,
    /// Poll interval, milliseconds.
    pub poll_interval_ms: Option<u64>,
    /// List a multi-segment call's segments in its message.
    pub call_timeline: Option<bool>,
    /// Tie-breakers for a number several contacts share, in order (empty:
    /// every shared number goes to review).
    pub tie_breakers: Option<Vec<String>>,
}

/// Allowed recording windows, seconds: from ten seconds to a day.
pub(super) const RECORDING_WINDOW_SECS: std::ops::RangeInclusive<u32> = 10..=86_400;
/// Allowed poll intervals, milliseconds: the configuration's range (100 ms
/// to one minute), so the page cannot save what the file would refuse.
pub(super) const POLL_INTERVAL_MS: std::ops::RangeInclusive<u64> =
    100..=crate::config::MAX_POLL_INTERVAL_MS;

/// One field the page could not accept, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The form field.
    pub field: &'static str,
    /// What to fix.
    pub message: String,
}

/// The settings form as submitted (text, as typed).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SettingsForm {
    pub csrf: String,
    /// A checkbox: present ("on") when ticked.
    pub log_internal_calls: Option<String>,
    pub default_country: String,
    pub no_match_policy: String,
    pub recording_window_secs: String,
    pub poll_interval_ms: String,
    /// A checkbox: present ("on") when ticked.
    pub call_timeline: Option<String>,
    /// Comma-separated tie-breakers, or "none".
    pub tie_breakers: String,
    /// Present when the "use the configuration" button was pressed.
    pub reset: Option<String>,
}

impl SettingsForm {
    /// The form showing `options`.
    pub fn showing(options: &TenantOptions) -> Self {
        Self {
            csrf: String::new(),
            log_internal_calls: options.log_internal_calls.then(|| "on".into()),
            default_country: options.default_country.clone(),
            no_match_policy: options.no_match_policy.clone(),
            recording_window_secs: options.recording_window_secs.to_string(),
            poll_interval_ms: options.poll_interval_ms.to_string(),
            call_timeline: options.call_timeline.then(|| "on".into()),
            tie_breakers: if options.tie_breakers.is_empty() {
                "none".into()
            } else {
                options.tie_breakers.join(", ")
            },
            reset: None,
        }
    }

    /// The settings, or every field that needs fixing.
    pub fn validate(&self) -> Result<SettingsOverride, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut fail = |field, message: String| errors.push(FieldError { field, message });

        let country = self.default_country.trim().to_ascii_uppercase();
        if country.len() != 2 || !country.chars().all(|c| c.is_ascii_alphabetic()) {
            fail(
                "default_country",
                format!(
                    "{:?} is not a two-letter country code: use ISO 3166-1 alpha-2, such as US, GB or DE",
                    self.default_country.trim()
                ),
            );
        } else if !connectzero_match::normalise::is_known_country(&country) {
            fail(
                "default_country",
                format!(
                    "{country} is not a country the number rules know: use ISO 3166-1 alpha-2, such as US, GB or DE"
                ),
            );
        }

        let policy = self.no_match_policy.trim();
        if !matches!(policy, "skip" | "create-contact") {
            fail(
                "no_match_policy",
                format!("{policy:?} is not a policy: choose \"skip\" or \"create-contact\""),
            );
        }

        let window = parse_in(&self.recording_window_secs, &RECORDING_WINDOW_SECS);
        if let Err(why) = &window {
            fail(
                "recording_window_secs",
                format!(
                    "{why}: give the seconds to wait for a recording, between {} and {} (a day)",
                    RECORDING_WINDOW_SECS.start(),
                    RECORDING_WINDOW_SECS.end()
                ),
            );
        }
        let interval = parse_in(&self.poll_interval_ms, &POLL_INTERVAL_MS);
        if let Err(why) = &interval {
            fail(
                "poll_interval_ms",
                format!(
                    "{why}: give the milliseconds between polls, between {} and {} (one minute)",
                    POLL_INTERVAL_MS.start(),
                    POLL_INTERVAL_MS.end()
                ),
            );
        }
        // The same parser as the configuration and Spin use; an empty field
        // must be spelled "none", so a form without it cannot quietly send
        // every shared number to review.
        let breakers = match self.tie_breakers.trim() {
            "" => Err("is empty".to_string()),
            list => guest_support::settings::tie_breakers_from_list(Some(list))
                .map_err(|e| e.to_string()),
        };
        if let Err(why) = &breakers {
            fail(
                "tie_breakers",
                format!("{why}; write them comma-separated, or \"none\""),
            );
        }
        match (window, interval, breakers) {
            (Ok(window), Ok(interval), Ok(breakers)) if errors.is_empty() => Ok(SettingsOverride {
                log_internal_calls: Some(self.log_internal_calls.is_some()),
                default_country: Some(country),
                no_match_policy: Some(policy.to_string()),
                recording_window_secs: Some(window),
                poll_interval_ms: Some(interval),
                call_timeline: Some(self.call_timeline.is_some()),
                tie_breakers: Some(breakers.iter().map(|b| b.name().to_string()).collect()),
            }),
            _ => Err(errors),
        }
    }
}

/// `text` as a whole number within `range`, or why not.
fn parse_in<T>(text: &str, range: &std::ops::RangeInclusive<T>) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let text = text.trim().replace(['_', ','], "");
    match text.parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        Ok(n) => Err(format!("{n} is out of range")),
        Err(_) if text.is_empty() => Err("this is empty".to_string()),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

impl SettingsOverride {
    /// `options` with these settings applied.
    pub fn apply(&self, options: &TenantOptions) -> TenantOptions {
        let mut out = options.clone();
        if let Some(v) = self.log_internal_calls {
            out.log_internal_calls = v;
        }
        if let Some(v) = &self.default_country {
            out.default_country = v.clone();
        }
        if let Some(v) = &self.no_match_policy {
            out.no_match_policy = v.clone();
        }
        if let Some(v) = self.recording_window_secs {
            out.recording_window_secs = v;
        }
        if let Some(v) = self.poll_interval_ms {
            out.poll_interval_ms = v;
        }
        if let Some(v) = self.call_timeline {
            out.call_timeline = v;
        }
        if let Some(v) = &self.tie_breakers {
            out.tie_breakers = v.clone();
        }
        out
    }

    /// The settings saved for `tenant` and when (ms), if any. Unreadable
    /// saved settings (written by a newer version) count as none, with a
    /// warning, rather than stopping the tenant.
    pub fn load(storage: &Storage, tenant: &str) -> rusqlite::Result<Option<(Self, i64)>> {
        let Some((json, at)) = storage.web_settings(tenant)? else {
            return Ok(None);
        };
        match serde_json::from_str(&json) {
            Ok(saved) => Ok(Some((saved, at))),
            Err(error) => {
                tracing::warn!(tenant, %error, "the settings saved on the status page are unreadable; using the configuration");
                Ok(None)
            }
        }
    }

    /// Save these settings for `tenant`.
    pub fn save(&self, storage: &Storage, tenant: &str, now_ms: i64) -> rusqlite::Result<()> {
        let json = serde_json::to_string(self).expect("plain data serialises");
        storage.set_web_settings(tenant, Some(&json), now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> SettingsForm {
        SettingsForm::showing(&TenantOptions::default())
    }

    #[test]
    fn the_configured_values_validate_and_apply_unchanged() {
        let saved = form().validate().unwrap();
        assert_eq!(saved.log_internal_calls, Some(false));
        let defaults = TenantOptions::default();
        let applied = saved.apply(&defaults);
        assert_eq!(applied.default_country, defaults.default_country);
        assert_eq!(applied.poll_interval_ms, defaults.poll_interval_ms);
    }

    #[test]
    fn every_bad_field_says_what_to_fix() {
        let bad = SettingsForm {
            default_country: "USA".into(),
            no_match_policy: "create".into(),
            recording_window_secs: "ten".into(),
            poll_interval_ms: "50".into(),
            ..form()
        };
        let errors = bad.validate().unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "default_country",
                "no_match_policy",
                "recording_window_secs",
                "poll_interval_ms"
            ]
        );
        assert!(errors[0].message.contains("such as US, GB"), "{errors:?}");
        assert!(
            errors[2].message.contains("not a whole number"),
            "{errors:?}"
        );
        assert!(errors[3].message.contains("between 100 and"), "{errors:?}");
        let unknown = SettingsForm {
            default_country: "XX".into(),
            ..form()
        };
        assert!(
            unknown.validate().unwrap_err()[0]
                .message
                .contains("XX is not a country")
        );
    }

    #[test]
    fn the_page_keeps_to_the_configurations_poll_interval_range() {
        for (value, accepted) in [("60000", true), ("60001", false), ("300000", false)] {
            let saved = SettingsForm {
                poll_interval_ms: value.into(),
                ..form()
            }
            .validate();
            assert_eq!(saved.is_ok(), accepted, "{value}");
        }
    }

    #[test]
    fn timeline_and_tie_breakers_are_edited_and_checked() {
        let defaults = TenantOptions::default();
        let shown = form();
        assert_eq!(shown.call_timeline.as_deref(), Some("on"));
        assert_eq!(
            shown.tie_breakers,
            "assigned-user, recent-conversation, first-contact"
        );
        let changed = SettingsForm {
            call_timeline: None,
            tie_breakers: " recent-conversation ".into(),
            ..form()
        };
        let applied = changed.validate().unwrap().apply(&defaults);
        assert!(!applied.call_timeline);
        assert_eq!(applied.tie_breakers, ["recent-conversation"]);
        let review_only = SettingsForm {
            tie_breakers: "none".into(),
            ..form()
        };
        assert!(
            review_only
                .validate()
                .unwrap()
                .apply(&defaults)
                .tie_breakers
                .is_empty()
        );
        let bad = SettingsForm {
            tie_breakers: "oldest".into(),
            ..form()
        };
        let errors = bad.validate().unwrap_err();
        assert_eq!(errors[0].field, "tie_breakers");
        assert!(errors[0].message.contains("assigned-user"), "{errors:?}");
        let missing = SettingsForm {
            tie_breakers: String::new(),
            ..form()
        };
        let errors = missing.validate().unwrap_err();
        assert_eq!(errors[0].field, "tie_breakers");
        assert!(errors[0].message.contains("\"none\""), "{errors:?}");
    }

    #[test]
    fn a_ticked_box_turns_internal_calls_on() {
        let on = SettingsForm {
            log_internal_calls: Some("on".into()),
            default_country: "gb".into(),
            ..form()
        };
        let saved = on.validate().unwrap();
        let applied = saved.apply(&TenantOptions::default());
        assert!(applied.log_internal_calls);
        assert_eq!(applied.default_country, "GB");
    }
}
