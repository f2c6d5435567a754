//! When a call read from 3CX's history is complete ([`completeness`]):
//! posted now, or waiting for a segment that may still be written.

use super::{MAX_ACTIVE_HOLD_MS, MAX_CLOCK_DRIFT_MS, SIGHTING_SLACK_MS, Sighting, same_number};

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
///   [`ENDED_GRACE_MS`](super::ENDED_GRACE_MS): the segment that ended the call is not visible
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
