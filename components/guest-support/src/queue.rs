//! A durable job queue in the key-value store.
//!
//! Each job is one key (`<name>/job/<id>`). The ids are listed on small
//! index pages (`<name>/index/<n>`, at most [`PAGE_IDS`] ids each) so no
//! single value grows with the queue: a workflow endpoint down for a day
//! leaves hundreds of thousands of jobs, far more than the store's 1 MiB
//! value limit would hold in one list. `<name>/pages` says which pages are
//! live (`first..=last`). New ids go on the last page; a full page is
//! closed for good and the next one opened. Closed pages are dropped from
//! the front once empty; a front page with only a few long-lived jobs left
//! moves them to the last page first, so the live pages stay about as many
//! as the jobs need. Lists and pages change only by compare-and-swap, so
//! two workers never lose each other's additions, and every step is
//! ordered so that a worker killed between any two of them leaves each
//! job listed somewhere.
//!
//! Jobs survive restarts because the store does. Finished ids are
//! remembered (`<name>/done/<id>`) so a job is never queued twice, and a
//! worker claims each job it works with compare-and-swap, so two workers
//! never work the same job at once.
//!
//! Queues written before pages existed keep their ids in `<name>/index`;
//! each look at the queue moves a page's worth of them onto pages.

use crate::StageError;
use crate::bindings::wasi::keyvalue::store::Bucket;
use crate::kv::{self, Store, decode, encode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How long a claimed job belongs to its worker unless the queue says
/// otherwise ([`Queue::claiming_for`]): longer than one attempt at one job.
/// Jobs are claimed one at a time, just before they are worked, so a worker
/// that dies holds at most the job it was working, for this long.
pub const DEFAULT_CLAIM_MS: i64 = 60_000;

/// Most ids on one index page. Ids are call keys (tens of bytes), so a
/// page stays near 6 KiB: each push and finish rewrites one small page,
/// not a list of the whole queue.
pub const PAGE_IDS: usize = 100;

/// A page also closes once its ids take this many bytes, whatever their
/// count, so long ids cannot push a page towards the store's value limit.
const PAGE_BYTES: usize = 64 * 1024;

/// Most jobs [`Queue::due`] reads in one call: the work of one look at
/// the queue stays bounded however long the queue is. The next call goes
/// on from where this one stopped, so every job is looked at in turn.
pub const SCAN_JOBS: usize = 1_000;

/// A closed front page with at most this many ids left has them moved to
/// the last page, so it can be dropped.
const COMPACT_AT_MOST: usize = PAGE_IDS / 4;

/// How often a compare-and-swap is retried when other workers keep
/// winning.
const CAS_ATTEMPTS: usize = 32;

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
    /// The index page that lists the job; `None` for a job queued before
    /// pages existed (listed in `<name>/index`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u64>,
}

/// Which index pages are live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Pages {
    /// The oldest page that may still list ids.
    first: u64,
    /// The page new ids go on.
    last: u64,
}

/// One index page.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Page {
    ids: Vec<String>,
    /// Full: never takes another id, so once empty it stays empty.
    #[serde(default)]
    closed: bool,
}

impl Page {
    fn is_full(&self) -> bool {
        self.ids.len() >= PAGE_IDS || self.ids.iter().map(String::len).sum::<usize>() >= PAGE_BYTES
    }
}

/// What adding an id to a page found.
enum Added {
    Listed,
    Closed,
    Absent,
}

/// A named queue in a bucket.
pub struct Queue<'a, S: Store = Bucket> {
    store: &'a S,
    name: &'static str,
    claim_ms: i64,
}

impl<'a, S: Store> Queue<'a, S> {
    /// The queue `name` in `store`.
    pub fn new(store: &'a S, name: &'static str) -> Self {
        Self {
            store,
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

    fn page_key(&self, page: u64) -> String {
        format!("{}/index/{page}", self.name)
    }

    fn pages_key(&self) -> String {
        format!("{}/pages", self.name)
    }

    fn scan_key(&self) -> String {
        format!("{}/scan", self.name)
    }

    /// The index of queues written before pages existed.
    fn legacy_index_key(&self) -> String {
        format!("{}/index", self.name)
    }

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

    fn is_listed(&self, id: &str, page: u64) -> Result<bool, StageError> {
        Ok(self
            .get_json::<Page>(&self.page_key(page))?
            .is_some_and(|p| p.ids.iter().any(|i| i == id)))
    }

    /// List the existing job `id` on the last page and record the page in
    /// the job. Its other listings are left to the caller.
    fn relist(&self, id: &str) -> Result<Option<u64>, StageError> {
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
    fn list(&self, id: &str) -> Result<u64, StageError> {
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

    fn move_last_to(&self, page: u64) -> Result<(), StageError> {
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
    fn unlist(&self, id: &str, page: Option<u64>) -> Result<(), StageError> {
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

    fn pages(&self) -> Result<Pages, StageError> {
        Ok(self.get_json(&self.pages_key())?.unwrap_or_default())
    }

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

    /// Move up to [`PAGE_IDS`] jobs of a queue written before pages
    /// existed onto pages. The old index is never deleted, only emptied
    /// with compare-and-swap: a worker of the earlier release still
    /// running during an upgrade may add to it, and its ids move next time.
    fn migrate_legacy(&self) -> Result<(), StageError> {
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

    /// Drop `page` if it is the first live page: closed and empty, it can
    /// never list an id again. True when it went.
    fn drop_front_page(&self, page: u64) -> Result<bool, StageError> {
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

    fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StageError> {
        kv::get_json(self.store, key)
    }

    fn set_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StageError> {
        kv::set_json(self.store, key, value)
    }

    /// Read-modify-write `key` with compare-and-swap: `change` sees the
    /// current value and returns the value to write (`None`: leave it) and
    /// a result.
    fn update<T, R>(
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

/// Backoff before attempt `attempts + 1`: `base_ms` doubling per attempt,
/// capped at `max_ms`.
pub fn backoff_ms(attempts: u32, base_ms: u32, max_ms: i64) -> i64 {
    let exp = attempts.min(20);
    (i64::from(base_ms) << exp).min(max_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::tests::Memory;

    /// A trigger-shaped id: event kind and a call key.
    fn id(i: usize) -> String {
        format!(
            "call.ended/3cx:{:08}@2026-12-04T10:{:02}:00.000Z",
            i,
            i % 60
        )
    }

    /// Work every due job once; returns the ids finished.
    fn drain_once(queue: &Queue<'_, Memory>, now: i64, max: usize) -> Vec<String> {
        let mut finished = Vec::new();
        for id in queue.due::<u32>(now, max).unwrap() {
            if let Some(job) = queue.claim::<u32>(&id, now).unwrap() {
                queue.finish(&id, &job, &"ok").unwrap();
                finished.push(id);
            }
        }
        finished
    }

    #[test]
    fn two_hundred_thousand_jobs_are_queued_and_then_drained_each_once() {
        const JOBS: usize = 200_000;
        let store = Memory::default();
        let queue = Queue::new(&store, "trigger");
        for i in 0..JOBS {
            assert!(queue.push(&id(i), i as u32, 0).unwrap(), "push {i}");
        }
        // Far more ids than one value could list, and no value near the
        // limit: pages of at most PAGE_IDS ids.
        assert!(
            store.largest_value() < 16 * 1024,
            "{}",
            store.largest_value()
        );
        assert_eq!(store.keys_under("trigger/job/").len(), JOBS);
        // A repeat is refused while queued.
        assert!(!queue.push(&id(7), 7, 0).unwrap());

        let mut seen = std::collections::HashSet::new();
        let mut looks = 0;
        while seen.len() < JOBS {
            looks += 1;
            assert!(looks <= JOBS / 50 + 10, "the queue stopped draining");
            for id in drain_once(&queue, 1, 50) {
                assert!(seen.insert(id.clone()), "{id} worked twice");
            }
        }
        assert!(store.keys_under("trigger/job/").is_empty());
        // Emptied pages are dropped as the looks pass them (each look
        // reads at most SCAN_JOBS pages): what is left is the page new ids
        // go on.
        for _ in 0..JOBS / PAGE_IDS / SCAN_JOBS + 2 {
            assert!(queue.due::<u32>(1, 50).unwrap().is_empty());
        }
        let pages = store.keys_under("trigger/index/");
        assert_eq!(
            pages.len(),
            1,
            "{} pages left, from {:?}",
            pages.len(),
            pages.first()
        );
        // Finished ids stay finished.
        assert!(!queue.push(&id(7), 7, 2).unwrap());
    }

    #[test]
    fn jobs_in_backoff_at_the_front_do_not_hide_due_jobs_behind_them() {
        let store = Memory::default();
        let queue = Queue::new(&store, "trigger");
        let jobs = SCAN_JOBS * 3;
        for i in 0..jobs {
            queue.push(&id(i), i as u32, 0).unwrap();
        }
        // Every job but the very last is tried and put off for an hour.
        for i in 0..jobs - 1 {
            let mut job = queue.claim::<u32>(&id(i), 0).unwrap().unwrap();
            job.due_at = 3_600_000;
            queue.reschedule(&id(i), &job).unwrap();
        }
        // Each look reads at most SCAN_JOBS jobs and goes on from there, so
        // the due job at the back is found within a few looks.
        let mut looks = 0;
        loop {
            looks += 1;
            let due = queue.due::<u32>(1, 50).unwrap();
            if !due.is_empty() {
                assert_eq!(due, vec![id(jobs - 1)]);
                break;
            }
            // 3,000 jobs on 30 pages: under four looks' budgets.
            assert!(looks <= 4, "the due job was never found");
        }
    }

    #[test]
    fn a_page_opened_by_a_worker_that_died_before_moving_last_is_still_read() {
        let store = Memory::default();
        let queue = Queue::new(&store, "trigger");
        for i in 0..PAGE_IDS {
            queue.push(&id(i), i as u32, 0).unwrap();
        }
        // The next push closes page 0 and opens page 1; undo its move of
        // `last`, as a worker killed between the two steps leaves it.
        queue.push(&id(PAGE_IDS), 0, 0).unwrap();
        assert_eq!(queue.pages().unwrap(), Pages { first: 0, last: 1 });
        store
            .set("trigger/pages", br#"{"first":0,"last":0}"#)
            .unwrap();
        let mut found = false;
        for _ in 0..3 {
            for id in drain_once(&queue, 1, 1_000) {
                found |= id == super::tests::id(PAGE_IDS);
            }
        }
        assert!(found, "the job on the unannounced page was never worked");
    }

    #[test]
    fn a_finished_job_whose_listing_was_left_behind_is_taken_off_its_page() {
        let store = Memory::default();
        let queue = Queue::new(&store, "attach");
        queue.push("a", 1u32, 0).unwrap();
        let job = queue.claim::<u32>("a", 0).unwrap().unwrap();
        // A worker that died after the done marker and the job's deletion.
        queue.set_json(&queue.done_key("a"), &"ok").unwrap();
        store.delete(&queue.job_key("a")).unwrap();
        let page: Page = queue
            .get_json(&queue.page_key(job.page.unwrap()))
            .unwrap()
            .unwrap();
        assert_eq!(page.ids, vec!["a".to_string()]);
        assert!(queue.due::<u32>(1, 10).unwrap().is_empty());
        let page: Page = queue
            .get_json(&queue.page_key(job.page.unwrap()))
            .unwrap()
            .unwrap();
        assert!(page.ids.is_empty());
    }

    #[test]
    fn jobs_queued_before_pages_existed_are_worked_and_finished() {
        let store = Memory::default();
        let queue = Queue::new(&store, "attach");
        // The layout of earlier releases: one index, jobs without a page.
        store.set("attach/index", br#"["old"]"#).unwrap();
        store
            .set(
                "attach/job/old",
                br#"{"payload":5,"attempts":0,"queued_at":0,"due_at":0}"#,
            )
            .unwrap();
        queue.push("new", 6u32, 0).unwrap();
        let mut due = queue.due::<u32>(1, 10).unwrap();
        due.sort();
        assert_eq!(due, vec!["new".to_string(), "old".to_string()]);
        // Moved onto a page, and off the old index (kept, empty: a worker
        // of the earlier release may still add to it during an upgrade).
        let job = queue.claim::<u32>("old", 1).unwrap().unwrap();
        assert_eq!(job.payload, 5);
        assert!(job.page.is_some());
        assert_eq!(store.get("attach/index").unwrap().unwrap(), b"[]");
        queue.finish("old", &job, &"ok").unwrap();
        assert_eq!(queue.due::<u32>(1, 10).unwrap(), vec!["new".to_string()]);
        assert!(
            !queue.push("old", 5u32, 2).unwrap(),
            "finished stays finished"
        );
        // An earlier release's worker adds one more: it moves too.
        store.set("attach/index", br#"["older"]"#).unwrap();
        store
            .set(
                "attach/job/older",
                br#"{"payload":7,"attempts":0,"queued_at":0,"due_at":0}"#,
            )
            .unwrap();
        let mut due = queue.due::<u32>(1, 10).unwrap();
        due.sort();
        assert_eq!(due, vec!["new".to_string(), "older".to_string()]);
    }

    #[test]
    fn a_push_with_an_old_view_of_the_pages_never_lists_on_a_dropped_page() {
        let store = Memory::default();
        let queue = Queue::new(&store, "trigger");
        // Pages 0..=2 were dropped long ago; page 3 is where ids go, and
        // closed page 1 is still there (not yet deleted).
        store
            .set("trigger/pages", br#"{"first":3,"last":3}"#)
            .unwrap();
        store
            .set("trigger/index/3", br#"{"ids":[],"closed":false}"#)
            .unwrap();
        store
            .set("trigger/index/1", br#"{"ids":[],"closed":true}"#)
            .unwrap();
        // The pusher's first look at the pages is from back then: it finds
        // page 1 closed and recreates page 2, which nobody reads any more.
        store.serve_once_stale("trigger/pages", br#"{"first":0,"last":1}"#);
        assert!(queue.push("x", 1u32, 0).unwrap());
        let job = queue.claim::<u32>("x", 0).unwrap().unwrap();
        assert_eq!(job.page, Some(3), "listed where due() reads");
        let dropped: Page = queue.get_json("trigger/index/2").unwrap().unwrap();
        assert!(dropped.ids.is_empty(), "{dropped:?}");
        queue.reschedule("x", &Job { due_at: 0, ..job }).unwrap();
        assert_eq!(queue.due::<u32>(1, 10).unwrap(), vec!["x".to_string()]);
    }

    #[test]
    fn a_job_recreated_next_to_its_done_marker_is_not_worked_again() {
        let store = Memory::default();
        let queue = Queue::new(&store, "trigger");
        queue.push("x", 1u32, 0).unwrap();
        let job = queue.claim::<u32>("x", 0).unwrap().unwrap();
        queue.finish("x", &job, &"delivered").unwrap();
        // A push that passed its done check before the finish, then
        // listed and created the job again (and died before undoing it).
        let page = queue.list("x").unwrap();
        let again = Job {
            page: Some(page),
            due_at: 0,
            ..job.clone()
        };
        queue.set_json(&queue.job_key("x"), &again).unwrap();
        for id in queue.due::<u32>(1, 10).unwrap() {
            assert!(
                queue.claim::<u32>(&id, 1).unwrap().is_none(),
                "{id} worked twice"
            );
        }
        assert!(store.get(&queue.job_key("x")).unwrap().is_none());
        assert_eq!(
            queue.outcome::<String>("x").unwrap().as_deref(),
            Some("delivered")
        );
    }

    #[test]
    fn a_slow_worker_cannot_bring_a_finished_job_back() {
        let store = Memory::default();
        let queue = Queue::new(&store, "attach");
        queue.push("x", 1u32, 0).unwrap();
        let slow = queue.claim::<u32>("x", 0).unwrap().unwrap();
        // Its claim passes; another worker takes the job and finishes it.
        let fast = queue
            .claim::<u32>("x", DEFAULT_CLAIM_MS + 1)
            .unwrap()
            .unwrap();
        queue.finish("x", &fast, &"ok").unwrap();
        queue.reschedule("x", &Job { due_at: 5, ..slow }).unwrap();
        assert!(store.get(&queue.job_key("x")).unwrap().is_none());
        assert!(queue.due::<u32>(10, 10).unwrap().is_empty());
    }

    #[test]
    fn a_few_long_lived_jobs_do_not_keep_the_pages_behind_them() {
        let store = Memory::default();
        let queue = Queue::new(&store, "trigger");
        let jobs = PAGE_IDS * 20;
        for i in 0..jobs {
            queue.push(&id(i), i as u32, 0).unwrap();
            if i == 10 {
                // A listing whose push died before creating its job.
                assert_eq!(queue.list("orphan").unwrap(), 0);
            }
        }
        // Every job finishes but the first one, which retries for a day.
        for i in 1..jobs {
            let job = queue.claim::<u32>(&id(i), 0).unwrap().unwrap();
            queue.finish(&id(i), &job, &"ok").unwrap();
        }
        let mut first = queue.claim::<u32>(&id(0), 0).unwrap().unwrap();
        first.due_at = 86_400_000;
        queue.reschedule(&id(0), &first).unwrap();
        // More jobs arrive, so the pages go on.
        for i in jobs..jobs + PAGE_IDS {
            queue.push(&id(i), i as u32, 0).unwrap();
        }
        for _ in 0..30 {
            queue.due::<u32>(1, 1_000).unwrap();
        }
        let pages = store.keys_under("trigger/index/");
        assert!(pages.len() <= 2, "{} pages kept", pages.len());
        // The long-lived job is still listed and comes due in time.
        let due = queue.due::<u32>(86_400_000, 10_000).unwrap();
        assert!(due.contains(&id(0)));
        let listed: Vec<String> = pages
            .iter()
            .flat_map(|key| queue.get_json::<Page>(key).unwrap().unwrap().ids)
            .collect();
        assert!(
            !listed.contains(&"orphan".to_string()),
            "the orphan was kept"
        );
    }

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
