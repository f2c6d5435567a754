//! The tenants kept in the store: records, index, leases.
//!
//! Records and the index are changed with compare-and-swap, so two admin
//! requests (or an install and an admin request) on different replicas
//! never lose each other's change. Secret settings are sealed with the
//! app's `token_key` for `tenant/<id>/<name>`.

use crate::Provider;
use crate::exports::connectzero::pipeline::tenancy::{Guest, LocationCreated, Scope};
use crate::fence;
use crate::scope;
use crate::store::{self, Swapped, swap_on_spin};
use crate::wasi::config::store as config;
use crate::wasi::keyvalue::atomics::Cas;
use crate::wasi::keyvalue::store::{self as real, Bucket};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use guest_support::StageError;
use guest_support::kv::{BUCKET, decode, encode};
use guest_support::sealing::store_key::Key;
use guest_support::tenancy::{self, Lease, TenantRecord};
use guest_support::time::now_ms;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How often a read-modify-write retries when other writers keep winning.
const CAS_ATTEMPTS: usize = 16;

/// A storage failure as a stage error.
pub(crate) fn storage(error: real::Error) -> StageError {
    StageError::Storage(match error {
        real::Error::NoSuchStore => "the key-value store is not configured for this app".into(),
        real::Error::AccessDenied => "access to the key-value store was denied".into(),
        real::Error::Other(message) => message,
    })
}

pub(crate) fn raw() -> Result<Bucket, StageError> {
    real::open(BUCKET).map_err(storage)
}

pub(crate) fn read<T: DeserializeOwned>(
    bucket: &Bucket,
    key: &str,
) -> Result<Option<T>, StageError> {
    store::get(bucket, key)
        .map_err(storage)?
        .map(|bytes| decode(key, &bytes))
        .transpose()
}

/// Read-modify-write `key` with compare-and-swap: `change` gets the value
/// (absent: `None`) and returns the new one, or `None` to leave it alone.
/// Returns whether a value was written.
pub(crate) fn update<T: Serialize + DeserializeOwned>(
    bucket: &Bucket,
    key: &str,
    change: impl Fn(Option<T>) -> Result<Option<T>, StageError>,
) -> Result<bool, StageError> {
    for _ in 0..CAS_ATTEMPTS {
        let cas = Cas::new(bucket, key).map_err(storage)?;
        let current = store::current(&cas)
            .map_err(storage)?
            .map(|b| decode(key, &b))
            .transpose()?;
        let current_was_absent = current.is_none();
        let Some(new) = change(current)? else {
            return Ok(false);
        };
        let first_write = current_was_absent;
        match swap_on_spin(bucket, key, cas, &encode(key, &new)?, first_write).map_err(storage)? {
            Swapped::Done => return Ok(true),
            Swapped::Lost(_) => continue,
        }
    }
    Err(StageError::Storage(format!(
        "{key:?} kept changing under {CAS_ATTEMPTS} attempts; try again"
    )))
}

/// The app's sealing key.
fn sealing_key() -> Result<Key, StageError> {
    let text = config::get("token_key")
        .map_err(|e| StageError::InvalidSettings(format!("reading token_key failed: {e:?}")))?
        .unwrap_or_default();
    Key::from_base64(&text)
}

fn bad(error: tenancy::TenancyError) -> StageError {
    StageError::InvalidSettings(error.to_string())
}

/// Tenant `id`'s record.
pub fn record(bucket: &Bucket, id: &str) -> Result<Option<TenantRecord>, StageError> {
    read(bucket, &tenancy::record_key(id))
}

/// Tenant `id`'s settings with its secrets opened.
fn open_values(
    id: &str,
    record: &TenantRecord,
) -> Result<std::collections::BTreeMap<String, String>, StageError> {
    let key = if record.sealed.is_empty() {
        None
    } else {
        Some(sealing_key()?)
    };
    scope::opened_values(record, |name, sealed| {
        let key = key.as_ref().expect("a key when something is sealed");
        let bytes = STANDARD.decode(sealed).map_err(|_| {
            StageError::Storage(format!("tenant {id:?}'s {name} is not base64 in the store"))
        })?;
        let plain = key.open(&tenancy::sealing_name(id, name), &bytes)?;
        String::from_utf8(plain)
            .map_err(|_| StageError::Storage(format!("tenant {id:?}'s {name} is not text")))
    })
}

/// A stored tenant's id or the app's own tenant's lease id.
fn check_lease_id(id: &str) -> Result<(), StageError> {
    if id == tenancy::APP_LEASE_ID {
        return Ok(());
    }
    tenancy::check_id(id).map_err(bad)
}

/// An expired lease nobody holds: written when a tenant is created, so
/// every later lease is a compare-and-swap of a value that exists. Spin's
/// SQLite store turns a swap of an absent key into an overwrite (measured:
/// host/tests/e2e/redis.rs), so two replicas' first leases could both
/// succeed; a swap of an existing value is a true compare-and-swap there.
fn free_lease() -> Lease {
    Lease {
        holder: String::new(),
        until_ms: 0,
    }
}

/// Whether `record` names HighLevel location `location_id`.
pub(crate) fn names_location(record: &TenantRecord, location_id: &str) -> bool {
    record.settings.get("crm_location_id").map(String::as_str) == Some(location_id)
}

/// Make a tenant whose record is stored known: its free lease, then its
/// place in the index (so no tick can race the lease's creation).
pub(crate) fn enlist(bucket: &Bucket, id: &str) -> Result<(), StageError> {
    let lease_key = tenancy::lease_key(id);
    if !bucket.exists(&lease_key).map_err(storage)? {
        bucket
            .set(&lease_key, &encode(&lease_key, &free_lease())?)
            .map_err(storage)?;
    }
    update(bucket, tenancy::INDEX_KEY, |index: Option<Vec<String>>| {
        let mut index = index.unwrap_or_default();
        Ok(tenancy::index_insert(&mut index, id).then_some(index))
    })?;
    Ok(())
}

impl Guest for Provider {
    fn select(scope: Scope) -> Result<(), StageError> {
        match scope {
            Scope::App => {
                scope::select_app();
                Ok(())
            }
            Scope::Tenant(id) => {
                tenancy::check_id(&id).map_err(bad)?;
                let Some(found) = record(&raw()?, &id)? else {
                    return Err(StageError::InvalidSettings(format!(
                        "there is no tenant {id:?}: create it with PUT /admin/tenants/{id} (`connectzero tenant spin set ...`)"
                    )));
                };
                let values = open_values(&id, &found)?;
                scope::select_tenant(&id, values);
                Ok(())
            }
        }
    }

    fn tenants() -> Result<Vec<String>, StageError> {
        Ok(read(&raw()?, tenancy::INDEX_KEY)?.unwrap_or_default())
    }

    fn describe(id: String) -> Result<Option<Vec<(String, String)>>, StageError> {
        tenancy::check_id(&id).map_err(bad)?;
        Ok(record(&raw()?, &id)?.map(|r| {
            let mut shown: Vec<(String, String)> = r.settings.into_iter().collect();
            shown.extend(r.sealed.into_keys().map(|name| (name, "(set)".into())));
            shown.sort();
            shown
        }))
    }

    fn put(id: String, settings: Vec<(String, String)>) -> Result<(), StageError> {
        tenancy::check_id(&id).map_err(bad)?;
        for (name, _) in &settings {
            tenancy::check_setting(name).map_err(bad)?;
        }
        let key = if settings
            .iter()
            .any(|(n, v)| tenancy::is_secret(n) && !v.trim().is_empty())
        {
            Some(sealing_key()?)
        } else {
            None
        };
        // Seal once, outside the retry loop: a fresh nonce per value.
        let mut sealed = Vec::new();
        for (name, value) in &settings {
            let value = value.trim();
            if tenancy::is_secret(name) && !value.is_empty() {
                let key = key.as_ref().expect("a key when a secret is given");
                let bytes = key.seal(&tenancy::sealing_name(&id, name), value.as_bytes())?;
                sealed.push((name.clone(), Some(STANDARD.encode(bytes))));
            } else {
                sealed.push((name.clone(), (!value.is_empty()).then(|| value.to_string())));
            }
        }
        let bucket = raw()?;
        update(
            &bucket,
            &tenancy::record_key(&id),
            |current: Option<TenantRecord>| {
                let mut record = current.unwrap_or_default();
                for (name, value) in &sealed {
                    record.settings.remove(name);
                    record.sealed.remove(name);
                    if let Some(value) = value {
                        let map = if tenancy::is_secret(name) {
                            &mut record.sealed
                        } else {
                            &mut record.settings
                        };
                        map.insert(name.clone(), value.clone());
                    }
                }
                Ok(Some(record))
            },
        )?;
        enlist(&bucket, &id)
    }

    fn remove(id: String) -> Result<bool, StageError> {
        tenancy::check_id(&id).map_err(bad)?;
        let bucket = raw()?;
        let existed = bucket.exists(&tenancy::record_key(&id)).map_err(storage)?;
        // The index first: a tick driver no longer picks the tenant up
        // while its keys go.
        update(&bucket, tenancy::INDEX_KEY, |index: Option<Vec<String>>| {
            let mut index = index.unwrap_or_default();
            Ok(tenancy::index_remove(&mut index, &id).then_some(index))
        })?;
        let prefix = tenancy::namespace(&id);
        let mut cursor: Option<String> = None;
        loop {
            let page = bucket.list_keys(cursor.as_deref()).map_err(storage)?;
            for key in page.keys.iter().filter(|k| k.starts_with(&prefix)) {
                bucket.delete(key).map_err(storage)?;
            }
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        bucket.delete(&tenancy::lease_key(&id)).map_err(storage)?;
        bucket.delete(&tenancy::record_key(&id)).map_err(storage)?;
        Ok(existed)
    }

    fn find_by_location(location_id: String) -> Result<Vec<String>, StageError> {
        let bucket = raw()?;
        let index: Vec<String> = read(&bucket, tenancy::INDEX_KEY)?.unwrap_or_default();
        let mut found = Vec::new();
        // The index is sorted, so the answer is.
        for id in index {
            if record(&bucket, &id)?.is_some_and(|r| names_location(&r, &location_id)) {
                found.push(id);
            }
        }
        Ok(found)
    }

    fn create_for_location(
        location_id: String,
        max_waiting: u32,
    ) -> Result<LocationCreated, StageError> {
        crate::installed::create_for_location(&location_id, max_waiting)
    }

    fn take_lease(id: String, holder: String, lease_ms: u64) -> Result<bool, StageError> {
        check_lease_id(&id)?;
        let bucket = raw()?;
        let key = tenancy::lease_key(&id);
        let cas = Cas::new(&bucket, &key).map_err(storage)?;
        let current: Option<Lease> = store::current(&cas)
            .map_err(storage)?
            .map(|b| decode(&key, &b))
            .transpose()?;
        let now = now_ms();
        if !tenancy::may_take(current.as_ref(), &holder, now) {
            return Ok(false);
        }
        let lease = Lease {
            holder,
            until_ms: now.saturating_add(i64::try_from(lease_ms).unwrap_or(i64::MAX)),
        };
        let until_ms = lease.until_ms;
        // The app's own lease is created by its first tick: a first write,
        // read back (on Spin's SQLite store two first ticks both upsert).
        let first_write = current.is_none();
        match swap_on_spin(&bucket, &key, cas, &encode(&key, &lease)?, first_write)
            .map_err(storage)?
        {
            Swapped::Done => {
                fence::taken(&id, &lease.holder, lease_ms, until_ms);
                Ok(true)
            }
            Swapped::Lost(_) => Ok(false),
        }
    }

    fn release_lease(id: String, holder: String) -> Result<(), StageError> {
        check_lease_id(&id)?;
        fence::released(&id);
        // Swapped for an expired lease rather than deleted: a delete after
        // the check could remove a lease another holder took meanwhile.
        update(
            &raw()?,
            &tenancy::lease_key(&id),
            |current: Option<Lease>| {
                Ok(current.filter(|l| l.holder == holder).map(|l| Lease {
                    holder: l.holder,
                    until_ms: 0,
                }))
            },
        )?;
        Ok(())
    }
}

/// Extend lease `id` by `lease_ms` from now if `holder` still holds it
/// (even past its end, as long as nobody took it over): the new end, or
/// `None` when another holder has it.
pub fn renew_lease(id: &str, holder: &str, lease_ms: u64) -> Result<Option<i64>, StageError> {
    let until_ms = now_ms().saturating_add(i64::try_from(lease_ms).unwrap_or(i64::MAX));
    let renewed = update(
        &raw()?,
        &tenancy::lease_key(id),
        |current: Option<Lease>| {
            Ok(current.filter(|l| l.holder == holder).map(|l| Lease {
                holder: l.holder,
                until_ms,
            }))
        },
    )?;
    Ok(renewed.then_some(until_ms))
}
