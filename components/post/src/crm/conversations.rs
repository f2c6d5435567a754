//! A contact's conversation: cached in the key-value store, else found,
//! else created (once, even when two workers race to create it).

use super::{Crm, IdOnly};
use guest_support::bindings::wasi::keyvalue::store::Bucket;
use guest_support::{StageError, kv};
use serde::{Deserialize, Serialize};

impl Crm {
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
}
