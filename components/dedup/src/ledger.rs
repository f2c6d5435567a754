//! Ledger entries and the compare-and-swap claim protocol.

use crate::exports::connectzero::pipeline::dedup::Claim;
use guest_support::StageError;
use guest_support::bindings::connectzero::pipeline::types::Call;
use guest_support::bindings::wasi::keyvalue::atomics::{self, Cas, CasError};
use guest_support::bindings::wasi::keyvalue::store::Bucket;
use guest_support::kv;
use guest_support::outcomes::CallOutcome;
use guest_support::protocol::{self, ClaimDecision};

pub use guest_support::protocol::Entry;

/// The ledger in the tenant's bucket.
pub struct Ledger {
    bucket: Bucket,
}

/// Key of a leg: `ledger/<leg id>@<start ms>`.
pub fn leg_key(leg_id: i32, start_ms: i64) -> String {
    format!("ledger/{leg_id}@{start_ms}")
}

impl Ledger {
    /// Open the tenant's bucket.
    pub fn open() -> Result<Self, StageError> {
        Ok(Self {
            bucket: kv::open()?,
        })
    }

    /// Claim every leg of `call` for `worker`, or report why not.
    pub fn claim_call(
        &self,
        call: &Call,
        worker: &str,
        now: i64,
        lease_ms: u64,
    ) -> Result<Claim, StageError> {
        let keys: Vec<String> = call
            .legs
            .iter()
            .map(|l| leg_key(l.leg_id, l.start_time))
            .collect();
        let entries: Vec<Option<Entry>> = keys
            .iter()
            .map(|k| kv::get_json::<Entry>(&self.bucket, k))
            .collect::<Result<_, _>>()?;

        match protocol::decide_claim(entries.iter().map(Option::as_ref), worker, now, lease_ms) {
            ClaimDecision::AlreadyDone(outcome) => {
                // The legs not done yet join the call's outcome.
                for (key, entry) in keys.iter().zip(&entries) {
                    if protocol::joins_done_call(entry.as_ref()) {
                        kv::set_json(&self.bucket, key, &Entry::done(&call.key, &outcome, now))?;
                    }
                }
                return Ok(Claim::Done(CallOutcome::from_ledger_text(&outcome).into()));
            }
            ClaimDecision::HeldElsewhere => return Ok(Claim::InFlight),
            ClaimDecision::Take => {}
        }

        let claim = Entry::Claimed {
            call: call.key.clone(),
            worker: worker.to_string(),
            at: now,
        };
        let mut taken = Vec::new();
        for key in &keys {
            if self.try_claim_leg(key, &claim, worker, now, lease_ms)? {
                taken.push(key);
            } else {
                // Someone else won a leg between our read and our swap: give
                // back what we took so they can finish the call.
                for key in taken {
                    self.release_key(key, worker, now)?;
                }
                return Ok(Claim::InFlight);
            }
        }
        Ok(Claim::Claimed)
    }

    /// Swap `claim` into `key` unless someone else holds it. `Ok(false)` when
    /// the leg is taken (or the swap lost a race).
    fn try_claim_leg(
        &self,
        key: &str,
        claim: &Entry,
        worker: &str,
        now: i64,
        lease_ms: u64,
    ) -> Result<bool, StageError> {
        let cas = Cas::new(&self.bucket, key).map_err(kv::storage_error)?;
        let current = cas.current().map_err(kv::storage_error)?;
        let current = current.map(|bytes| decode(key, &bytes)).transpose()?;
        if !protocol::may_take_leg(current.as_ref(), worker, now, lease_ms) {
            return Ok(false);
        }
        swap(cas, claim)
    }

    /// Give back `key` if `worker` holds it.
    fn release_key(&self, key: &str, worker: &str, now: i64) -> Result<(), StageError> {
        let cas = Cas::new(&self.bucket, key).map_err(kv::storage_error)?;
        let Some(bytes) = cas.current().map_err(kv::storage_error)? else {
            return Ok(());
        };
        if protocol::may_release_leg(Some(&decode(key, &bytes)?), worker) {
            // Losing this race means someone took over a stale claim:
            // the leg is theirs now, which is what releasing wants anyway.
            swap(cas, &Entry::Released { at: now }).map(|_| ())
        } else {
            Ok(())
        }
    }

    /// Give back one leg if `worker` holds it.
    pub fn release_leg(
        &self,
        leg_id: i32,
        start: i64,
        worker: &str,
        now: i64,
    ) -> Result<(), StageError> {
        self.release_key(&leg_key(leg_id, start), worker, now)
    }

    /// Overwrite one leg's entry (the caller owns the claim).
    pub fn write(&self, leg_id: i32, start: i64, entry: &Entry) -> Result<(), StageError> {
        kv::set_json(&self.bucket, &leg_key(leg_id, start), entry)
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<Entry, StageError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StageError::Storage(format!("ledger entry {key:?} is unreadable: {e}")))
}

/// Swap `entry` in; `Ok(false)` when another writer changed the key first.
fn swap(cas: Cas, entry: &Entry) -> Result<bool, StageError> {
    let bytes = serde_json::to_vec(entry)
        .map_err(|e| StageError::Storage(format!("encoding ledger entry: {e}")))?;
    match atomics::swap(cas, &bytes) {
        Ok(()) => Ok(true),
        Err(CasError::CasFailed(_)) => Ok(false),
        Err(CasError::StoreError(e)) => Err(kv::storage_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leg_key_includes_start_so_reissued_ids_do_not_collide() {
        assert_ne!(leg_key(51234, 1_000), leg_key(51234, 2_000));
        assert_eq!(leg_key(51234, 1_000), "ledger/51234@1000");
    }

    #[test]
    fn a_fresh_claim_of_another_worker_blocks_and_a_stale_one_does_not() {
        let claim = Entry::Claimed {
            call: "c".into(),
            worker: "a".into(),
            at: 1_000,
        };
        let held = protocol::held_by_other;
        assert!(held(&claim, "b", 1_500, 1_000));
        assert!(!held(&claim, "b", 2_500, 1_000));
        assert!(!held(&claim, "a", 1_500, 1_000));
        assert!(!held(&Entry::Released { at: 0 }, "b", 1, 1_000));
    }

    #[test]
    fn entries_round_trip_as_tagged_json() {
        let done = Entry::done("3cx:1@2", "posted:m1", 5);
        let text = serde_json::to_string(&done).unwrap();
        assert!(text.contains("\"state\":\"done\""));
        assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), done);
    }
}
