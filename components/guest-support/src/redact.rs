//! What may appear in logs: phone numbers are masked.
//!
//! Callers' numbers are personal data; logs are shipped to places with
//! weaker access control than the CRM. Every number logged at info level or
//! above goes through [`phone`], which keeps just enough to tell calls apart
//! when reading a log next to the CRM: the country calling code and the last
//! two digits (`+442079460958` → `+44********58`).

use std::fmt;

/// Numbers with fewer digits than this are extensions or short codes
/// (`101`, `800`): internal, not personal data, and shown as they are.
const MIN_PERSONAL_DIGITS: usize = 7;

/// Digits kept at the end of a masked number.
const KEPT_TAIL: usize = 2;

/// A phone number that displays masked. `tracing::info!(number = %phone(n))`.
#[derive(Clone, Copy)]
pub struct MaskedPhone<'a>(&'a str);

/// Mask `number` for a log line (see the module docs).
pub fn phone(number: &str) -> MaskedPhone<'_> {
    MaskedPhone(number)
}

impl fmt::Display for MaskedPhone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask(self.0))
    }
}

impl fmt::Debug for MaskedPhone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", mask(self.0))
    }
}

/// The masked text: every digit becomes `*` except, for an international
/// number (`+…`), its country calling code, and in any number the last
/// two digits. Other characters (spaces, brackets) stay, so the shape of
/// what 3CX sent is still visible.
pub fn mask(number: &str) -> String {
    let digits = number.chars().filter(char::is_ascii_digit).count();
    if digits < MIN_PERSONAL_DIGITS {
        return number.to_string();
    }
    let international = number.trim_start().starts_with('+');
    let keep_head = if international {
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        crate::policy::country_code_len(&digits)
    } else {
        0
    };
    let mut seen = 0;
    number
        .chars()
        .map(|c| {
            if !c.is_ascii_digit() {
                return c;
            }
            seen += 1;
            if seen <= keep_head || seen > digits - KEPT_TAIL {
                c
            } else {
                '*'
            }
        })
        .collect()
}

/// `text` with every international number in it (`+` and at least seven
/// digits, spaces, dashes or brackets between them allowed) masked. For
/// free text that may quote a number, such as a CRM error message; a
/// national number in free text cannot be told from a date or an id, so
/// it is left alone.
pub fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(plus) = rest.find('+') {
        out.push_str(&rest[..plus]);
        let candidate = &rest[plus..];
        // The number runs while digits or separators follow; it ends at
        // its last digit.
        let end = candidate
            .char_indices()
            .skip(1)
            .take_while(|(_, c)| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')'))
            .filter(|(_, c)| c.is_ascii_digit())
            .last()
            .map_or(1, |(i, _)| i + 1);
        out.push_str(&mask(&candidate[..end]));
        rest = &candidate[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn international_numbers_keep_the_country_code_and_last_two_digits() {
        assert_eq!(mask("+442079460958"), "+44********58");
        assert_eq!(mask("+14155550101"), "+1********01");
        assert_eq!(mask("+35312345678"), "+353******78");
        assert_eq!(phone("+4915112345678").to_string(), "+49*********78");
    }

    #[test]
    fn national_numbers_keep_only_the_last_two_digits_and_their_shape() {
        assert_eq!(mask("(415) 555-0101"), "(***) ***-**01");
        assert_eq!(mask("020 7946 0958"), "*** **** **58");
    }

    #[test]
    fn international_numbers_in_free_text_are_masked() {
        assert_eq!(
            text("contact +1 415-555-0101 exists; +14155550102 too (+5 retries)"),
            "contact +1 ***-***-**01 exists; +1********02 too (+5 retries)"
        );
        assert_eq!(text("no numbers, 2026-11-27"), "no numbers, 2026-11-27");
    }

    #[test]
    fn extensions_and_empty_numbers_are_shown_as_they_are() {
        assert_eq!(mask("101"), "101");
        assert_eq!(mask(""), "");
    }

    #[test]
    fn no_masked_number_shows_more_than_code_and_tail() {
        for number in [
            "+442079460958",
            "+14155550101",
            "07700900123",
            "+8613812345678",
        ] {
            let shown = mask(number).chars().filter(char::is_ascii_digit).count();
            assert!(shown <= 3 + KEPT_TAIL, "{number} → {}", mask(number));
        }
    }
}
