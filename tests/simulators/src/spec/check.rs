//! Checking one request or one answer against its operation.

use std::collections::HashMap;

use axum::http::HeaderMap;
use serde_json::{Map, Value};

use super::openapi::{pointer_token, resolve};
use super::{ApiSpec, Operation};

/// Something a simulator received or sent that the official document does
/// not allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which API's document: "3CX XAPI" or "HighLevel API v2".
    pub api: &'static str,
    /// `METHOD /path` as requested (no query string: it may carry ids).
    pub request: String,
    /// The document's operationId, when the path matched one.
    pub operation: Option<String>,
    /// The field and what is wrong with it.
    pub problem: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.api, self.request)?;
        if let Some(op) = &self.operation {
            write!(f, " ({op})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// The parts of a request the document constrains.
pub(crate) struct RequestParts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// `None`: a streamed body the referee does not read (uploads).
    pub body: Option<&'a [u8]>,
}

impl ApiSpec {
    /// The operation `request` invokes and every way it breaks the
    /// document. `None` and one violation when no operation matches.
    ///
    /// Problems with the body are listed apart from the rest (`.2`): the
    /// APIs answer them with another status.
    pub(crate) fn check_request(
        &self,
        request: &RequestParts<'_>,
    ) -> (Option<&Operation>, Vec<String>, Vec<String>) {
        let Some((op, path_params)) = self.find(request.method, request.path) else {
            return (
                None,
                vec![format!(
                    "the document has no operation for {} {}",
                    request.method, request.path
                )],
                Vec::new(),
            );
        };
        let mut problems = Vec::new();
        let query = parse_form(request.query.unwrap_or(""));
        let mut declared_query = Vec::new();
        for (pointer, param) in self.parameters(op) {
            let (Some(name), Some(place)) = (
                param.get("name").and_then(Value::as_str),
                param.get("in").and_then(Value::as_str),
            ) else {
                continue;
            };
            let required = param.get("required") == Some(&Value::Bool(true));
            let raw: Vec<String> = match place {
                "query" => {
                    declared_query.push(name.to_owned());
                    query
                        .iter()
                        .filter(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                        .collect()
                }
                "header" => request
                    .headers
                    .get_all(name)
                    .iter()
                    .filter_map(|v| v.to_str().ok().map(str::to_owned))
                    .collect(),
                "path" => path_params.get(name).cloned().into_iter().collect(),
                _ => continue,
            };
            if raw.is_empty() {
                if required {
                    problems.push(format!(
                        "the required {place} parameter `{name}` is missing"
                    ));
                }
                continue;
            }
            let schema_pointer = format!("{pointer}/schema");
            let Some(schema) = self.doc.pointer(&schema_pointer) else {
                continue;
            };
            // Query parameters are `style: form`, `explode: true` unless
            // the document says otherwise (OpenAPI 3.0): an exploded array
            // repeats the parameter, an unexploded one joins with commas.
            let explode = param
                .get("explode")
                .and_then(Value::as_bool)
                .unwrap_or(place == "query");
            let value = coerce(&self.doc, schema, &raw, explode);
            self.validate(
                &schema_pointer,
                &value,
                &format!("{place} parameter `{name}`"),
            )
            .into_iter()
            .for_each(|p| problems.push(p));
        }
        for (name, _) in &query {
            if !declared_query.contains(name) {
                problems.push(format!(
                    "the query parameter `{name}` is not one the operation declares"
                ));
            }
        }
        let body_problems = self.check_body(op, request.headers, request.body);
        (Some(op), problems, body_problems)
    }

    /// Every violation of an answer with `status` and the JSON `body`
    /// (`None`: not JSON, only the status is checked).
    pub(crate) fn check_response(
        &self,
        op: &Operation,
        status: u16,
        body: Option<&Value>,
    ) -> Vec<String> {
        // `default` is the error answer in both documents, never a success.
        let keys = [status.to_string(), format!("{}XX", status / 100)];
        let Some(schema) = self.answer_schema(op, &keys) else {
            return vec![format!(
                "the document does not list status {status} as an answer"
            )];
        };
        match (schema, body) {
            (Some(schema), Some(body)) => self.validate(&schema, body, "answer body"),
            _ => Vec::new(),
        }
    }

    /// An error answer (not 2xx) against the schema the document gives
    /// for its status, or for `default`. Documents list few of the errors
    /// an API gives (429 and 5xx seldom), so an unlisted status is no
    /// violation; a listed one must have the listed shape.
    pub(crate) fn check_error_response(
        &self,
        op: &Operation,
        status: u16,
        body: &Value,
    ) -> Vec<String> {
        let keys = [
            status.to_string(),
            format!("{}XX", status / 100),
            "default".into(),
        ];
        match self.answer_schema(op, &keys) {
            Some(Some(schema)) => {
                self.validate(&schema, body, &format!("error answer body ({status})"))
            }
            _ => Vec::new(),
        }
    }

    /// The first of `keys` that `op` lists under `responses`: `None` when
    /// none is listed, else the pointer to its JSON schema, `None` inside
    /// when the answer has no JSON schema.
    fn answer_schema(&self, op: &Operation, keys: &[String]) -> Option<Option<String>> {
        let responses = format!("{}/responses", op.pointer);
        let key = keys
            .iter()
            .find(|k| self.doc.pointer(&format!("{responses}/{k}")).is_some())?;
        let (pointer, response) = self.resolved(&format!("{responses}/{key}"));
        Some(
            response
                .pointer("/content/application~1json/schema")
                .map(|_| format!("{pointer}/content/application~1json/schema")),
        )
    }

    /// The request body against `requestBody`.
    fn check_body(&self, op: &Operation, headers: &HeaderMap, body: Option<&[u8]>) -> Vec<String> {
        let declared = format!("{}/requestBody", op.pointer);
        if self.doc.pointer(&declared).is_none() {
            return Vec::new();
        }
        let (pointer, request_body) = self.resolved(&declared);
        if body.is_some_and(<[u8]>::is_empty) {
            return if request_body.get("required") == Some(&Value::Bool(true)) {
                vec!["the required request body is missing".into()]
            } else {
                Vec::new()
            };
        }
        let content_type = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let Some(content) = request_body.get("content").and_then(Value::as_object) else {
            return Vec::new();
        };
        if !content.contains_key(&content_type) {
            let allowed: Vec<_> = content.keys().cloned().collect();
            return vec![format!(
                "the body's Content-Type `{content_type}` is not one of {allowed:?}"
            )];
        }
        let schema_pointer = format!("{pointer}/content/{}/schema", pointer_token(&content_type));
        let Some(schema) = self.doc.pointer(&schema_pointer) else {
            return Vec::new();
        };
        let Some(body) = body else {
            return Vec::new();
        };
        let value = match content_type.as_str() {
            "application/json" => match serde_json::from_slice::<Value>(body) {
                Ok(value) => value,
                Err(e) => return vec![format!("the request body is not JSON: {e}")],
            },
            "application/x-www-form-urlencoded" => {
                form_object(&self.doc, schema, &String::from_utf8_lossy(body))
            }
            // Multipart parts are files and text fields the handlers
            // read; their schema describes a form, not a JSON value.
            _ => return Vec::new(),
        };
        self.validate(&schema_pointer, &value, "request body")
    }

    /// `(pointer, object)` of a possibly `$ref`erenced object at `pointer`.
    fn resolved(&self, pointer: &str) -> (String, &Value) {
        let mut pointer = pointer.to_owned();
        for _ in 0..16 {
            let Some(value) = self.doc.pointer(&pointer) else {
                break;
            };
            match value.get("$ref").and_then(Value::as_str) {
                Some(target) if target.starts_with("#/") => pointer = target[1..].to_owned(),
                _ => return (pointer, value),
            }
        }
        (pointer, &Value::Null)
    }

    /// The operation's parameters and the path item's, each as
    /// `(pointer, object)`; the operation's override the path's.
    fn parameters(&self, op: &Operation) -> Vec<(String, &Value)> {
        let mut found: Vec<(String, &Value)> = Vec::new();
        for owner in [&op.pointer, &op.path_pointer] {
            let count = self
                .doc
                .pointer(&format!("{owner}/parameters"))
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            for i in 0..count {
                let (pointer, param) = self.resolved(&format!("{owner}/parameters/{i}"));
                let key = (param.get("name"), param.get("in"));
                if !found
                    .iter()
                    .any(|(_, p)| (p.get("name"), p.get("in")) == key)
                {
                    found.push((pointer, param));
                }
            }
        }
        found
    }

    /// Validates `value` against the schema at `pointer`; one message per
    /// error, naming the field.
    fn validate(&self, pointer: &str, value: &Value, what: &str) -> Vec<String> {
        let validator = match self.validator(pointer) {
            Ok(v) => v,
            Err(e) => return vec![e],
        };
        validator
            .iter_errors(value)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    format!("{what}: {e}")
                } else {
                    format!("{what} at `{at}`: {e}")
                }
            })
            .collect()
    }
}

/// `a=1&b=x%20y` as decoded pairs (`+` is a space, as in forms).
fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                let s = s.replace('+', " ");
                urlencoding::decode(&s).map(|d| d.into_owned()).unwrap_or(s)
            };
            (decode(k), decode(v))
        })
        .collect()
}

/// A form body as a JSON object, each field typed per its schema.
fn form_object(doc: &Value, schema: &Value, text: &str) -> Value {
    let schema = resolve(doc, schema);
    let mut object = Map::new();
    let mut fields: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in parse_form(text) {
        fields.entry(k).or_default().push(v);
    }
    for (name, raw) in fields {
        let value = match schema.pointer(&format!("/properties/{}", pointer_token(&name))) {
            Some(property) => coerce(doc, property, &raw, true),
            None => Value::String(raw.join(",")),
        };
        object.insert(name, value);
    }
    Value::Object(object)
}

/// A parameter's text as the JSON value its schema describes: numbers and
/// booleans parsed, arrays split on commas (`explode: false`) or gathered
/// from repeats. Text that does not parse stays text, so the schema names
/// the type it expected.
fn coerce(doc: &Value, schema: &Value, raw: &[String], explode: bool) -> Value {
    let schema = resolve(doc, schema);
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.contains(&"array") {
        let items = schema.get("items").unwrap_or(&Value::Null);
        let parts: Vec<String> = if explode {
            raw.to_vec()
        } else {
            raw.iter()
                .flat_map(|r| r.split(','))
                .map(str::to_owned)
                .collect()
        };
        return Value::Array(
            parts
                .iter()
                .map(|p| coerce(doc, items, std::slice::from_ref(p), explode))
                .collect(),
        );
    }
    let text = raw.first().cloned().unwrap_or_default();
    if types.contains(&"integer")
        && let Ok(n) = text.parse::<i64>()
    {
        return n.into();
    }
    if types.contains(&"number")
        && let Ok(n) = text.parse::<f64>()
    {
        return n.into();
    }
    if types.contains(&"boolean") {
        match text.as_str() {
            "true" => return true.into(),
            "false" => return false.into(),
            _ => {}
        }
    }
    Value::String(text)
}
