//! The router and the entity-set handlers of `/xapi/v1`.

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;

use super::auth::{gate, token};
use super::calllog::get_call_log_data;
use super::convert;
use super::download::recordings_function;
use super::error::ODataError;
use super::functions::{int_arg, parse_invocation, string_arg};
use super::odata::{OptionError, QueryOptions, Schema, collection_body, parse_options};
use super::schema::{ACTIVE_CALL, CALL_HISTORY_VIEW, LICENSE_STATUS, RECORDING, USER};
use super::state::{HistoryRow, Shared, State as SimState, lock};
use crate::spec::{self, Referee, Violations};

/// All routes, behind the [`gate`] middleware.
pub(crate) fn router(state: Shared, violations: Violations) -> Router {
    let referee = Referee {
        spec: spec::threecx(),
        violations,
        // The token endpoint is the document's `securitySchemes` tokenUrl,
        // not one of its paths (NOTES.md §1).
        unlisted: &["/connect/token"],
        live_shapes: &[],
        body_status: 400,
        refuse: |status, message| {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            ODataError::new(status, message.join("; ")).into_response()
        },
    };
    Router::new()
        .route("/connect/token", post(token))
        .route("/xapi/v1/CallHistoryView", get(list_call_history_view))
        .route(
            "/xapi/v1/ReportCallLogData/{function}",
            get(get_call_log_data),
        )
        .route("/xapi/v1/Users", get(list_user))
        .route("/xapi/v1/{keyed}", get(get_keyed_entity))
        .route("/xapi/v1/Recordings", get(list_recording))
        .route("/xapi/v1/Recordings/{function}", get(recordings_function))
        .route("/xapi/v1/ActiveCalls", get(list_active_call))
        .route("/xapi/v1/Defs/{function}", get(defs_function))
        .route("/xapi/v1/LicenseStatus", get(get_license_status))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), gate))
        .layer(from_fn_with_state(referee, spec::referee))
        .with_state(state)
}

async fn not_found() -> ODataError {
    ODataError::not_found("No HTTP resource was found that matches the request URI.")
}

async fn method_not_allowed() -> ODataError {
    ODataError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "The requested resource does not support this HTTP method.",
    )
}

/// Parses the OData query options of a collection request (400 on error).
pub(crate) fn options(
    query: Option<&str>,
    schema: &Schema,
    st: &SimState,
) -> Result<QueryOptions, ODataError> {
    parse_options(query, schema, st.config.page_size_cap).map_err(
        |OptionError { option, message }| {
            let err = ODataError::bad_request(message);
            if option.is_empty() {
                err
            } else {
                err.with_target(option)
            }
        },
    )
}

/// Serialises wire rows to JSON objects for the OData engine.
pub(crate) fn to_rows<T: Serialize>(rows: impl IntoIterator<Item = T>) -> Vec<Value> {
    rows.into_iter()
        .map(|row| serde_json::to_value(row).unwrap_or(Value::Null))
        .collect()
}

fn entity_body<T: Serialize>(st: &SimState, context: &str, entity: T) -> Json<Value> {
    let mut value = serde_json::to_value(entity).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        let ctx = format!("{}/xapi/v1/$metadata#{context}", st.base_url);
        map.insert("@odata.context".into(), Value::String(ctx));
    }
    Json(value)
}

/// operationId `ListCallHistoryView`. Scripted and raw rows, in insertion order.
async fn list_call_history_view(
    State(shared): State<Shared>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ODataError> {
    let mut st = lock(&shared);
    if st.forbidden {
        return Err(ODataError::forbidden());
    }
    let opts = options(query.as_deref(), &CALL_HISTORY_VIEW, &st)?;
    let rows = match &st.history_rows {
        Some((generation, rows)) if *generation == st.generation => rows.clone(),
        _ => {
            let rows: Vec<Value> = st
                .history
                .iter()
                .map(|row| match row {
                    HistoryRow::Segment(seg) => {
                        serde_json::to_value(convert::history_row(seg, &st.users))
                            .unwrap_or(Value::Null)
                    }
                    HistoryRow::Raw(raw) => raw.clone(),
                })
                .collect();
            let rows = std::sync::Arc::new(rows);
            st.history_rows = Some((st.generation, rows.clone()));
            rows
        }
    };
    Ok(Json(super::odata::collection_body_of(
        &st.base_url,
        "CallHistoryView",
        &opts,
        &rows,
    )))
}

/// operationId `ListUser`.
async fn list_user(
    State(shared): State<Shared>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ODataError> {
    let st = lock(&shared);
    let opts = options(query.as_deref(), &USER, &st)?;
    let rows = to_rows(st.users.iter().map(convert::user));
    Ok(Json(collection_body(&st.base_url, "Users", &opts, rows)))
}

/// operationIds `GetUserByNumber` (`Users(Number='101')`) and `GetUser`
/// (`Users(5)`); any other `/xapi/v1/{segment}` is a 404.
async fn get_keyed_entity(
    State(shared): State<Shared>,
    Path(segment): Path<String>,
) -> Result<Json<Value>, ODataError> {
    let invocation = match parse_invocation(&segment) {
        Some(parsed) if segment.starts_with("Users(") => parsed?,
        _ => return Err(not_found().await),
    };
    let st = lock(&shared);
    let user = match invocation.args.as_slice() {
        [(name, raw)] if name == "Number" => {
            let number = string_arg("Number", raw)?;
            st.users.iter().find(|u| Some(&u.number) == number.as_ref())
        }
        [(name, raw)] if name.is_empty() || name == "Id" => {
            let id = int_arg("Id", raw)?;
            st.users.iter().find(|u| u.id == id)
        }
        _ => {
            return Err(ODataError::bad_request(format!(
                "'{segment}' is not a valid key of Users."
            )));
        }
    };
    let user =
        user.ok_or_else(|| ODataError::not_found(format!("User {segment} was not found.")))?;
    Ok(entity_body(&st, "Users/$entity", convert::user(user)))
}

/// operationId `ListRecording`. Recordings added with a finalising delay
/// get their `EndTime` here, once the delay has passed.
async fn list_recording(
    State(shared): State<Shared>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ODataError> {
    let mut st = lock(&shared);
    st.settle_recordings(std::time::Instant::now());
    if st.forbidden || st.recordings_forbidden {
        return Err(ODataError::forbidden());
    }
    let opts = options(query.as_deref(), &RECORDING, &st)?;
    let rows = to_rows(
        st.recordings
            .iter()
            .filter(|r| !st.unlisted_recordings.contains(&r.meta.id))
            .map(|r| convert::recording(r, st.segments(), &st.users)),
    );
    Ok(Json(collection_body(
        &st.base_url,
        "Recordings",
        &opts,
        rows,
    )))
}

/// operationId `ListActiveCall`; `ServerNow` is the current time.
async fn list_active_call(
    State(shared): State<Shared>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ODataError> {
    let st = lock(&shared);
    let opts = options(query.as_deref(), &ACTIVE_CALL, &st)?;
    let now = st.now();
    let rows = to_rows(st.active_calls.iter().map(|c| convert::active_call(c, now)));
    Ok(Json(collection_body(
        &st.base_url,
        "ActiveCalls",
        &opts,
        rows,
    )))
}

/// operationId `GetLicenseParameters`: `Defs/Pbx.GetLicenseParameters()`.
async fn defs_function(
    State(shared): State<Shared>,
    Path(segment): Path<String>,
) -> Result<Json<Value>, ODataError> {
    if segment != "Pbx.GetLicenseParameters()" {
        return Err(not_found().await);
    }
    let st = lock(&shared);
    Ok(entity_body(
        &st,
        "Pbx.License",
        convert::license(st.enterprise),
    ))
}

/// operationId `GetLicenseStatus` (a singleton; honours `$select`).
async fn get_license_status(
    State(shared): State<Shared>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ODataError> {
    let st = lock(&shared);
    let opts = options(query.as_deref(), &LICENSE_STATUS, &st)?;
    let status = to_rows([convert::license_status(st.enterprise)]);
    let select_only = QueryOptions {
        select: opts.select,
        ..QueryOptions::default()
    };
    let (mut rows, _) = super::odata::apply(status, &select_only);
    Ok(entity_body(
        &st,
        "LicenseStatus",
        rows.pop().unwrap_or(Value::Null),
    ))
}
