//! The tenant's logging policy: which calls are logged, which also create
//! the contact, and which are ignored.
//!
//! Plain Rust types only (no WIT types), so the bundled host (natively) and
//! the Spin app (as a component) run this one implementation: each runtime
//! turns its call into [`CallFacts`] and asks [`Policy::decide`].
//!
//! With no policy configured neither runtime calls this module, so the
//! seed's behaviour (internal calls per `log_internal_calls`, unknown
//! numbers per `no_match_policy`) is unchanged.
//!
//! A voicemail is a missed inbound call whose last leg reached a voicemail
//! box (the leg's DN type, [ASSUMED] code table in the poll stage's
//! `history::dn_kind`); it follows `missed` unless `voicemail` is set.
//!
//! This module holds the kinds of call and the verdict; its parts, one
//! job each: `config` (the policy as written in the settings), `validate`
//! (checking it into a [`Policy`]), `hours` (business hours), `numbers`
//! (E.164 numbers) and `decide` (the verdict on one call).

mod config;
mod decide;
mod hours;
mod numbers;
mod validate;

pub use config::{BusinessHoursConfig, PolicyConfig};
pub use hours::{BusinessHours, Zone};
pub use numbers::{canonical_e164, country_code_len};
pub use validate::parse_json;

use serde::{Deserialize, Serialize};
use std::fmt;

/// What to do with a call of one kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Post the call to a matching contact (unknown numbers follow
    /// `no_match_policy`). The default for every kind.
    #[default]
    Log,
    /// Post the call, creating the contact when no contact matches.
    LogAndCreateContact,
    /// Post nothing; the call is recorded as skipped with the reason.
    Ignore,
}

/// Direction of a call, as the policy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallDirection {
    /// From outside to the PBX.
    Inbound,
    /// From the PBX to outside.
    Outbound,
    /// Between two extensions.
    Internal,
}

/// The kinds of call the policy distinguishes (spelt as their setting
/// names in `skip_insights`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallKind {
    /// Inbound and answered.
    AnsweredInbound,
    /// Outbound and answered.
    AnsweredOutbound,
    /// Inbound and not answered, not ending in voicemail.
    Missed,
    /// Inbound, not answered, ended in a voicemail box.
    Voicemail,
    /// Outbound and not answered.
    OutboundNoAnswer,
    /// Extension to extension.
    Internal,
}

impl CallKind {
    /// The setting's name, as used in reasons.
    pub fn name(self) -> &'static str {
        match self {
            Self::AnsweredInbound => "answered-inbound",
            Self::AnsweredOutbound => "answered-outbound",
            Self::Missed => "missed",
            Self::Voicemail => "voicemail",
            Self::OutboundNoAnswer => "outbound-no-answer",
            Self::Internal => "internal",
        }
    }
}

/// The facts of one call the policy decides on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallFacts {
    /// Direction of the call as a whole.
    pub direction: CallDirection,
    /// Whether any leg was answered.
    pub answered: bool,
    /// Total talk time, seconds.
    pub duration_secs: u32,
    /// Start of the call, milliseconds since the Unix epoch.
    pub start_ms: i64,
    /// The outside party's number in E.164, when known.
    pub outside_e164: Option<String>,
    /// Not answered, and the last leg reached a voicemail box.
    pub voicemail: bool,
}

impl CallFacts {
    /// The kind of this call.
    pub fn kind(&self) -> CallKind {
        match (self.direction, self.answered) {
            (CallDirection::Internal, _) => CallKind::Internal,
            (CallDirection::Inbound, true) => CallKind::AnsweredInbound,
            (CallDirection::Inbound, false) if self.voicemail => CallKind::Voicemail,
            (CallDirection::Inbound, false) => CallKind::Missed,
            (CallDirection::Outbound, true) => CallKind::AnsweredOutbound,
            (CallDirection::Outbound, false) => CallKind::OutboundNoAnswer,
        }
    }
}

/// The policy's verdict on one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Post as today (match, then `no_match_policy` for unknown numbers).
    Log,
    /// Post, creating the contact if no contact matches.
    LogAndCreateContact,
    /// Post nothing; the string is the reason recorded as the skip.
    Ignore(String),
}

/// A policy setting that cannot be used, with what to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("policy.{field}: {problem}")]
pub struct PolicyError {
    /// The setting at fault, e.g. "business_hours.start".
    pub field: String,
    /// What is wrong and what it takes.
    pub problem: String,
}

impl PolicyError {
    fn new(field: &str, problem: impl fmt::Display) -> Self {
        Self {
            field: field.to_string(),
            problem: problem.to_string(),
        }
    }
}

/// A validated policy; [`Policy::decide`] applies it to one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    config: PolicyConfig,
    hours: Option<BusinessHours>,
    own: Vec<String>,
    blocked: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, FixedOffset, NaiveTime, TimeZone, Weekday};
    use proptest::prelude::*;

    /// 2026-11-23 was a Monday; 10:00 UTC.
    const MONDAY_10_UTC: i64 = 1_795_428_000_000;

    fn facts(direction: CallDirection, answered: bool, secs: u32) -> CallFacts {
        CallFacts {
            direction,
            answered,
            duration_secs: secs,
            start_ms: MONDAY_10_UTC,
            outside_e164: Some("+14155550100".into()),
            voicemail: false,
        }
    }

    fn policy(config: PolicyConfig) -> Policy {
        config.validate().expect("valid policy")
    }

    #[test]
    fn monday_constant_is_a_monday_at_ten() {
        let at = FixedOffset::east_opt(0)
            .unwrap()
            .timestamp_millis_opt(MONDAY_10_UTC)
            .unwrap();
        assert_eq!(at.weekday(), Weekday::Mon);
        assert_eq!(at.time(), NaiveTime::from_hms_opt(10, 0, 0).unwrap());
    }

    #[test]
    fn default_policy_logs_everything() {
        let p = policy(PolicyConfig::default());
        for d in [
            CallDirection::Inbound,
            CallDirection::Outbound,
            CallDirection::Internal,
        ] {
            for a in [true, false] {
                assert_eq!(p.decide(&facts(d, a, 0)), Decision::Log);
            }
        }
    }

    #[test]
    fn each_kind_follows_its_action() {
        let cases = [
            (CallDirection::Inbound, true, "answered-inbound"),
            (CallDirection::Outbound, true, "answered-outbound"),
            (CallDirection::Inbound, false, "missed"),
            (CallDirection::Outbound, false, "outbound-no-answer"),
            (CallDirection::Internal, true, "internal"),
        ];
        for (i, (dir, answered, name)) in cases.iter().enumerate() {
            let mut c = PolicyConfig::default();
            let slot = match i {
                0 => &mut c.answered_inbound,
                1 => &mut c.answered_outbound,
                2 => &mut c.missed,
                3 => &mut c.outbound_no_answer,
                _ => &mut c.internal,
            };
            *slot = Action::Ignore;
            let p = policy(c.clone());
            assert_eq!(
                p.decide(&facts(*dir, *answered, 30)),
                Decision::Ignore(format!("policy: {name} ignored"))
            );
            // Only that kind is affected.
            for (j, (d2, a2, _)) in cases.iter().enumerate() {
                if j != i {
                    assert_eq!(
                        p.decide(&facts(*d2, *a2, 30)),
                        Decision::Log,
                        "{name} vs {j}"
                    );
                }
            }
            if i != 4 {
                *match i {
                    0 => &mut c.answered_inbound,
                    1 => &mut c.answered_outbound,
                    2 => &mut c.missed,
                    _ => &mut c.outbound_no_answer,
                } = Action::LogAndCreateContact;
                assert_eq!(
                    policy(c).decide(&facts(*dir, *answered, 30)),
                    Decision::LogAndCreateContact
                );
            }
        }
    }

    #[test]
    fn voicemail_follows_missed_unless_set() {
        let mut call = facts(CallDirection::Inbound, false, 0);
        call.voicemail = true;
        assert_eq!(call.kind(), CallKind::Voicemail);
        let missed_ignored = policy(PolicyConfig {
            missed: Action::Ignore,
            ..Default::default()
        });
        assert_eq!(
            missed_ignored.decide(&call),
            Decision::Ignore("policy: voicemail ignored".into())
        );
        let voicemail_ignored = policy(PolicyConfig {
            voicemail: Some(Action::Ignore),
            ..Default::default()
        });
        assert_eq!(
            voicemail_ignored.decide(&call),
            Decision::Ignore("policy: voicemail ignored".into())
        );
        call.voicemail = false;
        assert_eq!(voicemail_ignored.decide(&call), Decision::Log);
    }

    #[test]
    fn skip_insights_names_call_kinds_and_only_those() {
        let p = parse_json(r#"{"skip_insights": ["internal", "outbound-no-answer"]}"#)
            .unwrap()
            .unwrap();
        assert!(p.skips_insights(CallKind::Internal));
        assert!(p.skips_insights(CallKind::OutboundNoAnswer));
        assert!(!p.skips_insights(CallKind::AnsweredInbound));
        assert!(parse_json(r#"{"skip_insights": ["answered"]}"#).is_err());
        assert!(!policy(PolicyConfig::default()).skips_insights(CallKind::Missed));
    }

    #[test]
    fn internal_cannot_create_contacts() {
        let c = PolicyConfig {
            internal: Action::LogAndCreateContact,
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "internal");
    }

    #[test]
    fn minimum_duration_applies_to_answered_calls_only() {
        let p = policy(PolicyConfig {
            min_duration_secs: 10,
            ..Default::default()
        });
        assert_eq!(
            p.decide(&facts(CallDirection::Inbound, true, 9)),
            Decision::Ignore("shorter than 10 s".into())
        );
        assert_eq!(
            p.decide(&facts(CallDirection::Outbound, true, 10)),
            Decision::Log
        );
        assert_eq!(
            p.decide(&facts(CallDirection::Inbound, false, 0)),
            Decision::Log
        );
    }

    fn hours(offset: &str, outside: Action) -> Policy {
        policy(PolicyConfig {
            business_hours: Some(BusinessHoursConfig {
                days: vec![
                    "mon".into(),
                    "tue".into(),
                    "wed".into(),
                    "thu".into(),
                    "fri".into(),
                ],
                start: "09:00".into(),
                end: "17:00".into(),
                utc_offset: Some(offset.into()),
                time_zone: None,
            }),
            outside_hours: outside,
            ..Default::default()
        })
    }

    #[test]
    fn business_hours_use_the_tenant_offset() {
        let mut call = facts(CallDirection::Inbound, true, 30);
        // 10:00 UTC is 11:00 in +01:00: open.
        assert_eq!(hours("+01:00", Action::Ignore).decide(&call), Decision::Log);
        // 10:00 UTC is 02:00 in -08:00: closed.
        assert_eq!(
            hours("-08:00", Action::Ignore).decide(&call),
            Decision::Ignore("outside business hours".into())
        );
        // The closing time is exclusive: 17:00 UTC is closed.
        call.start_ms = MONDAY_10_UTC + 7 * 3_600_000;
        assert_eq!(
            hours("UTC", Action::Ignore).decide(&call),
            Decision::Ignore("outside business hours".into())
        );
        // Saturday 10:00 is closed.
        call.start_ms = MONDAY_10_UTC + 5 * 86_400_000;
        assert_eq!(
            hours("UTC", Action::Ignore).decide(&call),
            Decision::Ignore("outside business hours".into())
        );
        assert_eq!(
            hours("UTC", Action::LogAndCreateContact).decide(&call),
            Decision::LogAndCreateContact
        );
        assert_eq!(hours("UTC", Action::Log).decide(&call), Decision::Log);
    }

    fn hours_in_zone(zone: &str) -> Policy {
        let mut p = hours("UTC", Action::Ignore);
        let config = PolicyConfig {
            business_hours: p.config.business_hours.take().map(|h| BusinessHoursConfig {
                utc_offset: None,
                time_zone: Some(zone.into()),
                ..h
            }),
            ..p.config.clone()
        };
        policy(config)
    }

    #[test]
    fn business_hours_in_an_iana_zone_follow_summer_time() {
        let london = hours_in_zone("Europe/London");
        let mut call = facts(CallDirection::Inbound, true, 30);
        // Wednesday 2026-07-01 08:30 UTC is 09:30 British Summer Time: open,
        // though a fixed UTC clock says 08:30, closed.
        call.start_ms = 1_782_894_600_000;
        assert_eq!(london.decide(&call), Decision::Log);
        assert_eq!(
            hours("UTC", Action::Ignore).decide(&call),
            Decision::Ignore("outside business hours".into())
        );
        // Thursday 2026-01-15 08:30 UTC is 08:30 GMT in winter: closed.
        call.start_ms = 1_768_465_800_000;
        assert_eq!(
            london.decide(&call),
            Decision::Ignore("outside business hours".into())
        );
    }

    #[test]
    fn a_zone_setting_that_cannot_be_used_says_what_to_fix() {
        let with = |zone: Option<&str>, offset: Option<&str>| PolicyConfig {
            business_hours: Some(BusinessHoursConfig {
                days: vec!["mon".into()],
                start: "09:00".into(),
                end: "17:00".into(),
                utc_offset: offset.map(Into::into),
                time_zone: zone.map(Into::into),
            }),
            ..Default::default()
        };
        let err = with(Some("Mars/Olympus"), None).validate().unwrap_err();
        assert_eq!(err.field, "business_hours.time_zone");
        assert!(err.to_string().contains("Europe/London"), "{err}");
        let err = with(Some("Europe/London"), Some("+01:00"))
            .validate()
            .unwrap_err();
        assert_eq!(err.field, "business_hours.time_zone");
        assert!(err.to_string().contains("not both"), "{err}");
        assert!(with(Some("America/New_York"), None).validate().is_ok());
    }

    #[test]
    fn a_kind_ignored_stays_ignored_outside_hours() {
        let mut p = hours("UTC", Action::Log);
        p.config.missed = Action::Ignore;
        let mut call = facts(CallDirection::Inbound, false, 0);
        call.start_ms += 5 * 86_400_000;
        assert_eq!(
            p.decide(&call),
            Decision::Ignore("policy: missed ignored".into())
        );
    }

    #[test]
    fn bad_settings_say_what_to_fix() {
        let bad_hours = |start: &str, end: &str, offset: &str, day: &str| PolicyConfig {
            business_hours: Some(BusinessHoursConfig {
                days: vec![day.into()],
                start: start.into(),
                end: end.into(),
                utc_offset: Some(offset.into()),
                time_zone: None,
            }),
            ..Default::default()
        };
        let err = bad_hours("9am", "17:00", "UTC", "mon")
            .validate()
            .unwrap_err();
        assert_eq!(err.field, "business_hours.start");
        assert!(err.to_string().contains("HH:MM"), "{err}");
        let err = bad_hours("17:00", "09:00", "UTC", "mon")
            .validate()
            .unwrap_err();
        assert_eq!(err.field, "business_hours.end");
        let err = bad_hours("09:00", "17:00", "Europe/Paris", "mon")
            .validate()
            .unwrap_err();
        assert_eq!(err.field, "business_hours.utc_offset");
        assert!(err.to_string().contains("+01:00"), "{err}");
        let err = bad_hours("09:00", "17:00", "UTC", "funday")
            .validate()
            .unwrap_err();
        assert_eq!(err.field, "business_hours.days");
        let err = PolicyConfig {
            blocked_numbers: vec!["4155550100".into()],
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field, "blocked_numbers");
        assert!(err.to_string().contains("E.164"), "{err}");
    }

    #[test]
    fn json_parses_and_blank_is_no_policy() {
        assert_eq!(parse_json("").unwrap(), None);
        assert_eq!(parse_json("  ").unwrap(), None);
        let p = parse_json(r#"{"outbound_no_answer":"ignore","min_duration_secs":5}"#)
            .unwrap()
            .unwrap();
        assert_eq!(p.action(CallKind::OutboundNoAnswer), Action::Ignore);
        assert_eq!(p.config().min_duration_secs, 5);
        let err = parse_json(r#"{"outbound":"ignore"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let err = parse_json(r#"{"missed":"drop"}"#).unwrap_err();
        assert!(err.to_string().contains("log-and-create-contact"), "{err}");
    }

    #[test]
    fn calls_without_an_outside_number_pass_the_filters() {
        let p = policy(PolicyConfig {
            blocked_numbers: vec!["+14155550100".into()],
            ..Default::default()
        });
        let mut call = facts(CallDirection::Internal, true, 30);
        call.outside_e164 = None;
        assert_eq!(p.decide(&call), Decision::Log);
    }

    proptest! {
        /// A listed number is filtered however either side is spaced, and
        /// the own-number filter wins over every other setting.
        #[test]
        fn number_filters_match_on_canonical_e164(
            digits in "[1-9][0-9]{6,13}",
            other in "[1-9][0-9]{6,13}",
            spaced in any::<bool>(),
            own in any::<bool>(),
            answered in any::<bool>(),
            inbound in any::<bool>(),
        ) {
            let listed = if spaced {
                format!("+{} {}", &digits[..2], &digits[2..])
            } else {
                format!("+{digits}")
            };
            let mut c = PolicyConfig {
                answered_inbound: Action::LogAndCreateContact,
                missed: Action::LogAndCreateContact,
                ..Default::default()
            };
            if own { c.own_numbers = vec![listed] } else { c.blocked_numbers = vec![listed] }
            let p = policy(c);
            let dir = if inbound { CallDirection::Inbound } else { CallDirection::Outbound };
            let mut call = facts(dir, answered, 60);
            call.outside_e164 = Some(format!("+{digits}"));
            let want = if own { "PBX's own number" } else { "blocked number" };
            prop_assert_eq!(p.decide(&call), Decision::Ignore(want.into()));
            call.outside_e164 = Some(format!("+{other}"));
            prop_assert_eq!(p.decide(&call) == Decision::Ignore(want.into()), other == digits);
        }

        #[test]
        fn canonical_e164_strips_only_separators(digits in "[1-9][0-9]{5,14}") {
            let plain = format!("+{digits}");
            prop_assert_eq!(canonical_e164(&plain), Some(plain.clone()));
            let dashed = format!("+{}-{}", &digits[..3], &digits[3..]);
            prop_assert_eq!(canonical_e164(&dashed), Some(plain));
            prop_assert_eq!(canonical_e164(&digits), None);
        }
    }
}
