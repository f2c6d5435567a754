//! One action call, start to finish: checks in order, then the CRM writes.
//!
//! [`handle`] turns the outcome of [`run`] into a reply; everything else
//! returns `Result<_, ApiError>`. The outside world (configuration,
//! key-value store, CRM) is behind [`Env`], so the whole flow is tested
//! natively with a fake.

use crate::action::{self, Update};
use crate::auth::{self, SIGNATURE_HEADER};
use crate::reply::{ApiError, Reply, applied_body, crm_error};
use crate::settings::Settings;
use guest_support::{StageError, retention, time};
use serde_json::Value;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An incoming call as the HTTP plumbing read it.
#[derive(Clone, Debug)]
pub struct Request {
    /// Method, upper case.
    pub method: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body, read up to one byte past [`MAX_BODY_BYTES`]; `Err` when
    /// it could not be read.
    pub body: Result<Vec<u8>, String>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the action uses from its runtime.
pub trait Env {
    /// A `wasi:config/store` value.
    fn config(&self, key: &str) -> Result<Option<String>, String>;
    /// A value from the key-value bucket.
    fn recall(&self, key: &str) -> Result<Option<Vec<u8>>, StageError>;
    /// Store a value in the key-value bucket.
    fn remember(&self, key: &str, value: &[u8]) -> Result<(), StageError>;
    /// `create-note`; the new note's id when the CRM returns one.
    fn create_note(
        &self,
        s: &Settings,
        contact: &str,
        body: &str,
    ) -> Result<Option<String>, StageError>;
    /// `add-tags`.
    fn add_tags(&self, s: &Settings, contact: &str, tags: &[String]) -> Result<(), StageError>;
    /// `update-contact` with one custom field, by key.
    fn set_field(
        &self,
        s: &Settings,
        contact: &str,
        key: &str,
        value: &str,
    ) -> Result<(), StageError>;
}

/// Answer one call.
pub fn handle(env: &dyn Env, request: &Request) -> Reply {
    run(env, request).unwrap_or_else(ApiError::into_reply)
}

/// The checks in order (method, size, JSON, authentication, location,
/// validation), then the idempotent apply.
pub fn run(env: &dyn Env, request: &Request) -> Result<Reply, ApiError> {
    if request.method != "POST" {
        return Err(ApiError::new(
            405,
            format!(
                "{} is not supported: HighLevel calls this action with POST",
                request.method
            ),
        ));
    }
    let body = request
        .body
        .as_ref()
        .map_err(|e| ApiError::new(400, format!("the request body could not be read: {e}")))?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            413,
            format!("the request body is larger than {MAX_BODY_BYTES} bytes: shorten the notes"),
        ));
    }
    let json: Value = serde_json::from_slice(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| {
            ApiError::new(
                400,
                "the body must be a JSON object: {\"data\": {...}, \"extras\": {...}, \"meta\": {...}}",
            )
        })?;
    let settings = Settings::load(|key| env.config(key))?;

    auth::check_secret(
        &settings.secret_header,
        request.header(&settings.secret_header),
        settings.secret.as_deref(),
    )?;
    auth::check_signature(
        settings.signature_public_key.as_deref(),
        body,
        request.header(SIGNATURE_HEADER),
    )?;
    let Some(location) = settings.location_id.as_deref() else {
        return Err(ApiError::internal(
            "crm-location-id is not configured, so no call is accepted: set it to the tenant's HighLevel location id",
        ));
    };
    match action::location_id(&json) {
        Some(sent) if sent == location => {}
        Some(sent) => {
            return Err(ApiError::new(
                403,
                format!(
                    "extras.locationId {sent:?} is not this tenant's location: each location has its own action URL"
                ),
            ));
        }
        None => {
            return Err(ApiError::new(
                403,
                "extras.locationId is missing: only HighLevel workflow calls for this tenant's location are accepted",
            ));
        }
    }
    let update =
        action::parse(&json, settings.max_notes_chars).map_err(|e| ApiError::new(422, e))?;

    let digest = auth::body_digest(body);
    let done_key = format!("write-back/done/{digest}");
    if let Some(stored) = env.recall(&done_key).map_err(storage)? {
        let answer = retention::unstamp(&stored);
        return Ok(Reply::ok(answer.to_string().into_bytes()));
    }
    let answer = apply(env, &settings, &update, &digest)?;
    // The CRM has the update; a failure to remember it only means an
    // identical retry re-adds tags and re-sets the field (the note is
    // remembered separately), so the call still succeeded. Stamped, so
    // the retention sweep forgets it `state_retention_days` later.
    let _ = env.remember(&done_key, &retention::stamp(&answer, time::now_ms()));
    Ok(Reply::ok(answer.to_string().into_bytes()))
}

/// Write notes, tags and sentiment, in that order. The note's id is stored
/// as soon as it exists, so a retry after a later failure does not add
/// the note twice; tags and the custom field are idempotent in the CRM.
fn apply(
    env: &dyn Env,
    settings: &Settings,
    update: &Update,
    digest: &str,
) -> Result<Value, ApiError> {
    let contact = update.contact_id.as_str();
    let crm = |e| crm_error(e, contact);
    let mut note_id = None;
    if let Some(text) = update.note_body() {
        let note_key = format!("write-back/note/{digest}");
        note_id = match env.recall(&note_key).map_err(storage)? {
            Some(stored) => serde_json::from_value::<Option<String>>(retention::unstamp(&stored))
                .unwrap_or(None),
            None => {
                let id = env.create_note(settings, contact, &text).map_err(crm)?;
                let stored = retention::stamp(&serde_json::json!(id), time::now_ms());
                // The note exists now; failing the call here would only
                // make the retry add it again.
                let _ = env.remember(&note_key, &stored);
                id
            }
        };
    }
    if !update.tags.is_empty() {
        env.add_tags(settings, contact, &update.tags).map_err(crm)?;
    }
    if let Some(value) = update.sentiment_value() {
        env.set_field(settings, contact, &settings.sentiment_field_key, &value)
            .map_err(crm)?;
    }
    Ok(applied_body(
        contact,
        update.notes.is_some(),
        &update.tags,
        update.sentiment.map(|s| s.as_str()),
        update.score,
        note_id.as_deref(),
    ))
}

fn storage(error: StageError) -> ApiError {
    crm_error(error, "")
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
