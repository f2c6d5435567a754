//! Call-log message endpoints (apps/conversations.json, `Version: 2021-04-15`).

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, Caller};
use crate::highlevel::dto::MessageDto;
use crate::highlevel::error::{ApiError, parse_json};
use crate::highlevel::ids;
use crate::highlevel::model::{Message, ms_date};

/// `ProcessMessageBodyDto.type` enum.
const INBOUND_TYPES: [&str; 17] = [
    "SMS",
    "RCS",
    "Email",
    "WhatsApp",
    "GMB",
    "IG",
    "FB",
    "Custom",
    "WebChat",
    "Live_Chat",
    "Call",
    "IVR_Call",
    "Campaign_Call",
    "Campaign_VoiceMail",
    "TIKTOK",
    "ALL_IN_ONE_CHAT",
    "FORM_SUBMISSION",
];
/// `ProcessOutboundMessageBodyDto.type` enum.
const OUTBOUND_TYPES: [&str; 1] = ["Call"];
/// `CallDataDTO.status` enum.
const CALL_STATUSES: [&str; 8] = [
    "pending",
    "completed",
    "answered",
    "busy",
    "no-answer",
    "failed",
    "canceled",
    "voicemail",
];
/// `AddMessageAttachmentsDto`: "Maximum 5 URLs".
const MAX_ATTACHMENTS: usize = 5;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/conversations/messages/inbound", post(inbound))
        .route("/conversations/messages/outbound", post(outbound))
        .route("/conversations/messages/{messageId}", get(by_id))
        .route(
            "/conversations/messages/{messageId}/attachments",
            put(set_attachments),
        )
}

/// `ProcessMessageBodyDto` / `ProcessOutboundMessageBodyDto` (the latter has
/// no `contactId`, `message` nor `direction`; they are ignored there).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    conversation_id: Option<String>,
    contact_id: Option<String>,
    conversation_provider_id: Option<String>,
    message: Option<String>,
    #[serde(default)]
    attachments: Vec<String>,
    alt_id: Option<String>,
    direction: Option<String>,
    date: Option<String>,
    call: Option<CallData>,
    /// [ASSUMED] not in `ProcessMessageBodyDto`; see `Message::user_id`.
    /// Refused when the simulator's `set_reject_message_user_id` is on.
    user_id: Option<String>,
}

/// `CallDataDTO`.
#[derive(Debug, Deserialize)]
struct CallData {
    to: Option<String>,
    from: Option<String>,
    status: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Inbound,
    Outbound,
}

/// operationId `add-an-inbound-message`.
async fn inbound(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    add_message(&app, &caller, &body, Direction::Inbound)
}

/// operationId `add-an-outbound-message` ("Add an external outbound call").
async fn outbound(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    add_message(&app, &caller, &body, Direction::Outbound)
}

fn missing(value: &Option<String>) -> bool {
    value.as_deref().is_none_or(|v| v.trim().is_empty())
}

/// 422 `UnprocessableDTO` listing every violated constraint of the body.
/// With `reject_user_id` (the simulator's switch), `userId` is one of them.
fn validate(
    body: &MessageBody,
    direction: Direction,
    reject_user_id: bool,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let mut problems = Vec::new();
    if reject_user_id && body.user_id.is_some() {
        problems.push("property userId should not exist".to_owned());
    }
    let mut required = vec![
        ("type", &body.kind),
        ("conversationId", &body.conversation_id),
        ("conversationProviderId", &body.conversation_provider_id),
    ];
    if direction == Direction::Inbound {
        required.insert(2, ("contactId", &body.contact_id));
    }
    for (name, value) in required {
        if missing(value) {
            problems.push(format!("{name} should not be empty"));
        }
    }
    let allowed: &[&str] = match direction {
        Direction::Inbound => &INBOUND_TYPES,
        Direction::Outbound => &OUTBOUND_TYPES,
    };
    if let Some(kind) = body.kind.as_deref().filter(|k| !allowed.contains(k)) {
        problems.push(format!(
            "type must be one of the following values: {} (got {kind:?})",
            allowed.join(", ")
        ));
    }
    // [ASSUMED] a call log without its `call` object is rejected
    // (ConversationProviders.md: inbound call logs carry `call`).
    if body.kind.as_deref() == Some("Call") && body.call.is_none() {
        problems.push("call should not be empty".to_owned());
    }
    if let Some(status) = body.call.as_ref().and_then(|c| c.status.as_deref())
        && !CALL_STATUSES.contains(&status)
    {
        problems.push(format!(
            "call.status must be one of the following values: {} (got {status:?})",
            CALL_STATUSES.join(", ")
        ));
    }
    if direction == Direction::Inbound
        && let Some(d) = body
            .direction
            .as_deref()
            .filter(|d| !["inbound", "outbound"].contains(d))
    {
        problems.push(format!(
            "direction must be one of the following values: inbound, outbound (got {d:?})"
        ));
    }
    let date = match body.date.as_deref() {
        None => None,
        Some(raw) => match DateTime::parse_from_rfc3339(raw) {
            Ok(date) => Some(date.with_timezone(&Utc)),
            Err(_) => {
                problems.push(format!(
                    "date must be a valid ISO 8601 date string (got {raw:?})"
                ));
                None
            }
        },
    };
    if problems.is_empty() {
        Ok(date)
    } else {
        Err(ApiError::Unprocessable(problems))
    }
}

/// Shared by both operations. After validation: the provider id must be the
/// configured one (400 [ASSUMED]), the conversation must exist (400) and be
/// the caller's (403), and for inbound belong to `contactId` (400). The
/// direction recorded is the endpoint's; on `inbound` an explicit
/// `direction` is honoured [ASSUMED: the DTO's documented default,
/// "outbound", is taken to apply to other message types].
fn add_message(
    app: &AppState,
    caller: &Caller,
    body: &[u8],
    direction: Direction,
) -> Result<Json<Value>, ApiError> {
    let body: MessageBody = parse_json(body)?;
    let (reject_user_id, drop_user_id) = {
        let state = app.lock();
        (
            state.reject_message_user_id,
            state.drop_inbound_user_id && direction == Direction::Inbound,
        )
    };
    let date = validate(&body, direction, reject_user_id)?;
    let provider_id = body.conversation_provider_id.clone().unwrap_or_default();
    if provider_id != app.config.conversation_provider_id {
        return Err(ApiError::bad_request(
            "conversationProviderId does not match a conversation provider of this app",
        ));
    }
    let conversation_id = body.conversation_id.clone().unwrap_or_default();
    let mut state = app.lock();
    let conversation = state
        .conversation(&conversation_id)
        .ok_or_else(|| ApiError::bad_request("Conversation not found"))?
        .clone();
    caller.ensure(&conversation.location_id)?;
    if direction == Direction::Inbound
        && body.contact_id.as_deref() != Some(&conversation.contact_id)
    {
        return Err(ApiError::bad_request(
            "The conversation does not belong to this contact",
        ));
    }
    let endpoint = direction;
    let direction = match endpoint {
        Direction::Outbound => "outbound",
        Direction::Inbound => body.direction.as_deref().unwrap_or("inbound"),
    };
    let call = body.call.as_ref();
    let date_added = state.stamp();
    let message = Message {
        id: ids::object_id(),
        conversation_id: conversation.id.clone(),
        contact_id: conversation.contact_id.clone(),
        location_id: conversation.location_id.clone(),
        direction: direction.to_owned(),
        message_type: body.kind.clone().unwrap_or_default(),
        conversation_provider_id: provider_id,
        call_to: call.and_then(|c| c.to.clone()),
        call_from: call.and_then(|c| c.from.clone()),
        call_status: call.and_then(|c| c.status.clone()),
        date,
        alt_id: body.alt_id.clone(),
        // `ProcessOutboundMessageBodyDto` has no `message` field.
        body: body
            .message
            .clone()
            .filter(|_| endpoint == Direction::Inbound),
        attachments: body.attachments.clone(),
        user_id: body
            .user_id
            .clone()
            .filter(|u| !u.trim().is_empty() && !drop_user_id),
        date_added,
    };
    let response = json!({
        "success": true,
        "conversationId": message.conversation_id,
        "messageId": message.id,
        "message": "Message added successfully",
        "contactId": message.contact_id,
        "dateAdded": ms_date::format(&message.date_added),
    });
    state.insert_message(message);
    Ok(Json(response))
}

/// operationId `get-message`: `GetMessageResponseDto`; 404
/// `{"statusCode":404,"message":"Message not found"}` [ASSUMED].
async fn by_id(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(message_id): Path<String>,
) -> Result<Json<MessageDto>, ApiError> {
    let state = app.lock();
    let message = state
        .messages
        .iter()
        .find(|m| m.id == message_id)
        .ok_or_else(|| ApiError::NotFound("Message not found".to_owned()))?;
    caller.ensure(&message.location_id)?;
    Ok(Json(MessageDto::from(message)))
}

#[derive(Debug, Deserialize)]
struct AttachmentsBody {
    attachments: Option<Vec<String>>,
}

/// operationId `add-message-attachments`: replaces the message's attachments
/// with at most 5 http(s) URLs (400 otherwise); 404 "Message not found"; 403
/// "Message type does not support attachment updates" for non-call messages.
/// 200 body `{"success":true}` [ASSUMED: no schema declared].
async fn set_attachments(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(message_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: AttachmentsBody = parse_json(&body)?;
    let attachments = body
        .attachments
        .ok_or_else(|| ApiError::bad_request("attachments must be an array"))?;
    if attachments.len() > MAX_ATTACHMENTS {
        return Err(ApiError::bad_request(format!(
            "attachments must contain no more than {MAX_ATTACHMENTS} elements"
        )));
    }
    if !attachments
        .iter()
        .all(|url| url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(ApiError::bad_request(
            "each value in attachments must be a URL address",
        ));
    }
    let mut state = app.lock();
    let message = state
        .message_mut(&message_id)
        .ok_or_else(|| ApiError::NotFound("Message not found".to_owned()))?;
    caller.ensure(&message.location_id)?;
    if message.message_type != "Call" {
        return Err(ApiError::Forbidden(
            "Message type does not support attachment updates".to_owned(),
        ));
    }
    message.attachments = attachments;
    Ok(Json(json!({"success": true})))
}
