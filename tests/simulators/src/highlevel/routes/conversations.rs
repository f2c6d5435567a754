//! Conversation endpoints (apps/conversations.json, `Version: 2021-04-15`).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, Caller};
use crate::highlevel::config::MessagesPage;
use crate::highlevel::dto::{
    ConversationByIdDto, ConversationCreatedDto, ConversationSchemaDto, MessageDto, message_type_of,
};
use crate::highlevel::error::{ApiError, parse_json};
use crate::highlevel::model::Conversation;

/// Default and maximum page sizes for list endpoints [ASSUMED maximum].
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/conversations/search", get(search))
        .route("/conversations/", post(create))
        .route("/conversations", post(create))
        .route("/conversations/{conversationId}", get(by_id))
        .route("/conversations/{conversationId}/messages", get(messages))
}

fn parse_limit(raw: Option<&String>) -> Result<usize, ApiError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(raw) => match raw.trim().parse::<usize>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
            _ => Err(ApiError::bad_request(format!(
                "limit must be a number between 1 and {MAX_LIMIT}"
            ))),
        },
    }
}

/// operationId `search-conversation`: `SendConversationResponseDto`
/// `{conversations: [ConversationSchema], total}`. Filters: `contactId`, `id`;
/// sorted by last activity, newest first (`sort=asc` reverses); `limit`
/// (default 20) applies after `total` is counted.
async fn search(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let location_id = caller.require(query.get("locationId").map(String::as_str))?;
    let limit = parse_limit(query.get("limit"))?;
    let ascending = match query.get("sort").map(String::as_str) {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "sort must be one of the following values: asc, desc (got {other})"
            )));
        }
    };
    let state = app.lock();
    let mut found: Vec<&Conversation> = state
        .conversations
        .iter()
        .filter(|c| c.location_id == location_id)
        .filter(|c| query.get("contactId").is_none_or(|id| &c.contact_id == id))
        .filter(|c| query.get("id").is_none_or(|id| &c.id == id))
        .collect();
    found.sort_by(|a, b| (a.date_updated, &a.id).cmp(&(b.date_updated, &b.id)));
    if !ascending {
        found.reverse();
    }
    let total = found.len();
    let conversations: Vec<ConversationSchemaDto> = found
        .into_iter()
        .take(limit)
        .map(|c| ConversationSchemaDto::new(c, state.contact(&c.contact_id)))
        .collect();
    Ok(Json(
        json!({"conversations": conversations, "total": total}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateConversationBody {
    location_id: Option<String>,
    contact_id: Option<String>,
}

/// operationId `create-conversation`: 201 `CreateConversationSuccessResponse`
/// `{"success":true,"conversation":{...}}`. One conversation per contact
/// (ConversationProviders.md): a second create is a 400 "Conversation
/// already exists" [ASSUMED]; an unknown contact is a 400 "Contact not found".
async fn create(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: CreateConversationBody = parse_json(&body)?;
    let location_id = caller.require(body.location_id.as_deref())?;
    let contact_id = body
        .contact_id
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("contactId should not be empty"))?;
    let mut state = app.lock();
    let contact = state
        .contact(&contact_id)
        .filter(|c| c.location_id == location_id)
        .ok_or_else(|| ApiError::bad_request("Contact not found"))?;
    let contact_id = contact.id.clone();
    if state.conversation_of(&contact_id).is_some() {
        return Err(ApiError::bad_request("Conversation already exists"));
    }
    let conversation = state.insert_conversation(&location_id, &contact_id);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "success": true,
            "conversation": ConversationCreatedDto::from(&conversation),
        })),
    ))
}

fn conversation_for<'a>(
    state: &'a crate::highlevel::state::State,
    caller: &Caller,
    id: &str,
) -> Result<&'a Conversation, ApiError> {
    let conversation = state
        .conversation(id)
        .ok_or_else(|| ApiError::NotFound("Conversation not found".to_owned()))?;
    caller.ensure(&conversation.location_id)?;
    Ok(conversation)
}

/// operationId `get-conversation`: `GetConversationByIdResponse`; 404
/// `{"statusCode":404,"message":"Conversation not found"}` [ASSUMED].
async fn by_id(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(conversation_id): Path<String>,
) -> Result<Json<ConversationByIdDto>, ApiError> {
    let state = app.lock();
    let conversation = conversation_for(&state, &caller, &conversation_id)?;
    Ok(Json(ConversationByIdDto::from(conversation)))
}

/// operationId `get-messages`: `GetMessagesByConversationResponseDto`
/// `{lastMessageId, nextPage, messages}`, newest first. `lastMessageId`
/// continues after that message; `type` is a comma list of `TYPE_*` values;
/// `limit` defaults to 20. `lastMessageId` is `""` for an empty page.
async fn messages(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(conversation_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let limit = parse_limit(query.get("limit"))?;
    let types: Option<Vec<&str>> = query.get("type").map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect()
    });
    let state = app.lock();
    let conversation = conversation_for(&state, &caller, &conversation_id)?;
    let mut all: Vec<_> = state
        .messages
        .iter()
        .filter(|m| m.conversation_id == conversation.id)
        .filter(|m| {
            types
                .as_ref()
                .is_none_or(|t| t.contains(&message_type_of(&m.message_type).1))
        })
        .collect();
    all.sort_by(|a, b| (b.date_added, &b.id).cmp(&(a.date_added, &a.id)));
    let start = match query.get("lastMessageId").filter(|id| !id.is_empty()) {
        None => 0,
        Some(last) => all
            .iter()
            .position(|m| &m.id == last)
            .map(|i| i + 1)
            .ok_or_else(|| ApiError::bad_request("lastMessageId is not in this conversation"))?,
    };
    let shown = &all[start.min(all.len())..(start + limit).min(all.len())];
    let next_page = start + shown.len() < all.len();
    let last_message_id = shown.last().map(|m| m.id.clone()).unwrap_or_default();
    let hide_alt_id = state.hide_alt_id;
    let page: Vec<MessageDto> = shown
        .iter()
        .map(|m| MessageDto::from(*m))
        .map(|m| if hide_alt_id { m.without_alt_id() } else { m })
        .collect();
    let page = json!({
        "lastMessageId": last_message_id,
        "nextPage": next_page,
        "messages": page,
    });
    Ok(Json(match app.config.messages_page {
        MessagesPage::Nested => json!({ "messages": page }),
        MessagesPage::Flat => page,
    }))
}
