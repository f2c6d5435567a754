//! A small OData v4 query-option engine over JSON rows: `$filter`,
//! `$orderby`, `$top`, `$skip`, `$count`, `$select`.
//!
//! Rows are `serde_json::Value` objects so the same code serves scripted rows
//! and raw (possibly malformed) ones: a row lacking a field, or holding a value
//! of the wrong type, never matches a comparison on it and sorts last.

mod eval;
mod filter;
mod lexer;
mod order;

use rand::seq::SliceRandom;
use serde_json::{Map, Value};

pub(crate) use filter::Expr;
pub(crate) use order::OrderKey;

/// The EDM type family of a field, which decides how literals compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `Edm.Int32` / `Edm.Int64` / `Edm.Decimal`: numeric comparison.
    Number,
    /// `Edm.String` (and enum types): exact, ordinal comparison.
    String,
    /// `Edm.Boolean`.
    Bool,
    /// `Edm.DateTimeOffset`: compared as instants.
    DateTime,
    /// `Edm.Duration`: compared as lengths of time.
    Duration,
    /// A collection or complex value: selectable, not filterable or sortable.
    Collection,
}

impl Kind {
    /// The EDM name used in error messages.
    pub fn edm_name(self) -> &'static str {
        match self {
            Kind::Number => "Edm.Int32",
            Kind::String => "Edm.String",
            Kind::Bool => "Edm.Boolean",
            Kind::DateTime => "Edm.DateTimeOffset",
            Kind::Duration => "Edm.Duration",
            Kind::Collection => "Collection",
        }
    }
}

/// The fields of one entity type.
#[derive(Debug)]
pub(crate) struct Schema {
    /// Qualified type name, e.g. `Pbx.CallHistoryView`.
    pub type_name: &'static str,
    pub fields: &'static [(&'static str, Kind)],
}

impl Schema {
    /// The kind of `field`, or the OData "could not find a property" message.
    pub fn kind_of(&self, field: &str) -> Result<Kind, String> {
        self.fields
            .iter()
            .find(|(name, _)| *name == field)
            .map(|&(_, kind)| kind)
            .ok_or_else(|| {
                format!(
                    "Could not find a property named '{field}' on type '{}'.",
                    self.type_name
                )
            })
    }
}

/// A rejected query option: which one, and why.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OptionError {
    pub option: String,
    pub message: String,
}

impl OptionError {
    fn new(option: &str, message: impl Into<String>) -> Self {
        Self {
            option: option.to_owned(),
            message: message.into(),
        }
    }
}

/// Parsed, validated query options of one collection request.
#[derive(Debug, Default)]
pub(crate) struct QueryOptions {
    pub filter: Option<Expr>,
    pub orderby: Vec<OrderKey>,
    /// Already capped at the page size cap.
    pub top: Option<usize>,
    pub skip: usize,
    pub count: bool,
    /// `None` (or `*`) selects every field.
    pub select: Option<Vec<String>>,
}

/// Splits a raw query string into decoded pairs, as
/// `application/x-www-form-urlencoded`: `+` is a space, `%XX` a byte.
pub(crate) fn decode_form(raw: &str) -> Result<Vec<(String, String)>, String> {
    let decode = |part: &str| -> Result<String, String> {
        urlencoding::decode(&part.replace('+', " "))
            .map(|s| s.into_owned())
            .map_err(|_| format!("The query string part '{part}' is not valid UTF-8."))
    };
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(key)?, decode(value)?))
        })
        .collect()
}

/// Parses the system query options of `raw_query` against `schema`.
/// Non-`$` parameters (e.g. `access_token`) are ignored; `$search`,
/// `$expand` and `$format` are accepted and ignored; other `$` options and
/// repeated options are errors, as in ASP.NET Core OData.
pub(crate) fn parse_options(
    raw_query: Option<&str>,
    schema: &Schema,
    top_cap: usize,
) -> Result<QueryOptions, OptionError> {
    let pairs = decode_form(raw_query.unwrap_or("")).map_err(|m| OptionError::new("", m))?;
    let mut seen: Vec<&str> = Vec::new();
    let mut opts = QueryOptions::default();
    for (key, value) in &pairs {
        if !key.starts_with('$') {
            continue;
        }
        if seen.contains(&key.as_str()) {
            let msg = format!(
                "Query option '{key}' was specified more than once, but it must be specified at most once."
            );
            return Err(OptionError::new(key, msg));
        }
        seen.push(key);
        let err = |m: String| OptionError::new(key, m);
        match key.as_str() {
            "$filter" => opts.filter = Some(filter::parse_filter(value, schema).map_err(err)?),
            "$orderby" => opts.orderby = order::parse_orderby(value, schema).map_err(err)?,
            "$top" => {
                let top = parse_count_option(key, value)?;
                // v20 refuses a `$top` above its limit rather than cutting
                // it down (NOTES §8: `/Users?$top=1000` answers 400); the
                // message is ASP.NET Core OData's.
                if top > top_cap {
                    return Err(err(format!(
                        "The limit of '{top_cap}' for Top query has been exceeded. The value from the incoming request is '{top}'."
                    )));
                }
                opts.top = Some(top);
            }
            "$skip" => opts.skip = parse_count_option(key, value)?,
            "$count" => opts.count = parse_bool_option(key, value)?,
            "$select" => opts.select = parse_select(value, schema).map_err(err)?,
            "$search" | "$expand" | "$format" => {}
            _ => {
                return Err(err(format!(
                    "The query parameter '{key}' is not supported."
                )));
            }
        }
    }
    Ok(opts)
}

fn parse_count_option(key: &str, value: &str) -> Result<usize, OptionError> {
    value.trim().parse::<usize>().map_err(|_| {
        OptionError::new(
            key,
            format!("Invalid value '{value}' for {key} query option found. The {key} query option requires a non-negative integer value."),
        )
    })
}

fn parse_bool_option(key: &str, value: &str) -> Result<bool, OptionError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(OptionError::new(
            key,
            format!("'{value}' is not a valid count option."),
        )),
    }
}

fn parse_select(value: &str, schema: &Schema) -> Result<Option<Vec<String>>, String> {
    let mut fields = Vec::new();
    for item in value.split(',').map(str::trim) {
        match item {
            "" => return Err(format!("Empty item in $select '{value}'.")),
            "*" => return Ok(None),
            name => {
                schema.kind_of(name)?;
                fields.push(name.to_owned());
            }
        }
    }
    Ok(Some(fields))
}

/// Whether a read is paged: then rows the `$orderby` leaves in a tie (all
/// of them without one) come in an order of their own each time, as v20's
/// database answers (NOTES.md §8: "`$skip` without `$orderby` gives
/// unstable pages"). A client paging without a unique order sees rows twice
/// and misses others, as it would live.
fn unstable<T>(rows: &mut [T], opts: &QueryOptions) {
    if opts.top.is_some() || opts.skip > 0 {
        rows.shuffle(&mut rand::rng());
    }
}

/// Filters, sorts, counts, pages and projects `rows`.
/// Returns the page and the number of rows that matched the filter.
pub(crate) fn apply(rows: Vec<Value>, opts: &QueryOptions) -> (Vec<Value>, usize) {
    let mut rows: Vec<Value> = match &opts.filter {
        Some(expr) => rows.into_iter().filter(|r| expr.matches(r)).collect(),
        None => rows,
    };
    unstable(&mut rows, opts);
    order::sort_rows(&mut rows, &opts.orderby);
    let total = rows.len();
    let page = rows
        .into_iter()
        .skip(opts.skip)
        .take(opts.top.unwrap_or(usize::MAX));
    let page = match &opts.select {
        Some(fields) => page.map(|row| project(row, fields)).collect(),
        None => page.collect(),
    };
    (page, total)
}

fn project(row: Value, fields: &[String]) -> Value {
    match row {
        Value::Object(mut map) => {
            let kept: Map<String, Value> = fields
                .iter()
                .filter_map(|f| map.remove_entry(f.as_str()))
                .collect();
            Value::Object(kept)
        }
        other => other,
    }
}

/// The collection response body:
/// `{"@odata.context": "{base}/xapi/v1/$metadata#{context}", "@odata.count"?, "value"}`.
/// With `$select` the context names the selected fields, as OData does.
/// [`collection_body`] over borrowed rows: filtered and ordered by
/// reference, only the page is copied.
pub(crate) fn collection_body_of(
    base_url: &str,
    context: &str,
    opts: &QueryOptions,
    rows: &[Value],
) -> Value {
    let mut matching: Vec<&Value> = match &opts.filter {
        Some(expr) => rows.iter().filter(|r| expr.matches(r)).collect(),
        None => rows.iter().collect(),
    };
    unstable(&mut matching, opts);
    order::sort_refs(&mut matching, &opts.orderby);
    let total = matching.len();
    let page: Vec<Value> = matching
        .into_iter()
        .skip(opts.skip)
        .take(opts.top.unwrap_or(usize::MAX))
        .map(|row| match &opts.select {
            Some(fields) => project(row.clone(), fields),
            None => row.clone(),
        })
        .collect();
    body_of(base_url, context, opts, page, total)
}

pub(crate) fn collection_body(
    base_url: &str,
    context: &str,
    opts: &QueryOptions,
    rows: Vec<Value>,
) -> Value {
    let (page, total) = apply(rows, opts);
    body_of(base_url, context, opts, page, total)
}

/// The OData collection body of one page of `total` matching rows.
fn body_of(
    base_url: &str,
    context: &str,
    opts: &QueryOptions,
    page: Vec<Value>,
    total: usize,
) -> Value {
    let mut body = Map::new();
    let context = match &opts.select {
        Some(fields) => format!("{context}({})", fields.join(",")),
        None => context.to_owned(),
    };
    body.insert(
        "@odata.context".into(),
        Value::String(format!("{base_url}/xapi/v1/$metadata#{context}")),
    );
    if opts.count {
        body.insert("@odata.count".into(), Value::from(total));
    }
    body.insert("value".into(), Value::Array(page));
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEMA: Schema = Schema {
        type_name: "Pbx.Test",
        fields: &[("Id", Kind::Number), ("Name", Kind::String)],
    };

    fn rows() -> Vec<Value> {
        (1..=5)
            .map(|i| json!({"Id": i, "Name": format!("n{i}")}))
            .collect()
    }

    #[test]
    fn decodes_percent_and_plus() {
        let pairs = decode_form("%24filter=Id%20eq+1&$top=2&flag&t=a%2Bb").unwrap();
        assert_eq!(pairs[0], ("$filter".into(), "Id eq 1".into()));
        assert_eq!(pairs[1], ("$top".into(), "2".into()));
        assert_eq!(pairs[2], ("flag".into(), "".into()));
        assert_eq!(pairs[3], ("t".into(), "a+b".into()));
    }

    #[test]
    fn top_above_the_limit_is_refused_and_count_is_total_after_filter() {
        let over = "$top=3";
        let refused = parse_options(Some(over), &SCHEMA, 2).unwrap_err();
        assert_eq!(refused.option, "$top");
        assert!(
            refused.message.contains("limit of '2'"),
            "{}",
            refused.message
        );
        let q = "$filter=Id ge 2&$orderby=Id desc&$top=2&$skip=1&$count=true";
        let opts = parse_options(Some(q), &SCHEMA, 2).unwrap();
        assert_eq!(opts.top, Some(2));
        let body = collection_body("http://h", "Test", &opts, rows());
        assert_eq!(body["@odata.count"], 4);
        assert_eq!(
            body["value"],
            json!([{"Id": 4, "Name": "n4"}, {"Id": 3, "Name": "n3"}])
        );
        assert_eq!(body["@odata.context"], "http://h/xapi/v1/$metadata#Test");
    }

    #[test]
    fn select_projects_and_names_context() {
        let opts = parse_options(Some("$select=Name&$orderby=Id&$top=1"), &SCHEMA, 10).unwrap();
        let body = collection_body("http://h", "Test", &opts, rows());
        assert_eq!(body["value"], json!([{"Name": "n1"}]));
        assert!(body.get("@odata.count").is_none());
        assert_eq!(
            body["@odata.context"],
            "http://h/xapi/v1/$metadata#Test(Name)"
        );
    }

    #[test]
    fn rejects_bad_options() {
        let bad = |q: &str| parse_options(Some(q), &SCHEMA, 10).unwrap_err();
        assert_eq!(bad("$top=-1").option, "$top");
        assert_eq!(bad("$skip=x").option, "$skip");
        assert_eq!(bad("$count=yes").option, "$count");
        assert!(bad("$select=Nope").message.contains("'Nope'"));
        assert!(bad("$top=1&$top=2").message.contains("more than once"));
        assert!(bad("$apply=x").message.contains("not supported"));
        assert_eq!(bad("$filter=Id eq").option, "$filter");
    }

    #[test]
    fn ignores_non_system_and_accepted_options() {
        let opts = parse_options(Some("access_token=x&$expand=Groups&$search=a"), &SCHEMA, 10);
        assert!(opts.is_ok());
    }
}
