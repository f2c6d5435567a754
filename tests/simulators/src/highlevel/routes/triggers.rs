//! The endpoint an app calls to fire a workflow trigger (NOTES.md §5.2):
//! `POST /workflows-marketplace/triggers/execute/{a}/{b}`, the `targetUrl`
//! HighLevel sent in the trigger subscription.
//!
//! No OpenAPI file describes it. Like the other API routes it needs
//! `Authorization: Bearer <location access token>` (401 `UnauthorizedDTO`),
//! is rate limited and may be hit by injected faults. The `Version` header
//! is optional here (public clients send `2021-04-15` [ASSUMED]); whatever
//! was sent is recorded. Any `{a}/{b}` is accepted, issued by
//! `HighLevelSim::subscribe_trigger` or not [ASSUMED].

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;
use crate::highlevel::error::{ApiError, parse_json};
use crate::highlevel::model::TriggerExecution;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route(
        "/workflows-marketplace/triggers/execute/{a}/{b}",
        post(execute),
    )
}

/// Records a [`TriggerExecution`] and answers 200 `{"success": true}`
/// [ASSUMED body]. 400 unless `Content-Type` is `application/json` or the
/// JSON is malformed; 422 unless the body is a JSON object (the trigger's
/// sample payload shape) [ASSUMED statuses].
async fn execute(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::bad_request(
            "Content-Type must be application/json",
        ));
    }
    let body: Value = parse_json(&body)?;
    if !body.is_object() {
        return Err(ApiError::unprocessable("body must be a JSON object"));
    }
    let version_header = headers
        .get("version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut state = app.lock();
    let received_at = state.stamp();
    state.trigger_executions.push(TriggerExecution {
        target_path: uri.path().to_owned(),
        body,
        version_header,
        received_at,
    });
    Ok(Json(json!({"success": true})))
}
