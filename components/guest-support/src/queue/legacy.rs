//! Queues written before index pages existed keep their ids in
//! `<name>/index`: each look at the queue moves a page's worth of them
//! onto pages, so an upgrade loses no job.

use super::{PAGE_IDS, Queue};
use crate::StageError;
use crate::kv::Store;

impl<S: Store> Queue<'_, S> {
    /// Move up to [`PAGE_IDS`] jobs of a queue written before pages
    /// existed onto pages. The old index is never deleted, only emptied
    /// with compare-and-swap: a worker of the earlier release still
    /// running during an upgrade may add to it, and its ids move next time.
    pub(super) fn migrate_legacy(&self) -> Result<(), StageError> {
        let key = self.legacy_index_key();
        let Some(ids) = self.get_json::<Vec<String>>(&key)? else {
            return Ok(());
        };
        let mut moved = Vec::new();
        let mut waiting = Vec::new();
        for id in ids.iter().take(PAGE_IDS) {
            if self.store.get(&self.job_key(id))?.is_some() {
                self.relist(id)?;
                moved.push(id.clone());
            } else if self.store.get(&self.done_key(id))?.is_some() {
                moved.push(id.clone());
            } else {
                // Listed by an earlier release that has not created the
                // job yet (or died before it did): keep it, at the back so
                // it cannot hold up the rest.
                waiting.push(id.clone());
            }
        }
        if moved.is_empty() && waiting.len() == ids.len() {
            return Ok(());
        }
        self.update(&key, |current: Option<Vec<String>>| {
            let Some(mut ids) = current else {
                return (None, ());
            };
            ids.retain(|i| !moved.contains(i) && !waiting.contains(i));
            ids.extend(waiting.iter().cloned());
            (Some(ids), ())
        })
    }
}
