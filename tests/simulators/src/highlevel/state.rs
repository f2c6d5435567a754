//! The simulated sub-account's data and bookkeeping, behind one mutex.

use std::collections::VecDeque;

use chrono::{DateTime, Duration as ChronoDuration, DurationRound, TimeDelta, Utc};

use super::auth::TokenStore;
use super::config::HighLevelConfig;
use super::ids;
use super::model::{
    Contact, Conversation, Fault, Message, Note, Task, TriggerExecution, Upload, User,
};
use super::ratelimit::RateLimiter;

/// Default cap on one uploaded file [ASSUMED: HighLevel's limit is not documented].
pub(crate) const DEFAULT_MAX_UPLOAD_BYTES: u64 = 512 * 1024 * 1024;

/// A request as seen by the simulator (for `request_count`).
#[derive(Debug, Clone)]
pub(crate) struct RequestRecord {
    pub method: String,
    pub path: String,
}

/// The fields of a contact to create.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewContact {
    pub location_id: String,
    pub first_name: String,
    pub last_name: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Already normalised (or deliberately raw).
    pub phone: Option<String>,
    pub tags: Vec<String>,
    pub source: Option<String>,
    pub custom_fields: Vec<(String, serde_json::Value)>,
    pub assigned_to: Option<String>,
}

/// Everything the simulator knows.
#[derive(Debug)]
pub(crate) struct State {
    pub tokens: TokenStore,
    pub limiter: RateLimiter,
    pub contacts: Vec<Contact>,
    pub conversations: Vec<Conversation>,
    pub messages: Vec<Message>,
    pub uploads: Vec<Upload>,
    pub notes: Vec<Note>,
    /// The location's users (`get-user-by-location`).
    pub users: Vec<User>,
    pub tasks: Vec<Task>,
    pub trigger_executions: Vec<TriggerExecution>,
    pub faults: VecDeque<(Option<String>, Fault)>,
    /// How long API requests wait before they are handled (a slow CRM):
    /// the first entry whose path prefix matches (`None` matches all).
    pub latency: Vec<(Option<String>, std::time::Duration)>,
    pub requests: Vec<RequestRecord>,
    /// The location setting "Allow Duplicate Contact" (HighLevel default: off).
    pub allow_duplicate_contacts: bool,
    pub max_upload_bytes: u64,
    /// Refuse `userId` on call messages, as HighLevel's whitelist
    /// validation would (`ProcessMessageBodyDto` does not list it).
    pub reject_message_user_id: bool,
    /// Accept `userId` on inbound call messages but keep the message
    /// without it, as HighLevel api-docs issue #214 reports (NOTES.md §8).
    pub drop_inbound_user_id: bool,
    /// Leave `altId` out of listed messages (see
    /// `HighLevelSim::set_list_alt_id`).
    pub hide_alt_id: bool,
    /// The user who "installed" the app (`userId` in token responses).
    pub user_id: String,
    /// `scope` of token responses: space-separated, as HighLevel reports it.
    pub granted_scopes: String,
    last_stamp: Option<DateTime<Utc>>,
}

impl State {
    /// Empty state for `config`.
    pub(crate) fn new(config: &HighLevelConfig) -> Self {
        Self {
            tokens: TokenStore::default(),
            limiter: RateLimiter::new(config.rate_limit),
            contacts: Vec::new(),
            conversations: Vec::new(),
            messages: Vec::new(),
            uploads: Vec::new(),
            notes: Vec::new(),
            users: Vec::new(),
            tasks: Vec::new(),
            trigger_executions: Vec::new(),
            faults: VecDeque::new(),
            latency: Vec::new(),
            requests: Vec::new(),
            allow_duplicate_contacts: false,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            reject_message_user_id: false,
            drop_inbound_user_id: false,
            hide_alt_id: false,
            user_id: ids::object_id(),
            granted_scopes: super::dto::GRANTED_SCOPES.to_owned(),
            last_stamp: None,
        }
    }

    /// "Now" at millisecond precision, strictly after the previous stamp, so
    /// records created in a burst still have a stable creation order.
    pub(crate) fn stamp(&mut self) -> DateTime<Utc> {
        let now = Utc::now()
            .duration_trunc(TimeDelta::milliseconds(1))
            .unwrap_or_else(|_| Utc::now());
        let stamp = match self.last_stamp {
            Some(last) if now <= last => last + ChronoDuration::milliseconds(1),
            _ => now,
        };
        self.last_stamp = Some(stamp);
        stamp
    }

    /// Stores a contact; `date_added` defaults to [`State::stamp`].
    pub(crate) fn insert_contact(
        &mut self,
        new: NewContact,
        date_added: Option<DateTime<Utc>>,
    ) -> Contact {
        self.insert_contact_as(ids::object_id(), new, date_added)
    }

    /// [`State::insert_contact`] under a given id (a contact put back as an
    /// earlier run left it).
    pub(crate) fn insert_contact_as(
        &mut self,
        id: String,
        new: NewContact,
        date_added: Option<DateTime<Utc>>,
    ) -> Contact {
        let date_added = date_added.unwrap_or_else(|| self.stamp());
        let name = new
            .name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("{} {}", new.first_name, new.last_name))
            .trim()
            .to_owned();
        let contact = Contact {
            id,
            location_id: new.location_id,
            first_name: new.first_name,
            last_name: new.last_name,
            name,
            email: new.email,
            phone: new.phone,
            tags: new.tags,
            date_added,
            date_updated: date_added,
            source: new.source,
            custom_fields: new.custom_fields,
            assigned_to: new.assigned_to,
        };
        self.contacts.push(contact.clone());
        contact
    }

    /// A contact by id.
    pub(crate) fn contact(&self, id: &str) -> Option<&Contact> {
        self.contacts.iter().find(|c| c.id == id)
    }

    /// A contact by id, for changing it.
    pub(crate) fn contact_mut(&mut self, id: &str) -> Option<&mut Contact> {
        self.contacts.iter_mut().find(|c| c.id == id)
    }

    /// The location's contacts in ascending `dateAdded`, then id.
    pub(crate) fn contacts_in(&self, location_id: &str) -> Vec<&Contact> {
        let mut found: Vec<&Contact> = self
            .contacts
            .iter()
            .filter(|c| c.location_id == location_id)
            .collect();
        found.sort_by(|a, b| (a.date_added, &a.id).cmp(&(b.date_added, &b.id)));
        found
    }

    /// The oldest contact of the location whose E.164 phone is `phone`.
    pub(crate) fn oldest_with_phone(&self, location_id: &str, phone: &str) -> Option<&Contact> {
        self.contacts_in(location_id)
            .into_iter()
            .find(|c| c.phone.as_deref() == Some(phone))
    }

    /// The oldest contact of the location whose email matches case-insensitively.
    pub(crate) fn oldest_with_email(&self, location_id: &str, email: &str) -> Option<&Contact> {
        self.contacts_in(location_id).into_iter().find(|c| {
            c.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email.trim()))
        })
    }

    /// A conversation by id.
    pub(crate) fn conversation(&self, id: &str) -> Option<&Conversation> {
        self.conversations.iter().find(|c| c.id == id)
    }

    /// The conversation of a contact (HighLevel keeps one per contact).
    pub(crate) fn conversation_of(&self, contact_id: &str) -> Option<&Conversation> {
        self.conversations
            .iter()
            .find(|c| c.contact_id == contact_id)
    }

    /// Creates the conversation of `contact_id`.
    pub(crate) fn insert_conversation(
        &mut self,
        location_id: &str,
        contact_id: &str,
    ) -> Conversation {
        let now = self.stamp();
        self.insert_conversation_as(ids::object_id(), location_id, contact_id, now)
    }

    /// [`State::insert_conversation`] under a given id, created at `now`.
    pub(crate) fn insert_conversation_as(
        &mut self,
        id: String,
        location_id: &str,
        contact_id: &str,
        now: DateTime<Utc>,
    ) -> Conversation {
        let conversation = Conversation {
            id,
            contact_id: contact_id.to_owned(),
            location_id: location_id.to_owned(),
            date_added: now,
            date_updated: now,
            last_message_date: None,
            last_message_type: None,
            last_message_body: None,
            unread_count: 0,
        };
        self.conversations.push(conversation.clone());
        conversation
    }

    /// Stores a message and updates its conversation's "last message" fields.
    pub(crate) fn insert_message(&mut self, message: Message) {
        let type_name = super::dto::message_type_of(&message.message_type).1;
        if let Some(conversation) = self
            .conversations
            .iter_mut()
            .find(|c| c.id == message.conversation_id)
        {
            conversation.date_updated = message.date_added;
            conversation.last_message_date = Some(message.date_added);
            conversation.last_message_type = Some(type_name.to_owned());
            conversation.last_message_body = Some(message.body.clone().unwrap_or_default());
            if message.direction == "inbound" {
                conversation.unread_count += 1;
            }
        }
        self.messages.push(message);
    }

    /// A message by id.
    pub(crate) fn message_mut(&mut self, id: &str) -> Option<&mut Message> {
        self.messages.iter_mut().find(|m| m.id == id)
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn stamps_strictly_increase() {
        let mut state = State::new(&HighLevelConfig::default());
        let stamps: Vec<_> = (0..50).map(|_| state.stamp()).collect();
        assert!(stamps.windows(2).all(|w| w[0] < w[1]));
        assert!(
            stamps
                .iter()
                .all(|s| s.timestamp_subsec_nanos() % 1_000_000 == 0)
        );
    }

    #[test]
    fn oldest_contact_wins_a_shared_phone() {
        let mut state = State::new(&HighLevelConfig::default());
        let new = |first: &str| NewContact {
            location_id: "loc".into(),
            first_name: first.into(),
            phone: Some("+15550001111".into()),
            ..NewContact::default()
        };
        let later = state.insert_contact(new("Later"), None);
        let earlier =
            state.insert_contact(new("Earlier"), Some(later.date_added - TimeDelta::days(1)));
        let found = state.oldest_with_phone("loc", "+15550001111").unwrap();
        assert_eq!(found.id, earlier.id);
        assert_eq!(found.name, "Earlier");
    }
}
