//! `create-for-location`: the tenant an install creates for a HighLevel
//! location no tenant names (the rules: `guest_support::install_tenants`).
//!
//! 1. Its id is derived from the location id, so two installs of one
//!    location meet at one record, and a record that is already there is
//!    never changed: it names the location (another install just made it)
//!    or the id is taken.
//! 2. It takes a place among the tenants installs created that still
//!    wait for their settings (`tenancy/waiting`, compare-and-swap), at
//!    most `max-waiting`; those that got their settings or were removed
//!    leave first.
//! 3. Its record is written only where none is (compare-and-swap), with
//!    `crm_location_id` its one setting; then its lease and its place in
//!    the index, as for any tenant.
//!
//! Spin's SQLite store turns a swap of an absent key into an overwrite
//! (docs/DECISIONS.md, "Scale-out on Spin"): two installs creating the
//! same record at the same instant both write it, with the same content;
//! an admin `PUT` of that very id at that instant could be overwritten
//! there. On Redis both are true compare-and-swaps.

use crate::exports::connectzero::pipeline::tenancy::LocationCreated;
use crate::registry::{enlist, names_location, raw, read, record, update};
use crate::wasi::keyvalue::store::Bucket;
use guest_support::StageError;
use guest_support::install_tenants::{self, RecordState, WAITING_KEY, Waiting};
use guest_support::tenancy::{self, TenantRecord};
use guest_support::time::now_ms;
use std::cell::Cell;
use std::collections::BTreeMap;

/// `tenancy.create-for-location`.
pub fn create_for_location(
    location_id: &str,
    max_waiting: u32,
) -> Result<LocationCreated, StageError> {
    let id = install_tenants::tenant_id(location_id)
        .map_err(|e| StageError::InvalidData(e.to_string()))?;
    let bucket = raw()?;
    if let Some(existing) = record(&bucket, &id)? {
        return found(&bucket, &existing, &id, location_id);
    }
    if !take_place(&bucket, &id, max_waiting)? {
        return Ok(LocationCreated::TooManyWaiting);
    }
    let mut new = TenantRecord::default();
    new.settings
        .insert("crm_location_id".into(), location_id.to_string());
    let written = update(
        &bucket,
        &tenancy::record_key(&id),
        |current: Option<TenantRecord>| Ok(current.is_none().then(|| new.clone())),
    )?;
    if written {
        enlist(&bucket, &id)?;
        return Ok(LocationCreated::Created(id));
    }
    // Another writer made the record between the first look and now.
    let Some(existing) = record(&bucket, &id)? else {
        return Err(StageError::Storage(format!(
            "tenant {id:?} changed while it was being created: install again"
        )));
    };
    let outcome = found(&bucket, &existing, &id, location_id)?;
    if matches!(outcome, LocationCreated::IdTaken(_)) {
        give_place_back(&bucket, &id)?;
    }
    Ok(outcome)
}

/// What an existing record of `id` means for an install of `location_id`.
/// One naming the location is made known (its lease and index entry), in
/// case the install that wrote it stopped before that.
fn found(
    bucket: &Bucket,
    existing: &TenantRecord,
    id: &str,
    location_id: &str,
) -> Result<LocationCreated, StageError> {
    if names_location(existing, location_id) {
        enlist(bucket, id)?;
        Ok(LocationCreated::Exists(id.to_string()))
    } else {
        Ok(LocationCreated::IdTaken(id.to_string()))
    }
}

fn state_of(record: Option<&TenantRecord>) -> RecordState {
    match record {
        None => RecordState::Absent,
        Some(r) if r.missing().is_empty() => RecordState::Complete,
        Some(_) => RecordState::Waiting,
    }
}

/// Take `id`'s place among the waiting tenants; false when `max` wait.
fn take_place(bucket: &Bucket, id: &str, max: u32) -> Result<bool, StageError> {
    let listed: Vec<Waiting> = read(bucket, WAITING_KEY)?.unwrap_or_default();
    let mut states = BTreeMap::new();
    for waiting in &listed {
        let found = record(bucket, &waiting.id)?;
        states.insert(waiting.id.clone(), state_of(found.as_ref()));
    }
    let now = now_ms();
    // Entries added since the list was read are taken as waiting.
    let settled = install_tenants::settled(&listed, now, |id| {
        states.get(id).copied().unwrap_or(RecordState::Waiting)
    });
    let full = Cell::new(false);
    update(bucket, WAITING_KEY, |current: Option<Vec<Waiting>>| {
        let mut list = current.unwrap_or_default();
        match install_tenants::admit(&mut list, &settled, id, now, max) {
            Ok(()) => {
                full.set(false);
                Ok(Some(list))
            }
            Err(_) => {
                full.set(true);
                Ok(None)
            }
        }
    })?;
    Ok(!full.get())
}

/// Drop `id` from the waiting tenants.
fn give_place_back(bucket: &Bucket, id: &str) -> Result<(), StageError> {
    update(bucket, WAITING_KEY, |current: Option<Vec<Waiting>>| {
        let mut list = current.unwrap_or_default();
        let before = list.len();
        list.retain(|w| w.id != id);
        Ok((list.len() != before).then_some(list))
    })?;
    Ok(())
}
