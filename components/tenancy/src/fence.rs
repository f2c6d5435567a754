//! The tick leases this request holds: kept alive while the tick works,
//! and a fence on the writes that could collide with another tick's.
//!
//! A tenant's tick lease (`take-lease`) keeps other ticks of the tenant
//! out only while it lasts, so:
//!
//! - [`keep`]: every key-value write and every outgoing request of a
//!   leased scope renews the lease first when less than a third of it is
//!   left (compare-and-swap, only while this request still holds it), so
//!   a long tick keeps its tenant. Finding another holder marks the lease
//!   lost; the write or request itself goes ahead: it finishes work this
//!   tick already owns (a posted call's ledger entry, a rotated token),
//!   and refusing it would only lose that.
//! - [`may_create`]: the first write of a key (a compare-and-swap from
//!   absent: a new call's claim, a new queue job) is refused once the lease
//!   is lost. Those are the writes two ticks could both win: Spin's SQLite
//!   store turns a swap of an absent key into an overwrite. A swap of an
//!   existing value is a true compare-and-swap and needs no fence. A
//!   refused first write is a storage failure to the stage: the call is
//!   released and left to the lease's new holder.
//!
//! Requests that hold no lease (the admin API, installs, the Update Call
//! Record action) are neither renewed nor fenced: they claim no calls.

use crate::registry;
use guest_support::StageError;
use guest_support::time::now_ms;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// A lease this request took.
#[derive(Debug, Clone)]
struct Held {
    holder: String,
    lease_ms: u64,
    until_ms: i64,
    /// Another tick took it over: every write under it is refused.
    lost: bool,
}

thread_local! {
    static HELD: RefCell<BTreeMap<String, Held>> = const { RefCell::new(BTreeMap::new()) };
}

/// Lease `id` was taken for `holder` until `until_ms`, for `lease_ms`.
pub fn taken(id: &str, holder: &str, lease_ms: u64, until_ms: i64) {
    let held = Held {
        holder: holder.to_string(),
        lease_ms,
        until_ms,
        lost: false,
    };
    HELD.with(|h| h.borrow_mut().insert(id.to_string(), held));
}

/// Lease `id` was given back: writes under it are no longer checked.
pub fn released(id: &str) {
    HELD.with(|h| h.borrow_mut().remove(id));
}

/// How much of the lease must be left for a write to go ahead without
/// renewing it: a third, so a write that takes a while to land still lands
/// inside the lease.
fn margin_ms(lease_ms: u64) -> i64 {
    i64::try_from(lease_ms / 3).unwrap_or(i64::MAX).max(1)
}

/// What a write under lease `id` must do, given `held` at `now`.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Write,
    Renew,
    Refuse,
}

fn step(held: Option<&Held>, now: i64) -> Step {
    match held {
        None => Step::Write,
        Some(h) if h.lost => Step::Refuse,
        Some(h) if now < h.until_ms.saturating_sub(margin_ms(h.lease_ms)) => Step::Write,
        Some(_) => Step::Renew,
    }
}

/// The refusal of a write under a lost lease.
fn lost(id: &str) -> StageError {
    StageError::Storage(format!(
        "this tick lost tenant {id:?}'s lease to another tick and stops writing; \
         the other tick carries on with its calls"
    ))
}

/// Renew lease `id` if it runs low; `Err` only when it is lost (another
/// tick holds it) or could not be confirmed while running low.
fn renewed(id: &str) -> Result<(), StageError> {
    let held = HELD.with(|h| h.borrow().get(id).cloned());
    match step(held.as_ref(), now_ms()) {
        Step::Write => Ok(()),
        Step::Refuse => Err(lost(id)),
        Step::Renew => {
            let held = held.expect("renewing a held lease");
            match registry::renew_lease(id, &held.holder, held.lease_ms)? {
                Some(until_ms) => {
                    taken(id, &held.holder, held.lease_ms, until_ms);
                    Ok(())
                }
                None => {
                    HELD.with(|h| {
                        if let Some(h) = h.borrow_mut().get_mut(id) {
                            h.lost = true;
                        }
                    });
                    Err(lost(id))
                }
            }
        }
    }
}

/// Before a write or request under lease `id`: renew it when it runs low.
/// Never refuses (see the module's doc).
pub fn keep(id: &str) {
    let _ = renewed(id);
}

/// Before the first write of a key under lease `id`: refused once the
/// lease is lost to another tick (or cannot be confirmed while running
/// low).
pub fn may_create(id: &str) -> Result<(), StageError> {
    renewed(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(until_ms: i64, lost: bool) -> Held {
        Held {
            holder: "w".into(),
            lease_ms: 30_000,
            until_ms,
            lost,
        }
    }

    #[test]
    fn writes_without_a_lease_are_not_fenced() {
        assert_eq!(step(None, 1_000), Step::Write);
    }

    #[test]
    fn a_lease_with_more_than_a_third_left_lets_writes_through() {
        assert_eq!(step(Some(&held(30_000, false)), 0), Step::Write);
        assert_eq!(step(Some(&held(30_000, false)), 19_999), Step::Write);
    }

    #[test]
    fn a_lease_running_low_or_expired_is_renewed_first() {
        assert_eq!(step(Some(&held(30_000, false)), 20_000), Step::Renew);
        assert_eq!(step(Some(&held(30_000, false)), 90_000), Step::Renew);
    }

    #[test]
    fn a_lost_lease_refuses_every_write() {
        assert_eq!(step(Some(&held(30_000, true)), 0), Step::Refuse);
    }

    #[test]
    fn taking_and_releasing_sets_what_is_checked() {
        taken("t1", "w", 30_000, i64::MAX);
        assert!(may_create("t1").is_ok());
        HELD.with(|h| h.borrow_mut().get_mut("t1").unwrap().lost = true);
        keep("t1");
        assert!(matches!(may_create("t1"), Err(StageError::Storage(m)) if m.contains("lost")));
        released("t1");
        assert!(may_create("t1").is_ok());
    }
}
