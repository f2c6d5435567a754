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
pub fn get_json<T: DeserializeOwned>(bucket: &Bucket, key: &str) -> Result<Option<T>, StageError> {
    match bucket.get(key).map_err(storage_error)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StageError::Storage(format!("value at {key:?} is unreadable: {e}"))),
    }
}

/// Encode and write `value` at `key`.
pub fn set_json<T: Serialize>(bucket: &Bucket, key: &str, value: &T) -> Result<(), StageError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| StageError::Storage(format!("encoding value for {key:?}: {e}")))?;
    bucket.set(key, &bytes).map_err(storage_error)
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
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StageError::Storage(format!("value at {key:?} is unreadable: {e}")))?,
            None => T::default(),
        };
        change(&mut value);
        let bytes = serde_json::to_vec(&value)
            .map_err(|e| StageError::Storage(format!("encoding value for {key:?}: {e}")))?;
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

/// Turn a key-value error into a stage error.
pub fn storage_error(error: Error) -> StageError {
    StageError::Storage(match error {
        Error::NoSuchStore => "the key-value store is not configured for this component".into(),
        Error::AccessDenied => "access to the key-value store was denied".into(),
        Error::Other(message) => message,
    })
}
