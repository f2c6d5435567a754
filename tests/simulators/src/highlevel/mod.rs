//! # HighLevel API v2 simulator
//!
//! A loopback axum server that behaves like the slice of
//! `https://services.leadconnectorhq.com` a call-logging marketplace app
//! uses, following `shared/specs/highlevel/` (NOTES.md and the OpenAPI files)
//! field for field. Paths are exactly the specs' (no `/v2` prefix):
//!
//! | operationId | route |
//! | --- | --- |
//! | `get-access-token` | `POST /oauth/token` |
//! | `get-duplicate-contact` | `GET /contacts/search/duplicate` |
//! | `search-contacts-advanced` | `POST /contacts/search` |
//! | `create-contact` | `POST /contacts/` |
//! | `get-contact` | `GET /contacts/{contactId}` |
//! | `update-contact` | `PUT /contacts/{contactId}` |
//! | `add-tags` | `POST /contacts/{contactId}/tags` |
//! | `create-note` | `POST /contacts/{contactId}/notes` |
//! | `get-all-notes` | `GET /contacts/{contactId}/notes` |
//! | `create-task` | `POST /contacts/{contactId}/tasks` |
//! | `get-all-tasks` | `GET /contacts/{contactId}/tasks` |
//! | `update-task-completed` | `PUT /contacts/{contactId}/tasks/{taskId}/completed` |
//! | `get-user-by-location` | `GET /users/?locationId=` |
//! | `search-conversation` | `GET /conversations/search` |
//! | `create-conversation` | `POST /conversations/` |
//! | `get-conversation` | `GET /conversations/{conversationId}` |
//! | `get-messages` | `GET /conversations/{conversationId}/messages` |
//! | `add-an-inbound-message` | `POST /conversations/messages/inbound` |
//! | `add-an-outbound-message` | `POST /conversations/messages/outbound` |
//! | `get-message` | `GET /conversations/messages/{messageId}` |
//! | `add-message-attachments` | `PUT /conversations/messages/{messageId}/attachments` |
//! | `upload-file-attachments` | `POST /conversations/messages/upload` |
//! | (workflow trigger, NOTES.md §5.2) | `POST /workflows-marketplace/triggers/execute/{a}/{b}` |
//!
//! Everything except `/oauth/token` needs `Authorization: Bearer <access
//! token>` and the spec's `Version` header (`2021-07-28` for contacts,
//! `2021-04-15` for conversations; optional on the trigger endpoint), is
//! rate limited per location and may be hit by
//! [`HighLevelSim::inject_failures`].
//!
//! The simulator also plays HighLevel calling the app: it sends workflow
//! trigger subscriptions ([`HighLevelSim::subscribe_trigger`]) and executes
//! custom actions ([`HighLevelSim::execute_action`]), NOTES.md §5. Every response has an
//! `x-trace-id` header; bodies whose DTO has a `traceId` carry it too.
//! Choices the specs leave open are marked `[ASSUMED]` where they are made.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use connectzero_simulators::highlevel::{HighLevelConfig, HighLevelSim, SimContact};
//! let sim = HighLevelSim::start(HighLevelConfig::default()).await?;
//! let tokens = sim.install();
//! sim.add_contact(SimContact::with_phone("Ada", "Lovelace", "(555) 010-0001"));
//! // ... point the client at sim.base_url() with tokens.access_token ...
//! assert!(sim.messages().is_empty());
//! # Ok(()) }
//! ```

mod auth;
mod config;
mod dto;
mod error;
mod ids;
mod model;
mod phone;
mod ratelimit;
mod restore;
mod routes;
mod state;
#[cfg(test)]
mod tests;
mod workflow;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};

pub use config::{HighLevelConfig, MessagesPage, RateLimit};
pub use model::{
    Contact, Conversation, Fault, Message, Note, SimContact, SimTokens, Task, TriggerExecution,
    Upload, User,
};
pub use restore::PriorMessage;
pub use workflow::TriggerSubscription;

use crate::server::ServerTask;
use crate::spec::Violations;
use routes::AppState;
use state::{NewContact, State};

/// A running HighLevel simulator. Cheap to clone; the server stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct HighLevelSim {
    app: AppState,
    violations: Violations,
    _server: Arc<ServerTask>,
}

impl std::fmt::Debug for HighLevelSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HighLevelSim")
            .field("base_url", &self.app.base_url)
            .field("config", &self.app.config)
            .finish_non_exhaustive()
    }
}

impl HighLevelSim {
    /// Binds `127.0.0.1:0` and serves the API on a tokio task.
    pub async fn start(config: HighLevelConfig) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding the HighLevel simulator to 127.0.0.1:0")?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let app = AppState {
            state: Arc::new(Mutex::new(State::new(&config))),
            config: Arc::new(config),
            base_url: format!("http://{addr}").into(),
        };
        let violations = Violations::default();
        let router = routes::router(app.clone(), violations.clone());
        let server = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                tracing::error!(%err, "HighLevel simulator stopped");
            }
        });
        tracing::debug!(%addr, "HighLevel simulator listening");
        Ok(Self {
            app,
            violations: violations.clone(),
            _server: Arc::new(ServerTask {
                task: server,
                violations,
            }),
        })
    }

    /// Requests and answers of this simulator that broke the official
    /// documents (see [`Violations`]).
    pub fn violations(&self) -> &Violations {
        &self.violations
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.app.base_url.to_string()
    }

    /// The configuration the simulator was started with.
    pub fn config(&self) -> &HighLevelConfig {
        &self.app.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.app
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn token_lifetime(&self) -> Duration {
        Duration::from_secs(self.app.config.access_token_lifetime_secs)
    }

    /// Simulates a completed OAuth install of the app in the configured
    /// location: returns the token pair the `authorization_code` grant would.
    pub fn install(&self) -> SimTokens {
        let lifetime = self.token_lifetime();
        let location_id = self.app.config.location_id.clone();
        self.lock().tokens.issue_pair(&location_id, lifetime)
    }

    /// A fresh single-use authorization code for the configured location, to
    /// redeem at `POST /oauth/token` with `grant_type=authorization_code`.
    pub fn authorization_code(&self) -> String {
        let location_id = self.app.config.location_id.clone();
        self.lock().tokens.new_code(&location_id, None)
    }

    /// A single-use authorization code for another location, as an
    /// installer who picked another sub-account (or a forger holding a
    /// code of their own) would bring to the callback.
    pub fn authorization_code_for(&self, location_id: &str) -> String {
        self.lock().tokens.new_code(location_id, None)
    }

    /// A single-use authorization code for `location_id` handed to
    /// `redirect_uri`, as an install started from the marketplace listing
    /// brings to the listing's one redirect URL (NOTES.md §8: no `state`):
    /// it redeems only with that same `redirect_uri`.
    pub fn authorization_code_at(&self, location_id: &str, redirect_uri: &str) -> String {
        self.lock().tokens.new_code(location_id, Some(redirect_uri))
    }

    /// A single-use authorization code for an agency-level install: it
    /// redeems to a Company token with no `locationId` (NOTES.md §8).
    pub fn company_authorization_code(&self) -> String {
        self.lock().tokens.new_code("", None)
    }

    /// The location a refresh token is for, while it is valid (unused and
    /// not revoked).
    pub fn refresh_token_location(&self, refresh_token: &str) -> Option<String> {
        self.lock().tokens.refresh_token_location(refresh_token)
    }

    /// Every access and refresh token still valid: what no store may hold
    /// in clear.
    pub fn valid_tokens(&self) -> Vec<String> {
        self.lock().tokens.valid_tokens()
    }

    /// The `userId` reported in token responses (the installing user).
    pub fn user_id(&self) -> String {
        self.lock().user_id.clone()
    }

    /// Seeds a contact in the configured location and returns its id. The
    /// phone is normalised to E.164 (US when it has no `+`); an unparsable
    /// phone is stored as given. Seeding bypasses the duplicate check.
    pub fn add_contact(&self, contact: SimContact) -> String {
        self.insert_contact(contact, None)
    }

    /// Like [`add_contact`](Self::add_contact) with an explicit `dateAdded`,
    /// e.g. to make a contact older than those already present.
    pub fn add_contact_at(&self, contact: SimContact, date_added: DateTime<Utc>) -> String {
        self.insert_contact(contact, Some(date_added))
    }

    fn insert_contact(&self, contact: SimContact, date_added: Option<DateTime<Utc>>) -> String {
        let new = self.seeded(contact);
        self.lock().insert_contact(new, date_added).id
    }

    /// A seeded contact as the location stores it: its phone normalised to
    /// E.164 (US when it has no `+`), or kept as given when unparsable.
    fn seeded(&self, contact: SimContact) -> NewContact {
        NewContact {
            location_id: self.app.config.location_id.clone(),
            first_name: contact.first_name,
            last_name: contact.last_name,
            name: None,
            email: contact.email,
            phone: contact
                .phone
                .map(|raw| phone::normalize(&raw).unwrap_or(raw)),
            tags: Vec::new(),
            source: None,
            custom_fields: Vec::new(),
            assigned_to: contact.assigned_to,
        }
    }

    /// Changes which user `contact_id` is assigned to (`None`: nobody), as
    /// someone editing the contact in HighLevel would. Panics on an unknown
    /// contact (a test's mistake).
    pub fn set_contact_assigned_to(&self, contact_id: &str, user_id: Option<&str>) {
        let mut state = self.lock();
        let contact = state
            .contact_mut(contact_id)
            .unwrap_or_else(|| panic!("no contact {contact_id} in the simulator"));
        contact.assigned_to = user_id.map(str::to_owned);
    }

    /// Seeds a HighLevel user of the location (served by
    /// `get-user-by-location`) and returns its id.
    pub fn add_user(&self, first_name: &str, last_name: &str, email: &str) -> String {
        let user = User {
            id: ids::object_id(),
            name: format!("{first_name} {last_name}").trim().to_owned(),
            first_name: first_name.to_owned(),
            last_name: last_name.to_owned(),
            email: email.to_owned(),
        };
        let id = user.id.clone();
        self.lock().users.push(user);
        id
    }

    /// Seeds a message in `contact_id`'s conversation (created if needed)
    /// dated `date`, so its `lastMessageDate` is that date: a contact with
    /// an older or newer conversation for tie-breaking tests.
    pub fn add_conversation_message_at(&self, contact_id: &str, date: DateTime<Utc>) {
        let location_id = self.app.config.location_id.clone();
        let mut state = self.lock();
        let conversation = match state.conversation_of(contact_id) {
            Some(c) => c.clone(),
            None => state.insert_conversation(&location_id, contact_id),
        };
        if let Some(c) = state
            .conversations
            .iter_mut()
            .find(|c| c.id == conversation.id)
        {
            c.last_message_date = Some(date);
            c.last_message_type = Some("TYPE_SMS".to_owned());
            c.last_message_body = Some(String::new());
        }
    }

    /// Every seeded user.
    pub fn users(&self) -> Vec<User> {
        self.lock().users.clone()
    }

    /// Every contact, seeded or created through the API, in creation order.
    pub fn contacts(&self) -> Vec<Contact> {
        self.lock().contacts.clone()
    }

    /// Every conversation, in creation order.
    pub fn conversations(&self) -> Vec<Conversation> {
        self.lock().conversations.clone()
    }

    /// Every message posted (inbound and outbound), in order.
    pub fn messages(&self) -> Vec<Message> {
        self.lock().messages.clone()
    }

    /// Every file received by the upload endpoint, in order.
    pub fn uploads(&self) -> Vec<Upload> {
        self.lock().uploads.clone()
    }

    /// The notes of contact `contact_id` (`create-note`), oldest first.
    pub fn notes(&self, contact_id: &str) -> Vec<Note> {
        self.lock()
            .notes
            .iter()
            .filter(|n| n.contact_id == contact_id)
            .cloned()
            .collect()
    }

    /// Every task (`create-task`) in the order created, with its current
    /// `completed` (`update-task-completed`).
    pub fn tasks(&self) -> Vec<Task> {
        self.lock().tasks.clone()
    }

    /// Every call apps made to a workflow trigger's target URL that was
    /// accepted (200), in order.
    pub fn trigger_executions(&self) -> Vec<TriggerExecution> {
        self.lock().trigger_executions.clone()
    }

    /// Expires every access token issued so far: the API answers 401 until
    /// the client refreshes. Refresh tokens stay valid.
    pub fn expire_access_tokens(&self) {
        self.lock().tokens.expire_access_tokens();
    }

    /// Revokes the grant (an uninstall): every access token, refresh token and
    /// authorization code issued so far is rejected (401 on the API, 400
    /// "Invalid grant" on `/oauth/token`). [`install`](Self::install) starts
    /// a new grant.
    pub fn revoke_grant(&self) {
        self.lock().tokens.revoke_all();
    }

    /// Sets the scopes the grant reports (`scope` of token responses,
    /// space-separated), e.g. to model an app installed before it asked for
    /// `workflows.readonly`. Takes effect from the next token response.
    pub fn set_granted_scopes(&self, scopes: &str) {
        self.lock().granted_scopes = scopes.to_owned();
    }

    /// Makes the next `count` API requests (any route but `/oauth/token`)
    /// fail with `fault`, before authentication. Calls queue up.
    pub fn inject_failures(&self, fault: Fault, count: usize) {
        self.lock()
            .faults
            .extend(std::iter::repeat_n((None, fault), count));
    }

    /// Every API request from now on (not `/oauth/token`) waits `latency`
    /// before it is handled: a slow CRM, or one far away.
    pub fn set_latency(&self, latency: std::time::Duration) {
        self.lock().latency = vec![(None, latency)];
    }

    /// API requests whose path starts with `path_prefix` wait `latency`
    /// before they are handled (checked before the latency of
    /// [`set_latency`](Self::set_latency)): one slow endpoint.
    pub fn set_latency_on(&self, path_prefix: &str, latency: std::time::Duration) {
        self.lock()
            .latency
            .insert(0, (Some(path_prefix.to_string()), latency));
    }

    /// Make the next `count` API requests whose path starts with
    /// `path_prefix` fail with `fault`; other requests pass untouched.
    pub fn inject_failures_on(&self, path_prefix: &str, fault: Fault, count: usize) {
        let entry = (Some(path_prefix.to_string()), fault);
        self.lock().faults.extend(std::iter::repeat_n(entry, count));
    }

    /// Requests the rate limiter refused with 429 so far (injected 429
    /// faults not included).
    pub fn rate_limited_count(&self) -> usize {
        self.lock().limiter.refused
    }

    /// Requests received so far (any outcome, `/oauth/token` included) whose
    /// method equals `method` (case-insensitive) and path starts with
    /// `path_prefix`.
    pub fn request_count(&self, method: &str, path_prefix: &str) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path.starts_with(path_prefix))
            .count()
    }

    /// Sets the location's "Allow Duplicate Contact" setting (default off,
    /// as in HighLevel): when off, `create-contact` refuses a phone or email
    /// that an existing contact already has.
    pub fn set_allow_duplicate_contacts(&self, allow: bool) {
        self.lock().allow_duplicate_contacts = allow;
    }

    /// Makes `add-an-inbound-message` / `add-an-outbound-message` refuse a
    /// body carrying `userId` with 422 "property userId should not exist"
    /// (NestJS whitelist validation; `ProcessMessageBodyDto` does not list
    /// the field), as a HighLevel that enforces its DTO would. Default off.
    pub fn set_reject_message_user_id(&self, reject: bool) {
        self.lock().reject_message_user_id = reject;
    }

    /// Makes `add-an-inbound-message` accept `userId` and keep the message
    /// without it (NOTES.md §8: api-docs issue #214, inbound `TYPE_CALL`
    /// messages come back without `userId`). Default off: whether the live
    /// API keeps, drops or refuses it is unknown, and the client must be
    /// right under all three.
    pub fn set_drop_inbound_user_id(&self, drop: bool) {
        self.lock().drop_inbound_user_id = drop;
    }

    /// Whether `get-messages` lists each message's `altId` (default yes:
    /// api-docs issue #38 shows it returned, NOTES.md §8). Off models a
    /// HighLevel that keeps it to itself, so a client must find its call
    /// by the message text.
    pub fn set_list_alt_id(&self, listed: bool) {
        self.lock().hide_alt_id = !listed;
    }

    /// Sets the per-file upload cap (default 512 MiB [ASSUMED]); larger
    /// files get 413.
    pub fn set_max_upload_bytes(&self, max: u64) {
        self.lock().max_upload_bytes = max;
    }
}
