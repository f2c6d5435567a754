//! JSON values in the tenant's key-value bucket (`wasi:keyvalue/store`).
//!
//! Components always open the bucket named [`BUCKET`]: the runtime decides
//! what it maps to. The bundled host scopes it to the tenant of the
//! invocation, so a component cannot read another tenant's keys; Spin maps it
//! to the app's `default` store.

use crate::StageError;
use crate::bindings::wasi::keyvalue::atomics::{self, Cas, CasError};
use crate::bindings::wasi::keyvalue::store::{self, Bucket, Error};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The bucket every component opens.
pub const BUCKET: &str = "default";

/// Open the tenant's bucket.
pub fn open() -> Result<Bucket, StageError> {
    store::open(BUCKET).map_err(storage_error)
}

/// Read and decode `key`; `Ok(None)` when it does not exist.
pub fn get_json<T: DeserializeOwned>(
    store: &impl Store,
    key: &str,
) -> Result<Option<T>, StageError> {
    store.get(key)?.map(|bytes| decode(key, &bytes)).transpose()
}

/// Encode and write `value` at `key`.
pub fn set_json<T: Serialize>(store: &impl Store, key: &str, value: &T) -> Result<(), StageError> {
    store.set(key, &encode(key, value)?)
}

/// `value` as JSON, for `key`.
pub fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StageError> {
    serde_json::to_vec(value)
        .map_err(|e| StageError::Storage(format!("encoding value for {key:?}: {e}")))
}

/// The JSON value stored at `key`.
pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StageError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StageError::Storage(format!("value at {key:?} is unreadable: {e}")))
}

/// How often [`update_json`] retries when other writers keep winning.
const CAS_ATTEMPTS: usize = 16;

/// Read-modify-write the JSON value at `key` with compare-and-swap, so
/// concurrent writers never lose each other's changes (absent reads as
/// `T::default()`). Needs `wasi:keyvalue/atomics`.
pub fn update_json<T>(bucket: &Bucket, key: &str, change: impl Fn(&mut T)) -> Result<T, StageError>
where
    T: Serialize + DeserializeOwned + Default,
{
    for _ in 0..CAS_ATTEMPTS {
        let cas = Cas::new(bucket, key).map_err(storage_error)?;
        let mut value: T = match cas.current().map_err(storage_error)? {
            Some(bytes) => decode(key, &bytes)?,
            None => T::default(),
        };
        change(&mut value);
        let bytes = encode(key, &value)?;
        match atomics::swap(cas, &bytes) {
            Ok(()) => return Ok(value),
            Err(CasError::CasFailed(_)) => continue,
            Err(CasError::StoreError(e)) => return Err(storage_error(e)),
        }
    }
    Err(StageError::Storage(format!(
        "{key:?} kept changing under {CAS_ATTEMPTS} attempts to update it"
    )))
}

/// The key-value operations the queue and the retention sweep need. The
/// component's bucket implements it; tests use an in-memory store.
pub trait Store {
    /// The value at `key`, `None` when absent.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StageError>;
    /// Write `value` at `key`.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StageError>;
    /// Remove `key` (absent is fine).
    fn delete(&self, key: &str) -> Result<(), StageError>;
    /// Write `new` at `key` only if its value is still `expected` (`None`:
    /// absent); false when it had changed.
    fn swap(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> Result<bool, StageError>;
    /// One page of keys after `cursor` (`None`: from the start) and the
    /// cursor of the next page, `None` when this was the last. A store may
    /// refuse cursors and hand back every key at once (Spin does).
    fn list(&self, cursor: Option<&str>) -> Result<(Vec<String>, Option<String>), StageError>;
}

impl Store for Bucket {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StageError> {
        Bucket::get(self, key).map_err(storage_error)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StageError> {
        Bucket::set(self, key, value).map_err(storage_error)
    }

    fn delete(&self, key: &str) -> Result<(), StageError> {
        Bucket::delete(self, key).map_err(storage_error)
    }

    fn swap(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> Result<bool, StageError> {
        let cas = Cas::new(self, key).map_err(storage_error)?;
        if cas.current().map_err(storage_error)?.as_deref() != expected {
            return Ok(false);
        }
        match atomics::swap(cas, new) {
            Ok(()) => Ok(true),
            Err(CasError::CasFailed(_)) => Ok(false),
            Err(CasError::StoreError(e)) => Err(storage_error(e)),
        }
    }

    fn list(&self, cursor: Option<&str>) -> Result<(Vec<String>, Option<String>), StageError> {
        let page = self
            .list_keys(cursor.map(str::to_string).as_deref())
            .map_err(storage_error)?;
        Ok((page.keys, page.cursor))
    }
}

/// Turn a key-value error into a stage error.
pub fn storage_error(error: Error) -> StageError {
    StageError::Storage(match error {
        Error::NoSuchStore => "the key-value store is not configured for this component".into(),
        Error::AccessDenied => "access to the key-value store was denied".into(),
        Error::Other(message) => message,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// The store's value limit, as the bundled host and Spin enforce it.
    const VALUE_LIMIT: usize = 1024 * 1024;

    /// An in-memory store that refuses values over the limit, as the
    /// real ones do.
    #[derive(Default)]
    pub(crate) struct Memory {
        values: RefCell<BTreeMap<String, Vec<u8>>>,
        /// Values the next read of a key sees instead of the current one,
        /// as a worker that read it a while ago would.
        stale: RefCell<BTreeMap<String, Vec<u8>>>,
        /// Keys per listed page, as the bundled host pages them; `None`:
        /// every key at once and cursors refused, as Spin answers.
        list_page: Option<usize>,
    }

    impl Memory {
        /// A store that lists keys `page` at a time.
        pub(crate) fn paged(page: usize) -> Self {
            Self {
                list_page: Some(page),
                ..Self::default()
            }
        }

        /// The keys starting with `prefix`.
        pub(crate) fn keys_under(&self, prefix: &str) -> Vec<String> {
            let map = self.values.borrow();
            map.keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect()
        }

        /// The size of the largest value.
        pub(crate) fn largest_value(&self) -> usize {
            self.values
                .borrow()
                .values()
                .map(Vec::len)
                .max()
                .unwrap_or(0)
        }

        /// The next read of `key` sees `old`.
        pub(crate) fn serve_once_stale(&self, key: &str, old: &[u8]) {
            self.stale.borrow_mut().insert(key.into(), old.to_vec());
        }
    }

    impl Store for Memory {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StageError> {
            if let Some(old) = self.stale.borrow_mut().remove(key) {
                return Ok(Some(old));
            }
            Ok(self.values.borrow().get(key).cloned())
        }

        fn set(&self, key: &str, value: &[u8]) -> Result<(), StageError> {
            if value.len() > VALUE_LIMIT {
                return Err(StageError::Storage(format!("{key} is too large")));
            }
            self.values.borrow_mut().insert(key.into(), value.to_vec());
            Ok(())
        }

        fn delete(&self, key: &str) -> Result<(), StageError> {
            self.values.borrow_mut().remove(key);
            Ok(())
        }

        fn swap(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> Result<bool, StageError> {
            if self.values.borrow().get(key).map(Vec::as_slice) != expected {
                return Ok(false);
            }
            self.set(key, new).map(|()| true)
        }

        fn list(&self, cursor: Option<&str>) -> Result<(Vec<String>, Option<String>), StageError> {
            let map = self.values.borrow();
            let Some(page) = self.list_page else {
                if cursor.is_some() {
                    return Err(StageError::Storage(
                        "list_keys: cursor not supported".into(),
                    ));
                }
                return Ok((map.keys().cloned().collect(), None));
            };
            let keys: Vec<String> = map
                .keys()
                .filter(|k| cursor.is_none_or(|c| k.as_str() > c))
                .take(page)
                .cloned()
                .collect();
            let next = (keys.len() == page).then(|| keys.last().cloned()).flatten();
            Ok((keys, next))
        }
    }
}
