//! Finding the due jobs ([`Queue::due`]): one bounded look at the pages,
//! going on from where the last look stopped, compacting a sparse front
//! page on the way.

use super::{COMPACT_AT_MOST, Job, Page, Queue, SCAN_JOBS};
use crate::StageError;
use crate::kv::Store;
use serde::de::DeserializeOwned;

impl<S: Store> Queue<'_, S> {
    /// Up to `max` ids of jobs due at `now`, soonest due first among the
    /// jobs looked at: in page order until `max` are found, at most
    /// [`SCAN_JOBS`] jobs and pages read, going on from where the last look
    /// stopped. Not yet claimed: [`Self::claim`] each just before
    /// working it, so two workers (processes, Spin instances) never work
    /// the same job at once.
    pub fn due<T: DeserializeOwned>(
        &self,
        now: i64,
        max: usize,
    ) -> Result<Vec<String>, StageError> {
        let mut scan = Scan {
            now,
            max,
            budget: SCAN_JOBS,
            due: Vec::new(),
        };
        self.migrate_legacy()?;
        let mut pages = self.pages()?;
        // A worker that opened the next page and died before moving
        // `last` would leave its id unread until the next push.
        if self.store.get(&self.page_key(pages.last + 1))?.is_some() {
            self.move_last_to(pages.last + 1)?;
            pages = self.pages()?;
        }
        let saved: Option<u64> = if pages.last > pages.first {
            self.get_json(&self.scan_key())?
        } else {
            None
        };
        let start = saved.unwrap_or(pages.first).clamp(pages.first, pages.last);
        let order = (start..=pages.last).chain(pages.first..start);
        let mut next = start;
        let mut compacted = false;
        for page in order {
            next = page;
            if scan.is_over() {
                break;
            }
            // Reading a page is work too, even an empty one.
            scan.budget -= 1;
            let Some(listed) = self.get_json::<Page>(&self.page_key(page))? else {
                continue;
            };
            let at_front = listed.closed && page == pages.first && page < pages.last;
            let sparse = listed.ids.len() <= COMPACT_AT_MOST;
            if at_front && (listed.ids.is_empty() || (sparse && !compacted)) {
                // A few long-lived jobs on the front page would keep every
                // emptied page behind it: move them to the last page, then
                // drop the front one. Once per look, so the work stays
                // bounded; their jobs are looked at on the last page.
                if !listed.ids.is_empty() {
                    compacted = true;
                    for id in &listed.ids {
                        self.move_off(id, page)?;
                    }
                }
                if self.drop_front_page(page)? {
                    pages.first = page + 1;
                }
                continue;
            }
            if !self.scan_ids::<T>(&listed.ids, Some(page), &mut scan)? {
                // Stopped inside this page: the next look starts on it.
                break;
            }
            next = if page == pages.last {
                pages.first
            } else {
                page + 1
            };
        }
        // Where the next look starts; with one page there is no choice.
        if pages.last > pages.first && saved != Some(next) {
            self.set_json(&self.scan_key(), &next)?;
        }
        let mut due = scan.due;
        due.sort();
        due.truncate(max);
        Ok(due.into_iter().map(|(_, id)| id).collect())
    }

    /// Take `id` off the front page `page`, keeping it listed while its
    /// job exists.
    fn move_off(&self, id: &str, page: u64) -> Result<(), StageError> {
        let job = self.get_json::<Job<serde::de::IgnoredAny>>(&self.job_key(id))?;
        match job {
            // Listed here: list it on the last page first, so it is never
            // on no page.
            Some(job) if job.page.is_none_or(|p| p == page) => {
                self.relist(id)?;
                self.unlist(id, Some(page))
            }
            // A second listing; the job's own page lists it.
            Some(_) => self.unlist(id, Some(page)),
            // No job: finished, or a push between listing and creating.
            // Off first, then look again: a push that creates its job now
            // finds its listing gone and lists it again itself, and one
            // that already has is caught here.
            None => {
                self.unlist(id, Some(page))?;
                if self.store.get(&self.job_key(id))?.is_some() {
                    self.relist(id)?;
                }
                Ok(())
            }
        }
    }

    /// Look at the jobs of `ids` (listed on `page`) until the scan is
    /// over; true when every id was looked at.
    fn scan_ids<T: DeserializeOwned>(
        &self,
        ids: &[String],
        page: Option<u64>,
        scan: &mut Scan,
    ) -> Result<bool, StageError> {
        for id in ids {
            if scan.is_over() {
                return Ok(false);
            }
            scan.budget -= 1;
            match self.get_json::<Job<T>>(&self.job_key(id))? {
                Some(job) if job.due_at <= scan.now => scan.due.push((job.due_at, id.clone())),
                Some(_) => {}
                // Finished, its worker stopped before taking the id off:
                // no job will come back under a finished id.
                None if self.store.get(&self.done_key(id))?.is_some() => self.unlist(id, page)?,
                // Being pushed right now, or left by a push that died
                // between listing and creating: taken off once its page
                // reaches the front (`move_off`).
                None => {}
            }
        }
        Ok(true)
    }
}

/// One look at the queue: what is due, and how many jobs may still be read.
struct Scan {
    now: i64,
    max: usize,
    budget: usize,
    due: Vec<(i64, String)>,
}

impl Scan {
    fn is_over(&self) -> bool {
        self.budget == 0 || self.due.len() >= self.max
    }
}
