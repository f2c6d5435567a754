//! The HighLevel API v2 requests the post stage makes.
//!
//! This module holds the clients ([`Crm`]) and the message types; each
//! family of requests has its own part: `contacts` (find or create a
//! contact), `conversations` (a contact's conversation), `messages`
//! (finding a message already posted, and its user) and `send` (posting a
//! call message, with or without `userId`).

mod contacts;
mod conversations;
mod messages;
mod send;

use guest_support::api::ApiClient;
use guest_support::bindings::connectzero::pipeline::types::{Service, TenantSettings};
use serde::{Deserialize, Serialize};

/// `Version` header of the conversations API (apps/conversations.json).
pub(crate) const CONVERSATIONS_VERSION: &str = "2021-04-15";
/// `Version` header of the contacts API (apps/contacts.json).
const CONTACTS_VERSION: &str = "2021-07-28";

/// Clients for the two API families, which pin different `Version` headers.
pub struct Crm {
    conversations: ApiClient,
    contacts: ApiClient,
    location_id: String,
}

/// `CallDataDTO`.
#[derive(Clone, Serialize, Deserialize)]
pub struct CallData {
    /// Phone number of the receiver.
    pub to: String,
    /// Phone number of the dialer.
    pub from: String,
    /// One of the spec's call statuses (`completed`, `no-answer`, ...).
    pub status: String,
}

/// `ProcessMessageBodyDto` with the fields a call log uses. Also kept as
/// it was sent for a call settled among several contacts
/// (`crate::copies`), to log the same call on another of them.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallMessage {
    /// Always "Call".
    #[serde(rename = "type")]
    pub kind: String,
    /// Conversation the call belongs to.
    pub conversation_id: String,
    /// The contact.
    pub contact_id: String,
    /// The app's conversation provider (type Call).
    pub conversation_provider_id: String,
    /// Who called whom, and how it went.
    pub call: CallData,
    /// Start of the call, RFC 3339.
    pub date: String,
    /// The call's ConnectZero key, so the message can be traced back.
    pub alt_id: String,
    /// Human-readable summary: duration, who answered, route, match rule.
    pub message: String,
    /// "inbound" or "outbound".
    pub direction: String,
    /// The HighLevel user the call was for, when mapped.
    ///
    /// [ASSUMED] `ProcessMessageBodyDto` (`add-an-inbound-message`) does
    /// not list `userId`; HighLevel reports a message's user as
    /// `GetMessageResponseDto.userId`, and the app sends it so the call is
    /// attributed. Omitted when no user is mapped, and for good once
    /// HighLevel refused it ([`refuses_user_id`](send::refuses_user_id)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// `ProcessMessageResponseDto`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageResponse {
    /// Conversation id.
    pub conversation_id: String,
    /// The new message's id.
    pub message_id: String,
    /// The CRM user the message was posted with (`None` when sent
    /// without one).
    #[serde(skip)]
    pub user_id: Option<String>,
}

impl Crm {
    /// Clients for the tenant's CRM location.
    pub fn new(settings: &TenantSettings) -> Self {
        let base = settings.crm_base_url.trim_end_matches('/');
        Self {
            conversations: ApiClient::new(Service::Crm, base)
                .with_header("Version", CONVERSATIONS_VERSION),
            contacts: ApiClient::new(Service::Crm, base).with_header("Version", CONTACTS_VERSION),
            location_id: settings.crm_location_id.clone(),
        }
    }
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

#[cfg(test)]
mod tests {
    use super::send::refuses_user_id;
    use super::*;

    fn upstream(status: u16, message: &str) -> guest_support::UpstreamError {
        guest_support::UpstreamError {
            service: Service::Crm,
            status,
            message: message.into(),
        }
    }

    #[test]
    fn only_a_validation_error_naming_user_id_refuses_it() {
        assert!(refuses_user_id(&upstream(
            422,
            "property userId should not exist"
        )));
        assert!(refuses_user_id(&upstream(
            400,
            "property userId should not exist"
        )));
        assert!(!refuses_user_id(&upstream(
            422,
            "contactId should not be empty"
        )));
        assert!(!refuses_user_id(&upstream(500, "userId lookup failed")));
    }
}
