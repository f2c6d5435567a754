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
//!
//! The queue's parts, one job each: `storage` (its keys, and
//! compare-and-swap reads and writes), `jobs` (push, claim, reschedule,
//! finish), `pages` (listing and unlisting ids on the index pages),
//! `scan` (finding the due jobs) and `legacy` (moving the pre-page index
//! onto pages).

/// The queue of recording jobs (attach).
pub const RECORDINGS: &str = "attach";
/// The queue of 3CX insights jobs (attach).
pub const INSIGHTS: &str = "insights";
/// The queue of workflow trigger deliveries (trigger).
pub const TRIGGERS: &str = "trigger";
/// Every queue of follow-up work a posted call leaves behind. The host
/// reads their job keys (metrics' queue depths; the scheduler: whether a
/// quiet tenant has anything that can come due).
pub const FOLLOW_UP_QUEUES: [&str; 3] = [RECORDINGS, INSIGHTS, TRIGGERS];

/// The prefix of every job key of queue `name` (`<name>/job/<id>`).
pub fn jobs_prefix(name: &str) -> String {
    format!("{name}/job/")
}

mod jobs;
mod legacy;
mod pages;
mod scan;
mod storage;

use crate::bindings::wasi::keyvalue::store::Bucket;
use crate::kv::Store;
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
