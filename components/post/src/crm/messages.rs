//! Reading call messages back: the search for a message a crashed
//! worker may have posted ([`Crm::find_call_message`]), and the user
//! HighLevel keeps on a message.

use super::Crm;
use guest_support::StageError;
use serde::Deserialize;

impl Crm {
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
}

/// A call message found by [`Crm::find_call_message`].
pub struct FoundMessage {
    /// The message's id.
    pub id: String,
    /// The contact it belongs to (`GetMessageResponseDto.contactId`).
    pub contact_id: Option<String>,
}

/// Most pages of 100 call messages searched for a crashed worker's message.
const MAX_MESSAGE_PAGES: usize = 50;

/// How far the CRM's clock may be behind ours when a message's
/// `dateAdded` is compared with the send marker's time.
const CLOCK_MARGIN_MS: i64 = 10 * 60 * 1000;
