//! [`Env`] over the component's imports: `wasi:config/store`, the
//! key-value bucket and the HighLevel contacts API (operationIds
//! `create-note`, `add-tags`, `update-contact`, `Version: 2021-07-28`).

use crate::handler::Env;
use crate::settings::Settings;
use guest_support::api::ApiClient;
use guest_support::bindings::wasi::config::store as config;
use guest_support::{Service, StageError, kv};
use serde::{Deserialize, Serialize};

/// `Version` header of the contacts API (apps/contacts.json).
const CONTACTS_VERSION: &str = "2021-07-28";

/// The component's real imports.
pub struct WasiEnv;

/// `NotesDTO` (only `body` is required).
#[derive(Serialize)]
struct NewNote<'a> {
    body: &'a str,
}

/// `GetCreateUpdateNoteSuccessfulResponseDto`.
#[derive(Deserialize)]
struct NoteCreated {
    note: Option<NoteRef>,
}

#[derive(Deserialize)]
struct NoteRef {
    id: Option<String>,
}

/// `TagsDTO`.
#[derive(Serialize)]
struct Tags<'a> {
    tags: &'a [String],
}

/// `UpdateContactDto` with only `customFields` set.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FieldUpdate<'a> {
    custom_fields: [CustomField<'a>; 1],
}

/// `customFieldsInputStringSchema`: a field by `key` with a text value.
#[derive(Serialize)]
struct CustomField<'a> {
    key: &'a str,
    field_value: &'a str,
}

fn contacts(settings: &Settings) -> ApiClient {
    ApiClient::new(Service::Crm, &settings.crm_base_url).with_header("Version", CONTACTS_VERSION)
}

impl Env for WasiEnv {
    fn config(&self, key: &str) -> Result<Option<String>, String> {
        config::get(key).map_err(|e| match e {
            config::Error::Upstream(m) | config::Error::Io(m) => m,
        })
    }

    fn recall(&self, key: &str) -> Result<Option<Vec<u8>>, StageError> {
        kv::open()?.get(key).map_err(kv::storage_error)
    }

    fn remember(&self, key: &str, value: &[u8]) -> Result<(), StageError> {
        kv::open()?.set(key, value).map_err(kv::storage_error)
    }

    fn create_note(
        &self,
        s: &Settings,
        contact: &str,
        body: &str,
    ) -> Result<Option<String>, StageError> {
        let created: NoteCreated =
            contacts(s).post_json(&format!("/contacts/{contact}/notes"), &NewNote { body })?;
        Ok(created.note.and_then(|n| n.id))
    }

    fn add_tags(&self, s: &Settings, contact: &str, tags: &[String]) -> Result<(), StageError> {
        contacts(s)
            .post_json::<_, serde::de::IgnoredAny>(
                &format!("/contacts/{contact}/tags"),
                &Tags { tags },
            )
            .map(|_| ())
    }

    fn set_field(
        &self,
        s: &Settings,
        contact: &str,
        key: &str,
        value: &str,
    ) -> Result<(), StageError> {
        let update = FieldUpdate {
            custom_fields: [CustomField {
                key,
                field_value: value,
            }],
        };
        contacts(s).put_json(&format!("/contacts/{contact}"), &update)
    }
}
