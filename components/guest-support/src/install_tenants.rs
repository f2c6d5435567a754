//! The tenants HighLevel installs create on Spin, without I/O.
//!
//! A marketplace listing has one redirect URL, and an install started from
//! the listing arrives there with a code and nothing else (HighLevel NOTES
//! §8): the app learns the location only from the token. When no stored
//! tenant names that location, the install creates one
//! (`tenancy.create-for-location`, `components/tenancy`): its id is
//! derived from the location id ([`tenant_id`]) and it waits for the
//! operator's settings. The listing is public, so how many such tenants
//! may wait at once is capped ([`admit`], the app's
//! `max_waiting_tenants`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What the id of a tenant created by an install starts with.
pub const ID_PREFIX: &str = "hl-";

/// The longest location id (in bytes) a tenant id can be derived from:
/// the prefix and two hex digits per byte within a tenant id's 64
/// characters. HighLevel's ids are 20 or 24 characters.
pub const MAX_LOCATION_ID_BYTES: usize = (64 - ID_PREFIX.len()) / 2;

/// Tenants created by installs that may wait for their settings at once
/// when `max_waiting_tenants` is unset.
pub const DEFAULT_MAX_WAITING: u32 = 20;

/// The app variable that caps them.
pub const MAX_WAITING_VARIABLE: &str = "max_waiting_tenants";

/// Key of the list of tenants created by installs that may still wait
/// for their settings ([`Waiting`]), in the tenancy provider's keys.
pub const WAITING_KEY: &str = "tenancy/waiting";

/// An entry younger than this whose tenant record is not there yet is
/// an install between taking its place and writing the record, not a
/// removed tenant.
pub const CREATING_GRACE_MS: i64 = 60_000;

/// Why no tenant id can be derived from a location id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// HighLevel named no location.
    #[error("the install's location id is empty")]
    Empty,
    /// Too long for a tenant id.
    #[error(
        "the install's location id has {0} bytes, more than the {MAX_LOCATION_ID_BYTES} a tenant id can be derived from: create the tenant with the admin API (PUT /admin/tenants/<id> with its crm_location_id), then install again"
    )]
    TooLong(usize),
}

/// The id of the tenant an install creates for `location_id`: [`ID_PREFIX`]
/// and the lower-case hex of its UTF-8 bytes. The same location always
/// gives the same id and two locations never share one (hex is one to one,
/// case included: HighLevel's ids mix cases), and it is a valid tenant id
/// (`crate::tenancy::check_id`).
pub fn tenant_id(location_id: &str) -> Result<String, IdError> {
    let bytes = location_id.as_bytes();
    if bytes.is_empty() {
        return Err(IdError::Empty);
    }
    if bytes.len() > MAX_LOCATION_ID_BYTES {
        return Err(IdError::TooLong(bytes.len()));
    }
    let mut id = String::with_capacity(ID_PREFIX.len() + 2 * bytes.len());
    id.push_str(ID_PREFIX);
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    Ok(id)
}

/// A tenant created by an install that may still wait for its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// The tenant's id.
    pub id: String,
    /// When the install took its place (ms since the epoch).
    pub since_ms: i64,
}

/// What is known of a listed tenant's record when the list is next
/// changed: those no longer waiting leave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    /// It lacks settings a tick needs: still waiting.
    Waiting,
    /// It has every setting a tick needs: no longer waiting.
    Complete,
    /// There is no record (removed, or not written yet).
    Absent,
}

/// The cap is reached: nothing was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    /// The cap.
    pub max: u32,
}

/// The listed tenants that no longer wait, given what their records say
/// (`state_of`) at `now_ms`: complete ones, and those without a record
/// past [`CREATING_GRACE_MS`].
pub fn settled(
    list: &[Waiting],
    now_ms: i64,
    mut state_of: impl FnMut(&str) -> RecordState,
) -> BTreeSet<String> {
    list.iter()
        .filter(|w| match state_of(&w.id) {
            RecordState::Waiting => false,
            RecordState::Complete => true,
            RecordState::Absent => now_ms.saturating_sub(w.since_ms) >= CREATING_GRACE_MS,
        })
        .map(|w| w.id.clone())
        .collect()
}

/// Take a place for tenant `id` at `now_ms` in `list`, after dropping the
/// `settled` ones: at most `max` may wait. A tenant already listed keeps
/// its place (two installs of one location create one tenant).
pub fn admit(
    list: &mut Vec<Waiting>,
    settled: &BTreeSet<String>,
    id: &str,
    now_ms: i64,
    max: u32,
) -> Result<(), Full> {
    list.retain(|w| !settled.contains(&w.id));
    if list.iter().any(|w| w.id == id) {
        return Ok(());
    }
    if list.len() >= max as usize {
        return Err(Full { max });
    }
    list.push(Waiting {
        id: id.to_string(),
        since_ms: now_ms,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::check_id;

    #[test]
    fn a_location_gives_one_valid_id_and_no_two_share_one() {
        let id = tenant_id("ve9EPM428h8vShlRW1KT").unwrap();
        assert_eq!(id, "hl-76653945504d34323868387653686c5257314b54");
        assert_eq!(check_id(&id), Ok(()));
        assert_eq!(
            tenant_id("ve9EPM428h8vShlRW1KT").unwrap(),
            id,
            "deterministic"
        );
        // Case matters in HighLevel's ids, and in the derived ids.
        assert_ne!(tenant_id("abc").unwrap(), tenant_id("ABC").unwrap());
        assert_ne!(tenant_id("a").unwrap(), tenant_id("a ").unwrap());
        let longest = "x".repeat(MAX_LOCATION_ID_BYTES);
        let id = tenant_id(&longest).unwrap();
        assert_eq!(id.len(), ID_PREFIX.len() + 2 * MAX_LOCATION_ID_BYTES);
        assert!(id.len() <= 64);
        assert_eq!(check_id(&id), Ok(()));
        // Any bytes give a valid id.
        assert_eq!(check_id(&tenant_id("../Ä/_app").unwrap()), Ok(()));
    }

    #[test]
    fn empty_and_overlong_location_ids_give_no_id() {
        assert_eq!(tenant_id(""), Err(IdError::Empty));
        let long = "x".repeat(MAX_LOCATION_ID_BYTES + 1);
        assert_eq!(
            tenant_id(&long),
            Err(IdError::TooLong(MAX_LOCATION_ID_BYTES + 1))
        );
        assert!(IdError::TooLong(31).to_string().contains("admin API"));
    }

    #[test]
    fn at_most_max_wait_and_a_listed_tenant_keeps_its_place() {
        let none = BTreeSet::new();
        let mut list = Vec::new();
        assert_eq!(admit(&mut list, &none, "hl-01", 0, 2), Ok(()));
        assert_eq!(admit(&mut list, &none, "hl-02", 0, 2), Ok(()));
        assert_eq!(admit(&mut list, &none, "hl-01", 5, 2), Ok(()));
        assert_eq!(admit(&mut list, &none, "hl-03", 5, 2), Err(Full { max: 2 }));
        assert_eq!(list.len(), 2);
        // One completed: its place is free.
        let done = BTreeSet::from(["hl-01".to_string()]);
        assert_eq!(admit(&mut list, &done, "hl-03", 5, 2), Ok(()));
        let ids: Vec<&str> = list.iter().map(|w| w.id.as_str()).collect();
        assert_eq!(ids, ["hl-02", "hl-03"]);
        // A cap of 0 creates none.
        assert_eq!(
            admit(&mut Vec::new(), &none, "hl-01", 0, 0),
            Err(Full { max: 0 })
        );
    }

    #[test]
    fn complete_and_long_absent_tenants_stop_waiting() {
        let list = vec![
            Waiting {
                id: "waits".into(),
                since_ms: 0,
            },
            Waiting {
                id: "done".into(),
                since_ms: 0,
            },
            Waiting {
                id: "being-created".into(),
                since_ms: 100_000,
            },
            Waiting {
                id: "removed".into(),
                since_ms: 0,
            },
        ];
        let gone = settled(&list, 100_000 + CREATING_GRACE_MS - 1, |id| match id {
            "waits" => RecordState::Waiting,
            "done" => RecordState::Complete,
            _ => RecordState::Absent,
        });
        assert_eq!(
            gone,
            BTreeSet::from(["done".to_string(), "removed".to_string()])
        );
    }
}
