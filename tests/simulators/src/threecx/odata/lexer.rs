//! Tokens of a `$filter` expression.

use chrono::{DateTime, FixedOffset};

use crate::threecx::duration::parse_duration_secs;

/// One token of a `$filter` expression.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    LParen,
    RParen,
    /// `,` (only meaningful inside function calls, which are rejected).
    Comma,
    /// A property name, operator or keyword (`eq`, `and`, `true`, `null`...).
    Word(String),
    /// `'text'`, with `''` unescaped.
    Str(String),
    Int(i64),
    Dec(f64),
    /// An unquoted DateTimeOffset such as `2025-03-01T10:00:00Z`.
    DateTime(DateTime<FixedOffset>),
    /// `duration'PT1M'`, in seconds.
    Duration(f64),
}

/// A token and the byte position where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub pos: usize,
    pub tok: Tok,
}

/// Splits `text` into tokens, or explains the first lexical error.
pub(super) fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        let starts_number = c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(|n| n.1.is_ascii_digit()));
        let tok = if c.is_whitespace() {
            i += 1;
            continue;
        } else if c == '(' {
            i += 1;
            Tok::LParen
        } else if c == ')' {
            i += 1;
            Tok::RParen
        } else if c == ',' {
            i += 1;
            Tok::Comma
        } else if c == '\'' {
            let (s, next) = read_string(text, &chars, i)?;
            i = next;
            Tok::Str(s)
        } else if starts_number {
            let end = scan(&chars, i, |c| {
                c.is_ascii_alphanumeric() || ":.+-".contains(c)
            });
            let raw = slice(text, &chars, i, end);
            i = end;
            number_or_datetime(raw, pos, text)?
        } else if c.is_alphabetic() || c == '_' {
            let end = scan(&chars, i, |c| c.is_alphanumeric() || c == '_' || c == '.');
            let word = slice(text, &chars, i, end);
            i = end;
            if word == "duration" && chars.get(i).is_some_and(|n| n.1 == '\'') {
                let (s, next) = read_string(text, &chars, i)?;
                i = next;
                let secs = parse_duration_secs(&s).ok_or_else(|| {
                    format!("Unrecognized 'Edm.Duration' literal 'duration'{s}'' at '{pos}' in '{text}'.")
                })?;
                Tok::Duration(secs)
            } else {
                Tok::Word(word.to_owned())
            }
        } else {
            return Err(format!(
                "Syntax error: character '{c}' is not valid at position {pos} in '{text}'."
            ));
        };
        out.push(Token { pos, tok });
    }
    Ok(out)
}

fn scan(chars: &[(usize, char)], from: usize, keep: impl Fn(char) -> bool) -> usize {
    let mut end = from;
    while end < chars.len() && keep(chars[end].1) {
        end += 1;
    }
    end
}

fn slice<'a>(text: &'a str, chars: &[(usize, char)], from: usize, to: usize) -> &'a str {
    let start = chars[from].0;
    let end = chars.get(to).map_or(text.len(), |c| c.0);
    &text[start..end]
}

/// Reads `'...'` starting at the opening quote; returns the text and the
/// index after the closing quote.
fn read_string(
    text: &str,
    chars: &[(usize, char)],
    open: usize,
) -> Result<(String, usize), String> {
    let mut s = String::new();
    let mut i = open + 1;
    loop {
        match chars.get(i) {
            None => {
                let pos = chars[open].0;
                return Err(format!(
                    "There is an unterminated string literal at position {pos} in '{text}'."
                ));
            }
            Some((_, '\'')) if chars.get(i + 1).is_some_and(|n| n.1 == '\'') => {
                s.push('\'');
                i += 2;
            }
            Some((_, '\'')) => return Ok((s, i + 1)),
            Some(&(_, c)) => {
                s.push(c);
                i += 1;
            }
        }
    }
}

fn number_or_datetime(raw: &str, pos: usize, text: &str) -> Result<Tok, String> {
    if raw.contains(['T', 't']) {
        return DateTime::parse_from_rfc3339(raw)
            .map(Tok::DateTime)
            .map_err(|_| {
                format!("Unrecognized 'Edm.DateTimeOffset' literal '{raw}' at '{pos}' in '{text}'.")
            });
    }
    if let Ok(n) = raw.parse::<i64>() {
        return Ok(Tok::Int(n));
    }
    let decimal_chars = raw
        .chars()
        .all(|c| c.is_ascii_digit() || "-.eE".contains(c));
    match raw.parse::<f64>() {
        Ok(n) if decimal_chars && n.is_finite() => Ok(Tok::Dec(n)),
        _ => Err(format!(
            "Syntax error: '{raw}' at position {pos} in '{text}' is not a valid literal."
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        tokenize(text).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn words_numbers_strings_and_parens() {
        assert_eq!(
            toks("(Id eq -12) or Name ne 'O''Brien' and X lt 1.5"),
            vec![
                Tok::LParen,
                Tok::Word("Id".into()),
                Tok::Word("eq".into()),
                Tok::Int(-12),
                Tok::RParen,
                Tok::Word("or".into()),
                Tok::Word("Name".into()),
                Tok::Word("ne".into()),
                Tok::Str("O'Brien".into()),
                Tok::Word("and".into()),
                Tok::Word("X".into()),
                Tok::Word("lt".into()),
                Tok::Dec(1.5),
            ]
        );
    }

    #[test]
    fn datetimes_with_z_fraction_and_offset() {
        let t = toks("T gt 2025-03-01T10:00:00Z and T lt 2025-03-01T10:00:00.123+01:00");
        let Tok::DateTime(a) = &t[2] else {
            panic!("{t:?}")
        };
        let Tok::DateTime(b) = &t[6] else {
            panic!("{t:?}")
        };
        assert_eq!(a.to_rfc3339(), "2025-03-01T10:00:00+00:00");
        assert_eq!(
            b.timestamp_millis() - a.timestamp_millis(),
            -3_600_000 + 123
        );
    }

    #[test]
    fn duration_literal() {
        assert_eq!(toks("duration'PT1M30S'"), vec![Tok::Duration(90.0)]);
    }

    #[test]
    fn lexical_errors_are_explained() {
        assert!(
            tokenize("Name eq 'open")
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(
            tokenize("T gt 2025-03-01T10:00:00")
                .unwrap_err()
                .contains("DateTimeOffset")
        );
        assert!(tokenize("Id eq 1 & 2").unwrap_err().contains("'&'"));
        assert!(tokenize("Id eq 12abc").unwrap_err().contains("'12abc'"));
    }
}
