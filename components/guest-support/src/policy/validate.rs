//! Turning the policy as written into a [`Policy`]: every setting checked
//! (times, days, zone, numbers), with an error that names the setting and
//! says what it takes.

use super::{
    Action, BusinessHours, BusinessHoursConfig, Policy, PolicyConfig, PolicyError, Zone,
    canonical_e164,
};
use chrono::{FixedOffset, NaiveTime, Weekday};

/// Parse the policy from JSON (the Spin `policy_json` variable). An empty
/// or blank string means no policy (`Ok(None)`).
pub fn parse_json(text: &str) -> Result<Option<Policy>, PolicyError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let config: PolicyConfig =
        serde_json::from_str(text).map_err(|e| PolicyError::new("(json)", e))?;
    config.validate().map(Some)
}

fn parse_time(field: &str, text: &str) -> Result<NaiveTime, PolicyError> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M").map_err(|_| {
        PolicyError::new(
            field,
            format!("{text:?} is not a time: write \"HH:MM\", e.g. \"09:00\""),
        )
    })
}

/// The clock of `hours`: an IANA `time_zone`, else the fixed `utc_offset`
/// (default UTC); both at once is refused, since they could disagree.
fn parse_zone(hours: &BusinessHoursConfig) -> Result<Zone, PolicyError> {
    match (&hours.time_zone, &hours.utc_offset) {
        (Some(_), Some(_)) => Err(PolicyError::new(
            "business_hours.time_zone",
            "give either time_zone (e.g. \"Europe/London\") or utc_offset, not both",
        )),
        (Some(name), None) => name.trim().parse::<chrono_tz::Tz>().map(Zone::Iana).map_err(|_| {
            PolicyError::new(
                "business_hours.time_zone",
                format!(
                    "{name:?} is not an IANA time zone: write a name such as \"Europe/London\" or \"America/New_York\""
                ),
            )
        }),
        (None, offset) => parse_offset(offset.as_deref().unwrap_or("UTC")).map(Zone::Fixed),
    }
}

fn parse_offset(text: &str) -> Result<FixedOffset, PolicyError> {
    let field = "business_hours.utc_offset";
    let bad = || {
        PolicyError::new(
            field,
            format!(
                "{text:?} is not a UTC offset: write \"UTC\" or \"+HH:MM\" / \"-HH:MM\", e.g. \"+01:00\" (for a zone name with summer time, set time_zone instead)"
            ),
        )
    };
    let t = text.trim();
    if t.eq_ignore_ascii_case("utc") || t == "Z" {
        return Ok(FixedOffset::east_opt(0).expect("zero offset"));
    }
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let h: i32 = h.parse().map_err(|_| bad())?;
    let m: i32 = m.parse().map_err(|_| bad())?;
    if h > 14 || m > 59 {
        return Err(bad());
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(bad)
}

fn parse_day(text: &str) -> Result<Weekday, PolicyError> {
    let day = match text.trim().to_ascii_lowercase().get(..3) {
        Some("mon") => Weekday::Mon,
        Some("tue") => Weekday::Tue,
        Some("wed") => Weekday::Wed,
        Some("thu") => Weekday::Thu,
        Some("fri") => Weekday::Fri,
        Some("sat") => Weekday::Sat,
        Some("sun") => Weekday::Sun,
        _ => {
            return Err(PolicyError::new(
                "business_hours.days",
                format!("{text:?} is not a day: use \"mon\", \"tue\", … \"sun\""),
            ));
        }
    };
    Ok(day)
}

fn numbers(field: &str, list: &[String]) -> Result<Vec<String>, PolicyError> {
    list.iter()
        .map(|n| {
            canonical_e164(n).ok_or_else(|| {
                PolicyError::new(
                    field,
                    format!("{n:?} is not an E.164 number: write it with \"+\" and the country code, e.g. \"+14155550100\""),
                )
            })
        })
        .collect()
}

impl PolicyConfig {
    /// Check every setting and build the [`Policy`]; the error names the
    /// setting and says what it takes.
    pub fn validate(self) -> Result<Policy, PolicyError> {
        if self.internal == Action::LogAndCreateContact {
            return Err(PolicyError::new(
                "internal",
                "internal calls have no outside number to create a contact for: use \"log\" or \"ignore\"",
            ));
        }
        let hours = match &self.business_hours {
            None => None,
            Some(h) => {
                if h.days.is_empty() {
                    return Err(PolicyError::new(
                        "business_hours.days",
                        "list at least one open day, e.g. [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]",
                    ));
                }
                let days = h
                    .days
                    .iter()
                    .map(|d| parse_day(d))
                    .collect::<Result<_, _>>()?;
                let start = parse_time("business_hours.start", &h.start)?;
                let end = parse_time("business_hours.end", &h.end)?;
                if end <= start {
                    return Err(PolicyError::new(
                        "business_hours.end",
                        format!(
                            "{:?} must be after start {:?} (hours past midnight are not supported)",
                            h.end, h.start
                        ),
                    ));
                }
                let zone = parse_zone(h)?;
                Some(BusinessHours {
                    days,
                    start,
                    end,
                    zone,
                })
            }
        };
        let own = numbers("own_numbers", &self.own_numbers)?;
        let blocked = numbers("blocked_numbers", &self.blocked_numbers)?;
        Ok(Policy {
            config: self,
            hours,
            own,
            blocked,
        })
    }
}
