//! The policy as the tenant writes it ([`PolicyConfig`], with its
//! [`BusinessHoursConfig`]): the settings' shape, before validation.

use super::{Action, CallKind};
use serde::{Deserialize, Serialize};

/// The policy as written in the settings (`[tenants.settings.policy]` in
/// the host's TOML, the `policy_json` variable on Spin). Unset fields keep
/// today's behaviour. Turn it into a [`Policy`](super::Policy) with [`PolicyConfig::validate`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Inbound calls that were answered.
    pub answered_inbound: Action,
    /// Outbound calls that were answered.
    pub answered_outbound: Action,
    /// Inbound calls nobody answered.
    pub missed: Action,
    /// Missed inbound calls that ended in a voicemail box; unset follows
    /// `missed`.
    pub voicemail: Option<Action>,
    /// Outbound calls nobody answered.
    pub outbound_no_answer: Action,
    /// Extension-to-extension calls; `log` still needs `log_internal_calls`
    /// (the match stage skips them otherwise), so the seed's switch keeps
    /// its meaning. `log-and-create-contact` is refused (no outside number).
    pub internal: Action,
    /// Answered calls with less talk time than this (seconds) are ignored.
    /// 0 (default) turns the rule off.
    pub min_duration_secs: u32,
    /// When the business is open; unset means always.
    pub business_hours: Option<BusinessHoursConfig>,
    /// What to do with calls that start outside business hours. Default `log`.
    pub outside_hours: Action,
    /// The PBX's own numbers (DIDs, trunk numbers) in E.164: calls whose
    /// outside number is one of them are never logged.
    pub own_numbers: Vec<String>,
    /// Numbers never logged (spam), in E.164.
    pub blocked_numbers: Vec<String>,
    /// Kinds of call whose 3CX insights (transcript, summary, sentiment)
    /// are not brought across, though the call is logged, e.g.
    /// `["internal", "outbound-no-answer"]`. Default none.
    pub skip_insights: Vec<CallKind>,
}

/// Business hours as written in the settings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHoursConfig {
    /// Open days: "mon" … "sun".
    pub days: Vec<String>,
    /// Opening time, "HH:MM", inclusive.
    pub start: String,
    /// Closing time, "HH:MM", exclusive; must be after `start`.
    pub end: String,
    /// Fixed offset from UTC: "UTC", "+01:00", "-05:30". Default "UTC".
    /// Give this or `time_zone`, not both.
    #[serde(default)]
    pub utc_offset: Option<String>,
    /// IANA time zone, e.g. "Europe/London": the hours follow its summer
    /// time. Give this or `utc_offset`, not both.
    #[serde(default)]
    pub time_zone: Option<String>,
}
