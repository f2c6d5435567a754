//! Which 3CX calls are still going on: the calls `ActiveCalls` listed
//! ([`Sighting`]), merged read after read, and the party numbers they are
//! recognised by.

use super::ENDED_GRACE_MS;
use serde::{Deserialize, Serialize};

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
