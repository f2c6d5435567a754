//! Where a queue keeps things (the keys of its jobs, done markers, index
//! pages, live pages and scan position) and how it reads and writes them:
//! JSON values, changed only by compare-and-swap.

use super::{CAS_ATTEMPTS, Queue};
use crate::StageError;
use crate::kv::{self, Store, decode, encode};
use serde::Serialize;
use serde::de::DeserializeOwned;

impl<S: Store> Queue<'_, S> {
    pub(super) fn job_key(&self, id: &str) -> String {
        format!("{}{id}", super::jobs_prefix(self.name))
    }

    pub(super) fn done_key(&self, id: &str) -> String {
        format!("{}/done/{id}", self.name)
    }

    pub(super) fn page_key(&self, page: u64) -> String {
        format!("{}/index/{page}", self.name)
    }

    pub(super) fn pages_key(&self) -> String {
        format!("{}/pages", self.name)
    }

    pub(super) fn scan_key(&self) -> String {
        format!("{}/scan", self.name)
    }

    /// The index of queues written before pages existed.
    pub(super) fn legacy_index_key(&self) -> String {
        format!("{}/index", self.name)
    }

    pub(super) fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StageError> {
        kv::get_json(self.store, key)
    }

    pub(super) fn set_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StageError> {
        kv::set_json(self.store, key, value)
    }

    /// Read-modify-write `key` with compare-and-swap: `change` sees the
    /// current value and returns the value to write (`None`: leave it) and
    /// a result.
    pub(super) fn update<T, R>(
        &self,
        key: &str,
        mut change: impl FnMut(Option<T>) -> (Option<T>, R),
    ) -> Result<R, StageError>
    where
        T: Serialize + DeserializeOwned,
    {
        for _ in 0..CAS_ATTEMPTS {
            let bytes = self.store.get(key)?;
            let current = bytes.as_deref().map(|b| decode(key, b)).transpose()?;
            let (new, result) = change(current);
            let Some(new) = new else {
                return Ok(result);
            };
            if self
                .store
                .swap(key, bytes.as_deref(), &encode(key, &new)?)?
            {
                return Ok(result);
            }
        }
        Err(StageError::Storage(format!(
            "{key:?} kept changing under {CAS_ATTEMPTS} attempts to update it"
        )))
    }
}
