//! The claim renewed right before a call is posted, so a call another
//! worker took over after the lease is never posted twice.

use super::short_answer;
use crate::connectzero::pipeline::dedup;
use crate::connectzero::pipeline::post::{self, PostJob, PostOutcome};
use crate::options::Options;
use crate::timing::time;
use guest_support::bindings::connectzero::pipeline::types::{CallOutcome, StageError};
use guest_support::outcomes::CallOutcome as PlainOutcome;

/// What became of a claimed call at the moment of posting.
pub(super) enum Renewed {
    /// The claim was still this worker's and was renewed; the post stage's
    /// answer.
    Posted(Result<PostOutcome, StageError>),
    /// Another worker took the call over (this tick ran past the lease) or
    /// finished it: not posted, and neither completed nor released here.
    Lost(LostClaim),
}

/// Renew the call's claim with compare-and-swap (claiming again: only
/// this worker's own claim, or a free leg, answers `claimed`), then post
/// it. A tick slowed by rate limits can outlive its lease; without this a
/// call another worker took over meanwhile would be posted twice.
pub(super) fn renew_and_post(options: &Options, job: &PostJob) -> Renewed {
    let renewal = time("dedup", "renew", || {
        dedup::claim_calls(
            std::slice::from_ref(&job.call),
            &options.worker,
            options.claim_lease_ms,
        )
    });
    match renewal.map(|mut claims| claims.pop()) {
        Ok(Some(dedup::Claim::Claimed)) => {
            let mut answer = time("post", "post-calls", || {
                post::post_calls(&options.settings, std::slice::from_ref(job))
            });
            Renewed::Posted(answer.pop().unwrap_or_else(|| Err(short_answer("post"))))
        }
        Ok(Some(dedup::Claim::Done(outcome))) => Renewed::Lost(LostClaim {
            why: format!(
                "another worker finished the call: {}",
                PlainOutcome::from(&outcome).ledger_text()
            ),
            finished: Some(outcome),
        }),
        Ok(Some(dedup::Claim::InFlight)) => Renewed::Lost(LostClaim {
            why: "another worker took the call over after the claim lease".into(),
            finished: None,
        }),
        Ok(None) => Renewed::Posted(Err(short_answer("dedup"))),
        Err(error) => Renewed::Posted(Err(error)),
    }
}

/// A claim that passed to another worker before the call was posted.
pub struct LostClaim {
    /// Why, for the report.
    pub(super) why: String,
    /// The other worker finished the call, with this outcome: nothing
    /// holds the cursor.
    pub(super) finished: Option<CallOutcome>,
}
