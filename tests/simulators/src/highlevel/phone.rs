//! Phone number normalisation to E.164.
//!
//! The specs' examples are E.164 (`+18832327657`) while `CreateContactDto.phone`
//! accepts free text (`"+1 888-888-8888"`); NOTES.md §3.3 [ASSUMED]: the
//! simulator normalises every phone it stores or compares to E.164, using the
//! US as the default region when the input has no leading `+`.

use phonenumber::Mode;

/// Normalises `raw` to E.164 (`+15551234567`), or `None` if it cannot be parsed.
///
/// Only parseability is required, not validity against the numbering plan:
/// tests commonly use fictional `555` numbers that libphonenumber flags as
/// invalid.
pub(crate) fn normalize(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return None;
    }
    let parsed = phonenumber::parse(Some(phonenumber::country::US), trimmed).ok()?;
    Some(parsed.format().mode(Mode::E164).to_string())
}

#[cfg(test)]
mod unit {
    use super::normalize;

    #[test]
    fn normalises_common_us_shapes() {
        for raw in [
            "+1 888-888-8888",
            "(888) 888-8888",
            "888.888.8888",
            "18888888888",
            "+18888888888",
        ] {
            assert_eq!(normalize(raw).as_deref(), Some("+18888888888"), "{raw}");
        }
    }

    #[test]
    fn keeps_foreign_numbers_and_rejects_garbage() {
        assert_eq!(
            normalize("+44 20 7946 0958").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(normalize("not a phone"), None);
        assert_eq!(normalize(""), None);
    }
}
