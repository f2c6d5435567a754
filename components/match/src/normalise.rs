//! Phone numbers to E.164.

use phonenumber::Mode;
use phonenumber::country;
use std::str::FromStr;

/// Normalise `raw` (as 3CX reported it) to E.164, reading numbers without a
/// `+` as numbers of `default_country` (ISO 3166-1 alpha-2, e.g. "GB").
///
/// Returns `None` for what is not a valid phone number (an extension such as
/// "101", an empty or withheld caller id): such a number matches no contact.
pub fn to_e164(raw: &str, default_country: &str) -> Option<String> {
    let cleaned = raw.trim();
    if cleaned.is_empty() {
        return None;
    }
    // Some trunks send international numbers with a 00 prefix instead of +.
    let cleaned = match cleaned.strip_prefix("00") {
        Some(rest) if rest.chars().next().is_some_and(|c| c.is_ascii_digit()) => format!("+{rest}"),
        _ => cleaned.to_string(),
    };
    let country = country::Id::from_str(&default_country.trim().to_ascii_uppercase()).ok();
    let number = phonenumber::parse(country, &cleaned).ok()?;
    if !phonenumber::is_valid(&number) {
        return None;
    }
    Some(number.format().mode(Mode::E164).to_string())
}

/// Load the phone library's metadata (every region's patterns, checked as
/// they load: about 100 ms in a component) and the patterns of one common
/// check, by normalising a number nobody has (a reserved US fiction
/// number). The host runs this before snapshotting the component, so no
/// instance pays for it on its first call.
pub fn preload() {
    let _ = to_e164("+1 415 555 0132", "US");
}

/// True when `country` is an ISO 3166-1 alpha-2 code the phone library knows.
pub fn is_known_country(country: &str) -> bool {
    country::Id::from_str(&country.trim().to_ascii_uppercase()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_numbers_use_the_default_country() {
        assert_eq!(
            to_e164("020 7946 0958", "GB").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            to_e164("(503) 708-1210", "us").as_deref(),
            Some("+15037081210")
        );
    }

    #[test]
    fn international_forms_ignore_the_default_country() {
        assert_eq!(
            to_e164("+44 20 7946 0958", "US").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            to_e164("0044 20 7946 0958", "US").as_deref(),
            Some("+442079460958")
        );
    }

    #[test]
    fn extensions_and_garbage_are_not_numbers() {
        assert_eq!(to_e164("101", "US"), None);
        assert_eq!(to_e164("", "US"), None);
        assert_eq!(to_e164("anonymous", "US"), None);
    }

    #[test]
    fn country_codes_are_checked() {
        assert!(is_known_country("gb"));
        assert!(!is_known_country("XX"));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// However a valid US number is written, it normalises to one E.164.
        #[test]
        fn every_spelling_of_a_number_normalises_alike(area in 201u32..=989, exchange in 200u32..=999, line in 0u32..=9999) {
            let canonical = to_e164(&format!("+1{area}{exchange}{line:04}"), "US");
            prop_assume!(canonical.is_some());
            for spelling in [
                format!("({area}) {exchange}-{line:04}"),
                format!("{area}.{exchange}.{line:04}"),
                format!("1 {area} {exchange} {line:04}"),
                format!("001{area}{exchange}{line:04}"),
                format!("+1 {area}-{exchange}-{line:04}"),
            ] {
                prop_assert_eq!(to_e164(&spelling, "US"), canonical.clone(), "{}", spelling);
            }
        }

        /// Normalisation is idempotent and never panics on arbitrary text.
        #[test]
        fn normalising_twice_changes_nothing(raw in "\\PC{0,40}", country in "[A-Z]{2}") {
            if let Some(e164) = to_e164(&raw, &country) {
                prop_assert!(e164.starts_with('+'));
                prop_assert_eq!(to_e164(&e164, "US"), Some(e164.clone()));
            }
        }
    }
}
