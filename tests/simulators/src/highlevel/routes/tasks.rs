//! Contact tasks (apps/contacts.json, `Version: 2021-07-28`):
//!
//! | operationId | route |
//! | --- | --- |
//! | `create-task` | `POST /contacts/{contactId}/tasks` |
//! | `get-all-tasks` | `GET /contacts/{contactId}/tasks` |
//! | `update-task-completed` | `PUT /contacts/{contactId}/tasks/{taskId}/completed` |
//!
//! Tasks are served as `TaskSchema` (`id, title, body, assignedTo, dueDate,
//! completed, contactId`), wrapped in `TaskByIsSuccessfulResponseDto`
//! `{"task": …}` or `TasksListSuccessfulResponseDto` `{"tasks": […]}`;
//! see [`Task`].

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::fields::Fields;
use super::{AppState, Caller};
use crate::highlevel::error::{ApiError, parse_json};
use crate::highlevel::ids;
use crate::highlevel::model::Task;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/contacts/{contactId}/tasks", get(list).post(create))
        .route(
            "/contacts/{contactId}/tasks/{taskId}/completed",
            put(set_completed),
        )
}

/// A required boolean: class-validator's messages for a missing or
/// mistyped one [ASSUMED wording, as `Fields`].
fn required_bool(fields: &mut Fields<'_>, body: &Map<String, Value>, key: &str) -> Option<bool> {
    match body.get(key) {
        None | Some(Value::Null) => {
            fields.problem(format!("{key} should not be empty"));
            fields.problem(format!("{key} must be a boolean value"));
            None
        }
        Some(_) => fields.bool(key),
    }
}

/// operationId `create-task`: body `CreateTaskParams` (`title`, `dueDate`
/// and `completed` required; `body`, `assignedTo` optional) → 201
/// `TaskByIsSuccessfulResponseDto`. 422 for a missing or mistyped field or a
/// `dueDate` that is not an ISO-8601 date, checked before the contact: 404
/// for an unknown contact.
async fn create(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(contact_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: Map<String, Value> = parse_json(&body)?;
    let mut fields = Fields::new(&body);
    let title = fields.required_string("title");
    let due_date = fields.required_string("dueDate");
    let completed = required_bool(&mut fields, &body, "completed");
    let text = fields.string("body");
    let assigned_to = fields.string("assignedTo");
    if let Some(due) = &due_date
        && chrono::DateTime::parse_from_rfc3339(due).is_err()
    {
        fields.problem("dueDate must be a valid ISO 8601 date string");
    }
    fields.finish()?;
    let mut state = app.lock();
    caller.ensure_contact(&state, &contact_id)?;
    let task = Task {
        id: ids::object_id(),
        title: title.unwrap_or_default(),
        body: text,
        assigned_to,
        due_date: due_date.unwrap_or_default(),
        completed: completed.unwrap_or(false),
        contact_id,
    };
    state.tasks.push(task.clone());
    Ok((StatusCode::CREATED, Json(json!({"task": task}))).into_response())
}

/// operationId `get-all-tasks`: 200 `TasksListSuccessfulResponseDto`
/// `{"tasks": [TaskSchema]}`, oldest first [ASSUMED order]; 404 for an
/// unknown contact.
async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(contact_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let state = app.lock();
    caller.ensure_contact(&state, &contact_id)?;
    let tasks: Vec<&Task> = state
        .tasks
        .iter()
        .filter(|t| t.contact_id == contact_id)
        .collect();
    Ok(Json(json!({"tasks": tasks})))
}

/// operationId `update-task-completed`: body `UpdateTaskStatusParams`
/// (`completed` required) → 200 `TaskByIsSuccessfulResponseDto`. 422 for a
/// missing or mistyped `completed`; 404 for an unknown contact, or a task
/// that is not that contact's [ASSUMED status and message].
async fn set_completed(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((contact_id, task_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: Map<String, Value> = parse_json(&body)?;
    let mut fields = Fields::new(&body);
    let completed = required_bool(&mut fields, &body, "completed");
    fields.finish()?;
    let mut state = app.lock();
    caller.ensure_contact(&state, &contact_id)?;
    let task = state
        .tasks
        .iter_mut()
        .find(|t| t.id == task_id && t.contact_id == contact_id)
        .ok_or_else(|| ApiError::NotFound("Task not found".to_owned()))?;
    task.completed = completed.unwrap_or(false);
    Ok(Json(json!({"task": task})))
}
