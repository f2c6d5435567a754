//! OData function and key path segments: `Pbx.GetCallLogData(periodFrom=...,hidePcalls=true)`,
//! `Pbx.DownloadRecording(recId=3301)`, `Users(Number='101')`, `Users(5)`.
//! The segment arrives percent-decoded from the router.

use chrono::{DateTime, FixedOffset};

use super::error::ODataError;

/// A path segment split into its name and its parenthesised arguments.
#[derive(Debug, PartialEq)]
pub(crate) struct Invocation {
    pub name: String,
    /// `(name, raw value)`; the name is empty for a positional key (`Users(5)`).
    pub args: Vec<(String, String)>,
}

/// Splits `Name(a=1,b='x,y')`. `None` if the segment has no argument list.
/// Commas inside quoted strings do not split; an unterminated quote is a 400.
pub(crate) fn parse_invocation(segment: &str) -> Option<Result<Invocation, ODataError>> {
    let open = segment.find('(')?;
    let inner = segment[open + 1..].strip_suffix(')')?;
    let name = segment[..open].to_owned();
    Some(split_args(inner).map(|args| Invocation { name, args }))
}

fn split_args(inner: &str) -> Result<Vec<(String, String)>, ODataError> {
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in inner.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => items.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    if quoted {
        return Err(ODataError::bad_request(format!(
            "Unterminated string literal in the argument list '({inner})'."
        )));
    }
    items.push(current);
    Ok(items
        .into_iter()
        .map(|item| {
            let item = item.trim();
            match item.split_once('=') {
                Some((name, value)) if !item.starts_with('\'') => {
                    (name.trim().to_owned(), value.trim().to_owned())
                }
                _ => (String::new(), item.to_owned()),
            }
        })
        .collect())
}

/// Named arguments of one function call, consumed by name.
pub(crate) struct NamedArgs<'a> {
    function: &'a str,
    args: Vec<(String, String)>,
}

impl<'a> NamedArgs<'a> {
    /// Rejects positional and repeated arguments.
    pub fn new(function: &'a str, args: Vec<(String, String)>) -> Result<Self, ODataError> {
        for (i, (name, value)) in args.iter().enumerate() {
            if name.is_empty() {
                return Err(ODataError::bad_request(format!(
                    "The function '{function}' takes named parameters; found '{value}'."
                )));
            }
            if args[..i].iter().any(|(other, _)| other == name) {
                return Err(ODataError::bad_request(format!(
                    "The parameter '{name}' is specified more than once for function '{function}'."
                ))
                .with_target(name.as_str()));
            }
        }
        Ok(Self { function, args })
    }

    /// Removes and returns the raw value of `name`; 400 naming it if missing.
    pub fn take(&mut self, name: &str) -> Result<String, ODataError> {
        match self.args.iter().position(|(n, _)| n == name) {
            Some(i) => Ok(self.args.remove(i).1),
            None => Err(ODataError::bad_request(format!(
                "The function '{}' requires the parameter '{name}', which is missing.",
                self.function
            ))
            .with_target(name)),
        }
    }

    /// 400 if any argument was not consumed.
    pub fn finish(self) -> Result<(), ODataError> {
        match self.args.first() {
            None => Ok(()),
            Some((name, _)) => Err(ODataError::bad_request(format!(
                "The parameter '{name}' is not defined for function '{}'.",
                self.function
            ))
            .with_target(name.as_str())),
        }
    }
}

fn invalid(name: &str, value: &str, edm: &str) -> ODataError {
    ODataError::bad_request(format!(
        "The value '{value}' of parameter '{name}' is not a valid '{edm}'."
    ))
    .with_target(name)
}

/// `'text'` (with `''` escapes) or `null`.
pub(crate) fn string_arg(name: &str, raw: &str) -> Result<Option<String>, ODataError> {
    if raw == "null" {
        return Ok(None);
    }
    raw.strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .filter(|_| raw.len() >= 2)
        .map(|body| Some(body.replace("''", "'")))
        .ok_or_else(|| invalid(name, raw, "Edm.String"))
}

/// An `Edm.Int32`.
pub(crate) fn int_arg(name: &str, raw: &str) -> Result<i32, ODataError> {
    raw.parse().map_err(|_| invalid(name, raw, "Edm.Int32"))
}

/// `true` or `false`.
pub(crate) fn bool_arg(name: &str, raw: &str) -> Result<bool, ODataError> {
    match raw {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(name, raw, "Edm.Boolean")),
    }
}

/// An unquoted `Edm.DateTimeOffset` such as `2025-03-01T00:00:00Z`.
pub(crate) fn datetime_arg(name: &str, raw: &str) -> Result<DateTime<FixedOffset>, ODataError> {
    DateTime::parse_from_rfc3339(raw).map_err(|_| invalid(name, raw, "Edm.DateTimeOffset"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(segment: &str) -> Vec<(String, String)> {
        parse_invocation(segment).unwrap().unwrap().args
    }

    #[test]
    fn splits_named_positional_and_quoted_arguments() {
        let inv = parse_invocation("Pbx.F(a=1,b='x,y=z',c='it''s')")
            .unwrap()
            .unwrap();
        assert_eq!(inv.name, "Pbx.F");
        assert_eq!(
            inv.args,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "'x,y=z'".into()),
                ("c".into(), "'it''s'".into()),
            ]
        );
        assert_eq!(args("Users(5)"), vec![(String::new(), "5".into())]);
        assert_eq!(args("Users('a=b')"), vec![(String::new(), "'a=b'".into())]);
        assert!(args("Pbx.GetLicenseParameters()").is_empty());
        assert!(parse_invocation("Users").is_none());
        assert!(parse_invocation("Users(5").is_none());
        assert!(parse_invocation("F(a='x)").unwrap().is_err());
    }

    #[test]
    fn named_args_report_missing_duplicate_and_unknown() {
        let mut named = NamedArgs::new("Pbx.F", args("F(a=1,b=2)")).unwrap();
        assert_eq!(named.take("a").unwrap(), "1");
        let missing = named.take("c").unwrap_err();
        assert!(missing.message.contains("'c'"));
        assert_eq!(missing.target.as_deref(), Some("c"));
        assert!(named.finish().unwrap_err().message.contains("'b'"));
        assert!(NamedArgs::new("Pbx.F", args("F(a=1,a=2)")).is_err());
        assert!(NamedArgs::new("Pbx.F", args("F(1)")).is_err());
    }

    #[test]
    fn typed_values() {
        assert_eq!(string_arg("s", "''").unwrap(), Some(String::new()));
        assert_eq!(string_arg("s", "'O''Neil'").unwrap(), Some("O'Neil".into()));
        assert_eq!(string_arg("s", "null").unwrap(), None);
        assert!(string_arg("s", "bare").is_err());
        assert!(string_arg("s", "'").is_err());
        assert_eq!(int_arg("n", "-3").unwrap(), -3);
        assert!(int_arg("n", "x").is_err());
        assert!(bool_arg("b", "true").unwrap());
        assert!(bool_arg("b", "1").is_err());
        assert!(datetime_arg("t", "2025-03-01T00:00:00+01:00").is_ok());
        assert!(datetime_arg("t", "2025-03-01").is_err());
    }
}
