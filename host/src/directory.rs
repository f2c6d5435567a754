//! The read-only contact directory matchers see
//! (`connectzero:matcher/directory`, the runtime's
//! [`ContactDirectory`](connectzero_runtime::directory::ContactDirectory)),
//! over HighLevel contact search
//! (operationId `search-contacts-advanced`). The request and the ordering
//! are the directory component's (`components/directory/src/search.rs`), the
//! one Spin uses; the HTTP, tokens and rate limit are the host's.

use crate::bindings::types::{ContactRef, Service, StageError};
use crate::credentials::Credentials;
use crate::upstream::{message_of, network_error, retry_after, status_error};
use connectzero_directory::search;
pub use connectzero_runtime::directory::{
    ContactDirectory, DirectoryGrant, DirectoryView, Found, add_to_linker,
};
use std::sync::Arc;

/// One tenant's directory.
pub struct Directory {
    http: reqwest::Client,
    base_url: String,
    location_id: String,
    credentials: Arc<Credentials>,
    /// `host:port` of `base_url`, for counting error answers.
    authority: String,
    /// The location's request budget, shared with the components.
    limiter: Option<Arc<crate::ratelimit::LocationLimiter>>,
}

impl Directory {
    /// The directory of the location at `base_url`.
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        location_id: &str,
        credentials: Arc<Credentials>,
    ) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            location_id: location_id.to_string(),
            credentials,
            authority: crate::authority::authority_of_url(base_url).unwrap_or_default(),
            limiter: None,
        }
    }

    /// Searches wait for (and count against) `limiter`.
    pub fn with_limiter(mut self, limiter: Option<Arc<crate::ratelimit::LocationLimiter>>) -> Self {
        self.limiter = limiter;
        self
    }

    /// Contacts with `field` equal to `value`, oldest first.
    pub async fn search(&self, field: &str, value: &str) -> Result<Vec<ContactRef>, StageError> {
        let body = search::request(&self.location_id, field, value);
        let mut retried = false;
        loop {
            let token = self
                .credentials
                .access_token_for_invocation(Service::Crm)
                .await?;
            if let Some(limiter) = &self.limiter {
                match limiter.acquire().await {
                    // Credited to the invocation: `directory::Host` below.
                    crate::ratelimit::Admission::Go(_) => {}
                    crate::ratelimit::Admission::Refused(retry) => {
                        let secs = retry.as_millis().div_ceil(1000).max(1);
                        return Err(StageError::RateLimited(
                            u32::try_from(secs).unwrap_or(u32::MAX),
                        ));
                    }
                }
            }
            let response = self
                .http
                .post(format!("{}/contacts/search", self.base_url))
                .bearer_auth(&token)
                .header("Version", search::CONTACTS_VERSION)
                .json(&body)
                .send()
                .await
                .inspect_err(|_| crate::telemetry::sink().http_answer(&self.authority, None))
                .map_err(|e| network_error(Service::Crm, &e))?;
            let status = response.status().as_u16();
            crate::telemetry::sink().http_answer(&self.authority, Some(status));
            if status == 401 && !retried {
                self.credentials.token_rejected(Service::Crm, &token);
                retried = true;
                continue;
            }
            let retry = retry_after(&response);
            if status == 429
                && let Some(limiter) = &self.limiter
            {
                limiter.note_429(retry.map(u64::from));
            }
            let text = crate::upstream::capped_text(response)
                .await
                .map_err(|e| network_error(Service::Crm, &e))?;
            if !(200..300).contains(&status) {
                return Err(status_error(Service::Crm, status, retry, message_of(&text)));
            }
            let found: search::SearchResponse = serde_json::from_str(&text).map_err(|e| {
                StageError::InvalidData(format!(
                    "HighLevel contact search answered with unreadable JSON: {e}"
                ))
            })?;
            return Ok(oldest_first(found.contacts));
        }
    }
}

impl connectzero_runtime::directory::ContactDirectory for Directory {
    fn find_by_phone<'a>(&'a self, e164: &'a str) -> connectzero_runtime::directory::Found<'a> {
        Box::pin(self.search("phone", e164))
    }

    fn find_by_email<'a>(&'a self, email: &'a str) -> connectzero_runtime::directory::Found<'a> {
        Box::pin(self.search("email", email))
    }
}

/// The directory component's ordering (oldest first, then id), into the
/// host's contact type: both runtimes choose "the first contact" alike.
fn oldest_first(contacts: Vec<search::Contact>) -> Vec<ContactRef> {
    search::oldest_first_as(contacts, |id, name, phone, email, assigned_to| ContactRef {
        id,
        name,
        phone,
        email,
        assigned_to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_are_ordered_oldest_first_then_by_id() {
        let contact = |id: &str, added: &str| serde_json::json!({"id": id, "firstName": "Ann", "lastName": "Lee", "dateAdded": added});
        let answer: search::SearchResponse = serde_json::from_value(serde_json::json!({
            "contacts": [
                contact("b", "2024-02-01T00:00:00.000Z"),
                contact("c", "2024-01-01T00:00:00.000Z"),
                contact("a", "2024-02-01T00:00:00.000Z"),
            ]
        }))
        .unwrap();
        let sorted = oldest_first(answer.contacts);
        let ids: Vec<&str> = sorted.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
        assert_eq!(sorted[0].name, "Ann Lee");
    }
}
