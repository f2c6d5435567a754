//! Contact endpoints (apps/contacts.json, `Version: 2021-07-28`).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::fields::{Fields, apply_custom_fields};
use super::{AppState, Caller, TraceId};
use crate::highlevel::dto::ContactDto;
use crate::highlevel::error::{ApiError, parse_json};
use crate::highlevel::phone;
use crate::highlevel::state::NewContact;

/// Largest `pageLimit` accepted by `search-contacts-advanced` [ASSUMED].
const MAX_PAGE_LIMIT: u64 = 500;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/contacts/search/duplicate", get(duplicate))
        .route("/contacts/search", post(search))
        .route("/contacts/", post(create))
        .route("/contacts", post(create))
        .route("/contacts/{contactId}", get(by_id))
}

/// operationId `get-duplicate-contact`: `{"contact": <contact>|null, "traceId"}`
/// (200 schema undeclared; NOTES.md §3.1). `email` is tried before `number`;
/// `number` is compared after E.164 normalisation (an unparsable number
/// matches nothing). When several contacts share the number the oldest
/// (`dateAdded`, then id) is returned.
async fn duplicate(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(TraceId(trace_id)): Extension<TraceId>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let location_id = caller.require(query.get("locationId").map(String::as_str))?;
    let state = app.lock();
    let by_email = query
        .get("email")
        .filter(|e| !e.trim().is_empty())
        .and_then(|email| state.oldest_with_email(&location_id, email));
    let found = by_email.or_else(|| {
        let number = query.get("number").and_then(|n| phone::normalize(n))?;
        state.oldest_with_phone(&location_id, &number)
    });
    Ok(Json(json!({
        "contact": found.map(ContactDto::from),
        "traceId": trace_id,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchBody {
    location_id: Option<String>,
    page: Option<u64>,
    page_limit: Option<u64>,
    #[serde(default)]
    filters: Vec<SearchFilter>,
}

#[derive(Debug, Deserialize)]
struct SearchFilter {
    field: Option<String>,
    operator: Option<String>,
    value: Option<Value>,
}

/// operationId `search-contacts-advanced` (body and response undeclared;
/// shape from NOTES.md §3.2). Supports `eq` filters on `phone` (E.164
/// normalised) and `email` (case-insensitive), ANDed; anything else is a 400
/// [ASSUMED]. Results in ascending `dateAdded`, then id.
async fn search(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(TraceId(trace_id)): Extension<TraceId>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: SearchBody = parse_json(&body)?;
    let location_id = caller.require(body.location_id.as_deref())?;
    let page = body.page.unwrap_or(1);
    let page_limit = body.page_limit.unwrap_or(20);
    if page == 0 {
        return Err(ApiError::bad_request("page must not be less than 1"));
    }
    if page_limit == 0 || page_limit > MAX_PAGE_LIMIT {
        return Err(ApiError::bad_request(format!(
            "pageLimit must be between 1 and {MAX_PAGE_LIMIT}"
        )));
    }
    let mut wanted: Vec<(bool, String)> = Vec::new(); // (is_phone, value)
    for filter in &body.filters {
        let value = filter
            .value
            .as_ref()
            .and_then(Value::as_str)
            .unwrap_or_default();
        match (filter.field.as_deref(), filter.operator.as_deref()) {
            (Some("phone"), Some("eq")) => {
                // An unparsable number can match nothing.
                wanted.push((true, phone::normalize(value).unwrap_or_default()));
            }
            (Some("email"), Some("eq")) => wanted.push((false, value.trim().to_lowercase())),
            (field, operator) => {
                return Err(ApiError::bad_request(format!(
                    "Unsupported filter: field {field:?} with operator {operator:?}"
                )));
            }
        }
    }
    let state = app.lock();
    let matches: Vec<ContactDto> = state
        .contacts_in(&location_id)
        .into_iter()
        .filter(|c| {
            wanted.iter().all(|(is_phone, value)| {
                if *is_phone {
                    c.phone.as_deref() == Some(value.as_str())
                } else {
                    c.email.as_deref().map(str::to_lowercase).as_deref() == Some(value.as_str())
                }
            })
        })
        .map(ContactDto::from)
        .collect();
    let total = matches.len();
    let skip = usize::try_from((page - 1).saturating_mul(page_limit)).unwrap_or(usize::MAX);
    let take = usize::try_from(page_limit).unwrap_or(usize::MAX);
    let contacts: Vec<ContactDto> = matches.into_iter().skip(skip).take(take).collect();
    Ok(Json(
        json!({"contacts": contacts, "total": total, "traceId": trace_id}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateContactBody {
    location_id: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    tags: Option<Vec<String>>,
    source: Option<String>,
}

/// operationId `create-contact`: 201 `{"contact": CreateContactSchema}`;
/// 400 without `locationId`; 422 for an unparsable phone, an email without
/// `@` or a `customFields` item without `id`/`key`. With "Allow Duplicate Contact" off (HighLevel's default, see
/// `HighLevelSim::set_allow_duplicate_contacts`), a phone or email already on
/// a contact gives 400 `{"statusCode":400,"message":"This location does not
/// allow duplicated contacts.","meta":{"contactId","matchingField"}}` [ASSUMED].
async fn create(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let raw: Map<String, Value> = parse_json(&body)?;
    let body: CreateContactBody = parse_json(&body)?;
    let location_id = caller.require(body.location_id.as_deref())?;
    let mut fields = Fields::new(&raw);
    let mut custom_fields = Vec::new();
    apply_custom_fields(
        &mut custom_fields,
        fields.custom_fields().unwrap_or_default(),
    );
    fields.finish()?;
    let mut problems = Vec::new();
    let phone = match body
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        None => None,
        Some(raw) => {
            let normalised = phone::normalize(raw);
            if normalised.is_none() {
                problems.push(format!("phone must be a valid phone number (got {raw:?})"));
            }
            normalised
        }
    };
    let email = body
        .email
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty());
    if email.as_deref().is_some_and(|e| !e.contains('@')) {
        problems.push("email must be an email".to_owned());
    }
    if !problems.is_empty() {
        return Err(ApiError::Unprocessable(problems));
    }

    let mut state = app.lock();
    if !state.allow_duplicate_contacts {
        let existing = email
            .as_deref()
            .and_then(|e| state.oldest_with_email(&location_id, e))
            .map(|c| (c.id.clone(), "email"))
            .or_else(|| {
                let phone = phone.as_deref()?;
                let c = state.oldest_with_phone(&location_id, phone)?;
                Some((c.id.clone(), "phone"))
            });
        if let Some((contact_id, field)) = existing {
            let body = json!({
                "statusCode": 400,
                "message": "This location does not allow duplicated contacts.",
                "meta": {"contactId": contact_id, "matchingField": field},
            });
            return Ok((StatusCode::BAD_REQUEST, Json(body)).into_response());
        }
    }
    let contact = state.insert_contact(
        NewContact {
            location_id,
            first_name: body.first_name.unwrap_or_default(),
            last_name: body.last_name.unwrap_or_default(),
            name: body.name,
            email,
            phone,
            tags: body.tags.unwrap_or_default(),
            source: body.source,
            custom_fields,
            assigned_to: None,
        },
        None,
    );
    let body = json!({"contact": ContactDto::from(&contact)});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// operationId `get-contact`: `{"contact": GetContectByIdSchema}`; 404
/// `{"statusCode":404,"message":"Contact not found"}` [ASSUMED shape].
async fn by_id(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(contact_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let state = app.lock();
    let contact = state
        .contact(&contact_id)
        .ok_or_else(|| ApiError::NotFound("Contact not found".to_owned()))?;
    caller.ensure(&contact.location_id)?;
    Ok(Json(json!({"contact": ContactDto::from(contact)})))
}
