//! The index pages that list a queue's ids: adding an id to the last
//! open page (opening the next when it is full), taking ids off, and
//! dropping emptied pages from the front.

use super::{CAS_ATTEMPTS, Page, Pages, Queue};
use crate::StageError;
use crate::kv::{Store, encode};

/// What adding an id to a page found.
enum Added {
    Listed,
    Closed,
    Absent,
}

impl<S: Store> Queue<'_, S> {
    pub(super) fn is_listed(&self, id: &str, page: u64) -> Result<bool, StageError> {
        Ok(self
            .get_json::<Page>(&self.page_key(page))?
            .is_some_and(|p| p.ids.iter().any(|i| i == id)))
    }

    /// List the existing job `id` on the last page and record the page in
    /// the job. Its other listings are left to the caller.
    pub(super) fn relist(&self, id: &str) -> Result<Option<u64>, StageError> {
        let page = self.list(id)?;
        let key = self.job_key(id);
        let kept = self.update(&key, |current: Option<serde_json::Value>| match current {
            Some(mut job) => {
                job["page"] = serde_json::Value::from(page);
                (Some(job), true)
            }
            None => (None, false),
        })?;
        if !kept {
            // Finished meanwhile: nothing to list.
            self.unlist(id, Some(page))?;
            return Ok(None);
        }
        Ok(Some(page))
    }

    /// List `id` on the last open page; returns the page.
    pub(super) fn list(&self, id: &str) -> Result<u64, StageError> {
        for _ in 0..CAS_ATTEMPTS {
            let pages = self.pages()?;
            let mut page = pages.last;
            match self.add_to_page(page, id)? {
                Added::Listed => {}
                Added::Absent if page == pages.last && page == 0 => {
                    // The very first page: nobody has created it yet.
                    if !self.create_page(page, id)? {
                        continue;
                    }
                }
                // A page that vanished under a stale view of `pages`:
                // look again.
                Added::Absent => continue,
                Added::Closed => {
                    // Open the next page with our id on it. Whoever opens
                    // it moves `last`; a worker that died before doing so
                    // is helped by the next one that finds it.
                    page += 1;
                    if !self.create_page(page, id)? {
                        self.move_last_to(page)?;
                        continue;
                    }
                    self.move_last_to(page)?;
                }
            }
            // A view of `pages` old enough to name a page already dropped
            // from the front (and now recreated by us): nobody would read
            // it, so take the id back and list it again.
            if page < self.pages()?.first {
                self.unlist(id, Some(page))?;
                continue;
            }
            return Ok(page);
        }
        Err(StageError::Storage(format!(
            "the {} queue's index kept changing under {CAS_ATTEMPTS} attempts to add to it",
            self.name
        )))
    }

    /// Add `id` to `page` unless it is closed (closing it when full).
    fn add_to_page(&self, page: u64, id: &str) -> Result<Added, StageError> {
        let key = self.page_key(page);
        self.update(&key, |current: Option<Page>| match current {
            None => (None, Added::Absent),
            Some(p) if p.closed => (None, Added::Closed),
            Some(mut p) if p.is_full() => {
                p.closed = true;
                (Some(p), Added::Closed)
            }
            Some(mut p) => {
                if !p.ids.iter().any(|i| i == id) {
                    p.ids.push(id.to_string());
                }
                (Some(p), Added::Listed)
            }
        })
    }

    /// Create `page` holding `id`, only if no such page exists.
    fn create_page(&self, page: u64, id: &str) -> Result<bool, StageError> {
        let key = self.page_key(page);
        let fresh = Page {
            ids: vec![id.to_string()],
            closed: false,
        };
        self.store.swap(&key, None, &encode(&key, &fresh)?)
    }

    pub(super) fn move_last_to(&self, page: u64) -> Result<(), StageError> {
        self.update(&self.pages_key(), |current: Option<Pages>| {
            let mut pages = current.unwrap_or_default();
            if pages.last >= page {
                return (None, ());
            }
            pages.last = page;
            (Some(pages), ())
        })
    }

    /// Take `id` off `page` (`None`: the pre-page index).
    pub(super) fn unlist(&self, id: &str, page: Option<u64>) -> Result<(), StageError> {
        match page {
            Some(page) => self.update(
                &self.page_key(page),
                |current: Option<Page>| match current {
                    Some(mut p) if p.ids.iter().any(|i| i == id) => {
                        p.ids.retain(|i| i != id);
                        (Some(p), ())
                    }
                    _ => (None, ()),
                },
            ),
            None => {
                self.update(
                    &self.legacy_index_key(),
                    |current: Option<Vec<String>>| match current {
                        Some(mut ids) if ids.iter().any(|i| i == id) => {
                            ids.retain(|i| i != id);
                            (Some(ids), ())
                        }
                        _ => (None, ()),
                    },
                )
            }
        }
    }

    pub(super) fn pages(&self) -> Result<Pages, StageError> {
        Ok(self.get_json(&self.pages_key())?.unwrap_or_default())
    }

    /// Drop `page` if it is the first live page: closed and empty, it can
    /// never list an id again. True when it went.
    pub(super) fn drop_front_page(&self, page: u64) -> Result<bool, StageError> {
        let moved = self.update(&self.pages_key(), |current: Option<Pages>| {
            let mut pages = current.unwrap_or_default();
            // Never past `last`: new ids go there.
            if pages.first != page || page >= pages.last {
                return (None, false);
            }
            pages.first = page + 1;
            (Some(pages), true)
        })?;
        if moved {
            self.store.delete(&self.page_key(page))?;
        }
        Ok(moved)
    }
}
