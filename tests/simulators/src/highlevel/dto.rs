//! Response bodies, field for field as the OpenAPI schemas name them.

use serde::Serialize;

use super::model::{Contact, Conversation, Message, ms_date};

/// Scopes granted to the simulated app by default: everything a
/// call-logging app with workflow triggers and actions asks for (NOTES.md
/// §2.5, §5.1). Scopes are reported but not enforced;
/// [`HighLevelSim::set_granted_scopes`](super::HighLevelSim::set_granted_scopes)
/// changes them.
pub(crate) const GRANTED_SCOPES: &str = "contacts.readonly contacts.write \
conversations.readonly conversations.write conversations/message.readonly \
conversations/message.write workflows.readonly";

/// `GetAccessCodeSuccessfulResponseDto` (operationId `get-access-token`).
/// Note the mixed snake_case / camelCase naming, as in the spec.
#[derive(Debug, Serialize)]
pub(crate) struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    pub scope: String,
    #[serde(rename = "userType")]
    pub user_type: &'static str,
    /// Absent on a Company (agency) token (NOTES.md §8).
    #[serde(rename = "locationId", skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    #[serde(rename = "companyId")]
    pub company_id: String,
    #[serde(rename = "userId")]
    pub user_id: String,
    #[serde(rename = "isBulkInstallation")]
    pub is_bulk_installation: bool,
}

/// A contact as `GetContectByIdSchema` / `CreateContactSchema` (a superset of
/// both: the simulator answers the same shape everywhere).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContactDto {
    id: String,
    location_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_name_lower_case: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_name_lower_case: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    full_name_lower_case: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_lower_case: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    dnd: bool,
    deleted: bool,
    tags: Vec<String>,
    /// `CustomFieldSchema[]`: `{id, value}`.
    custom_fields: Vec<serde_json::Value>,
    date_added: String,
    date_updated: String,
    /// `assignedTo` (`GetContectByIdSchema`): the user the contact is assigned to.
    #[serde(skip_serializing_if = "Option::is_none")]
    assigned_to: Option<String>,
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

impl From<&Contact> for ContactDto {
    fn from(c: &Contact) -> Self {
        Self {
            id: c.id.clone(),
            location_id: c.location_id.clone(),
            name: non_empty(&c.name),
            first_name: non_empty(&c.first_name),
            last_name: non_empty(&c.last_name),
            first_name_lower_case: non_empty(&c.first_name).map(|s| s.to_lowercase()),
            last_name_lower_case: non_empty(&c.last_name).map(|s| s.to_lowercase()),
            full_name_lower_case: non_empty(&c.name).map(|s| s.to_lowercase()),
            email: c.email.clone(),
            email_lower_case: c.email.as_ref().map(|e| e.to_lowercase()),
            phone: c.phone.clone(),
            kind: "lead",
            source: c.source.clone(),
            dnd: false,
            deleted: false,
            tags: c.tags.clone(),
            custom_fields: c
                .custom_fields
                .iter()
                .map(|(id, value)| serde_json::json!({"id": id, "value": value}))
                .collect(),
            date_added: ms_date::format(&c.date_added),
            date_updated: ms_date::format(&c.date_updated),
            assigned_to: c.assigned_to.clone(),
        }
    }
}

/// `ConversationCreateResponseDto` (operationId `create-conversation`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConversationCreatedDto {
    id: String,
    date_updated: String,
    date_added: String,
    deleted: bool,
    contact_id: String,
    location_id: String,
    /// [ASSUMED] equals `dateAdded` while the conversation has no message.
    last_message_date: String,
}

impl From<&Conversation> for ConversationCreatedDto {
    fn from(c: &Conversation) -> Self {
        Self {
            id: c.id.clone(),
            date_updated: ms_date::format(&c.date_updated),
            date_added: ms_date::format(&c.date_added),
            deleted: false,
            contact_id: c.contact_id.clone(),
            location_id: c.location_id.clone(),
            last_message_date: ms_date::format(&c.last_message_date.unwrap_or(c.date_added)),
        }
    }
}

/// `ConversationSchema` (operationId `search-conversation`). All its required
/// fields are present: strings the contact lacks are `""`, and
/// `lastMessageType` is `null` before the first message [ASSUMED; an
/// erratum of the referee, as the document requires a type].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConversationSchemaDto {
    id: String,
    contact_id: String,
    location_id: String,
    last_message_body: String,
    last_message_type: Option<String>,
    #[serde(rename = "type")]
    kind: &'static str,
    unread_count: u32,
    full_name: String,
    contact_name: String,
    email: String,
    phone: String,
    /// Not listed in `ConversationSchema`, but the live search answers it
    /// as a string of epoch milliseconds (NOTES.md §8, as `ConversationDto`):
    /// the newest message's, `null` before the first one [ASSUMED].
    last_message_date: Option<String>,
}

impl ConversationSchemaDto {
    /// Joins a conversation with its contact (if still present).
    pub(crate) fn new(c: &Conversation, contact: Option<&Contact>) -> Self {
        let field = |f: fn(&Contact) -> Option<String>| contact.and_then(f).unwrap_or_default();
        Self {
            id: c.id.clone(),
            contact_id: c.contact_id.clone(),
            location_id: c.location_id.clone(),
            last_message_body: c.last_message_body.clone().unwrap_or_default(),
            last_message_type: c.last_message_type.clone(),
            kind: "TYPE_PHONE",
            unread_count: c.unread_count,
            full_name: field(|k| Some(k.name.clone())),
            contact_name: field(|k| Some(k.name.clone())),
            email: field(|k| k.email.clone()),
            phone: field(|k| k.phone.clone()),
            last_message_date: c
                .last_message_date
                .map(|d| d.timestamp_millis().to_string()),
        }
    }
}

/// `GetConversationByIdResponse` (operationId `get-conversation`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConversationByIdDto {
    contact_id: String,
    location_id: String,
    deleted: bool,
    inbox: bool,
    /// 1 = Phone.
    #[serde(rename = "type")]
    kind: u32,
    unread_count: u32,
    id: String,
    starred: bool,
}

impl From<&Conversation> for ConversationByIdDto {
    fn from(c: &Conversation) -> Self {
        Self {
            contact_id: c.contact_id.clone(),
            location_id: c.location_id.clone(),
            deleted: false,
            inbox: true,
            kind: 1,
            unread_count: c.unread_count,
            id: c.id.clone(),
            starred: false,
        }
    }
}

/// Maps a request `type` to the numeric `type` and `messageType` of
/// `GetMessageResponseDto`. `Call` → (1, `TYPE_CALL`) per NOTES.md §4.6;
/// the other numbers are [ASSUMED] from HighLevel's public enum order.
pub(crate) fn message_type_of(request_type: &str) -> (u32, &'static str) {
    match request_type {
        "Call" => (1, "TYPE_CALL"),
        "SMS" => (2, "TYPE_SMS"),
        "Email" => (3, "TYPE_EMAIL"),
        "WebChat" => (5, "TYPE_WEBCHAT"),
        "Campaign_Call" => (8, "TYPE_CAMPAIGN_CALL"),
        "Campaign_VoiceMail" => (10, "TYPE_CAMPAIGN_VOICEMAIL"),
        "FB" => (11, "TYPE_FACEBOOK"),
        "GMB" => (15, "TYPE_GMB"),
        "IG" => (18, "TYPE_INSTAGRAM"),
        "WhatsApp" => (19, "TYPE_WHATSAPP"),
        "IVR_Call" => (24, "TYPE_IVR_CALL"),
        "Live_Chat" => (29, "TYPE_LIVE_CHAT"),
        "TIKTOK" => (38, "TYPE_TIKTOK"),
        "FORM_SUBMISSION" => (40, "TYPE_FORM_SUBMISSION"),
        "RCS" => (41, "TYPE_RCS"),
        _ => (20, "TYPE_CUSTOM_SMS"),
    }
}

/// `MessageMeta`: only the call fields apply (no `callDuration`: the request
/// DTOs have no duration to take it from).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageMetaDto {
    #[serde(skip_serializing_if = "Option::is_none")]
    call_status: Option<String>,
}

/// `GetMessageResponseDto` (operationId `get-message`). `attachments` lists the
/// stored URLs [ASSUMED: the spec says they are empty for calls, but
/// `add-message-attachments` exists precisely for external calls].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageDto {
    id: String,
    #[serde(rename = "type")]
    kind: u32,
    message_type: &'static str,
    location_id: String,
    contact_id: String,
    conversation_id: String,
    date_added: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    direction: String,
    content_type: &'static str,
    attachments: Vec<String>,
    meta: MessageMetaDto,
    source: &'static str,
    conversation_provider_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    alt_id: Option<String>,
    /// The CRM user the message is attributed to, when it kept one.
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
}

impl MessageDto {
    /// The same message without its `altId`.
    pub(crate) fn without_alt_id(mut self) -> Self {
        self.alt_id = None;
        self
    }
}

impl From<&Message> for MessageDto {
    fn from(m: &Message) -> Self {
        let (kind, message_type) = message_type_of(&m.message_type);
        Self {
            id: m.id.clone(),
            kind,
            message_type,
            location_id: m.location_id.clone(),
            contact_id: m.contact_id.clone(),
            conversation_id: m.conversation_id.clone(),
            date_added: ms_date::format(&m.date_added),
            body: m.body.clone(),
            direction: m.direction.clone(),
            content_type: "text/plain",
            attachments: m.attachments.clone(),
            meta: MessageMetaDto {
                call_status: m.call_status.clone(),
            },
            source: "api",
            conversation_provider_id: m.conversation_provider_id.clone(),
            alt_id: m.alt_id.clone(),
            user_id: m.user_id.clone(),
        }
    }
}
