//! Timestamps: milliseconds since the Unix epoch, and RFC 3339 text.

use chrono::{DateTime, SecondsFormat, Utc};

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Parse an RFC 3339 date-time with any offset (`2025-03-01T10:02:11.123Z`,
/// `...+01:00`) into milliseconds since the epoch.
pub fn parse_rfc3339_ms(text: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("{text:?} is not an RFC 3339 date-time: {e}"))
}

/// Format milliseconds since the epoch as RFC 3339 UTC with milliseconds,
/// e.g. `2025-03-01T10:02:11.123Z`.
pub fn format_rfc3339_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_honours_offsets() {
        let ms = parse_rfc3339_ms("2025-03-01T10:02:11.123Z").unwrap();
        assert_eq!(format_rfc3339_ms(ms), "2025-03-01T10:02:11.123Z");
        let offset = parse_rfc3339_ms("2025-03-01T11:02:11.123+01:00").unwrap();
        assert_eq!(offset, ms);
        assert!(parse_rfc3339_ms("yesterday").is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Cursor timestamps survive the round trip through RFC 3339 text
        /// (the `$filter` literal) to the millisecond.
        #[test]
        fn cursor_timestamps_round_trip(ms in 0i64..4_102_444_800_000) {
            prop_assert_eq!(parse_rfc3339_ms(&format_rfc3339_ms(ms)), Ok(ms));
        }
    }
}
