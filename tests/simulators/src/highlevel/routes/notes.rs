//! Contact notes (apps/contacts.json, `Version: 2021-07-28`):
//!
//! | operationId | route |
//! | --- | --- |
//! | `create-note` | `POST /contacts/{contactId}/notes` |
//! | `get-all-notes` | `GET /contacts/{contactId}/notes` |
//!
//! Notes are served as `GetNoteSchema` (`id, body, userId, dateAdded,
//! contactId, title, color, pinned`); see [`Note`].

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::fields::Fields;
use super::{AppState, Caller};
use crate::highlevel::error::{ApiError, parse_json};
use crate::highlevel::ids;
use crate::highlevel::model::Note;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/contacts/{contactId}/notes", get(list).post(create))
}

/// operationId `create-note`: body `NotesDTO` (`body` required; `userId`,
/// `title`, `color`, `pinned` optional) → 201
/// `GetCreateUpdateNoteSuccessfulResponseDto` `{"note": GetNoteSchema}`.
/// 422 when `body` is missing, blank or not a string (or another field has
/// the wrong type), checked before the contact: 404 for an unknown contact.
/// Fields not sent are left out of the note, `pinned` defaults to `false`
/// [ASSUMED].
async fn create(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(contact_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: Map<String, Value> = parse_json(&body)?;
    let mut fields = Fields::new(&body);
    let text = fields.required_string("body");
    let user_id = fields.string("userId");
    let title = fields.string("title");
    let color = fields.string("color");
    let pinned = fields.bool("pinned");
    fields.finish()?;
    let mut state = app.lock();
    caller.ensure_contact(&state, &contact_id)?;
    let note = Note {
        id: ids::object_id(),
        body: text.unwrap_or_default(),
        user_id,
        date_added: state.stamp(),
        contact_id,
        title,
        color,
        pinned: pinned.unwrap_or(false),
    };
    state.notes.push(note.clone());
    Ok((StatusCode::CREATED, Json(json!({"note": note}))).into_response())
}

/// operationId `get-all-notes`: 200 `GetNotesListSuccessfulResponseDto`
/// `{"notes": [GetNoteSchema]}`, oldest first [ASSUMED order]; 404 for an
/// unknown contact.
async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(contact_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let state = app.lock();
    caller.ensure_contact(&state, &contact_id)?;
    let notes: Vec<&Note> = state
        .notes
        .iter()
        .filter(|n| n.contact_id == contact_id)
        .collect();
    Ok(Json(json!({"notes": notes})))
}
