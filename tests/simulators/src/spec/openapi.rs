//! Loading an OpenAPI 3.0 document and turning its schemas into JSON Schema
//! (draft 4) that the `jsonschema` crate validates.
//!
//! OpenAPI 3.0's schema objects are a dialect of draft 4/5. The differences
//! that change a verdict are rewritten here, nothing else:
//! - `nullable: true` allows `null` (JSON Schema has no such keyword);
//! - `$ref`s into another file of the same API (HighLevel's
//!   `../common/common-schemas.json#/...`) point into the merged document.

use std::path::Path;

use anyhow::Context;
use serde_json::{Map, Value};

/// Reads a `.yaml` or `.json` OpenAPI document.
pub(crate) fn read(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the API document {}", path.display()))?;
    let value: Value = if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
        serde_yaml_ng::from_str(&text)
            .with_context(|| format!("parsing the YAML of {}", path.display()))?
    } else {
        serde_json::from_str(&text)
            .with_context(|| format!("parsing the JSON of {}", path.display()))?
    };
    Ok(value)
}

/// Merges `other`'s `paths` and `components` into `into` (first wins on a
/// clash: the files of one API never define a name twice).
pub(crate) fn merge(into: &mut Value, other: Value) {
    let Value::Object(other) = other else { return };
    for section in ["paths", "components"] {
        let Some(Value::Object(from)) = other.get(section) else {
            continue;
        };
        let target = into
            .as_object_mut()
            .expect("an OpenAPI document is an object")
            .entry(section)
            .or_insert_with(|| Value::Object(Map::new()));
        merge_objects(target, from);
    }
}

fn merge_objects(into: &mut Value, from: &Map<String, Value>) {
    let Value::Object(into) = into else { return };
    for (key, value) in from {
        match (into.get_mut(key), value) {
            (Some(existing @ Value::Object(_)), Value::Object(more)) => {
                merge_objects(existing, more)
            }
            (Some(_), _) => {}
            (None, _) => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Rewrites the document in place so every schema in it is draft-4 JSON
/// Schema with OpenAPI's meaning (see the module docs).
pub(crate) fn normalise(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for child in map.values_mut() {
                normalise(child);
            }
            if let Some(Value::String(target)) = map.get_mut("$ref")
                && let Some(at) = target.find('#')
                && at > 0
            {
                // Another file of the same API: merged into this document.
                *target = target[at..].to_owned();
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                allow_null(map);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalise),
        _ => {}
    }
}

/// `nullable: true`: the schema also accepts `null`.
fn allow_null(map: &mut Map<String, Value>) {
    map.remove("nullable");
    if let Some(Value::Array(allowed)) = map.get_mut("enum")
        && !allowed.contains(&Value::Null)
    {
        allowed.push(Value::Null);
    }
    match map.get_mut("type") {
        Some(Value::String(t)) => {
            let t = t.clone();
            map.insert("type".into(), Value::Array(vec![t.into(), "null".into()]));
        }
        Some(Value::Array(types)) => {
            if !types.contains(&Value::from("null")) {
                types.push("null".into());
            }
        }
        _ => {
            // No type of its own (`$ref`, `anyOf`, `allOf`): wrap it.
            let inner = std::mem::take(map);
            map.insert(
                "anyOf".into(),
                Value::Array(vec![
                    Value::Object(inner),
                    serde_json::json!({"type": "null"}),
                ]),
            );
        }
    }
}

/// Follows a local `$ref` (`#/components/...`) until a non-reference.
pub(crate) fn resolve<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match value.get("$ref").and_then(Value::as_str) {
            Some(target) => match target.strip_prefix('#').and_then(|p| doc.pointer(p)) {
                Some(found) => value = found,
                None => return value,
            },
            None => return value,
        }
    }
    value
}

/// Escapes one JSON-pointer token (`/` and `~`).
pub(crate) fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nullable_types_accept_null() {
        let mut doc = json!({
            "a": {"type": "string", "nullable": true},
            "b": {"enum": ["x"], "type": "string", "nullable": true},
            "c": {"$ref": "#/a", "nullable": true},
            "d": {"type": "string"},
        });
        normalise(&mut doc);
        assert_eq!(doc["a"], json!({"type": ["string", "null"]}));
        assert_eq!(doc["b"]["enum"], json!(["x", null]));
        assert_eq!(doc["c"]["anyOf"][1], json!({"type": "null"}));
        assert_eq!(doc["d"], json!({"type": "string"}));
    }

    #[test]
    fn refs_into_sibling_files_point_into_the_merged_document() {
        let mut doc =
            json!({"s": {"$ref": "../common/common-schemas.json#/components/schemas/Bad"}});
        normalise(&mut doc);
        assert_eq!(doc["s"]["$ref"], "#/components/schemas/Bad");
    }

    #[test]
    fn merge_keeps_both_files_paths_and_schemas() {
        let mut a = json!({"paths": {"/a": {}}, "components": {"schemas": {"A": {}}}});
        merge(
            &mut a,
            json!({"paths": {"/b": {}}, "components": {"schemas": {"B": {}}}}),
        );
        assert!(a["paths"]["/b"].is_object() && a["components"]["schemas"]["A"].is_object());
        assert!(a["components"]["schemas"]["B"].is_object());
    }
}
