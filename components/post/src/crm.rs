//! The HighLevel API v2 requests the post stage makes.

use guest_support::api::ApiClient;
use guest_support::bindings::connectzero::pipeline::types::{Service, TenantSettings};
use guest_support::bindings::wasi::keyvalue::store::Bucket;
use guest_support::{StageError, kv};
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
    /// HighLevel refused it ([`refuses_user_id`]).
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

    /// The contact HighLevel already has for `e164`, if any (operationId
    /// `get-duplicate-contact`).
    pub fn existing_contact(&self, e164: &str) -> Result<Option<String>, StageError> {
        #[derive(Deserialize)]
        struct Found {
            contact: Option<IdOnly>,
        }
        let path = format!(
            "/contacts/search/duplicate?locationId={}&number={}",
            urlencoding::encode(&self.location_id),
            urlencoding::encode(e164)
        );
        let found: Found = self.contacts.get_json(&path)?;
        Ok(found.contact.map(|c| c.id))
    }

    /// Create a contact for an unknown number (operationId `create-contact`).
    pub fn create_contact(&self, e164: &str) -> Result<String, StageError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            location_id: &'a str,
            phone: &'a str,
            name: String,
            source: &'a str,
        }
        #[derive(Deserialize)]
        struct Created {
            contact: IdOnly,
        }
        let body = Body {
            location_id: &self.location_id,
            phone: e164,
            name: format!("Caller {e164}"),
            source: "ConnectZero (3CX call)",
        };
        let created: Created = self.contacts.post_json("/contacts/", &body)?;
        Ok(created.contact.id)
    }

    /// The contact's conversation: cached in the key-value store, else found
    /// (operationId `search-conversation`), else created
    /// (operationId `create-conversation`). HighLevel keeps one
    /// conversation per contact, so the cache never goes stale.
    pub fn conversation_for(
        &self,
        bucket: &Bucket,
        contact_id: &str,
    ) -> Result<String, StageError> {
        let cache_key = format!("post/conversation/{contact_id}");
        if let Some(id) = kv::get_json::<String>(bucket, &cache_key)? {
            return Ok(id);
        }
        #[derive(Deserialize)]
        struct Found {
            conversations: Vec<IdOnly>,
        }
        #[derive(Deserialize)]
        struct Created {
            conversation: IdOnly,
        }
        let path = format!(
            "/conversations/search?locationId={}&contactId={}",
            urlencoding::encode(&self.location_id),
            urlencoding::encode(contact_id)
        );
        let found: Found = self.conversations.get_json(&path)?;
        let id = match found.conversations.into_iter().next() {
            Some(conversation) => conversation.id,
            None => {
                #[derive(Serialize)]
                #[serde(rename_all = "camelCase")]
                struct Body<'a> {
                    location_id: &'a str,
                    contact_id: &'a str,
                }
                let body = Body {
                    location_id: &self.location_id,
                    contact_id,
                };
                match self
                    .conversations
                    .post_json::<_, Created>("/conversations/", &body)
                {
                    Ok(created) => created.conversation.id,
                    // Another worker (or another tenant on the same
                    // location) created it since the search: HighLevel
                    // answers 400 "Conversation already exists" [ASSUMED
                    // wording, NOTES §4.2]; use the one that exists.
                    Err(StageError::Upstream(e)) if e.status == 400 => {
                        let again: Found = self.conversations.get_json(&path)?;
                        match again.conversations.into_iter().next() {
                            Some(conversation) => conversation.id,
                            None => return Err(StageError::Upstream(e)),
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        kv::set_json(bucket, &cache_key, &id)?;
        Ok(id)
    }

    /// The call message in `conversation_id` posted under `crm_key`,
    /// searched newest first (operationId `get-messages`): its `altId`, or
    /// (should HighLevel not return the `altId`) the "Ref:" line of its
    /// text. Used only to recover from a crash between posting and
    /// recording the post, which happens within minutes, so the message is
    /// near the top.
    ///
    /// `posted_after_ms` is when the send marker was written: the search
    /// stops at messages older than that (less [`CLOCK_MARGIN_MS`] for the
    /// two clocks), so a conversation with thousands of older messages
    /// still gets an answer.
    pub fn find_call_message(
        &self,
        conversation_id: &str,
        crm_key: &str,
        posted_after_ms: Option<i64>,
    ) -> Result<Option<FoundMessage>, StageError> {
        let cutoff = posted_after_ms.map(|at| at.saturating_sub(CLOCK_MARGIN_MS));
        /// The page as the live API answers it, nested under `messages`
        /// (NOTES.md §8, api-docs issue #54), or as the document's flat
        /// `GetMessagesByConversationResponseDto`.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Answer {
            Nested { messages: Page },
            Flat(Page),
        }
        /// `GetMessagesByConversationResponseDto`.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Page {
            messages: Vec<Listed>,
            #[serde(default)]
            last_message_id: Option<String>,
            #[serde(default)]
            next_page: bool,
        }
        /// `GetMessageResponseDto`, the fields the search needs.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Listed {
            id: String,
            #[serde(default)]
            body: Option<String>,
            #[serde(default)]
            alt_id: Option<String>,
            #[serde(default)]
            date_added: Option<String>,
            // Required by the spec; read leniently so a message without it
            // is still found (the caller then knows the contact otherwise).
            #[serde(default)]
            contact_id: Option<String>,
        }
        // A busy contact's conversation holds more call messages than one
        // page: follow `lastMessageId` (operationId `get-messages`), newest
        // first, so the message a crashed worker posted is found even
        // after many others. [ASSUMED] a posted call lists as `TYPE_CALL`
        // (NOTES §4.6; §4.5 also names `TYPE_CUSTOM_CALL` for provider
        // calls, which the `type` filter cannot ask for): when the
        // filtered search finds nothing, every message is searched, so a
        // call listed under another type is found rather than posted again.
        let reference = crate::summary::reference_to(crm_key);
        for filter in ["&type=TYPE_CALL", ""] {
            let mut after: Option<String> = None;
            let mut complete = false;
            for _ in 0..MAX_MESSAGE_PAGES {
                let mut path = format!(
                    "/conversations/{}/messages?limit=100{filter}",
                    urlencoding::encode(conversation_id)
                );
                if let Some(last) = &after {
                    path.push_str(&format!("&lastMessageId={}", urlencoding::encode(last)));
                }
                let page = match self.conversations.get_json::<Answer>(&path)? {
                    Answer::Nested { messages } | Answer::Flat(messages) => messages,
                };
                // Newest first: once a page reaches messages older than the
                // marker, the call's message is not further on.
                let reached_older = cutoff.is_some_and(|cutoff| {
                    page.messages.iter().any(|m| {
                        m.date_added
                            .as_deref()
                            .and_then(|d| guest_support::time::parse_rfc3339_ms(d).ok())
                            .is_some_and(|added| added < cutoff)
                    })
                });
                if let Some(found) = page.messages.into_iter().find(|m| {
                    m.alt_id.as_deref() == Some(crm_key)
                        || m.body
                            .as_deref()
                            .is_some_and(|b| b.trim_end().ends_with(&reference))
                }) {
                    return Ok(Some(FoundMessage {
                        id: found.id,
                        contact_id: found.contact_id.filter(|c| !c.is_empty()),
                    }));
                }
                match page.last_message_id.filter(|id| !id.is_empty()) {
                    Some(last) if page.next_page && !reached_older => after = Some(last),
                    _ => {
                        complete = true;
                        break;
                    }
                }
            }
            // Not knowing is not "not posted": retry later rather than
            // risk a second message.
            if !complete {
                return Err(StageError::Upstream(guest_support::UpstreamError {
                    service: guest_support::Service::Crm,
                    status: 503,
                    message: format!(
                        "could not tell whether the call was already posted: its conversation has more than {} messages",
                        MAX_MESSAGE_PAGES * 100
                    ),
                }));
            }
        }
        Ok(None)
    }

    /// The `userId` HighLevel keeps on a message (operationId
    /// `get-message`), read flat or nested under `message` (the live API
    /// nests other message reads, NOTES.md §8).
    pub fn message_user(&self, message_id: &str) -> Result<Option<String>, StageError> {
        /// `GetMessageResponseDto`, the field read.
        #[derive(Deserialize)]
        struct Got {
            #[serde(default, rename = "userId")]
            user_id: Option<String>,
            #[serde(default)]
            message: Option<Box<Got>>,
        }
        let got: Got = self.conversations.get_json(&format!(
            "/conversations/messages/{}",
            urlencoding::encode(message_id)
        ))?;
        Ok(got
            .user_id
            .or_else(|| got.message.and_then(|m| m.user_id))
            .filter(|u| !u.is_empty()))
    }

    /// Post a call message.
    ///
    /// [ASSUMED] Both directions go to `add-an-inbound-message` with
    /// `direction` set: it is the only call DTO that carries a `message`
    /// body (duration, who answered) and a `direction`
    /// ("if required can be set manually"); `add-an-outbound-message` has
    /// neither. Switching outbound calls to it is a change to this one path.
    ///
    /// `userId` is left out once HighLevel refused it for this tenant (see
    /// [`refuses_user_id`]); the first refusal posts the call again without
    /// it, so the call is logged either way.
    pub fn post_call(
        &self,
        bucket: &Bucket,
        mut message: CallMessage,
    ) -> Result<MessageResponse, StageError> {
        if message.user_id.is_some()
            && kv::get_json::<UserIdRefused>(bucket, USER_ID_REFUSED_KEY)?.is_some()
        {
            message.user_id = None;
        }
        let sent = match self.send_call(&message) {
            Err(StageError::Upstream(e)) if message.user_id.is_some() && refuses_user_id(&e) => {
                // A refused body created nothing: posting again is no
                // duplicate.
                eprintln!(
                    "connectzero post: HighLevel refuses userId on call messages (HTTP {}: {}); posting calls without it from now on",
                    e.status, e.message
                );
                kv::set_json(
                    bucket,
                    USER_ID_REFUSED_KEY,
                    &UserIdRefused {
                        at_ms: guest_support::time::now_ms(),
                        status: e.status,
                        message: e.message.clone(),
                    },
                )?;
                message.user_id = None;
                self.send_call(&message)
            }
            other => other,
        };
        sent.map(|mut response| {
            response.user_id = message.user_id.clone();
            response
        })
    }

    /// operationId `add-an-inbound-message`.
    fn send_call(&self, message: &CallMessage) -> Result<MessageResponse, StageError> {
        self.conversations
            .post_json("/conversations/messages/inbound", message)
    }
}

/// A call message found by [`Crm::find_call_message`].
pub struct FoundMessage {
    /// The message's id.
    pub id: String,
    /// The contact it belongs to (`GetMessageResponseDto.contactId`).
    pub contact_id: Option<String>,
}

/// Key of the tenant's note that HighLevel refused `userId` on call
/// messages; while it exists, calls are posted without `userId`.
const USER_ID_REFUSED_KEY: &str = "post/user-id-refused";

/// What [`USER_ID_REFUSED_KEY`] holds: when and how HighLevel refused, for
/// whoever looks at the store. Deleting the key makes the app try again.
#[derive(Serialize, Deserialize)]
struct UserIdRefused {
    at_ms: i64,
    status: u16,
    message: String,
}

/// True when HighLevel refused a call message because of its `userId`.
///
/// [ASSUMED] `ProcessMessageBodyDto` does not list `userId`; HighLevel's
/// NestJS validation rejects properties a DTO lacks with a 400 or 422 whose
/// message names them ("property userId should not exist"). This is the
/// one place that reads that answer.
pub fn refuses_user_id(error: &guest_support::UpstreamError) -> bool {
    matches!(error.status, 400 | 422) && error.message.contains("userId")
}

/// Most pages of 100 call messages searched for a crashed worker's message.
const MAX_MESSAGE_PAGES: usize = 50;

/// How far the CRM's clock may be behind ours when a message's
/// `dateAdded` is compared with the send marker's time.
const CLOCK_MARGIN_MS: i64 = 10 * 60 * 1000;

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

#[cfg(test)]
mod tests {
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
