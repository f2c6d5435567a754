//! Phone numbers in E.164: their canonical form and the length of their
//! country calling code (also used by routing's DID matching).

/// The canonical form of a number written in E.164 ("+44 20 7946-0000" →
/// "+442079460000"), or `None` when it is not "+" and 6 to 15 digits.
pub fn canonical_e164(number: &str) -> Option<String> {
    let trimmed = number.trim();
    let rest = trimmed.strip_prefix('+')?;
    let mut out = String::from("+");
    for c in rest.chars() {
        match c {
            '0'..='9' => out.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    let digits = out.len() - 1;
    ((6..=15).contains(&digits) && !out[1..].starts_with('0')).then_some(out)
}

/// Length of the ITU-T E.164 country calling code `digits` (an E.164
/// number without its `+`) start with; 0 for no digits.
/// Codes are prefix-free: `1` and `7` are the one-digit codes, the list
/// below the two-digit ones, and every other code has three digits.
pub fn country_code_len(digits: &str) -> usize {
    const TWO_DIGIT: [&str; 44] = [
        "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
        "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
        "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
    ];
    let len = if digits.starts_with(['1', '7']) {
        1
    } else if digits.get(..2).is_some_and(|two| TWO_DIGIT.contains(&two)) {
        2
    } else {
        3
    };
    len.min(digits.len())
}
