//! Settling a number several contacts share.
//!
//! The matcher reports every contact with the number (`post-job.target`
//! first, then `also-matching`). The choice is made here, inside the
//! component, so the bundled host and the Spin app choose alike:
//!
//! 1. an operator's assignment from the status page
//!    (`post/assigned/<call key>`, written by the host's review page);
//! 2. the tenant's tie-breakers, in order (`tenant-settings.tie-breakers`);
//!    the default list ends with `first-contact`, the product rule: the
//!    first (oldest) contact with the number wins and the call lands at
//!    once, its message saying the number is shared;
//! 3. otherwise (a list without `first-contact`) nothing is posted: the
//!    candidates are kept under `post/review/<call key>` for the review
//!    page, and the call is parked "needs review". Never posted to all.
//!
//! The two key-value formats are shared with `host/src/web/review.rs`
//! (the host reads the first and writes the second in the tenant's
//! namespace); `host/tests/e2e/ambiguity.rs` exercises both through the real
//! component.

use guest_support::api::ApiClient;
use guest_support::bindings::connectzero::pipeline::types::{
    ContactRef, Service, TenantSettings, TieBreaker,
};
use guest_support::bindings::wasi::keyvalue::store::Bucket;
use guest_support::{StageError, kv};
use serde::{Deserialize, Serialize};

use crate::crm::CONVERSATIONS_VERSION;

/// How the contact was chosen among several.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// An operator assigned the call on the status page.
    Operator,
    /// The only candidate assigned to the call's CRM user.
    AssignedUser,
    /// The candidate with the most recent conversation.
    RecentConversation,
    /// The first (oldest) contact with the number; nothing else decided.
    FirstContact,
    /// Not a choice: the text of a copy an operator asked for on another
    /// contact with the number (`crate::copies`).
    AlsoLogged,
}

impl Choice {
    /// Words for the message text.
    pub fn describe(self) -> &'static str {
        match self {
            Choice::Operator => "assigned by an operator",
            Choice::AssignedUser => "chose the contact assigned to the call's user",
            Choice::RecentConversation => "chose the contact with the most recent conversation",
            Choice::FirstContact => {
                "logged on the first (oldest) contact with the number; check the match"
            }
            Choice::AlsoLogged => {
                "also logged here by an operator; it was first logged on another contact with the number"
            }
        }
    }
}

/// A candidate as kept for the review page.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Candidate {
    /// HighLevel contact id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Phone, when the contact has one.
    #[serde(default)]
    pub phone: Option<String>,
}

/// `post/review/<call key>`: what the review page shows.
#[derive(Serialize, Deserialize)]
pub struct Review {
    /// Every candidate, the oldest contact first.
    pub candidates: Vec<Candidate>,
}

/// `post/assigned/<call key>`: the operator's choice.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assigned {
    /// The chosen contact's id.
    pub contact_id: String,
}

/// The review entry's key.
pub fn review_key(call_key: &str) -> String {
    format!("post/review/{call_key}")
}

/// The assignment's key.
pub fn assigned_key(call_key: &str) -> String {
    format!("post/assigned/{call_key}")
}

/// The contact to post to and how it was chosen, or `None` when nothing
/// decides (the caller then parks the call for review with
/// [`park_for_review`]).
pub fn settle(
    settings: &TenantSettings,
    bucket: &Bucket,
    call_key: &str,
    candidates: &[ContactRef],
    user_id: Option<&str>,
) -> Result<Option<(ContactRef, Choice)>, StageError> {
    if let Some(assigned) = kv::get_json::<Assigned>(bucket, &assigned_key(call_key))? {
        // The operator chose among the candidates the page showed; should
        // the contact no longer share the number, the operator's word
        // still goes (it is a real contact they picked).
        let contact = candidates
            .iter()
            .find(|c| c.id == assigned.contact_id)
            .cloned()
            .unwrap_or(ContactRef {
                id: assigned.contact_id,
                name: String::new(),
                phone: None,
                email: None,
                assigned_to: None,
            });
        return Ok(Some((contact, Choice::Operator)));
    }
    for breaker in &settings.tie_breakers {
        let chosen = match breaker {
            TieBreaker::AssignedUser => {
                by_assigned_user(candidates, user_id).map(|c| (c.clone(), Choice::AssignedUser))
            }
            TieBreaker::RecentConversation => by_recent_conversation(settings, candidates)?
                .map(|c| (c.clone(), Choice::RecentConversation)),
            TieBreaker::FirstContact => candidates
                .first()
                .map(|c| (c.clone(), Choice::FirstContact)),
        };
        if chosen.is_some() {
            return Ok(chosen);
        }
    }
    Ok(None)
}

/// Keep the candidates for the review page.
pub fn park_for_review(
    bucket: &Bucket,
    call_key: &str,
    candidates: &[ContactRef],
) -> Result<(), StageError> {
    let review = Review {
        candidates: candidates
            .iter()
            .map(|c| Candidate {
                id: c.id.clone(),
                name: c.name.clone(),
                phone: c.phone.clone(),
            })
            .collect(),
    };
    kv::set_json(bucket, &review_key(call_key), &review)
}

/// Drop the call's review entry and assignment once it is posted: they
/// were for choosing its contact, which is done. A failure to delete is
/// logged, not the call's failure (the message is in the CRM; a leftover
/// entry only takes space).
pub fn forget(bucket: &Bucket, call_key: &str) {
    for key in [review_key(call_key), assigned_key(call_key)] {
        if let Err(e) = bucket.delete(&key) {
            eprintln!(
                "connectzero post: could not delete {key}: {}",
                match kv::storage_error(e) {
                    StageError::Storage(m) => m,
                    _ => "storage error".into(),
                }
            );
        }
    }
}

/// The only candidate assigned to `user_id`.
pub fn by_assigned_user<'a>(
    candidates: &'a [ContactRef],
    user_id: Option<&str>,
) -> Option<&'a ContactRef> {
    let user_id = user_id?;
    let mut mine = candidates
        .iter()
        .filter(|c| c.assigned_to.as_deref() == Some(user_id));
    match (mine.next(), mine.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

/// The candidate whose conversation has the newest message, when exactly
/// one has the newest (a tie, or no conversation at all, decides nothing).
fn by_recent_conversation<'a>(
    settings: &TenantSettings,
    candidates: &'a [ContactRef],
) -> Result<Option<&'a ContactRef>, StageError> {
    let client = ApiClient::new(Service::Crm, settings.crm_base_url.trim_end_matches('/'))
        .with_header("Version", CONVERSATIONS_VERSION);
    let mut dated = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        dated.push(last_message_ms(&client, settings, &candidate.id)?);
    }
    Ok(newest(&dated).map(|i| &candidates[i]))
}

/// Index of the single largest date; `None` on a tie or when none has one.
pub fn newest(dates: &[Option<i64>]) -> Option<usize> {
    let max = dates.iter().flatten().max()?;
    let mut at = dates
        .iter()
        .enumerate()
        .filter(|(_, d)| d.as_ref() == Some(max));
    match (at.next(), at.next()) {
        (Some((i, _)), None) => Some(i),
        _ => None,
    }
}

/// When the contact's conversation last had a message (operationId
/// `search-conversation`, `contactId`), ms since the epoch.
///
/// The search answers `lastMessageDate` on each conversation as a string of
/// epoch milliseconds (NOTES.md §8: `ConversationDto` and live captures;
/// `ConversationSchema`, the search row, omits it). Read by
/// [`epoch_ms`]; absent means "no message", which decides nothing. This is
/// the one place that relies on it.
fn last_message_ms(
    client: &ApiClient,
    settings: &TenantSettings,
    contact_id: &str,
) -> Result<Option<i64>, StageError> {
    #[derive(Deserialize)]
    struct Found {
        #[serde(default)]
        conversations: Vec<Conversation>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Conversation {
        #[serde(default)]
        last_message_date: Option<serde_json::Value>,
    }
    let path = format!(
        "/conversations/search?locationId={}&contactId={}",
        urlencoding::encode(&settings.crm_location_id),
        urlencoding::encode(contact_id)
    );
    let found: Found = client.get_json(&path)?;
    Ok(found
        .conversations
        .iter()
        .filter_map(|c| epoch_ms(c.last_message_date.as_ref()?))
        .max())
}

/// A date HighLevel sends as `"1628008053263"` (the live shape), as a
/// number, or as RFC 3339 text; `None` when it is none of them.
fn epoch_ms(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        serde_json::Value::String(s) => guest_support::time::parse_rfc3339_ms(s).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(id: &str, assigned_to: Option<&str>) -> ContactRef {
        ContactRef {
            id: id.into(),
            name: id.into(),
            phone: None,
            email: None,
            assigned_to: assigned_to.map(Into::into),
        }
    }

    #[test]
    fn only_a_single_assigned_contact_decides() {
        let cs = [contact("a", Some("u1")), contact("b", Some("u2"))];
        assert_eq!(
            by_assigned_user(&cs, Some("u2")).map(|c| c.id.as_str()),
            Some("b")
        );
        assert!(by_assigned_user(&cs, Some("u3")).is_none());
        assert!(by_assigned_user(&cs, None).is_none());
        let both = [contact("a", Some("u1")), contact("b", Some("u1"))];
        assert!(by_assigned_user(&both, Some("u1")).is_none());
    }

    #[test]
    fn last_message_dates_are_read_in_every_shape_highlevel_sends() {
        use serde_json::json;
        assert_eq!(epoch_ms(&json!("1628008053263")), Some(1_628_008_053_263));
        assert_eq!(
            epoch_ms(&json!(1_628_008_053_263_i64)),
            Some(1_628_008_053_263)
        );
        assert_eq!(
            epoch_ms(&json!("2021-08-03T16:27:33.263Z")),
            Some(1_628_008_053_263)
        );
        assert_eq!(epoch_ms(&json!("yesterday")), None);
        assert_eq!(epoch_ms(&json!(null)), None);
    }

    #[test]
    fn only_a_single_newest_conversation_decides() {
        assert_eq!(newest(&[Some(1), Some(3), None]), Some(1));
        assert_eq!(newest(&[Some(3), Some(3)]), None);
        assert_eq!(newest(&[None, None]), None);
    }
}
