//! A sub-account as an earlier run left it. Records go back in with the ids
//! that run gave them, so a later run finds what the database it inherited
//! points at: the upgrade replay resumes a database a previous release
//! made, against a CRM holding that release's contacts and messages.

use chrono::{DateTime, Utc};

use super::HighLevelSim;
use super::model::{Message, SimContact, User};

/// A call message an earlier run posted, as it is put back.
#[derive(Clone, Debug)]
pub struct PriorMessage {
    /// The message id that run was given.
    pub id: String,
    /// Its conversation (created for `contact_id` with this id, at
    /// `stored_at`, when the contact has none yet).
    pub conversation_id: String,
    /// The contact of that conversation.
    pub contact_id: String,
    /// `"inbound"` or `"outbound"`.
    pub direction: String,
    /// `altId`: the call's key.
    pub alt_id: String,
    /// The message text as that run wrote it.
    pub body: String,
    /// `call.from`.
    pub call_from: String,
    /// `call.to`.
    pub call_to: String,
    /// Recording URLs already attached.
    pub attachments: Vec<String>,
    /// The user the message was posted for, if any.
    pub user_id: Option<String>,
    /// The message's `date`: when the call started.
    pub date: DateTime<Utc>,
    /// When HighLevel stored it (`dateAdded`).
    pub stored_at: DateTime<Utc>,
}

impl HighLevelSim {
    /// Puts back user `id` of the location.
    pub fn restore_user(&self, id: &str, first_name: &str, last_name: &str, email: &str) {
        self.lock().users.push(User {
            id: id.to_owned(),
            name: format!("{first_name} {last_name}").trim().to_owned(),
            first_name: first_name.to_owned(),
            last_name: last_name.to_owned(),
            email: email.to_owned(),
        });
    }

    /// Puts back contact `id`, created at `date_added`; its phone is
    /// normalised as [`add_contact`](Self::add_contact) does. Panics when
    /// the id is taken (a test's mistake).
    pub fn restore_contact(&self, id: &str, contact: SimContact, date_added: DateTime<Utc>) {
        let new = self.seeded(contact);
        let mut state = self.lock();
        assert!(state.contact(id).is_none(), "contact {id} exists already");
        state.insert_contact_as(id.to_owned(), new, Some(date_added));
    }

    /// Puts back a call message, and its conversation when this is the
    /// first message put back in it. Panics when the contact is unknown or
    /// already has a conversation under another id (HighLevel keeps one
    /// per contact): a test's mistake.
    pub fn restore_message(&self, prior: PriorMessage) {
        let config = &self.app.config;
        let mut state = self.lock();
        assert!(
            state.contact(&prior.contact_id).is_some(),
            "restore contact {} before its messages",
            prior.contact_id
        );
        match state
            .conversation_of(&prior.contact_id)
            .map(|c| c.id.clone())
        {
            Some(id) => assert_eq!(
                id, prior.conversation_id,
                "contact {} has another conversation",
                prior.contact_id
            ),
            None => {
                state.insert_conversation_as(
                    prior.conversation_id.clone(),
                    &config.location_id,
                    &prior.contact_id,
                    prior.stored_at,
                );
            }
        }
        state.insert_message(Message {
            id: prior.id,
            conversation_id: prior.conversation_id,
            contact_id: prior.contact_id,
            location_id: config.location_id.clone(),
            direction: prior.direction,
            message_type: "Call".to_owned(),
            conversation_provider_id: config.conversation_provider_id.clone(),
            call_to: Some(prior.call_to),
            call_from: Some(prior.call_from),
            // The ledger an earlier run leaves does not say.
            call_status: None,
            date: Some(prior.date),
            alt_id: Some(prior.alt_id),
            body: Some(prior.body),
            attachments: prior.attachments,
            user_id: prior.user_id,
            date_added: prior.stored_at,
        });
    }
}
