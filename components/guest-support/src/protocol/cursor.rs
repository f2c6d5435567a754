//! How far the poll's cursor may move after a tick ([`next_cursor`]),
//! where it is kept, and what a commit stores (never backwards).

use super::{MAX_ACTIVE_HOLD_MS, Sighting};

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
/// [`ENDED_GRACE_MS`](super::ENDED_GRACE_MS) ago (its rows appear when it ends, with a start far
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
