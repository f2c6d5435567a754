//! A durable job queue in the key-value store.
//!
//! Each job is one key (`<name>/job/<id>`); an index key (`<name>/index`)
//! lists the ids, updated with compare-and-swap so two workers never lose
//! each other's additions. Jobs survive restarts because the store does.
//! Finished ids are remembered (`<name>/done/<id>`) so a job is never queued
//! twice, and a worker claims each job it works with compare-and-swap, so
//! two workers never work the same job at once.

use crate::StageError;
use crate::bindings::wasi::keyvalue::atomics::{self, Cas, CasError};
use crate::bindings::wasi::keyvalue::store::Bucket;
use crate::kv;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How long a claimed job belongs to its worker unless the queue says
/// otherwise ([`Queue::claiming_for`]): longer than one attempt at one job.
/// Jobs are claimed one at a time, just before they are worked, so a worker
/// that dies holds at most the job it was working, for this long.
pub const DEFAULT_CLAIM_MS: i64 = 60_000;

/// A queued job with its schedule.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job<T> {
    /// The job's own data.
    pub payload: T,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it was first queued, ms since the epoch.
    pub queued_at: i64,
    /// Not before this time, ms since the epoch.
    pub due_at: i64,
}

/// A named queue in a bucket.
pub struct Queue<'a> {
    bucket: &'a Bucket,
    name: &'static str,
    claim_ms: i64,
}

impl<'a> Queue<'a> {
    /// The queue `name` in `bucket`.
    pub fn new(bucket: &'a Bucket, name: &'static str) -> Self {
        Self {
            bucket,
            name,
            claim_ms: DEFAULT_CLAIM_MS,
        }
    }

    /// Claims last `claim_ms`: set it above the longest single attempt
    /// (a recording transfer takes longer than a trigger delivery).
    pub fn claiming_for(mut self, claim_ms: i64) -> Self {
        self.claim_ms = claim_ms;
        self
    }

    fn job_key(&self, id: &str) -> String {
        format!("{}/job/{id}", self.name)
    }

    fn done_key(&self, id: &str) -> String {
        format!("{}/done/{id}", self.name)
    }

    fn index_key(&self) -> String {
        format!("{}/index", self.name)
    }

    /// Queue `payload` under `id`, due now. Returns false (and changes
    /// nothing) when `id` is already queued or finished, also when another
    /// worker queues or finishes it at the same moment.
    pub fn push<T: Serialize>(&self, id: &str, payload: T, now: i64) -> Result<bool, StageError> {
        let done = || {
            self.bucket
                .exists(&self.done_key(id))
                .map_err(kv::storage_error)
        };
        if done()? {
            return Ok(false);
        }
        let job = Job {
            payload,
            attempts: 0,
            queued_at: now,
            due_at: now,
        };
        let key = self.job_key(id);
        if self.bucket.exists(&key).map_err(kv::storage_error)? {
            return Ok(false);
        }
        // The index first: a worker killed between the two steps leaves an
        // id without a job, which `due` skips and the next push of the same
        // id completes. The other order would leave a job no index lists,
        // and no later push could see it was never listed.
        self.update_index(|ids| {
            if !ids.iter().any(|i| i == id) {
                ids.push(id.to_string());
            }
        })?;
        // Create the job only where none exists, atomically.
        let cas = Cas::new(self.bucket, &key).map_err(kv::storage_error)?;
        if cas.current().map_err(kv::storage_error)?.is_some() {
            return Ok(false);
        }
        let bytes = serde_json::to_vec(&job)
            .map_err(|e| StageError::Storage(format!("encoding value for {key:?}: {e}")))?;
        match atomics::swap(cas, &bytes) {
            Ok(()) => {}
            Err(CasError::CasFailed(_)) => return Ok(false),
            Err(CasError::StoreError(e)) => return Err(kv::storage_error(e)),
        }
        // A worker that finished this id after the check above removed its
        // job (and index entry) before we created ours: `finish` writes the
        // done marker first, so seeing it now means ours is a repeat.
        if done()? {
            self.bucket.delete(&key).map_err(kv::storage_error)?;
            self.update_index(|ids| ids.retain(|i| i != id))?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Up to `max` ids of jobs due at `now`, oldest due first. Not yet
    /// claimed: [`Self::claim`] each just before working it, so two workers
    /// (processes, Spin instances) never work the same job at once.
    pub fn due<T: DeserializeOwned>(
        &self,
        now: i64,
        max: usize,
    ) -> Result<Vec<String>, StageError> {
        let ids: Vec<String> = kv::get_json(self.bucket, &self.index_key())?.unwrap_or_default();
        let mut due = Vec::new();
        for id in ids {
            // An id whose job is gone was finished by another worker.
            if let Some(job) = kv::get_json::<Job<T>>(self.bucket, &self.job_key(&id))?
                && job.due_at <= now
            {
                due.push((job.due_at, id));
            }
        }
        due.sort();
        due.truncate(max);
        Ok(due.into_iter().map(|(_, id)| id).collect())
    }

    /// Claim one job if it is still queued and due, with compare-and-swap,
    /// by pushing its due time past the claim: `None` when another worker
    /// finished or claimed it first. The caller then finishes or
    /// reschedules it; if the caller dies, the job is due again once the
    /// claim passes.
    pub fn claim<T: Serialize + DeserializeOwned>(
        &self,
        id: &str,
        now: i64,
    ) -> Result<Option<Job<T>>, StageError> {
        let key = self.job_key(id);
        let cas = Cas::new(self.bucket, &key).map_err(kv::storage_error)?;
        let Some(bytes) = cas.current().map_err(kv::storage_error)? else {
            return Ok(None);
        };
        let job: Job<T> = serde_json::from_slice(&bytes)
            .map_err(|e| StageError::Storage(format!("value at {key:?} is unreadable: {e}")))?;
        if job.due_at > now {
            return Ok(None);
        }
        let mut held = job;
        let due_at = held.due_at;
        held.due_at = now + self.claim_ms;
        let bytes = serde_json::to_vec(&held)
            .map_err(|e| StageError::Storage(format!("encoding value for {key:?}: {e}")))?;
        match atomics::swap(cas, &bytes) {
            Ok(()) => {
                held.due_at = due_at;
                Ok(Some(held))
            }
            Err(CasError::CasFailed(_)) => Ok(None),
            Err(CasError::StoreError(e)) => Err(kv::storage_error(e)),
        }
    }

    /// Save a job's new schedule (or progress).
    pub fn reschedule<T: Serialize>(&self, id: &str, job: &Job<T>) -> Result<(), StageError> {
        kv::set_json(self.bucket, &self.job_key(id), job)
    }

    /// Finish a job: remember `outcome` for it and take it off the queue.
    pub fn finish<O: Serialize>(&self, id: &str, outcome: &O) -> Result<(), StageError> {
        kv::set_json(self.bucket, &self.done_key(id), outcome)?;
        self.bucket
            .delete(&self.job_key(id))
            .map_err(kv::storage_error)?;
        self.update_index(|ids| ids.retain(|i| i != id))
    }

    /// The recorded outcome of a finished job.
    pub fn outcome<O: DeserializeOwned>(&self, id: &str) -> Result<Option<O>, StageError> {
        kv::get_json(self.bucket, &self.done_key(id))
    }

    fn update_index(&self, change: impl Fn(&mut Vec<String>)) -> Result<(), StageError> {
        kv::update_json(self.bucket, &self.index_key(), change).map(|_| ())
    }
}

/// Backoff before attempt `attempts + 1`: `base_ms` doubling per attempt,
/// capped at `max_ms`.
pub fn backoff_ms(attempts: u32, base_ms: u32, max_ms: i64) -> i64 {
    let exp = attempts.min(20);
    (i64::from(base_ms) << exp).min(max_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_ms(0, 2_000, 60_000), 2_000);
        assert_eq!(backoff_ms(1, 2_000, 60_000), 4_000);
        assert_eq!(backoff_ms(5, 2_000, 60_000), 60_000);
        assert_eq!(backoff_ms(u32::MAX, 2_000, 60_000), 60_000);
        assert_eq!(backoff_ms(3, 0, 60_000), 0);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Backoff never shrinks from one attempt to the next and never
        /// passes its cap.
        #[test]
        fn backoff_grows_monotonically_up_to_the_cap(attempts in 0u32..1000, base in 0u32..100_000, cap in 0i64..10_000_000) {
            let now = backoff_ms(attempts, base, cap);
            prop_assert!(now <= cap);
            prop_assert!(backoff_ms(attempts + 1, base, cap) >= now);
        }
    }
}
