//! `wasi:keyvalue/store` and `atomics` over Spin's store, one namespace per
//! scope.
//!
//! A tenant's keys are its own keys under `t/<id>/`; listing shows only
//! them, with the prefix taken off. The app's own tenant keeps the bare
//! keys it has always used (so a single-tenant app upgraded to this
//! version finds its ledger where it left it) and is refused the
//! provider's and the tenants' keys.

use crate::Provider;
use crate::exports::wasi::keyvalue::atomics::{self as exported_atomics, CasError, GuestCas};
use crate::exports::wasi::keyvalue::store::{
    self as exported, BucketBorrow, Error, GuestBucket, KeyResponse,
};
use crate::scope;
use crate::wasi::keyvalue::atomics as real_atomics;
use crate::wasi::keyvalue::store as real;
use crate::{fence, stamp};
use guest_support::tenancy;
use std::rc::Rc;

/// A bucket opened in one scope.
pub struct Bucket {
    inner: Rc<real::Bucket>,
    /// The scope's key prefix ("" for the app's own tenant).
    prefix: String,
    /// Whether it is the app's own tenant's.
    app: bool,
    /// The tick lease its writes are fenced by ([`fence`]).
    lease: String,
}

impl Bucket {
    /// The store's key for the component's `key`.
    fn key(&self, key: &str) -> Result<String, Error> {
        if self.app {
            if tenancy::app_scope_may_use(key) {
                Ok(key.to_string())
            } else {
                Err(Error::AccessDenied)
            }
        } else {
            Ok(format!("{}{key}", self.prefix))
        }
    }

    /// The component's key for the store's `key`, if it is in this scope.
    fn visible(&self, key: String) -> Option<String> {
        if self.app {
            tenancy::app_scope_may_use(&key).then_some(key)
        } else {
            key.strip_prefix(&self.prefix).map(str::to_string)
        }
    }
}

/// Spin's error as this interface's.
pub fn from_real(error: real::Error) -> Error {
    match error {
        real::Error::NoSuchStore => Error::NoSuchStore,
        real::Error::AccessDenied => Error::AccessDenied,
        real::Error::Other(message) => Error::Other(message),
    }
}

impl exported::Guest for Provider {
    type Bucket = Bucket;

    fn open(identifier: String) -> Result<exported::Bucket, Error> {
        let inner = real::open(&identifier).map_err(from_real)?;
        let selected = scope::current();
        Ok(exported::Bucket::new(Bucket {
            inner: Rc::new(inner),
            prefix: selected.prefix.clone(),
            app: selected.tenant.is_none(),
            lease: selected.lease_id(),
        }))
    }
}

impl GuestBucket for Bucket {
    fn get(&self, key: String) -> Result<Option<Vec<u8>>, Error> {
        get(&self.inner, &self.key(&key)?).map_err(from_real)
    }

    fn set(&self, key: String, value: Vec<u8>) -> Result<(), Error> {
        let key = self.key(&key)?;
        fence::keep(&self.lease);
        self.inner.set(&key, &value).map_err(from_real)
    }

    fn delete(&self, key: String) -> Result<(), Error> {
        let key = self.key(&key)?;
        fence::keep(&self.lease);
        self.inner.delete(&key).map_err(from_real)
    }

    fn exists(&self, key: String) -> Result<bool, Error> {
        self.inner.exists(&self.key(&key)?).map_err(from_real)
    }

    fn list_keys(&self, cursor: Option<String>) -> Result<KeyResponse, Error> {
        // Spin lists the whole store; a page may hold few of this scope's
        // keys, but every one of them, in the store's order.
        let page = self.inner.list_keys(cursor.as_deref()).map_err(from_real)?;
        Ok(KeyResponse {
            keys: page
                .keys
                .into_iter()
                .filter_map(|k| self.visible(k))
                .collect(),
            cursor: page.cursor,
        })
    }
}

/// A compare-and-swap in progress on Spin's store, with what is needed to
/// check its outcome (see [`swap_checked`]).
pub struct Cas {
    inner: real_atomics::Cas,
    bucket: Rc<real::Bucket>,
    /// The store's key.
    key: String,
    /// The tick lease the swap is fenced by.
    lease: String,
    /// Whether `current` found a value: a swap of one is a true
    /// compare-and-swap on both of Spin's stores; any other is the key's
    /// first write ([`fence::may_create`]).
    found: std::cell::Cell<bool>,
}

impl GuestCas for Cas {
    fn new(bucket: BucketBorrow<'_>, key: String) -> Result<exported_atomics::Cas, Error> {
        let bucket: &Bucket = bucket.get();
        let key = bucket.key(&key)?;
        let inner = real_atomics::Cas::new(&bucket.inner, &key).map_err(from_real)?;
        Ok(exported_atomics::Cas::new(Cas {
            inner,
            bucket: bucket.inner.clone(),
            key,
            lease: bucket.lease.clone(),
            found: std::cell::Cell::new(false),
        }))
    }

    fn current(&self) -> Result<Option<Vec<u8>>, Error> {
        let value = current(&self.inner).map_err(from_real)?;
        self.found.set(value.is_some());
        Ok(value)
    }
}

/// `key`'s value in Spin's `bucket`, stamp taken off ([`stamp`]).
pub fn get(bucket: &real::Bucket, key: &str) -> Result<Option<Vec<u8>>, real::Error> {
    Ok(bucket.get(key)?.map(stamp::unstamped))
}

/// The value a Spin swap in progress started from, stamp taken off.
pub fn current(cas: &real_atomics::Cas) -> Result<Option<Vec<u8>>, real::Error> {
    Ok(cas.current()?.map(stamp::unstamped))
}

/// What Spin's swap did, checked against the store ([`swap_on_spin`]).
pub enum Swapped {
    /// The value was written.
    Done,
    /// Another writer won; Spin's handle for a retry.
    Lost(real_atomics::Cas),
}

/// Spin's swap of `key` in `bucket` to `value`, with its answer checked.
///
/// Spin's Redis store reports every swap as failed, also one that wrote
/// its value: it ends each swap with `UNWATCH <key>`, which Redis refuses,
/// and turns the refusal into `cas-failed` (measured:
/// host/tests/e2e/redis.rs). A swap that lost its race still writes
/// nothing (`WATCH` aborts the `EXEC`). So a reported failure is checked:
/// when the store holds exactly the value this swap wrote, the swap is
/// done. Two writers may swap in the same value (two workers claiming one
/// queue job the same way), so every swapped value is [`stamped`] with
/// random bytes first: the store holds this swap's bytes only if this
/// swap wrote them. On a store that answers correctly (Spin's SQLite
/// store) a real failure leaves another value, so the check changes
/// nothing there. The remaining gap: a swap that wrote, followed by
/// another writer's swap before this read, is reported as lost; its caller
/// starts again from the newer value, as after any lost race.
///
/// A `first_write` (the swap started from an absent key) reported done is
/// read back too: Spin's SQLite store writes it as an upsert, so when two
/// writers create the key at once the later overwrites the earlier, and
/// the earlier learns here that it lost. (One that reads back before the
/// other's write still wins with it; the tick lease keeps two ticks of a
/// tenant from being there at once, [`fence`].)
pub fn swap_on_spin(
    bucket: &real::Bucket,
    key: &str,
    cas: real_atomics::Cas,
    value: &[u8],
    first_write: bool,
) -> Result<Swapped, real::Error> {
    let value = stamp::stamped(value);
    match real_atomics::swap(cas, &value) {
        Ok(()) if !first_write => Ok(Swapped::Done),
        Ok(()) => {
            if bucket.get(key)?.as_deref() == Some(value.as_slice()) {
                Ok(Swapped::Done)
            } else {
                // Lost to a later upsert: a fresh handle for the retry.
                Ok(Swapped::Lost(real_atomics::Cas::new(bucket, key)?))
            }
        }
        Err(real_atomics::CasError::CasFailed(cas)) => {
            if bucket.get(key)?.as_deref() == Some(value.as_slice()) {
                Ok(Swapped::Done)
            } else {
                Ok(Swapped::Lost(cas))
            }
        }
        Err(real_atomics::CasError::StoreError(e)) => Err(e),
    }
}

impl exported_atomics::Guest for Provider {
    type Cas = Cas;

    fn increment(bucket: BucketBorrow<'_>, key: String, delta: i64) -> Result<i64, Error> {
        let bucket: &Bucket = bucket.get();
        let key = bucket.key(&key)?;
        fence::keep(&bucket.lease);
        real_atomics::increment(&bucket.inner, &key, delta).map_err(from_real)
    }

    fn swap(cas: exported_atomics::Cas, value: Vec<u8>) -> Result<(), CasError> {
        let Cas {
            inner,
            bucket,
            key,
            lease,
            found,
        } = cas.into_inner();
        let first_write = !found.get();
        if first_write {
            if let Err(e) = fence::may_create(&lease) {
                return Err(CasError::StoreError(Error::Other(
                    guest_support::api::describe(&e),
                )));
            }
        } else {
            fence::keep(&lease);
        }
        match swap_on_spin(&bucket, &key, inner, &value, first_write) {
            Ok(Swapped::Done) => Ok(()),
            Ok(Swapped::Lost(inner)) => Err(CasError::CasFailed(exported_atomics::Cas::new(Cas {
                inner,
                bucket,
                key,
                lease,
                found: std::cell::Cell::new(false),
            }))),
            Err(e) => Err(CasError::StoreError(from_real(e))),
        }
    }
}
