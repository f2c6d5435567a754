//! `$orderby`: `Field [asc|desc]`, comma-separated.
//!
//! Sorting is stable. Per key, `null` sorts first ascending (last descending),
//! as in .NET; a missing or mistyped value sorts last in either direction.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Kind, Schema};
use crate::threecx::duration::parse_duration_secs;

/// One `$orderby` item.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OrderKey {
    pub field: String,
    pub kind: Kind,
    pub descending: bool,
}

/// Parses `$orderby` against `schema`.
pub(crate) fn parse_orderby(text: &str, schema: &Schema) -> Result<Vec<OrderKey>, String> {
    text.split(',')
        .map(|item| {
            let words: Vec<&str> = item.split_whitespace().collect();
            let (field, descending) = match words.as_slice() {
                [field] => (*field, false),
                [field, "asc"] => (*field, false),
                [field, "desc"] => (*field, true),
                _ => {
                    return Err(format!(
                        "Syntax error in $orderby item '{}' of '{text}': expected 'Property [asc|desc]'.",
                        item.trim()
                    ));
                }
            };
            let kind = schema.kind_of(field)?;
            if kind == Kind::Collection {
                return Err(format!(
                    "The $orderby expression must evaluate to a single value of primitive type; '{field}' is a collection."
                ));
            }
            Ok(OrderKey {
                field: field.to_owned(),
                kind,
                descending,
            })
        })
        .collect()
}

/// A comparable form of one field value.
#[derive(Debug, PartialEq, PartialOrd)]
enum SortValue {
    Null,
    Num(f64),
    Text(String),
    Time(DateTime<Utc>),
    Flag(bool),
}

/// `None` when the field is missing or has the wrong type for its kind.
fn sort_value(row: &Value, key: &OrderKey) -> Option<SortValue> {
    let value = row.get(key.field.as_str())?;
    if value.is_null() {
        return Some(SortValue::Null);
    }
    Some(match key.kind {
        Kind::Number => SortValue::Num(value.as_f64()?),
        Kind::String => SortValue::Text(value.as_str()?.to_owned()),
        Kind::Bool => SortValue::Flag(value.as_bool()?),
        Kind::DateTime => {
            SortValue::Time(DateTime::parse_from_rfc3339(value.as_str()?).ok()?.to_utc())
        }
        Kind::Duration => SortValue::Num(parse_duration_secs(value.as_str()?)?),
        Kind::Collection => return None,
    })
}

fn compare_key(a: &Option<SortValue>, b: &Option<SortValue>, descending: bool) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => {
            // Variants never mix except with Null, which derives as smallest.
            let ord = x.partial_cmp(y).unwrap_or(Ordering::Equal);
            if descending { ord.reverse() } else { ord }
        }
    }
}

/// Sorts `rows` in place by `keys` (no-op when empty).
pub(crate) fn sort_rows(rows: &mut Vec<Value>, keys: &[OrderKey]) {
    if keys.is_empty() {
        return;
    }
    let mut keyed: Vec<(Vec<Option<SortValue>>, Value)> = rows
        .drain(..)
        .map(|row| (keys.iter().map(|k| sort_value(&row, k)).collect(), row))
        .collect();
    keyed.sort_by(|(a, _), (b, _)| compare_keys(a, b, keys));
    rows.extend(keyed.into_iter().map(|(_, row)| row));
}

/// Compare two rows' sort values, key by key.
fn compare_keys(a: &[Option<SortValue>], b: &[Option<SortValue>], keys: &[OrderKey]) -> Ordering {
    keys.iter()
        .enumerate()
        .map(|(i, k)| compare_key(&a[i], &b[i], k.descending))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// [`sort_rows`] over references (stable, as `sort_rows`).
pub(crate) fn sort_refs(rows: &mut [&Value], keys: &[OrderKey]) {
    if keys.is_empty() {
        return;
    }
    let mut keyed: Vec<(Vec<Option<SortValue>>, &Value)> = rows
        .iter()
        .map(|row| (keys.iter().map(|k| sort_value(row, k)).collect(), *row))
        .collect();
    keyed.sort_by(|(a, _), (b, _)| compare_keys(a, b, keys));
    for (slot, (_, row)) in rows.iter_mut().zip(keyed) {
        *slot = row;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEMA: Schema = Schema {
        type_name: "Pbx.Test",
        fields: &[
            ("Id", Kind::Number),
            ("At", Kind::DateTime),
            ("Tags", Kind::Collection),
        ],
    };

    fn ids(rows: &[Value]) -> Vec<Value> {
        rows.iter()
            .map(|r| r.get("Id").cloned().unwrap_or(Value::Null))
            .collect()
    }

    #[test]
    fn parses_directions_and_rejects_junk() {
        let keys = parse_orderby("At asc, Id desc,Id", &SCHEMA).unwrap();
        assert_eq!(
            keys.iter().map(|k| k.descending).collect::<Vec<_>>(),
            [false, true, false]
        );
        assert!(
            parse_orderby("Nope", &SCHEMA)
                .unwrap_err()
                .contains("'Nope'")
        );
        assert!(
            parse_orderby("Id up", &SCHEMA)
                .unwrap_err()
                .contains("Syntax error")
        );
        assert!(
            parse_orderby("Id,", &SCHEMA)
                .unwrap_err()
                .contains("Syntax error")
        );
        assert!(
            parse_orderby("Tags", &SCHEMA)
                .unwrap_err()
                .contains("collection")
        );
    }

    #[test]
    fn sorts_instants_across_offsets_then_ties_by_second_key() {
        let mut rows = vec![
            json!({"Id": 3, "At": "2025-03-01T10:00:00Z"}),
            json!({"Id": 1, "At": "2025-03-01T10:30:00+01:00"}),
            json!({"Id": 2, "At": "2025-03-01T10:00:00.000Z"}),
        ];
        sort_rows(&mut rows, &parse_orderby("At asc,Id asc", &SCHEMA).unwrap());
        assert_eq!(ids(&rows), [json!(1), json!(2), json!(3)]);
    }

    #[test]
    fn missing_and_malformed_sort_last_both_ways_nulls_first_ascending() {
        let base = vec![
            json!({"Id": 2}),
            json!({"Name": "no id"}),
            json!({"Id": null}),
            json!({"Id": "bad"}),
            json!({"Id": 10}),
        ];
        let mut asc = base.clone();
        sort_rows(&mut asc, &parse_orderby("Id", &SCHEMA).unwrap());
        assert_eq!(
            ids(&asc),
            [Value::Null, json!(2), json!(10), Value::Null, json!("bad")]
        );
        let mut desc = base;
        sort_rows(&mut desc, &parse_orderby("Id desc", &SCHEMA).unwrap());
        assert_eq!(
            ids(&desc),
            [json!(10), json!(2), Value::Null, Value::Null, json!("bad")]
        );
    }
}
