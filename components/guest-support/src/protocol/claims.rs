//! Claims: what the ledger holds for a leg ([`Entry`]) and whether a
//! worker may claim, take, release or join a call from its legs' entries.

use serde::{Deserialize, Serialize};

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
