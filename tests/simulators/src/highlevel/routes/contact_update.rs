//! Changing a contact (apps/contacts.json, `Version: 2021-07-28`):
//!
//! | operationId | route |
//! | --- | --- |
//! | `update-contact` | `PUT /contacts/{contactId}` |
//! | `add-tags` | `POST /contacts/{contactId}/tags` |
//!
//! Bodies are validated first (422 `UnprocessableDTO`, as NestJS validates
//! before the handler runs), then the contact is looked up (404), then its
//! location is checked against the token's (403).

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::fields::{Fields, apply_custom_fields};
use super::{AppState, Caller};
use crate::highlevel::dto::ContactDto;
use crate::highlevel::error::{ApiError, parse_json};
use crate::highlevel::model::Contact;
use crate::highlevel::phone;
use crate::highlevel::state::State as SimState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/contacts/{contactId}", put(update))
        .route("/contacts/{contactId}/tags", post(add_tags))
}

/// The contact `contact_id` of the caller's location, for changing.
fn owned_contact<'a>(
    state: &'a mut SimState,
    caller: &Caller,
    contact_id: &str,
) -> Result<&'a mut Contact, ApiError> {
    let contact = state
        .contact_mut(contact_id)
        .ok_or_else(|| ApiError::NotFound("Contact not found".to_owned()))?;
    caller.ensure(&contact.location_id)?;
    Ok(contact)
}

/// The `UpdateContactDto` fields the simulator stores. Outer `None`: absent
/// (unchanged); inner `None`: sent as `null` (cleared).
#[derive(Debug, Default)]
struct ContactUpdate {
    first_name: Option<Option<String>>,
    last_name: Option<Option<String>>,
    name: Option<Option<String>>,
    email: Option<Option<String>>,
    phone: Option<Option<String>>,
    source: Option<Option<String>>,
    tags: Option<Vec<String>>,
    custom_fields: Option<Vec<(String, Option<Value>)>>,
}

impl ContactUpdate {
    /// Validates the body: 422 for wrong types, an email without `@` or a
    /// phone that does not parse. Other `UpdateContactDto` fields (address,
    /// dnd, ...) are accepted and ignored [ASSUMED].
    fn parse(body: &Map<String, Value>) -> Result<Self, ApiError> {
        let mut fields = Fields::new(body);
        let blank_is_null = |v: Option<Option<String>>| {
            v.map(|inner| inner.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()))
        };
        let email = blank_is_null(fields.nullable_string("email"));
        if let Some(Some(email)) = &email
            && !email.contains('@')
        {
            fields.problem("email must be an email");
        }
        let phone = match blank_is_null(fields.nullable_string("phone")) {
            Some(Some(raw)) => {
                let normalised = phone::normalize(&raw);
                if normalised.is_none() {
                    fields.problem(format!("phone must be a valid phone number (got {raw:?})"));
                }
                Some(normalised)
            }
            other => other,
        };
        let update = Self {
            first_name: fields.nullable_string("firstName"),
            last_name: fields.nullable_string("lastName"),
            name: fields.nullable_string("name"),
            email,
            phone,
            source: fields.nullable_string("source"),
            tags: fields.string_array("tags"),
            custom_fields: fields.custom_fields(),
        };
        fields.finish()?;
        Ok(update)
    }

    /// Applies the update. `name` follows an explicit non-blank `name`, else
    /// is rebuilt from the names when either changed.
    fn apply(self, contact: &mut Contact) {
        let names_changed = self.first_name.is_some() || self.last_name.is_some();
        if let Some(first) = self.first_name {
            contact.first_name = first.unwrap_or_default();
        }
        if let Some(last) = self.last_name {
            contact.last_name = last.unwrap_or_default();
        }
        match self.name.flatten().filter(|n| !n.trim().is_empty()) {
            Some(name) => contact.name = name.trim().to_owned(),
            None if names_changed => {
                let full = format!("{} {}", contact.first_name, contact.last_name);
                contact.name = full.trim().to_owned();
            }
            None => {}
        }
        if let Some(email) = self.email {
            contact.email = email;
        }
        if let Some(phone) = self.phone {
            contact.phone = phone;
        }
        if let Some(source) = self.source {
            contact.source = source;
        }
        if let Some(tags) = self.tags {
            contact.tags.clear();
            merge_tags(&mut contact.tags, tags);
        }
        if let Some(updates) = self.custom_fields {
            apply_custom_fields(&mut contact.custom_fields, updates);
        }
    }
}

/// operationId `update-contact`: 200 `UpdateContactsSuccessfulResponseDto`
/// `{"succeded": true, "contact": GetContectByIdSchema}` (the spec's
/// spelling). `tags` replaces all tags (the spec's description);
/// `customFields` items set or clear single fields, others keep theirs.
/// The phone is normalised to E.164; duplicates are not checked [ASSUMED].
async fn update(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(contact_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: Map<String, Value> = parse_json(&body)?;
    let update = ContactUpdate::parse(&body)?;
    let mut state = app.lock();
    let now = state.stamp();
    let contact = owned_contact(&mut state, &caller, &contact_id)?;
    update.apply(contact);
    contact.date_updated = now;
    Ok(Json(
        json!({"succeded": true, "contact": ContactDto::from(&*contact)}),
    ))
}

/// Appends `tags` (trimmed, blanks dropped) that `existing` lacks, keeping
/// order; comparison is exact [ASSUMED: case is preserved].
fn merge_tags(existing: &mut Vec<String>, tags: Vec<String>) {
    for tag in tags {
        let tag = tag.trim();
        if !tag.is_empty() && !existing.iter().any(|t| t == tag) {
            existing.push(tag.to_owned());
        }
    }
}

/// operationId `add-tags`: body `TagsDTO` `{"tags": [string]}` (required),
/// 201 `CreateAddTagSuccessfulResponseDto` `{"tags": [...]}` listing all of
/// the contact's tags after the merge [ASSUMED: the spec does not say
/// whether it lists only the added ones]. Tags already present are not
/// added again.
async fn add_tags(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(contact_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: Map<String, Value> = parse_json(&body)?;
    let mut fields = Fields::new(&body);
    let tags = fields.string_array("tags");
    if matches!(body.get("tags"), None | Some(Value::Null)) {
        fields.problem("tags should not be empty");
        fields.problem("tags must be an array");
    }
    fields.finish()?;
    let mut state = app.lock();
    let now = state.stamp();
    let contact = owned_contact(&mut state, &caller, &contact_id)?;
    merge_tags(&mut contact.tags, tags.unwrap_or_default());
    contact.date_updated = now;
    let body = json!({"tags": contact.tags});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[cfg(test)]
mod unit {
    use super::merge_tags;

    #[test]
    fn tags_merge_without_duplicates() {
        let mut tags = vec!["3cx".to_owned()];
        let new = ["missed", " 3cx ", "", "missed", "VIP"].map(str::to_owned);
        merge_tags(&mut tags, new.to_vec());
        assert_eq!(tags, ["3cx", "missed", "VIP"]);
    }
}
