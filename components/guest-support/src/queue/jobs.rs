//! A job's life in the queue: pushed once under its id, claimed by one
//! worker at a time, rescheduled or finished (its outcome remembered so
//! the id is never queued again).

use super::{Job, Queue};
use crate::StageError;
use crate::kv::{Store, decode, encode};
use serde::Serialize;
use serde::de::DeserializeOwned;

impl<S: Store> Queue<'_, S> {
    /// Queue `payload` under `id`, due now. Returns false (and queues
    /// nothing) when `id` is already queued or finished, also when another
    /// worker queues or finishes it at the same moment.
    pub fn push<T: Serialize>(&self, id: &str, payload: T, now: i64) -> Result<bool, StageError> {
        let done = || Ok::<_, StageError>(self.store.get(&self.done_key(id))?.is_some());
        if done()? {
            return Ok(false);
        }
        let key = self.job_key(id);
        if self.store.get(&key)?.is_some() {
            return Ok(false);
        }
        // The listing first: a worker killed between the two steps leaves
        // an id without a job, which `due` skips and the next push of the
        // same id completes. The other order would leave a job no page
        // lists, never worked.
        let page = self.list(id)?;
        let job = Job {
            payload,
            attempts: 0,
            queued_at: now,
            due_at: now,
            page: Some(page),
        };
        // Create the job only where none exists, atomically.
        if !self.store.swap(&key, None, &encode(&key, &job)?)? {
            // Another worker queued it at the same moment; its job names
            // its own page, so a listing of ours elsewhere would linger.
            let theirs = self.get_json::<Job<serde::de::IgnoredAny>>(&key)?;
            if theirs.is_some_and(|j| j.page != Some(page)) {
                self.unlist(id, Some(page))?;
            }
            return Ok(false);
        }
        // A worker that finished this id after the check above removed its
        // job (and listing) before we created ours: `finish` writes the
        // done marker first, so seeing it now means ours is a repeat.
        if done()? {
            self.store.delete(&key)?;
            self.unlist(id, Some(page))?;
            return Ok(false);
        }
        // `due` moves the few ids of a sparse front page elsewhere and
        // takes an id whose job does not exist yet off its page; if it
        // did that to ours between listing and creating, list it again.
        if !self.is_listed(id, page)? {
            self.relist(id)?;
        }
        Ok(true)
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
        let Some(bytes) = self.store.get(&key)? else {
            return Ok(None);
        };
        let job: Job<T> = decode(&key, &bytes)?;
        if job.due_at > now {
            return Ok(None);
        }
        let mut held = job;
        let due_at = held.due_at;
        held.due_at = now + self.claim_ms;
        if !self.store.swap(&key, Some(&bytes), &encode(&key, &held)?)? {
            return Ok(None);
        }
        // A job next to its done marker was finished already: a push that
        // raced with the finish (or died before undoing its repeat) left
        // it. Working it again would deliver twice.
        if self.store.get(&self.done_key(id))?.is_some() {
            self.store.delete(&key)?;
            self.unlist(id, held.page)?;
            return Ok(None);
        }
        held.due_at = due_at;
        Ok(Some(held))
    }

    /// Save a claimed job's new schedule (or progress), unless it was
    /// finished meanwhile (a worker slower than its claim must not bring a
    /// finished job back).
    pub fn reschedule<T: Serialize>(&self, id: &str, job: &Job<T>) -> Result<(), StageError> {
        let job = serde_json::to_value(job)
            .map_err(|e| StageError::Storage(format!("encoding job {id:?}: {e}")))?;
        self.update(&self.job_key(id), |current: Option<serde_json::Value>| {
            (current.map(|_| job.clone()), ())
        })
    }

    /// Finish a claimed job: remember `outcome` for it and take it off the
    /// queue.
    pub fn finish<T, O: Serialize>(
        &self,
        id: &str,
        job: &Job<T>,
        outcome: &O,
    ) -> Result<(), StageError> {
        // The done marker first: a push racing with us sees it and backs
        // off, and `due` takes off the listing if we die before we do.
        self.set_json(&self.done_key(id), outcome)?;
        self.store.delete(&self.job_key(id))?;
        self.unlist(id, job.page)
    }

    /// The recorded outcome of a finished job.
    pub fn outcome<O: DeserializeOwned>(&self, id: &str) -> Result<Option<O>, StageError> {
        self.get_json(&self.done_key(id))
    }
}
