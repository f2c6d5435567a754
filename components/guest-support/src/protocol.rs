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
//! - When a call read from history is complete: [`completeness`].
//! - How far the cursor may move: [`next_cursor`], [`cursor_to_store`].
//!
//! The time limits are constants here, one place each, marked [ASSUMED]
//! where no live system has confirmed them (specs/3cx/NOTES.md §8).

use serde::{Deserialize, Serialize};

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

/// What the ledger holds for one leg (`ledger/<leg id>@<start ms>`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Entry {
    /// A worker is processing the call.
    Claimed {
        /// Key of the call the leg belongs to.
        call: String,
        /// Who claimed it.
        worker: String,
        /// When, in ms since the epoch (renewed by claiming again).
        at: i64,
    },
    /// The call was handled; never process it again.
    Done {
        /// Key of the call the leg belongs to.
        call: String,
        /// `posted:<id>`, `skipped:<reason>` or `parked:<reason>`.
        outcome: String,
        /// When, in ms since the epoch.
        at: i64,
    },
    /// Given back after a retryable failure; anyone may claim it.
    Released {
        /// When, in ms since the epoch.
        at: i64,
    },
}

impl Entry {
    /// A `done` entry.
    pub fn done(call: &str, outcome: &str, at: i64) -> Self {
        Entry::Done {
            call: call.to_string(),
            outcome: outcome.to_string(),
            at,
        }
    }
}

/// What a worker may do with a call, from its legs' ledger entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimDecision {
    /// A leg is done: the whole call is, with this outcome (a segment 3CX
    /// wrote late joins its call's outcome instead of posting it again).
    AlreadyDone(String),
    /// Another worker holds a live claim on a leg.
    HeldElsewhere,
    /// Every leg is free, released, stale or already this worker's: swap
    /// a claim into each, one compare-and-swap per leg.
    Take,
}

/// Decide a claim of one call by `worker` at `now` from its legs' entries
/// (`None` for a leg never seen). Claiming a call this worker already
/// holds is `Take` too: that is how a claim is renewed right before
/// posting, so a claim another worker took over after the lease is never
/// posted on.
pub fn decide_claim<'a>(
    entries: impl IntoIterator<Item = Option<&'a Entry>> + Clone,
    worker: &str,
    now: i64,
    lease_ms: u64,
) -> ClaimDecision {
    if let Some(outcome) = entries.clone().into_iter().find_map(|e| match e {
        Some(Entry::Done { outcome, .. }) => Some(outcome.clone()),
        _ => None,
    }) {
        return ClaimDecision::AlreadyDone(outcome);
    }
    if entries
        .into_iter()
        .flatten()
        .any(|e| held_by_other(e, worker, now, lease_ms))
    {
        return ClaimDecision::HeldElsewhere;
    }
    ClaimDecision::Take
}

/// Whether a claim that found its call done ([`ClaimDecision::AlreadyDone`])
/// marks this leg done too: every leg not done yet, also one still
/// claimed (by a worker completing the call one leg at a time, or that
/// died doing so). A leg left claimed would otherwise be read alone later,
/// once the cursor passed the call's first leg, and posted as a call of
/// its own (found by the model checker).
pub fn joins_done_call(entry: Option<&Entry>) -> bool {
    !matches!(entry, Some(Entry::Done { .. }))
}

/// Whether the compare-and-swap of one leg may put `worker`'s claim over
/// `current` (re-read inside the swap: someone may have won the leg since
/// [`decide_claim`] looked).
pub fn may_take_leg(current: Option<&Entry>, worker: &str, now: i64, lease_ms: u64) -> bool {
    match current {
        None => true,
        Some(Entry::Done { .. }) => false,
        Some(entry) => !held_by_other(entry, worker, now, lease_ms),
    }
}

/// Whether `worker` may release a leg whose entry is `current`: only its
/// own claim (a claim taken over is someone else's now).
pub fn may_release_leg(current: Option<&Entry>, worker: &str) -> bool {
    matches!(current, Some(Entry::Claimed { worker: holder, .. }) if holder == worker)
}

/// True when `entry` is a live claim of another worker: younger than the
/// lease. An older claim belongs to a worker that died (or stalled past
/// its lease) and may be taken over.
pub fn held_by_other(entry: &Entry, worker: &str, now: i64, lease_ms: u64) -> bool {
    match entry {
        Entry::Claimed {
            worker: holder, at, ..
        } => {
            let age = now.saturating_sub(*at);
            holder != worker && age < i64::try_from(lease_ms).unwrap_or(i64::MAX)
        }
        _ => false,
    }
}

/// A call 3CX listed in `ActiveCalls`, as the poll stage remembers it
/// between ticks (key `poll/active`), until [`ENDED_GRACE_MS`] after it
/// was last listed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sighting {
    /// `ActiveCall.Id`.
    pub id: i32,
    /// When the call began, as well as we know: the earlier of its
    /// `EstablishedAt` and the PBX time it was first listed. PBX clock, ms.
    pub since: i64,
    /// PBX time of the last `ActiveCalls` read that listed it, ms.
    pub last_seen: i64,
    /// Whether the latest read listed it.
    pub active: bool,
    /// PBX time of the first read that no longer listed it; the grace
    /// runs from here (not from `last_seen`, so ticks far apart never
    /// shorten it).
    #[serde(default)]
    pub gone_since: Option<i64>,
    /// The numbers on either side (`Caller`, `Callee`), digits only.
    pub numbers: Vec<String>,
}

/// One `ActiveCalls` entry of the read just made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// `ActiveCall.Id`.
    pub id: i32,
    /// `EstablishedAt`, when 3CX gave one (PBX clock, ms).
    pub established_at: Option<i64>,
    /// `Caller` and `Callee` as 3CX wrote them ("101 Alice Smith",
    /// "+14155550101").
    pub sides: Vec<String>,
}

/// The sightings after an `ActiveCalls` read at PBX time `pbx_now`:
/// calls listed now are active (kept from before, so `since` never moves
/// later); calls no longer listed stay, inactive, until
/// [`ENDED_GRACE_MS`] after they were last seen. Sorted by id.
pub fn merge_sightings(previous: &[Sighting], listed: &[Listed], pbx_now: i64) -> Vec<Sighting> {
    merge_sightings_of(previous, listed, pbx_now, true)
}

/// [`merge_sightings`] for a read that may have missed calls still in
/// progress (`complete` false: `ActiveCalls` read over several pages, while
/// calls ending between the pages shift the rest): a call listed before
/// and not now is then kept as it was, not taken as gone.
pub fn merge_sightings_of(
    previous: &[Sighting],
    listed: &[Listed],
    pbx_now: i64,
    complete: bool,
) -> Vec<Sighting> {
    let before: std::collections::HashMap<i32, &Sighting> =
        previous.iter().map(|s| (s.id, s)).collect();
    let mut out: Vec<Sighting> = Vec::with_capacity(listed.len() + previous.len());
    for call in listed {
        let first_seen = before.get(&call.id).map_or(pbx_now, |s| s.since);
        // A start in the future is a clock error: it would hold nothing.
        let since = call
            .established_at
            .map_or(first_seen, |at| at.min(first_seen))
            .min(pbx_now);
        let mut numbers: Vec<String> = call.sides.iter().filter_map(|s| party_number(s)).collect();
        numbers.sort();
        numbers.dedup();
        out.push(Sighting {
            id: call.id,
            since,
            last_seen: pbx_now,
            active: true,
            gone_since: None,
            numbers,
        });
    }
    let listed_ids: std::collections::HashSet<i32> = listed.iter().map(|c| c.id).collect();
    for old in previous {
        if listed_ids.contains(&old.id) {
            continue;
        }
        if !complete && old.active {
            out.push(old.clone());
            continue;
        }
        let gone_since = old.gone_since.unwrap_or(pbx_now);
        if pbx_now.saturating_sub(gone_since) <= ENDED_GRACE_MS {
            out.push(Sighting {
                active: false,
                gone_since: Some(gone_since),
                ..old.clone()
            });
        }
    }
    out.sort_by_key(|s| s.id);
    out
}

/// The number in an `ActiveCalls` side ("101 Alice Smith" → "101",
/// "+1 415-555-0101" → "14155550101"): the leading run of dialling
/// characters, digits only. `None` when it has no digits.
///
/// [ASSUMED] the "number name" shape of `Caller`/`Callee` (NOTES §4);
/// it is read only here.
pub fn party_number(side: &str) -> Option<String> {
    // The first run of dialling characters that holds a digit, wherever
    // it is ("Dana (+1 415-555-0101)" as well as "101 Alice Smith").
    side.split(|c: char| !(c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.')))
        .map(|run| run.chars().filter(char::is_ascii_digit).collect::<String>())
        .find(|digits| !digits.is_empty())
}

/// Whether two numbers (digits only) are the same party: equal, or, for
/// outside numbers, one ends with the other (international vs national
/// form of the same number).
pub fn same_number(a: &str, b: &str) -> bool {
    const MIN_SUFFIX: usize = 8;
    a == b || (a.len().min(b.len()) >= MIN_SUFFIX && (a.ends_with(b) || b.ends_with(a)))
}

/// Whether a call read from history is complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completeness {
    /// Post it now.
    Complete,
    /// Wait: a later segment may still come. Carries the `ActiveCalls`
    /// id that may be this call, for the log (0 when it ended after the
    /// `ActiveCalls` read and no sighting can say yet).
    Waiting(i32),
}

/// Whether the call whose visible legs are those of `numbers` (its
/// parties' numbers, digits only) and whose newest leg ended at
/// `newest_end` is complete.
///
/// A call is complete unless an `ActiveCalls` entry that may be it (same
/// number on a side, begun before the newest visible leg ended) is
/// - still listed: the call goes on, its later segments are not written
///   yet (3CX may write a queue segment before the agent's, NOTES §8); or
/// - gone, but was last listed after the newest visible leg ended, within
///   [`ENDED_GRACE_MS`]: the segment that ended the call is not visible
///   yet.
///
/// Once a leg that ended after the last sighting is visible, the call's
/// end is written: complete. A call is never held longer than the grace
/// after 3CX stopped listing it.
pub fn completeness(
    numbers: &[String],
    newest_end: i64,
    sightings: &[Sighting],
    pbx_now: i64,
) -> Completeness {
    // A segment that ended after the `ActiveCalls` read belongs to a call
    // that may have begun after that read: it has no sighting yet, and
    // its later segments may still come. The next tick decides. An end
    // further ahead than any clock drift is a clock error (a PBX clock
    // stepped back, a bad row): waiting would hold the call, and the
    // cursor, for as long as the error lasts.
    if newest_end > pbx_now && newest_end <= pbx_now.saturating_add(MAX_CLOCK_DRIFT_MS) {
        return Completeness::Waiting(0);
    }
    for s in sightings {
        let same_party = s
            .numbers
            .iter()
            .any(|n| numbers.iter().any(|m| same_number(n, m)));
        // `since` may be when the call was answered (`EstablishedAt`),
        // a moment after its queue segment ended: the slack keeps that
        // call recognised. A sighting older than the hold limit (a stuck
        // entry in 3CX) holds nothing, as it holds no cursor.
        let begun_after = s.since > newest_end.saturating_add(SIGHTING_SLACK_MS);
        let stuck = pbx_now.saturating_sub(s.since) > MAX_ACTIVE_HOLD_MS;
        if !same_party || begun_after || stuck {
            continue;
        }
        if s.active || s.last_seen > newest_end {
            return Completeness::Waiting(s.id);
        }
    }
    Completeness::Complete
}

/// What the cursor may move to after a tick.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CursorFacts {
    /// The stored cursor (`None` before the first commit).
    pub stored: Option<i64>,
    /// Start of the newest leg the poll read.
    pub newest_leg_start: Option<i64>,
    /// Starts of the calls read but not settled this tick: waiting to be
    /// complete, in flight elsewhere, retrying, or left for the next tick.
    pub unsettled_starts: Vec<i64>,
    /// The sightings of the `ActiveCalls` read made before the history
    /// read: calls whose rows may not be written yet.
    pub sightings: Vec<Sighting>,
    /// PBX time of that read, ms.
    pub pbx_now: i64,
}

/// The cursor after a tick: the newest leg read, but never past the start
/// of a call that is unsettled, still going on, or ended less than
/// [`ENDED_GRACE_MS`] ago (its rows appear when it ends, with a start far
/// behind the calls that ended after it started: NOTES §8). A call in
/// progress holds it back at most [`MAX_ACTIVE_HOLD_MS`]. Never behind the
/// stored cursor (commits only move forward).
///
/// The `ActiveCalls` read must be made *before* the history read: a call
/// that ends in between is then either listed (held) or written (read).
/// A call that *begins* in between is neither (listed too late, not
/// written yet) while a shorter one begun after it may already be read:
/// the cursor never passes `pbx_now`, the time of that read.
pub fn next_cursor(facts: &CursorFacts) -> Option<i64> {
    let mut next = match (facts.stored, facts.newest_leg_start) {
        (Some(s), Some(n)) => s.max(n),
        (s, n) => s.or(n)?,
    };
    next = next.min(facts.pbx_now);
    let floor = facts.pbx_now.saturating_sub(MAX_ACTIVE_HOLD_MS);
    for s in &facts.sightings {
        next = next.min(s.since.max(floor));
    }
    for start in &facts.unsettled_starts {
        next = next.min(*start);
    }
    Some(match facts.stored {
        Some(stored) => next.max(stored),
        None => next,
    })
}

/// Where the poll keeps its cursor (ms since the epoch, an `i64` in JSON):
/// history is read from it, less the overlap window.
pub const CURSOR_KEY: &str = "poll/cursor";

/// The cursor a commit stores: `proposed` when it is ahead of `stored`,
/// else nothing (`None`: leave the stored one). Never backwards: two
/// workers may commit out of order.
pub fn cursor_to_store(stored: Option<i64>, proposed: i64) -> Option<i64> {
    stored.is_none_or(|s| proposed > s).then_some(proposed)
}

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
