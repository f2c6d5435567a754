//! # The dedup stage — the exactly-once ledger
//!
//! Every leg of a call is claimed under the key `(leg id, leg start time)`
//! with `wasi:keyvalue/atomics` compare-and-swap, so
//! - a leg id 3CX reissues after a backup restore (same id, new start time)
//!   is a new key and a new call;
//! - the same leg read again by the next poll's overlap window is not;
//! - two replicas, or a worker and its restarted self, never both own a call.
//!
//! A claim carries the worker's name and time. A claim older than the lease
//! belongs to a worker that died, and may be taken over, so a crash never
//! strands a call.
//!
//! It depends on `guest-support` and on what the `dedup-stage` world grants
//! (the key-value store and its compare-and-swap): never on the host, the
//! runtime or another stage.

mod ledger;

use guest_support::StageError;
use guest_support::bindings::connectzero::pipeline::types::Call;
use ledger::{Entry, Ledger};

guest_support::stage_bindings!(ledger "dedup-stage");

use exports::connectzero::pipeline::dedup::{Claim, Completion, Guest};
use guest_support::outcomes::CallOutcome;

struct Dedup;

impl Guest for Dedup {
    fn claim_calls(
        calls: Vec<Call>,
        worker: String,
        lease_ms: u64,
    ) -> Result<Vec<Claim>, StageError> {
        let ledger = Ledger::open()?;
        let now = guest_support::time::now_ms();
        calls
            .iter()
            .map(|call| ledger.claim_call(call, &worker, now, lease_ms))
            .collect()
    }

    fn complete(completions: Vec<Completion>) -> Result<(), StageError> {
        let ledger = Ledger::open()?;
        let now = guest_support::time::now_ms();
        for completion in completions {
            let outcome = CallOutcome::from(&completion.outcome).ledger_text();
            for (leg_id, start) in &completion.legs {
                ledger.write(
                    *leg_id,
                    *start,
                    &Entry::done(&completion.call_key, &outcome, now),
                )?;
            }
        }
        Ok(())
    }

    fn release(calls: Vec<Call>, worker: String) -> Result<(), StageError> {
        let ledger = Ledger::open()?;
        let now = guest_support::time::now_ms();
        for call in &calls {
            for leg in &call.legs {
                ledger.release_leg(leg.leg_id, leg.start_time, &worker, now)?;
            }
        }
        Ok(())
    }
}

// Exported only when building the component: a native build (unit tests)
// would otherwise put WIT export names into the host linker's symbol list.
#[cfg(target_arch = "wasm32")]
export!(Dedup);
