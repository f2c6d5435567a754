//! Durations an outside service dictates, read in one place and bounded.
//!
//! A `Retry-After` header or a token's `expires_in` comes from 3CX or
//! HighLevel, or from anything answering in their place (a proxy, a
//! misconfigured base URL). Taken as it is, `Retry-After: 4294967295`
//! would pause a tenant for 136 years, and a huge `expires_in` would
//! overflow the clock arithmetic that schedules the next refresh. Both
//! runtimes and every component read these values through here.

/// The longest pause a `Retry-After` may ask for: an hour. A service that
/// really needs longer answers 429 again, and the tenant waits again.
pub const MAX_RETRY_AFTER_SECS: u32 = 60 * 60;

/// The longest lifetime a token is believed to have: a week (3CX tokens
/// live an hour, HighLevel's access tokens a day). A token believed to
/// live longer than it does is only refreshed when it is refused.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 7 * 24 * 60 * 60;

/// The seconds a `Retry-After` value asks for, at most
/// [`MAX_RETRY_AFTER_SECS`]; `None` for a value that is not a whole number
/// of seconds (an HTTP date, garbage): the caller's default wait applies.
pub fn retry_after_secs(value: &str) -> Option<u32> {
    let digits = value.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Any run of digits, however long: too long to parse means too long.
    Some(digits.parse::<u64>().map_or(MAX_RETRY_AFTER_SECS, |secs| {
        secs.min(u64::from(MAX_RETRY_AFTER_SECS)) as u32
    }))
}

/// A wait asked for in seconds by anything but the header (a stage's
/// `rate-limited` error, a replacement component's), bounded the same way.
pub fn bounded_wait_secs(secs: u32) -> u32 {
    secs.min(MAX_RETRY_AFTER_SECS)
}

/// A token's lifetime in seconds from its `expires_in`, at most
/// [`MAX_TOKEN_LIFETIME_SECS`].
pub fn token_lifetime_secs(expires_in: u64) -> u64 {
    expires_in.min(MAX_TOKEN_LIFETIME_SECS)
}

/// A 3CX access token's lifetime in seconds from its `expires_in`, an
/// hour when the answer omits it, at most [`MAX_TOKEN_LIFETIME_SECS`].
///
/// [ASSUMED] (3CX NOTES §1): `expires_in` is seconds from 20.0.9 on and was
/// minutes before, when a 60-minute token said `60`. No real token lives
/// under five minutes, so a value below 300 is read as minutes. Both
/// runtimes read 3CX tokens through here.
pub fn pbx_token_lifetime_secs(expires_in: Option<u64>) -> u64 {
    token_lifetime_secs(match expires_in {
        Some(v) if v < 300 => v * 60,
        Some(v) => v,
        None => 3600,
    })
}

/// A HighLevel access token's lifetime in seconds from its `expires_in`,
/// a day when the answer omits it, at most [`MAX_TOKEN_LIFETIME_SECS`].
pub fn crm_token_lifetime_secs(expires_in: Option<u64>) -> u64 {
    token_lifetime_secs(expires_in.unwrap_or(86_399))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn whole_seconds_are_read_and_capped() {
        assert_eq!(retry_after_secs("7"), Some(7));
        assert_eq!(retry_after_secs(" 30 "), Some(30));
        assert_eq!(retry_after_secs("4294967295"), Some(MAX_RETRY_AFTER_SECS));
        assert_eq!(
            retry_after_secs("99999999999999999999999999"),
            Some(MAX_RETRY_AFTER_SECS)
        );
        assert_eq!(retry_after_secs("-5"), None);
        assert_eq!(retry_after_secs("1.5"), None);
        assert_eq!(retry_after_secs("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(retry_after_secs(""), None);
        assert_eq!(token_lifetime_secs(u64::MAX), MAX_TOKEN_LIFETIME_SECS);
        assert_eq!(token_lifetime_secs(3600), 3600);
        assert_eq!(bounded_wait_secs(u32::MAX), MAX_RETRY_AFTER_SECS);
    }

    #[test]
    fn token_lifetimes_read_minutes_seconds_and_defaults_within_the_cap() {
        assert_eq!(pbx_token_lifetime_secs(Some(60)), 3600);
        assert_eq!(pbx_token_lifetime_secs(Some(3600)), 3600);
        assert_eq!(pbx_token_lifetime_secs(None), 3600);
        assert_eq!(crm_token_lifetime_secs(None), 86_399);
        assert_eq!(
            crm_token_lifetime_secs(Some(u64::MAX)),
            MAX_TOKEN_LIFETIME_SECS
        );
        assert_eq!(
            pbx_token_lifetime_secs(Some(u64::MAX)),
            MAX_TOKEN_LIFETIME_SECS
        );
    }

    proptest! {
        #[test]
        fn no_header_value_asks_for_more_than_an_hour(value in ".{0,40}") {
            if let Some(secs) = retry_after_secs(&value) {
                prop_assert!(secs <= MAX_RETRY_AFTER_SECS);
            }
        }

        #[test]
        fn digit_runs_are_read_exactly_up_to_the_cap(secs in any::<u64>()) {
            let read = retry_after_secs(&secs.to_string()).unwrap();
            prop_assert_eq!(u64::from(read), secs.min(u64::from(MAX_RETRY_AFTER_SECS)));
        }
    }
}
