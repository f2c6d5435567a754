//! Typed reads of JSON object bodies, collecting the 422 messages HighLevel's
//! NestJS validation would give (`"body must be a string"`, `"each value in
//! tags must be a string"`, ...) [ASSUMED wording, class-validator's
//! defaults], and the `customFields` input shared by create and update.

use serde_json::{Map, Value};

use crate::highlevel::error::ApiError;

/// A JSON object body being validated.
pub(super) struct Fields<'a> {
    map: &'a Map<String, Value>,
    problems: Vec<String>,
}

impl<'a> Fields<'a> {
    /// Starts validating `map`.
    pub(super) fn new(map: &'a Map<String, Value>) -> Self {
        Self {
            map,
            problems: Vec::new(),
        }
    }

    /// Records a violated constraint.
    pub(super) fn problem(&mut self, message: impl Into<String>) {
        self.problems.push(message.into());
    }

    /// A nullable string: `None` when absent, `Some(None)` when `null`.
    pub(super) fn nullable_string(&mut self, key: &str) -> Option<Option<String>> {
        match self.map.get(key)? {
            Value::Null => Some(None),
            Value::String(s) => Some(Some(s.clone())),
            _ => {
                self.problem(format!("{key} must be a string"));
                None
            }
        }
    }

    /// An optional string (`null` counts as absent).
    pub(super) fn string(&mut self, key: &str) -> Option<String> {
        self.nullable_string(key).flatten()
    }

    /// A required, non-blank string.
    pub(super) fn required_string(&mut self, key: &str) -> Option<String> {
        match self.map.get(key) {
            None | Some(Value::Null) => {
                self.problem(format!("{key} should not be empty"));
                self.problem(format!("{key} must be a string"));
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                self.problem(format!("{key} should not be empty"));
                None
            }
            Some(_) => self.string(key),
        }
    }

    /// An optional boolean (`null` counts as absent).
    pub(super) fn bool(&mut self, key: &str) -> Option<bool> {
        match self.map.get(key)? {
            Value::Null => None,
            Value::Bool(b) => Some(*b),
            _ => {
                self.problem(format!("{key} must be a boolean value"));
                None
            }
        }
    }

    /// An optional array of strings (`null` counts as absent).
    pub(super) fn string_array(&mut self, key: &str) -> Option<Vec<String>> {
        let items = match self.map.get(key)? {
            Value::Null => return None,
            Value::Array(items) => items,
            _ => {
                self.problem(format!("{key} must be an array"));
                return None;
            }
        };
        let strings: Option<Vec<String>> = items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect();
        if strings.is_none() {
            self.problem(format!("each value in {key} must be a string"));
        }
        strings
    }

    /// `customFields` (`UpdateContactDto` / `CreateContactDto`): items with
    /// an `id` or a `key` (`customFieldsInputStringSchema`: "Pass either `id`
    /// or `key`") and a `field_value` of any JSON type. Each result is
    /// `(id or key, value)`; a missing or `null` `field_value` is `None`
    /// (clears the field [ASSUMED]).
    pub(super) fn custom_fields(&mut self) -> Option<Vec<(String, Option<Value>)>> {
        let items = match self.map.get("customFields")? {
            Value::Null => return None,
            Value::Array(items) => items,
            _ => {
                self.problem("customFields must be an array");
                return None;
            }
        };
        let mut fields = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let Some(item) = item.as_object() else {
                self.problem(format!("customFields.{index} must be an object"));
                continue;
            };
            let text = |key: &str| {
                item.get(key)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
            };
            let Some(id) = text("id").or_else(|| text("key")) else {
                self.problem(format!("customFields.{index} must have an id or a key"));
                continue;
            };
            let value = item.get("field_value").filter(|v| !v.is_null()).cloned();
            fields.push((id.to_owned(), value));
        }
        Some(fields)
    }

    /// 422 `UnprocessableDTO` listing every problem, if there were any.
    pub(super) fn finish(self) -> Result<(), ApiError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Unprocessable(self.problems))
        }
    }
}

/// Sets (`Some`) or clears (`None`) custom field values in place; new ids
/// are appended in request order.
pub(super) fn apply_custom_fields(
    stored: &mut Vec<(String, Value)>,
    updates: Vec<(String, Option<Value>)>,
) {
    for (id, value) in updates {
        let at = stored.iter().position(|(existing, _)| *existing == id);
        match (at, value) {
            (Some(at), Some(value)) => stored[at].1 = value,
            (Some(at), None) => {
                stored.remove(at);
            }
            (None, Some(value)) => stored.push((id, value)),
            (None, None) => {}
        }
    }
}

#[cfg(test)]
mod unit {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn custom_fields_take_id_or_key_and_field_value() {
        let body = object(json!({"customFields": [
            {"id": "abc", "field_value": "x"},
            {"key": "contact.summary", "field_value": ["a", "b"]},
            {"id": "cleared", "field_value": null},
            {"field_value": 1},
        ]}));
        let mut fields = Fields::new(&body);
        let parsed = fields.custom_fields().unwrap();
        assert_eq!(
            parsed,
            [
                ("abc".to_owned(), Some(json!("x"))),
                ("contact.summary".to_owned(), Some(json!(["a", "b"]))),
                ("cleared".to_owned(), None),
            ]
        );
        let Err(ApiError::Unprocessable(problems)) = fields.finish() else {
            panic!("a field without id or key is a 422");
        };
        assert_eq!(problems, ["customFields.3 must have an id or a key"]);
    }

    #[test]
    fn applying_replaces_appends_and_clears() {
        let mut stored = vec![("a".to_owned(), json!(1)), ("b".to_owned(), json!(2))];
        let updates = vec![
            ("b".to_owned(), Some(json!(3))),
            ("a".to_owned(), None),
            ("c".to_owned(), Some(json!(4))),
        ];
        apply_custom_fields(&mut stored, updates);
        assert_eq!(
            stored,
            [("b".to_owned(), json!(3)), ("c".to_owned(), json!(4))]
        );
    }

    #[test]
    fn required_string_messages() {
        let body = object(json!({"blank": "  ", "number": 5}));
        let mut fields = Fields::new(&body);
        assert_eq!(fields.required_string("missing"), None);
        assert_eq!(fields.required_string("blank"), None);
        assert_eq!(fields.required_string("number"), None);
        let Err(ApiError::Unprocessable(problems)) = fields.finish() else {
            panic!("422 expected");
        };
        assert_eq!(
            problems,
            [
                "missing should not be empty",
                "missing must be a string",
                "blank should not be empty",
                "number must be a string",
            ]
        );
    }
}
