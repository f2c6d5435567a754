//! ISO 8601 durations (`Edm.Duration`, e.g. `PT3M35S`) and RFC 3339 timestamps
//! as 3CX serialises them.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

/// `PT3M35S`, `PT1H0M2.5S`, `PT0S`; negative spans get a leading `-`.
/// Fractions are kept to the millisecond.
pub(crate) fn format_duration(span: TimeDelta) -> String {
    let negative = span < TimeDelta::zero();
    let total_ms = span.num_milliseconds().unsigned_abs();
    let (hours, rest) = (total_ms / 3_600_000, total_ms % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    let (secs, millis) = (rest / 1000, rest % 1000);
    let mut out = String::from(if negative { "-PT" } else { "PT" });
    if hours > 0 {
        out.push_str(&format!("{hours}H"));
    }
    if minutes > 0 {
        out.push_str(&format!("{minutes}M"));
    }
    if millis > 0 {
        let frac = format!("{millis:03}");
        out.push_str(&format!("{secs}.{}S", frac.trim_end_matches('0')));
    } else if secs > 0 || (hours == 0 && minutes == 0) {
        out.push_str(&format!("{secs}S"));
    }
    out
}

/// Seconds in an ISO 8601 duration (`-?P[nD][T[nH][nM][n[.n]S]]`) or, as
/// some builds send, `[-]H:MM:SS[.fff]`. `None` if neither.
pub(crate) fn parse_duration_secs(text: &str) -> Option<f64> {
    let (sign, body) = match text.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, text),
    };
    let secs = match body.strip_prefix('P') {
        Some(iso) => parse_iso_body(iso)?,
        None => parse_clock(body)?,
    };
    Some(sign * secs)
}

fn parse_iso_body(iso: &str) -> Option<f64> {
    let (date, time) = match iso.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (iso, None),
    };
    let mut total = 0.0;
    let mut any = false;
    const DATE_UNITS: &[(char, f64)] = &[('D', 86_400.0)];
    const TIME_UNITS: &[(char, f64)] = &[('H', 3600.0), ('M', 60.0), ('S', 1.0)];
    for (part, units) in [(date, DATE_UNITS), (time.unwrap_or(""), TIME_UNITS)] {
        let mut rest = part;
        for &(unit, factor) in units {
            if let Some((num, tail)) = rest.split_once(unit) {
                if num.is_empty() || num.starts_with(['+', '-']) {
                    return None;
                }
                total += num.parse::<f64>().ok()? * factor;
                rest = tail;
                any = true;
            }
        }
        if !rest.is_empty() {
            return None;
        }
    }
    let time_is_empty = time.is_some_and(str::is_empty);
    (any && !time_is_empty).then_some(total)
}

fn parse_clock(clock: &str) -> Option<f64> {
    let parts: Vec<&str> = clock.split(':').collect();
    if parts.len() != 3 {
        return None;
    }
    let hours: u64 = parts[0].parse().ok()?;
    let minutes: u64 = parts[1].parse().ok()?;
    let secs: f64 = parts[2].parse().ok()?;
    Some(hours as f64 * 3600.0 + minutes as f64 * 60.0 + secs)
}

/// RFC 3339 in UTC with `Z`, with fractional seconds only when present
/// (`2025-03-01T10:02:11.123Z`, `2025-03-01T10:07:00Z`).
pub(crate) fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_iso_durations() {
        assert_eq!(format_duration(TimeDelta::seconds(215)), "PT3M35S");
        assert_eq!(format_duration(TimeDelta::zero()), "PT0S");
        assert_eq!(format_duration(TimeDelta::seconds(3600)), "PT1H");
        assert_eq!(format_duration(TimeDelta::seconds(3602)), "PT1H2S");
        assert_eq!(format_duration(TimeDelta::milliseconds(2500)), "PT2.5S");
        assert_eq!(format_duration(TimeDelta::seconds(-5)), "-PT5S");
    }

    #[test]
    fn parses_iso_and_clock_durations() {
        assert_eq!(parse_duration_secs("PT3M35S"), Some(215.0));
        assert_eq!(parse_duration_secs("P1DT1S"), Some(86_401.0));
        assert_eq!(parse_duration_secs("PT0.5S"), Some(0.5));
        assert_eq!(parse_duration_secs("-PT1M"), Some(-60.0));
        assert_eq!(parse_duration_secs("00:03:35"), Some(215.0));
        assert_eq!(parse_duration_secs("PT"), None);
        assert_eq!(parse_duration_secs("P"), None);
        assert_eq!(parse_duration_secs("PT3X"), None);
        assert_eq!(parse_duration_secs("garbage"), None);
    }

    #[test]
    fn formats_utc_times_with_z() {
        let t = DateTime::parse_from_rfc3339("2025-03-01T10:02:11.123+00:00").unwrap();
        assert_eq!(format_time(t.to_utc()), "2025-03-01T10:02:11.123Z");
        let t = DateTime::parse_from_rfc3339("2025-03-01T11:07:00+01:00").unwrap();
        assert_eq!(format_time(t.to_utc()), "2025-03-01T10:07:00Z");
    }
}
