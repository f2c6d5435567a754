//! The contacts API: the contact HighLevel already has for a number, or
//! a new one for an unknown number.

use super::{Crm, IdOnly};
use guest_support::StageError;
use serde::{Deserialize, Serialize};

impl Crm {
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
}
