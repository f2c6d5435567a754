//! A backfill's window: reading `--since` and `--until` (or saying what
//! to type instead), cutting the window into chunks, and refusing days
//! whose calls' state the tenant no longer keeps.

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
/// A date on the command line that cannot be used. Each says what to
/// type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Neither `YYYY-MM-DD` nor RFC 3339.
    #[error(
        "{flag} {text:?} is not a date: use YYYY-MM-DD (a UTC day) or RFC 3339, e.g. 2026-11-01 or 2026-11-01T08:30:00Z"
    )]
    Unreadable {
        /// `--since` or `--until`.
        flag: &'static str,
        /// What was given.
        text: String,
    },
    /// After the present.
    #[error("{flag} {text:?} is in the future (it is now {now}); 3CX has no calls there yet")]
    Future {
        /// `--since` or `--until`.
        flag: &'static str,
        /// What was given.
        text: String,
        /// The present, RFC 3339.
        now: String,
    },
    /// `--since` not before `--until`.
    #[error("--since {since} is not before --until {until}: the window is empty")]
    Empty {
        /// Start, RFC 3339.
        since: String,
        /// End, RFC 3339.
        until: String,
    },
}

/// The window of a backfill: calls that started in [`since_ms`, `until_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start, ms since the epoch (inclusive).
    pub since_ms: i64,
    /// End, ms since the epoch (exclusive).
    pub until_ms: i64,
}

/// Read `--since` and `--until` at `now`. A bare date is a UTC day:
/// `--since` starts at its midnight, `--until` includes the whole day
/// (up to now, for today). `--until` defaults to now.
pub fn parse_window(
    since: &str,
    until: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Window, DateError> {
    let now_ms = now.timestamp_millis();
    let now_text = rfc3339(now_ms);
    let since_ms = match parse_date(since, "--since")? {
        Parsed::Day(day) => day,
        Parsed::Instant(at) => at,
    };
    if since_ms > now_ms {
        return Err(DateError::Future {
            flag: "--since",
            text: since.to_string(),
            now: now_text,
        });
    }
    let until_ms = match until {
        None => now_ms,
        Some(text) => {
            let future = || DateError::Future {
                flag: "--until",
                text: text.to_string(),
                now: now_text.clone(),
            };
            match parse_date(text, "--until")? {
                // Today's date means "up to now".
                Parsed::Day(day) if day > now_ms => return Err(future()),
                Parsed::Day(day) => (day + DAY_MS).min(now_ms),
                Parsed::Instant(at) if at > now_ms => return Err(future()),
                Parsed::Instant(at) => at,
            }
        }
    };
    if since_ms >= until_ms {
        return Err(DateError::Empty {
            since: rfc3339(since_ms),
            until: rfc3339(until_ms),
        });
    }
    Ok(Window { since_ms, until_ms })
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

enum Parsed {
    /// Midnight UTC starting the day.
    Day(i64),
    /// An instant.
    Instant(i64),
}

fn parse_date(text: &str, flag: &'static str) -> Result<Parsed, DateError> {
    let trimmed = text.trim();
    if let Ok(day) = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d") {
        let midnight = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default());
        return Ok(Parsed::Day(midnight.timestamp_millis()));
    }
    DateTime::parse_from_rfc3339(trimmed)
        .map(|at| Parsed::Instant(at.timestamp_millis()))
        .map_err(|_| DateError::Unreadable {
            flag,
            text: text.to_string(),
        })
}

/// `ms` as RFC 3339 UTC, to the second.
pub fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

/// `[start, end)` cut into consecutive chunks of at most `chunk_ms`.
pub fn chunks(start: i64, end: i64, chunk_ms: i64) -> Vec<(i64, i64)> {
    let chunk_ms = chunk_ms.max(1);
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        let next = at.saturating_add(chunk_ms).min(end);
        out.push((at, next));
        at = next;
    }
    out
}

/// Refuse a window reaching back past what the tenant keeps of its calls:
/// a call whose ledger entries are already forgotten would be posted a
/// second time (`guest_support::retention`).
pub(super) fn refuse_forgotten_days(since_ms: i64, days: u32, now: i64) -> anyhow::Result<()> {
    match guest_support::retention::backfill_floor_ms(now, days) {
        Some(floor) if since_ms < floor => anyhow::bail!(
            "--since {} reaches back further than this tenant keeps its calls' state ({days} days, settings.state_retention_days): calls from before {floor} may be forgotten already and would be posted a second time: use --since {floor} or later",
            rfc3339(since_ms),
            floor = rfc3339(floor),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn ms(text: &str) -> i64 {
        at(text).timestamp_millis()
    }

    #[test]
    fn dates_are_utc_days_or_rfc3339_and_until_includes_its_day() {
        let now = at("2026-11-27T15:00:00Z");
        let w = parse_window("2026-11-01", Some("2026-11-02"), now).unwrap();
        assert_eq!(w.since_ms, ms("2026-11-01T00:00:00Z"));
        assert_eq!(w.until_ms, ms("2026-11-03T00:00:00Z"));
        let w = parse_window("2026-11-01T08:30:00+01:00", None, now).unwrap();
        assert_eq!(w.since_ms, ms("2026-11-01T07:30:00Z"));
        assert_eq!(w.until_ms, now.timestamp_millis());
        // Today's date as --until means up to now, not a future midnight.
        let w = parse_window("2026-11-26", Some("2026-11-27"), now).unwrap();
        assert_eq!(w.until_ms, now.timestamp_millis());
    }

    #[test]
    fn a_window_past_what_the_tenant_keeps_is_refused_with_the_date_to_use() {
        let now = at("2026-12-04T12:00:00Z");
        let window = parse_window("2026-11-01", None, now).unwrap();
        let e = refuse_forgotten_days(window.since_ms, 30, now.timestamp_millis())
            .unwrap_err()
            .to_string();
        assert!(e.contains("state_retention_days"), "{e}");
        assert!(e.contains("--since 2026-11-05T12:00:00Z or later"), "{e}");
        // Inside the horizon, or with state kept forever: fine.
        assert!(refuse_forgotten_days(window.since_ms, 0, now.timestamp_millis()).is_ok());
        let inside = parse_window("2026-11-06", None, now).unwrap();
        assert!(refuse_forgotten_days(inside.since_ms, 30, now.timestamp_millis()).is_ok());
    }

    #[test]
    fn bad_dates_get_errors_that_say_what_to_type() {
        let now = at("2026-11-27T15:00:00Z");
        let e = parse_window("01/11/2026", None, now).unwrap_err();
        assert!(matches!(
            e,
            DateError::Unreadable {
                flag: "--since",
                ..
            }
        ));
        assert!(e.to_string().contains("YYYY-MM-DD"), "{e}");
        let e = parse_window("2026-11-01", Some("yesterday"), now).unwrap_err();
        assert!(matches!(
            e,
            DateError::Unreadable {
                flag: "--until",
                ..
            }
        ));
        let e = parse_window("2026-12-01", None, now).unwrap_err();
        assert!(
            matches!(
                e,
                DateError::Future {
                    flag: "--since",
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_window("2026-11-01", Some("2026-11-28"), now).unwrap_err();
        assert!(
            matches!(
                e,
                DateError::Future {
                    flag: "--until",
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_window("2026-11-01", Some("2026-11-27T16:00:00Z"), now).unwrap_err();
        assert!(
            matches!(
                e,
                DateError::Future {
                    flag: "--until",
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_window("2026-11-05", Some("2026-11-01"), now).unwrap_err();
        assert!(matches!(e, DateError::Empty { .. }), "{e}");
        assert!(e.to_string().contains("not before"), "{e}");
    }

    #[test]
    fn chunks_cover_the_window_end_to_end() {
        assert_eq!(chunks(0, 25, 10), vec![(0, 10), (10, 20), (20, 25)]);
        assert_eq!(chunks(5, 5, 10), Vec::<(i64, i64)>::new());
    }
}
