//! What the insights write to HighLevel: contact notes (operationIds
//! `create-note`, `get-all-notes`), the sentiment custom field
//! (`update-contact`) and, for a transcript longer than a note, a text file
//! (`upload-file-attachments`). All under `Version: 2021-07-28` but the
//! upload (conversations, `2021-04-15`).

use crate::recordings::{multipart_envelope, uploaded_url};
use guest_support::StageError;
use guest_support::api::ApiClient;
use guest_support::bindings::connectzero::pipeline::types::{Service, TenantSettings};
use guest_support::http::{self, HttpMethod};
use serde::{Deserialize, Serialize};

/// `Version` header of the contacts API.
const CONTACTS_VERSION: &str = "2021-07-28";
/// `Version` header of the conversations API.
const CONVERSATIONS_VERSION: &str = "2021-04-15";

/// HighLevel's contact notes and fields, for one tenant.
pub struct Crm {
    contacts: ApiClient,
    conversations: ApiClient,
    location_id: String,
}

/// A note as `get-all-notes` lists it (`GetNoteSchema`, the fields read).
#[derive(Deserialize)]
struct Listed {
    id: Option<String>,
    #[serde(default)]
    body: Option<String>,
}

impl Crm {
    /// Clients for the tenant.
    pub fn new(settings: &TenantSettings) -> Self {
        Self {
            contacts: ApiClient::new(Service::Crm, &settings.crm_base_url)
                .with_header("Version", CONTACTS_VERSION),
            conversations: ApiClient::new(Service::Crm, &settings.crm_base_url)
                .with_header("Version", CONVERSATIONS_VERSION),
            location_id: settings.crm_location_id.clone(),
        }
    }

    /// Create a note on `contact` (`NotesDTO`: `body` and `title`); its id.
    pub fn create_note(
        &self,
        contact: &str,
        title: &str,
        body: &str,
    ) -> Result<String, StageError> {
        #[derive(Serialize)]
        struct NewNote<'a> {
            body: &'a str,
            title: &'a str,
        }
        #[derive(Deserialize)]
        struct Created {
            note: Option<Listed>,
        }
        let created: Created = self.contacts.post_json(
            &format!("/contacts/{}/notes", urlencoding::encode(contact)),
            &NewNote { body, title },
        )?;
        created.note.and_then(|n| n.id).ok_or_else(|| {
            StageError::InvalidData("HighLevel created the note but returned no id".into())
        })
    }

    /// The id of `contact`'s note whose body holds `reference`, if any
    /// (the read-back before a note whose answer was lost is sent again).
    pub fn find_note(&self, contact: &str, reference: &str) -> Result<Option<String>, StageError> {
        #[derive(Deserialize)]
        struct Notes {
            #[serde(default)]
            notes: Vec<Listed>,
        }
        let listed: Notes = self
            .contacts
            .get_json(&format!("/contacts/{}/notes", urlencoding::encode(contact)))?;
        Ok(listed
            .notes
            .into_iter()
            .find(|n| n.body.as_deref().is_some_and(|b| b.contains(reference)))
            .and_then(|n| n.id))
    }

    /// Set contact custom field `key` to `value` (`update-contact`;
    /// setting it again changes nothing).
    pub fn set_field(&self, contact: &str, key: &str, value: &str) -> Result<(), StageError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Update<'a> {
            custom_fields: [Field<'a>; 1],
        }
        #[derive(Serialize)]
        struct Field<'a> {
            key: &'a str,
            field_value: &'a str,
        }
        self.contacts.put_json(
            &format!("/contacts/{}", urlencoding::encode(contact)),
            &Update {
                custom_fields: [Field {
                    key,
                    field_value: value,
                }],
            },
        )
    }

    /// Upload `text` as the text file `file_name` in the conversation;
    /// its hosted URL.
    pub fn upload_text(
        &self,
        file_name: &str,
        text: &str,
        contact_id: &str,
        conversation_id: &str,
    ) -> Result<String, StageError> {
        let boundary = format!("connectzero-text-{}", guest_support::time::now_ms());
        let (mut request, token) = self.conversations.authorized(
            HttpMethod::Post,
            "/conversations/messages/upload",
            Some(&format!("multipart/form-data; boundary={boundary}")),
        )?;
        let (prefix, suffix) = multipart_envelope(
            &boundary,
            &[
                ("conversationId", conversation_id),
                ("contactId", contact_id),
                ("locationId", &self.location_id),
            ],
            file_name,
            "text/plain; charset=utf-8",
        );
        let mut body = prefix;
        body.extend_from_slice(text.as_bytes());
        body.extend_from_slice(&suffix);
        request.body = body;
        let response = http::send(&request).map_err(guest_support::budget::request_error)?;
        if response.status == 401 {
            self.conversations.reject_token(&token);
        }
        let response = self.conversations.check(response)?;
        uploaded_url(&self.conversations, &response, file_name)
    }
}
