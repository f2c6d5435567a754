//! Users of the location (apps/users.json, `Version: 2021-07-28`):
//!
//! | operationId | route |
//! | --- | --- |
//! | `get-user-by-location` | `GET /users/?locationId=` |
//!
//! Answers `LocationSuccessfulResponseDto` `{"users": [UserSchema]}` with
//! the users seeded by `HighLevelSim::add_user`.

use axum::extract::{Extension, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, Caller};
use crate::highlevel::error::ApiError;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/users/", get(by_location))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ByLocation {
    location_id: Option<String>,
}

/// operationId `get-user-by-location`: `locationId` is required (400 when
/// missing) and must be the token's location (403).
async fn by_location(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<ByLocation>,
) -> Result<Json<Value>, ApiError> {
    caller.require(query.location_id.as_deref())?;
    let users = app.lock().users.clone();
    Ok(Json(json!({ "users": users })))
}
