//! The exactly-once protocol's decisions, as plain functions.
//!
//! Every rule that decides whether a call is posted, and when, lives here
//! and nowhere else: the dedup, poll and tick components call these
//! functions, and so does the model checker (`tools/model`), which
//! explores every interleaving of workers, crashes, lease expiries and
//! 3CX row arrivals against the same code. No I/O here: callers read the
//! key-value store or 3CX and hand the facts in.
//!
//! - Claims: [`decide_claim`], [`may_take_leg`], [`may_release_leg`]
//!   (the ledger entries are [`Entry`]).
//! - Which 3CX calls are still going on: [`Sighting`], [`merge_sightings`].
//! - When a call read from history is complete: [`completeness()`].
//! - How far the cursor may move: [`next_cursor`], [`cursor_to_store`].
//!
//! The time limits are constants here, one place each, marked [ASSUMED]
//! where no live system has confirmed them (specs/3cx/NOTES.md §8).
//!
//! This module holds the time limits; each of the groups above has its
//! own part (`claims`, `sightings`, `completeness`, `cursor`).

mod claims;
mod completeness;
mod cursor;
pub mod quiet;
mod sightings;

pub use claims::{
    ClaimDecision, Entry, decide_claim, held_by_other, joins_done_call, may_release_leg,
    may_take_leg,
};
pub use completeness::{Completeness, completeness};
pub use cursor::{CURSOR_KEY, CursorFacts, cursor_to_store, next_cursor};
pub use sightings::{
    Listed, Sighting, merge_sightings, merge_sightings_of, party_number, same_number,
};

/// How long after a call drops out of 3CX's `ActiveCalls` its history
/// rows may still be missing: the cursor stays before the call, and a
/// call whose tail segment may be unwritten waits, until this has passed.
///
/// [ASSUMED] 3CX writes a call's rows "immediately when the call ends"
/// (NOTES §8); no figure for "immediately" is published. One minute is
/// far above any write delay seen in the simulator's scenarios and costs
/// only a slightly longer re-read window.
pub const ENDED_GRACE_MS: i64 = 60 * 1000;

/// How much later than a call's newest visible segment ended a sighting
/// may have begun and still be that call: `EstablishedAt` may be the
/// answer time, the very moment the queue or ring-group segment before it
/// ended, on the same PBX clock. [ASSUMED] One second covers the rounding
/// between the two; a larger slack would hold a missed call while the
/// same caller's next call goes on (a caller trying again at once).
pub const SIGHTING_SLACK_MS: i64 = 1000;

/// The largest difference between the PBX's clock and ours taken for
/// drift rather than an error. [ASSUMED] A PBX kept by NTP is within
/// seconds; five minutes is the window 3CX's own reports allow for.
pub const MAX_CLOCK_DRIFT_MS: i64 = 5 * 60 * 1000;

/// The longest a call in progress holds the cursor back. A call that has
/// been in `ActiveCalls` for longer than this no longer holds the cursor,
/// so one stuck entry in 3CX cannot make every poll re-read an ever
/// longer window. Worst case, documented in docs/ARCHITECTURE.md: a call
/// longer than this (plus the overlap window) is not read by the live
/// poll and needs a backfill of its day.
pub const MAX_ACTIVE_HOLD_MS: i64 = 24 * 60 * 60 * 1000;

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(worker: &str, at: i64) -> Entry {
        Entry::Claimed {
            call: "c".into(),
            worker: worker.into(),
            at,
        }
    }

    #[test]
    fn a_done_leg_makes_the_call_done_whatever_the_other_legs_say() {
        let done = Entry::done("c", "posted:m1", 5);
        let other = claimed("b", 9);
        assert_eq!(
            decide_claim([Some(&other), Some(&done), None], "a", 10, 1000),
            ClaimDecision::AlreadyDone("posted:m1".into())
        );
    }

    #[test]
    fn a_live_claim_of_another_worker_holds_the_call_until_its_lease_ends() {
        let theirs = claimed("b", 1000);
        assert_eq!(
            decide_claim([Some(&theirs)], "a", 1500, 1000),
            ClaimDecision::HeldElsewhere
        );
        assert_eq!(
            decide_claim([Some(&theirs)], "a", 2000, 1000),
            ClaimDecision::Take
        );
        // Renewal: a worker's own claim is taken again, at any age.
        assert_eq!(
            decide_claim([Some(&claimed("a", 0))], "a", 1, 1000),
            ClaimDecision::Take
        );
        assert!(!may_take_leg(Some(&theirs), "a", 1500, 1000));
        assert!(!may_take_leg(Some(&Entry::done("c", "x", 0)), "a", 9999, 1));
        assert!(may_take_leg(Some(&Entry::Released { at: 0 }), "a", 0, 1000));
    }

    #[test]
    fn only_the_holder_releases_a_leg() {
        assert!(may_release_leg(Some(&claimed("a", 0)), "a"));
        assert!(!may_release_leg(Some(&claimed("b", 0)), "a"));
        assert!(!may_release_leg(Some(&Entry::done("c", "x", 0)), "a"));
        assert!(!may_release_leg(None, "a"));
    }

    fn listed(id: i32, established: Option<i64>, caller: &str) -> Listed {
        Listed {
            id,
            established_at: established,
            sides: vec![caller.into(), "800 Sales queue".into()],
        }
    }

    #[test]
    fn sightings_keep_the_earliest_start_and_outlive_the_call_by_the_grace() {
        let first = merge_sightings(&[], &[listed(7, None, "+1 415-555-0101")], 10_000);
        assert_eq!(first[0].since, 10_000);
        assert_eq!(first[0].numbers, vec!["14155550101", "800"]);
        // EstablishedAt later than the first sighting does not move it on.
        let again = merge_sightings(&first, &[listed(7, Some(12_000), "+14155550101")], 13_000);
        assert_eq!((again[0].since, again[0].last_seen), (10_000, 13_000));
        let gone = merge_sightings(&again, &[], 14_000);
        assert!(!gone[0].active);
        let still = merge_sightings(&gone, &[], 14_000 + ENDED_GRACE_MS);
        assert_eq!(still.len(), 1);
        assert!(merge_sightings(&still, &[], 14_001 + ENDED_GRACE_MS).is_empty());
    }

    #[test]
    fn a_call_waits_while_a_sighting_of_its_caller_goes_on_or_may_lack_its_end() {
        let s = |active, last_seen| Sighting {
            id: 7,
            since: 100_000,
            last_seen,
            active,
            gone_since: None,
            numbers: vec!["14155550101".into()],
        };
        let now = 200_000;
        let caller = vec!["4155550101".to_string()];
        // Queue segment ended at 99 000, the call answered (and first
        // listed) at 100 000; it is still listed.
        assert_eq!(
            completeness(&caller, 99_000, &[s(true, 190_000)], now),
            Completeness::Waiting(7)
        );
        // No longer listed, last seen after the visible segment ended.
        assert_eq!(
            completeness(&caller, 99_000, &[s(false, 190_000)], now),
            Completeness::Waiting(7)
        );
        // The segment that ended it is visible.
        assert_eq!(
            completeness(&caller, 190_500, &[s(false, 190_000)], now),
            Completeness::Complete
        );
        // A segment that ended after the ActiveCalls read: decided later;
        // one far ahead of any drift is a clock error, not a wait.
        assert_eq!(
            completeness(&caller, now + 1, &[], now),
            Completeness::Waiting(0)
        );
        assert_eq!(
            completeness(&caller, now + MAX_CLOCK_DRIFT_MS + 1, &[], now),
            Completeness::Complete
        );
        assert!(joins_done_call(Some(&claimed("b", 0))));
        assert!(joins_done_call(None));
        assert!(!joins_done_call(Some(&Entry::done("c", "x", 0))));
        // Another party's call, or a call of the same party that ended
        // well before this sighting began.
        assert_eq!(
            completeness(&["999".into()], 99_000, &[s(true, 190_000)], now),
            Completeness::Complete
        );
        assert_eq!(
            completeness(&caller, 50_000, &[s(true, 190_000)], now),
            Completeness::Complete
        );
        // A sighting older than the hold limit is a stuck entry.
        assert_eq!(
            completeness(
                &caller,
                99_000,
                &[s(true, 190_000)],
                100_001 + MAX_ACTIVE_HOLD_MS
            ),
            Completeness::Complete
        );
    }

    #[test]
    fn the_number_of_a_side_is_found_wherever_it_is() {
        assert_eq!(party_number("101 Alice Smith").as_deref(), Some("101"));
        assert_eq!(
            party_number("Dana (+1 415-555-0101)").as_deref(),
            Some("14155550101")
        );
        assert_eq!(party_number("Anonymous"), None);
    }

    #[test]
    fn the_grace_runs_from_the_first_read_without_the_call() {
        let listed = [listed(7, Some(1_000), "+14155550101")];
        let seen = merge_sightings(&[], &listed, 2_000);
        // The next read comes ten minutes later (a slow tick): the call
        // is gone, and stays a sighting for the whole grace from now.
        let later = 2_000 + 10 * 60 * 1000;
        let gone = merge_sightings(&seen, &[], later);
        assert_eq!(gone[0].gone_since, Some(later));
        assert_eq!(merge_sightings(&gone, &[], later + ENDED_GRACE_MS).len(), 1);
        assert!(merge_sightings(&gone, &[], later + ENDED_GRACE_MS + 1).is_empty());
        // A read over several pages may miss a call still going on: it
        // stays as it was.
        let partial = merge_sightings_of(&seen, &[], later, false);
        assert!(partial[0].active);
        // A start in the future (clock error) is clamped to now.
        let future = merge_sightings(&[], &[listed_at(8, 9_999_999)], 5_000);
        assert_eq!(future[0].since, 5_000);
    }

    fn listed_at(id: i32, established: i64) -> Listed {
        listed(id, Some(established), "+14155550101")
    }

    #[test]
    fn the_cursor_stays_before_calls_in_progress_and_unsettled_ones() {
        let long = Sighting {
            id: 1,
            since: 1_000,
            last_seen: 50_000,
            active: true,
            gone_since: None,
            numbers: vec![],
        };
        let facts = CursorFacts {
            stored: Some(500),
            newest_leg_start: Some(40_000),
            unsettled_starts: vec![],
            sightings: vec![long.clone()],
            pbx_now: 50_000,
        };
        assert_eq!(next_cursor(&facts), Some(1_000));
        let free = CursorFacts {
            sightings: vec![],
            unsettled_starts: vec![30_000],
            ..facts.clone()
        };
        assert_eq!(next_cursor(&free), Some(30_000));
        // Never backwards, and a call in progress holds it at most a day.
        let behind = CursorFacts {
            stored: Some(2_000),
            ..facts.clone()
        };
        assert_eq!(next_cursor(&behind), Some(2_000));
        let stuck = CursorFacts {
            stored: None,
            newest_leg_start: Some(MAX_ACTIVE_HOLD_MS + 90_000),
            pbx_now: MAX_ACTIVE_HOLD_MS + 100_000,
            ..facts
        };
        assert_eq!(next_cursor(&stuck), Some(100_000));
        assert_eq!(next_cursor(&CursorFacts::default()), None);
        assert_eq!(cursor_to_store(None, 5), Some(5));
        assert_eq!(cursor_to_store(Some(5), 6), Some(6));
        assert_eq!(cursor_to_store(Some(5), 5), None);
        assert_eq!(cursor_to_store(Some(5), 4), None);
    }

    #[test]
    fn the_cursor_never_passes_the_active_calls_read() {
        // A call begun after the ActiveCalls read is not listed and, while
        // it goes on, not written; a shorter one begun after it may be.
        let facts = CursorFacts {
            stored: Some(1_000),
            newest_leg_start: Some(20_000),
            unsettled_starts: vec![],
            sightings: vec![],
            pbx_now: 10_000,
        };
        assert_eq!(next_cursor(&facts), Some(10_000));
    }
}
