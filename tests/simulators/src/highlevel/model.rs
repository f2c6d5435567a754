//! Public records the simulator exposes to tests: what the CRM "received".
//!
//! They serialise with the API's camelCase field names and millisecond
//! ISO-8601 dates (`2021-07-02T05:18:26.704Z`, as in the specs' examples).

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A token pair as returned by `POST /oauth/token` (operationId `get-access-token`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimTokens {
    /// Bearer access token for the location.
    pub access_token: String,
    /// Single-use refresh token (rotates on every refresh).
    pub refresh_token: String,
    /// Access token lifetime in seconds.
    pub expires_in: u64,
}

/// A contact to seed with [`HighLevelSim::add_contact`](super::HighLevelSim::add_contact).
#[derive(Clone, Debug, Default)]
pub struct SimContact {
    /// First name (may be empty).
    pub first_name: String,
    /// Last name (may be empty).
    pub last_name: String,
    /// Email address.
    pub email: Option<String>,
    /// Phone in any common notation; stored as E.164 (US default region).
    pub phone: Option<String>,
    /// HighLevel user id the contact is assigned to (`assignedTo`).
    pub assigned_to: Option<String>,
}

impl SimContact {
    /// A contact with a name and nothing else.
    pub fn new(first_name: impl Into<String>, last_name: impl Into<String>) -> Self {
        Self {
            first_name: first_name.into(),
            last_name: last_name.into(),
            email: None,
            phone: None,
            assigned_to: None,
        }
    }

    /// A named contact with a phone number.
    pub fn with_phone(
        first_name: impl Into<String>,
        last_name: impl Into<String>,
        phone: impl Into<String>,
    ) -> Self {
        Self::new(first_name, last_name).phone(phone)
    }

    /// Sets the phone number.
    pub fn phone(mut self, phone: impl Into<String>) -> Self {
        self.phone = Some(phone.into());
        self
    }

    /// Sets the email address.
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Assigns the contact to a HighLevel user (`assignedTo`).
    pub fn assigned_to(mut self, user_id: impl Into<String>) -> Self {
        self.assigned_to = Some(user_id.into());
        self
    }
}

/// A contact stored in the simulated sub-account.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    /// Contact id (20-char opaque).
    pub id: String,
    /// Location (sub-account) owning the contact.
    pub location_id: String,
    /// First name, empty when unknown.
    pub first_name: String,
    /// Last name, empty when unknown.
    pub last_name: String,
    /// Display name (`name` from the request, else "first last").
    pub name: String,
    /// Email address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone in E.164 (or as given if it could not be parsed when seeded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Creation time (strictly increasing across records, millisecond precision).
    #[serde(with = "ms_date")]
    pub date_added: DateTime<Utc>,
    /// Last change through `update-contact` or `add-tags` (else `date_added`).
    #[serde(with = "ms_date")]
    pub date_updated: DateTime<Utc>,
    /// `source` as sent on creation (or update).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Custom field values as `(id, value)`, in the order first set. The id
    /// is the request's `id`, or its `key` when only the key was sent
    /// [ASSUMED: the simulator has no field definitions to resolve keys].
    /// Served by `get-contact` as `customFields: [{id, value}]`.
    #[serde(serialize_with = "custom_fields::serialize")]
    pub custom_fields: Vec<(String, serde_json::Value)>,
    /// `assignedTo`: the HighLevel user the contact is assigned to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
}

impl Contact {
    /// The value of custom field `id_or_key`, if set.
    pub fn custom_field(&self, id_or_key: &str) -> Option<&serde_json::Value> {
        self.custom_fields
            .iter()
            .find(|(id, _)| id == id_or_key)
            .map(|(_, value)| value)
    }
}

/// A note on a contact (operationId `create-note`), serialised as the
/// spec's `GetNoteSchema`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    /// Note id.
    pub id: String,
    /// The note's text (`NotesDTO.body`).
    pub body: String,
    /// `NotesDTO.userId`, when sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// When the simulator stored the note.
    #[serde(with = "ms_date")]
    pub date_added: DateTime<Utc>,
    /// The contact the note is on.
    pub contact_id: String,
    /// `NotesDTO.title`, when sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `NotesDTO.color`, when sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// `NotesDTO.pinned` (default `false` [ASSUMED]).
    pub pinned: bool,
}

/// A task on a contact (operationId `create-task`), serialised as the
/// spec's `TaskSchema`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// Task id.
    pub id: String,
    /// `CreateTaskParams.title`.
    pub title: String,
    /// `CreateTaskParams.body`, when sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `CreateTaskParams.assignedTo`, when sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
    /// `CreateTaskParams.dueDate`, as sent (ISO 8601).
    pub due_date: String,
    /// Whether it is done (`create-task`, `update-task-completed`).
    pub completed: bool,
    /// The contact the task is on.
    pub contact_id: String,
}

/// A call an app made to a workflow trigger's target URL
/// (`POST /workflows-marketplace/triggers/execute/{a}/{b}`, NOTES.md §5.2).
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerExecution {
    /// The request path, e.g. `/workflows-marketplace/triggers/execute/<a>/<b>`.
    pub target_path: String,
    /// The JSON body (the trigger's payload).
    pub body: serde_json::Value,
    /// The `Version` header, if one was sent (optional on this route).
    pub version_header: Option<String>,
    /// When the simulator received it.
    pub received_at: DateTime<Utc>,
}

/// A conversation (one per contact).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    /// Conversation id.
    pub id: String,
    /// The contact this conversation belongs to.
    pub contact_id: String,
    /// Location owning the conversation.
    pub location_id: String,
    /// Creation time.
    #[serde(with = "ms_date")]
    pub date_added: DateTime<Utc>,
    /// Last change (creation or last message).
    #[serde(with = "ms_date")]
    pub date_updated: DateTime<Utc>,
    /// `dateAdded` of the newest message, if any.
    #[serde(with = "ms_date::option")]
    pub last_message_date: Option<DateTime<Utc>>,
    /// `messageType` of the newest message (e.g. `TYPE_CALL`), if any.
    pub last_message_type: Option<String>,
    /// Body of the newest message, if any.
    pub last_message_body: Option<String>,
    /// Inbound messages added since creation.
    pub unread_count: u32,
}

/// A message added through `add-an-inbound-message` or `add-an-outbound-message`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Message id.
    pub id: String,
    /// Conversation the message was added to.
    pub conversation_id: String,
    /// Contact of that conversation.
    pub contact_id: String,
    /// Location owning the message.
    pub location_id: String,
    /// `"inbound"` or `"outbound"`.
    pub direction: String,
    /// The request's `type`, as sent (e.g. `"Call"`).
    pub message_type: String,
    /// The request's `conversationProviderId`.
    pub conversation_provider_id: String,
    /// `call.to`.
    pub call_to: Option<String>,
    /// `call.from`.
    pub call_from: Option<String>,
    /// `call.status`.
    pub call_status: Option<String>,
    /// The request's `date`.
    #[serde(with = "ms_date::option")]
    pub date: Option<DateTime<Utc>>,
    /// The request's `altId` (external id).
    pub alt_id: Option<String>,
    /// The request's `message` field.
    pub body: Option<String>,
    /// Attachment URLs (as sent, or as replaced by `add-message-attachments`).
    pub attachments: Vec<String>,
    /// The request's `userId`, when sent. [ASSUMED] `ProcessMessageBodyDto`
    /// does not list it, but HighLevel reports the message's user as
    /// `GetMessageResponseDto.userId` / `meta.userId`; the simulator keeps
    /// what the app sent so tests can see it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// When the simulator stored the message.
    #[serde(with = "ms_date")]
    pub date_added: DateTime<Utc>,
}

/// A HighLevel user of the location (apps/users.json `UserSchema`), seeded
/// with [`HighLevelSim::add_user`](super::HighLevelSim::add_user) and served
/// by `get-user-by-location`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// User id.
    pub id: String,
    /// "First Last".
    pub name: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// E-mail address.
    pub email: String,
}

/// A file received by `upload-file-attachments`; only its size is kept.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Upload {
    /// The multipart part's file name.
    pub file_name: String,
    /// The multipart part's `Content-Type`.
    pub content_type: Option<String>,
    /// Number of bytes received.
    pub size: usize,
    /// Hosted URL returned in `uploadedFiles` (not served by the simulator).
    pub url: String,
    /// The form's `conversationId`.
    pub conversation_id: String,
    /// The form's `contactId`.
    pub contact_id: String,
    /// The form's `locationId`.
    pub location_id: String,
}

/// A failure injected with [`HighLevelSim::inject_failures`](super::HighLevelSim::inject_failures).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 500 `{"statusCode":500,"message":"Internal Server Error"}`.
    ServerError,
    /// The request takes effect, then its answer is lost: the client gets
    /// the 500 above instead of what HighLevel answered (a gateway timing
    /// out, or the connection cut, after HighLevel stored the write).
    AnswerLost,
    /// 429 `{"statusCode":429,"message":"Too Many Requests"}`, with a
    /// `Retry-After` header when `retry_after_secs` is set.
    TooManyRequests {
        /// Value of the `Retry-After` header, in seconds.
        retry_after_secs: Option<u64>,
    },
    /// 422 `UnprocessableDTO` with this one message: a refusal the client
    /// cannot fix by retrying (ConnectZero parks the call).
    Unprocessable(String),
    /// 401 `UnauthorizedDTO`, whatever token came with the request (a
    /// workflow endpoint refusing a delivery, or a token revoked
    /// in between).
    Unauthorized,
}

/// Serialises `(id, value)` pairs as `CustomFieldSchema` objects `{id, value}`.
mod custom_fields {
    use serde::Serializer;
    use serde::ser::SerializeSeq;
    use serde_json::{Value, json};

    pub(super) fn serialize<S: Serializer>(
        fields: &[(String, Value)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(fields.len()))?;
        for (id, value) in fields {
            seq.serialize_element(&json!({"id": id, "value": value}))?;
        }
        seq.end()
    }
}

/// Millisecond-precision ISO-8601 (`2024-03-27T18:13:49.000Z`) serde helpers.
pub(crate) mod ms_date {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::Serializer;

    /// Formats a date the way the HighLevel API does.
    pub(crate) fn format(date: &DateTime<Utc>) -> String {
        date.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub(crate) fn serialize<S: Serializer>(date: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(date))
    }

    pub(crate) mod option {
        use chrono::{DateTime, Utc};
        use serde::Serializer;

        pub(crate) fn serialize<S: Serializer>(
            date: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match date {
                Some(date) => s.serialize_str(&super::format(date)),
                None => s.serialize_none(),
            }
        }
    }
}
