//! Validated business hours ([`BusinessHours`]) and the clock they are
//! read on ([`Zone`]): whether a call started while the business was open.

use chrono::{Datelike, FixedOffset, NaiveTime, TimeZone, Weekday};

/// Validated business hours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusinessHours {
    /// Open days.
    pub days: Vec<Weekday>,
    /// Opening time (inclusive).
    pub start: NaiveTime,
    /// Closing time (exclusive).
    pub end: NaiveTime,
    /// The tenant's clock.
    pub zone: Zone,
}

/// The clock business hours are read on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    /// A fixed offset from UTC (no summer time).
    Fixed(FixedOffset),
    /// An IANA time zone, summer time included.
    Iana(chrono_tz::Tz),
}

impl Zone {
    /// Local weekday and time of the instant, `None` when out of range.
    fn local(&self, at_ms: i64) -> Option<(Weekday, NaiveTime)> {
        // An instant always has exactly one local time in a zone (only the
        // reverse, local → instant, can be ambiguous), so `single` is safe.
        match self {
            Zone::Fixed(offset) => offset
                .timestamp_millis_opt(at_ms)
                .single()
                .map(|t| (t.weekday(), t.time())),
            Zone::Iana(tz) => tz
                .timestamp_millis_opt(at_ms)
                .single()
                .map(|t| (t.weekday(), t.time())),
        }
    }
}

impl BusinessHours {
    /// Whether the instant (ms since the epoch) falls inside the hours.
    pub fn is_open(&self, at_ms: i64) -> bool {
        let Some((day, time)) = self.zone.local(at_ms) else {
            return true;
        };
        self.days.contains(&day) && time >= self.start && time < self.end
    }
}
