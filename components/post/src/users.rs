//! Which HighLevel user a call is logged for.
//!
//! The user is the owner of the extension that finally answered the call
//! (`call.answered-by`), else, for an outbound call, of the calling
//! extension. A per-tenant override (`crm-user-overrides`, extension →
//! HighLevel user id) wins; otherwise the extension owner's 3CX e-mail is
//! looked up among the location's HighLevel users (operationId
//! `get-user-by-location`), cached in the key-value store for
//! [`USERS_TTL_MS`] so the list is not fetched per call.

use guest_support::api::ApiClient;
use guest_support::bindings::connectzero::pipeline::types::{
    Call, Direction, Party, Service, TenantSettings,
};
use guest_support::bindings::wasi::keyvalue::store::Bucket;
use guest_support::{StageError, kv};
use serde::{Deserialize, Serialize};

/// `Version` header of the users API (apps/users.json).
const USERS_VERSION: &str = "2021-07-28";

/// How long the cached user list is trusted. A user added in HighLevel is
/// picked up within this time; an override takes effect at once.
pub const USERS_TTL_MS: i64 = 10 * 60 * 1000;

/// Key of the cached user list.
const CACHE_KEY: &str = "post/crm-users";

/// A HighLevel user as the mapping needs it (`UserSchema`: `id`, `email`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CrmUser {
    /// User id.
    pub id: String,
    /// E-mail address (the key of the mapping).
    #[serde(default)]
    pub email: Option<String>,
}

/// The cached list and when it was fetched.
#[derive(Serialize, Deserialize)]
struct Cached {
    fetched_at_ms: i64,
    users: Vec<CrmUser>,
}

/// The extension whose owner the call is logged for.
pub fn handling_party(call: &Call) -> Option<&Party> {
    match (&call.answered_by, call.direction) {
        (Some(by), _) if by.extension.is_some() => Some(by),
        (_, Direction::Outbound) => Some(&call.caller).filter(|p| p.extension.is_some()),
        _ => None,
    }
}

/// The HighLevel user id of the call's handling extension, when one is
/// mapped. A failure to read the user list is not the call's failure: the
/// call is still posted, only without a user (and the list is read again
/// on the next call). Only a 429 is passed on, so the call waits and is
/// retried with its user instead of being logged without one.
pub fn crm_user_for(
    settings: &TenantSettings,
    bucket: &Bucket,
    call: &Call,
) -> Result<Option<String>, StageError> {
    let Some(party) = handling_party(call) else {
        return Ok(None);
    };
    let Some(extension) = party.extension.as_deref() else {
        return Ok(None);
    };
    if let Some((_, user)) = settings
        .crm_user_overrides
        .iter()
        .find(|(e, _)| e == extension)
    {
        return Ok(Some(user.clone()));
    }
    let email = party
        .owner
        .as_ref()
        .and_then(|o| o.email.as_deref())
        .map(str::trim)
        .unwrap_or_default();
    if email.is_empty() {
        return Ok(None);
    }
    match users(settings, bucket) {
        Ok(users) => Ok(by_email(&users, email)),
        Err(StageError::RateLimited(secs)) => Err(StageError::RateLimited(secs)),
        Err(error) => {
            eprintln!(
                "connectzero post: HighLevel users unavailable, call logged without a user: {}",
                describe(&error)
            );
            Ok(None)
        }
    }
}

/// The user whose e-mail is `email` (case-insensitive), when exactly one is.
pub fn by_email(users: &[CrmUser], email: &str) -> Option<String> {
    let mut found = users.iter().filter(|u| {
        u.email
            .as_deref()
            .is_some_and(|e| e.trim().eq_ignore_ascii_case(email))
    });
    match (found.next(), found.next()) {
        (Some(user), None) => Some(user.id.clone()),
        _ => None,
    }
}

/// The location's users: from the cache while fresh, else fetched and
/// cached. A 403 (the app lacks `users.readonly`) is cached as "no users",
/// so a tenant without the scope is not asked again on every call.
fn users(settings: &TenantSettings, bucket: &Bucket) -> Result<Vec<CrmUser>, StageError> {
    let now = guest_support::time::now_ms();
    if let Some(cached) = kv::get_json::<Cached>(bucket, CACHE_KEY)?
        && now - cached.fetched_at_ms < USERS_TTL_MS
        && cached.fetched_at_ms <= now
    {
        return Ok(cached.users);
    }
    let users = match fetch(settings) {
        Ok(users) => users,
        Err(StageError::Forbidden(e)) => {
            eprintln!(
                "connectzero post: HighLevel refused the user list ({}): grant the app users.readonly to map extensions by e-mail",
                e.status
            );
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    kv::set_json(
        bucket,
        CACHE_KEY,
        &Cached {
            fetched_at_ms: now,
            users: users.clone(),
        },
    )?;
    Ok(users)
}

/// operationId `get-user-by-location`: `GET /users/?locationId=` →
/// `LocationSuccessfulResponseDto {users: [UserSchema]}`.
fn fetch(settings: &TenantSettings) -> Result<Vec<CrmUser>, StageError> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        users: Vec<CrmUser>,
    }
    let client = ApiClient::new(Service::Crm, settings.crm_base_url.trim_end_matches('/'))
        .with_header("Version", USERS_VERSION);
    let path = format!(
        "/users/?locationId={}",
        urlencoding::encode(&settings.crm_location_id)
    );
    let answer: Answer = client.get_json(&path)?;
    Ok(answer.users)
}

fn describe(error: &StageError) -> String {
    match error {
        StageError::Upstream(e) | StageError::Unauthorized(e) | StageError::Forbidden(e) => {
            format!("HTTP {}", e.status)
        }
        StageError::RateLimited(secs) => format!("rate limited for {secs} s"),
        StageError::Network(m)
        | StageError::InvalidData(m)
        | StageError::InvalidSettings(m)
        | StageError::Storage(m)
        | StageError::NotImplemented(m) => m.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, email: &str) -> CrmUser {
        CrmUser {
            id: id.into(),
            email: Some(email.into()),
        }
    }

    #[test]
    fn e_mails_match_case_insensitively_and_only_when_unique() {
        let users = [
            user("u1", "Bob@Acme.example"),
            user("u2", "carol@acme.example"),
        ];
        assert_eq!(by_email(&users, "bob@acme.example").as_deref(), Some("u1"));
        assert_eq!(by_email(&users, "dan@acme.example"), None);
        let twice = [
            user("u1", "bob@acme.example"),
            user("u2", "BOB@acme.example"),
        ];
        assert_eq!(by_email(&twice, "bob@acme.example"), None);
    }
}
