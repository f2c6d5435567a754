//! The official API documents, as a referee between the client and the
//! simulators.
//!
//! Every request a simulator receives is checked against the operation the
//! official OpenAPI document declares for its method and path (path, query
//! and header parameters, body schema, enums), and every successful JSON
//! answer it gives is checked against that operation's response schema,
//! with the `jsonschema` crate. A simulator refuses a request the document
//! refuses and records the violation; the simulator's handle then fails the
//! test that caused it (see [`Violations`]).
//!
//! The documents live in `../shared/specs` beside the repository (or
//! wherever `CONNECTZERO_SPECS_DIR` points). In CI (`CI` set) a missing
//! document is an error; elsewhere, a clone without them runs unrefereed
//! with a warning, so the demo still works on a fresh machine.

mod check;
mod layer;
mod openapi;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use anyhow::Context;
use regex::Regex;
use serde_json::Value;

pub use check::Violation;
pub use layer::Violations;
pub(crate) use layer::{Referee, referee};

/// One API's merged, normalised OpenAPI document and its operations.
pub(crate) struct ApiSpec {
    /// "3CX XAPI" or "HighLevel API v2", for messages.
    name: &'static str,
    /// The path the document's server URL adds before every path.
    prefix: &'static str,
    doc: Value,
    operations: Vec<Operation>,
    /// Compiled validators by JSON pointer into `doc`, built on first use.
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

/// One method + path template of the document.
pub(crate) struct Operation {
    method: String,
    id: String,
    /// JSON pointer to the operation object.
    pointer: String,
    /// JSON pointer to the path item (parameters shared by its methods).
    path_pointer: String,
    pattern: Regex,
    /// Literal characters in the template: the most specific match wins.
    literal_len: usize,
}

impl ApiSpec {
    /// Builds the index of `doc` (already merged and normalised).
    fn new(name: &'static str, prefix: &'static str, doc: Value) -> anyhow::Result<Self> {
        let mut operations = Vec::new();
        let paths = doc
            .get("paths")
            .and_then(Value::as_object)
            .context("the document has no paths")?;
        for (template, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            let path_pointer = format!("/paths/{}", openapi::pointer_token(template));
            let (pattern, literal_len) = template_pattern(template)?;
            for (method, op) in item {
                if !matches!(
                    method.as_str(),
                    "get" | "put" | "post" | "delete" | "patch" | "head" | "options"
                ) {
                    continue;
                }
                operations.push(Operation {
                    method: method.to_ascii_uppercase(),
                    id: op
                        .get("operationId")
                        .and_then(Value::as_str)
                        .unwrap_or(template)
                        .to_owned(),
                    pointer: format!("{path_pointer}/{method}"),
                    path_pointer: path_pointer.clone(),
                    pattern: pattern.clone(),
                    literal_len,
                });
            }
        }
        // Most specific first: `/Users/Pbx.Foo()` before `/Users({Id})`.
        operations.sort_by_key(|op| std::cmp::Reverse(op.literal_len));
        Ok(Self {
            name,
            prefix,
            doc,
            operations,
            validators: Mutex::new(HashMap::new()),
        })
    }

    /// The operation serving `method` `path` (without the server prefix
    /// removed yet), with its path parameters, percent-decoded.
    fn find(&self, method: &str, path: &str) -> Option<(&Operation, HashMap<String, String>)> {
        let path = path.strip_prefix(self.prefix)?;
        self.operations
            .iter()
            .filter(|op| op.method == method)
            .find_map(|op| {
                let captures = op.pattern.captures(path)?;
                let params = op
                    .pattern
                    .capture_names()
                    .flatten()
                    .filter_map(|name| {
                        let raw = captures.name(name)?.as_str();
                        let value = urlencoding::decode(raw).ok()?.into_owned();
                        Some((name.to_owned(), value))
                    })
                    .collect();
                Some((op, params))
            })
    }

    /// The validator for the schema at `pointer`, compiled once.
    fn validator(&self, pointer: &str) -> Result<Arc<jsonschema::Validator>, String> {
        let mut cache = self
            .validators
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = cache.get(pointer) {
            return Ok(found.clone());
        }
        // The schema becomes the root, with the document's components
        // beside it so its `#/components/...` references resolve (an
        // unknown keyword to the schema itself).
        let mut root = self
            .doc
            .pointer(pointer)
            .cloned()
            .ok_or_else(|| format!("the document has no schema at {pointer}"))?;
        if let (Value::Object(root), Some(components)) = (&mut root, self.doc.get("components")) {
            root.insert("components".into(), components.clone());
        }
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .should_ignore_unknown_formats(true)
            .build(&root)
            .map_err(|e| format!("the document's schema at {pointer} does not compile: {e}"))?;
        let validator = Arc::new(validator);
        cache.insert(pointer.to_owned(), validator.clone());
        Ok(validator)
    }
}

/// A regular expression for a path template: `{name}` matches one
/// segment's worth of characters (OData function arguments included).
fn template_pattern(template: &str) -> anyhow::Result<(Regex, usize)> {
    let mut pattern = String::from("^");
    let mut literal_len = 0;
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .with_context(|| format!("unclosed parameter in {template}"))?;
        pattern.push_str(&regex::escape(&rest[..open]));
        literal_len += open;
        let name: String = rest[open + 1..close]
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        pattern.push_str(&format!("(?P<{name}>[^/]*?)"));
        rest = &rest[close + 1..];
    }
    pattern.push_str(&regex::escape(rest));
    literal_len += rest.len();
    pattern.push('$');
    Ok((Regex::new(&pattern)?, literal_len))
}

/// A place where a document is wrong or silent and NOTES.md (or the
/// document itself elsewhere) says what the live API does:
/// `(JSON pointer, OpenAPI fragment, source)`. The fragment's keys replace
/// those at the pointer; a pointer ending in `/-` appends the fragment to
/// the array before it. Applied before the document becomes JSON Schema.
type Erratum = (&'static str, &'static str, &'static str);

/// The 3CX document's errata.
const THREECX_ERRATA: &[Erratum] = &[(
    "/paths/~1Recordings~1Pbx.DownloadRecording(recId={recId})/get/parameters/-",
    r#"{"name": "access_token", "in": "query", "schema": {"type": "string"}}"#,
    "NOTES.md §1 [3P]: scripts pass `?access_token=` on DownloadRecording for media players",
)];

/// The HighLevel documents' errata.
const HIGHLEVEL_ERRATA: &[Erratum] = &[
    (
        "/components/schemas/ProcessMessageBodyDto/properties/direction",
        r#"{"type": "string", "enum": ["inbound", "outbound"], "example": "inbound"}"#,
        "NOTES.md §4.3: declared `type: object` with example [\"outbound\",\"inbound\"]; send the string",
    ),
    (
        "/components/schemas/NumericField/properties/field_value",
        r#"{"type": ["number", "string"]}"#,
        "[ASSUMED] declared `type: object` with example 100",
    ),
    (
        "/components/schemas/UpdateContactDto/properties/customFields/items/anyOf/-",
        r##"{"$ref": "#/components/schemas/customFieldsInputStringSchema"}"##,
        "[ASSUMED] the document's own customFieldsInputStringSchema: \"Pass either `id` or `key` of custom field\" (defined, never referenced)",
    ),
    (
        "/components/schemas/ConversationSchema/properties/lastMessageType",
        r#"{"nullable": true}"#,
        "[ASSUMED] a conversation with no message yet has no last message type",
    ),
    (
        "/components/schemas/CustomFieldSchema/properties/value",
        r#"{"type": ["string", "number", "boolean", "array"]}"#,
        "[ASSUMED] declared a string; numeric and multi-select fields answer their own types, as their input schemas",
    ),
];

/// Replaces each erratum's schema; an erratum whose place is gone is an
/// error, so a corrected document is noticed.
fn apply_errata(doc: &mut Value, errata: &[Erratum]) -> anyhow::Result<()> {
    for (pointer, schema, source) in errata {
        let schema: Value = serde_json::from_str(schema).context("an erratum's schema is JSON")?;
        // A last token `-` appends to the array before it (JSON Patch).
        if let Some(array) = pointer.strip_suffix("/-") {
            doc.pointer_mut(array)
                .and_then(Value::as_array_mut)
                .with_context(|| format!("erratum {pointer} ({source}) no longer applies"))?
                .push(schema);
            continue;
        }
        let place = doc
            .pointer_mut(pointer)
            .and_then(Value::as_object_mut)
            .with_context(|| format!("erratum {pointer} ({source}) no longer applies"))?;
        if let Value::Object(keys) = schema {
            place.extend(keys);
        }
    }
    Ok(())
}

/// Whether both simulators referee their exchanges: false on a machine
/// without the documents (see the module docs), or once
/// [`stop_refereeing`] was called.
pub fn enabled() -> bool {
    REFEREEING.load(std::sync::atomic::Ordering::Relaxed)
        && threecx().is_some()
        && highlevel().is_some()
}

/// Cleared by [`stop_refereeing`].
static REFEREEING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Stop refereeing in this process: `connectzero bench` measures the
/// pipeline, not the validator in the simulators beside it. Tests and the
/// demo never call it.
pub fn stop_refereeing() {
    REFEREEING.store(false, std::sync::atomic::Ordering::Relaxed);
}

/// Where the official documents are.
fn specs_dir() -> PathBuf {
    std::env::var_os("CONNECTZERO_SPECS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/specs"
            ))
        })
}

/// Loads one API's documents, or explains why the simulators run
/// unrefereed (see the module docs).
fn load(build: impl FnOnce(&std::path::Path) -> anyhow::Result<ApiSpec>) -> Option<ApiSpec> {
    let dir = specs_dir();
    match build(&dir) {
        Ok(spec) => Some(spec),
        Err(err) if std::env::var_os("CI").is_some() || dir.exists() => {
            panic!(
                "cannot load the official API documents from {} ({err:#}); set CONNECTZERO_SPECS_DIR to the specs folder",
                dir.display()
            )
        }
        Err(err) => {
            tracing::warn!(
                "the simulators run without checking requests against the official API documents: {err:#}"
            );
            eprintln!(
                "note: the simulators run without checking requests against the official API documents ({} not found; set CONNECTZERO_SPECS_DIR)",
                dir.display()
            );
            None
        }
    }
}

/// The 3CX XAPI document (`3cx/swagger.yaml`), loaded once per process.
pub(crate) fn threecx() -> Option<&'static ApiSpec> {
    static SPEC: OnceLock<Option<ApiSpec>> = OnceLock::new();
    SPEC.get_or_init(|| {
        load(|dir| {
            let mut doc = openapi::read(&dir.join("3cx/swagger.yaml"))?;
            apply_errata(&mut doc, THREECX_ERRATA)?;
            openapi::normalise(&mut doc);
            ApiSpec::new("3CX XAPI", "/xapi/v1", doc)
        })
    })
    .as_ref()
}

/// The HighLevel API v2 documents (`highlevel/apps/*.json` and the common
/// schemas they refer to), merged into one and loaded once per process.
pub(crate) fn highlevel() -> Option<&'static ApiSpec> {
    static SPEC: OnceLock<Option<ApiSpec>> = OnceLock::new();
    SPEC.get_or_init(|| {
        load(|dir| {
            let mut doc = openapi::read(&dir.join("highlevel/common/common-schemas.json"))?;
            let apps = dir.join("highlevel/apps");
            let mut files: Vec<_> = std::fs::read_dir(&apps)
                .with_context(|| format!("listing {}", apps.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            files.sort();
            for file in files {
                openapi::merge(&mut doc, openapi::read(&file)?);
            }
            apply_errata(&mut doc, HIGHLEVEL_ERRATA)?;
            openapi::normalise(&mut doc);
            ApiSpec::new("HighLevel API v2", "", doc)
        })
    })
    .as_ref()
}

#[cfg(test)]
mod tests;
