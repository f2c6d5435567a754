//! Calls from an explicit window, outside the tick: `connectzero backfill`
//! and `connectzero replay` (`crate::backfill`).
//!
//! The same stages as a tick — claim, match, post, record, complete or
//! release, queue the recording — but the calls come from
//! `poll.fetch-window` and the cursor is never committed, so the live poll
//! is not disturbed. `call.started` is never raised: history is not
//! ringing now.

use super::{Handled, Pipeline, Tenant, TickReport, describe, rule_name};
use crate::bindings::dedup::exports::connectzero::pipeline::dedup::{Claim, Completion, Outcome};
use crate::bindings::poll::exports::connectzero::pipeline::poll::PollBatch;
use crate::bindings::types::{Call, StageError};
use std::time::Duration;

/// What happened to one call given to [`Pipeline::run_calls`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallResult {
    /// The call's key.
    pub call_key: String,
    /// "posted", "skipped", "parked", "retrying" (failed for now, released),
    /// "done" (handled before: the ledger's outcome is in `detail`) or
    /// "in-flight" (another worker holds it).
    pub outcome: String,
    /// Message id, skip or park reason, error, or the ledger's outcome.
    pub detail: String,
    /// The CRM contact, when one was matched or created.
    pub contact_id: Option<String>,
    /// The rule that matched, when one did.
    pub rule: Option<String>,
}

impl CallResult {
    fn other(call: &Call, outcome: &str, detail: String) -> Self {
        Self {
            call_key: call.key.clone(),
            outcome: outcome.to_string(),
            detail,
            contact_id: None,
            rule: None,
        }
    }
}

impl Pipeline {
    /// The same pipeline, claiming calls as `worker`. A backfill claims
    /// under one fixed name per tenant (and runs once at a time, see
    /// `crate::backfill`), so a re-run takes over the claims of a run that
    /// was killed instead of waiting for their leases to expire.
    pub fn with_worker(mut self, worker: impl Into<String>) -> Self {
        self.worker = worker.into();
        self
    }

    /// The calls that started in [`start`, `end`) (`poll.fetch-window`);
    /// the cursor is neither read nor moved. `Err` is a host or component
    /// fault, the inner error what 3CX or the component reported.
    pub async fn window(
        &self,
        tenant: &Tenant,
        start: i64,
        end: i64,
    ) -> anyhow::Result<Result<PollBatch, StageError>> {
        self.fetch_window(tenant, start, end).await
    }

    /// Park the rows of `batch` 3CX sent that could not be read, as a tick
    /// does.
    pub fn park_rejected(&self, tenant: &Tenant, batch: &PollBatch) -> anyhow::Result<()> {
        self.park_rejected_rows(tenant, batch)
    }

    /// Claim, match, post and record `calls`, oldest first, claiming at
    /// most `max_calls_per_tick` at a time; queue the recordings of posted
    /// calls, and their `call.ended` / `missed-call` events only when
    /// `triggers` is set. Counts go into `report` (`retrying` for calls
    /// that failed for now: they are released for a later run, nothing is
    /// lost). Returns one result per call.
    pub async fn run_calls(
        &self,
        tenant: &Tenant,
        mut calls: Vec<Call>,
        triggers: bool,
        report: &mut TickReport,
    ) -> anyhow::Result<Vec<CallResult>> {
        calls.sort_by_key(|c| c.start_time);
        let bound = (tenant.config.settings.max_calls_per_tick as usize).max(1);
        let mut results = Vec::with_capacity(calls.len());
        for chunk in calls.chunks(bound) {
            let claims = match self.claim(tenant, chunk).await? {
                Ok(claims) => claims,
                Err(error) => {
                    // Nothing of this chunk was claimed: all of it waits
                    // for the next run.
                    report.fail(&error);
                    report.retrying += chunk.len();
                    results.extend(
                        chunk
                            .iter()
                            .map(|c| CallResult::other(c, "retrying", describe(&error))),
                    );
                    continue;
                }
            };
            let mut mine = Vec::new();
            for (call, claim) in chunk.iter().zip(claims) {
                match claim {
                    Claim::Claimed => mine.push(call.clone()),
                    Claim::Done(outcome) => {
                        report.duplicates += 1;
                        results.push(CallResult::other(call, "done", outcome));
                    }
                    Claim::InFlight => {
                        report.in_flight += 1;
                        results.push(CallResult::other(
                            call,
                            "in-flight",
                            "another worker holds the call".into(),
                        ));
                    }
                }
            }
            let handled = self.process(tenant, mine).await?;
            results.extend(self.settle(tenant, &handled, report, triggers).await?);
        }
        Ok(results)
    }

    /// Record each handled call in the call log, queue the follow-ups of
    /// the posted ones, then the ledger (complete, or release to retry), in
    /// a tick's order.
    async fn settle(
        &self,
        tenant: &Tenant,
        handled: &[Handled],
        report: &mut TickReport,
        triggers: bool,
    ) -> anyhow::Result<Vec<CallResult>> {
        let mut completions = Vec::new();
        let mut released = Vec::new();
        let mut results = Vec::with_capacity(handled.len());
        for h in handled {
            let (outcome, detail) = match &h.outcome {
                Ok(outcome) => {
                    completions.push(Completion {
                        call_key: h.call.key.clone(),
                        legs: h
                            .call
                            .legs
                            .iter()
                            .map(|l| (l.leg_id, l.start_time))
                            .collect(),
                        outcome: outcome.clone(),
                    });
                    match outcome {
                        Outcome::Posted(id) => {
                            report.posted += 1;
                            ("posted", id.clone())
                        }
                        Outcome::Skipped(reason) => {
                            report.skipped += 1;
                            ("skipped", reason.clone())
                        }
                        Outcome::Parked(reason) => {
                            report.parked += 1;
                            ("parked", reason.clone())
                        }
                    }
                }
                Err(error) => {
                    report.retrying += 1;
                    if let StageError::RateLimited(secs) = error {
                        let wait = Duration::from_secs(u64::from(*secs));
                        report.backoff = Some(report.backoff.map_or(wait, |b| b.max(wait)));
                    }
                    released.push(h.call.clone());
                    ("retrying", describe(error))
                }
            };
            self.record(tenant, h)?;
            results.push(CallResult {
                call_key: h.call.key.clone(),
                outcome: outcome.to_string(),
                detail,
                contact_id: h.contact_id.clone(),
                rule: h.rule.map(|r| rule_name(r).to_string()),
            });
        }
        // Follow-ups before the ledger: see `Pipeline::sync_history`.
        self.after_post_with(tenant, handled, triggers).await?;
        self.finish(tenant, &completions, &released).await?;
        Ok(results)
    }

    /// Work the tenant's due recording jobs and trigger deliveries once
    /// (at most a batch of each), without polling active calls.
    pub async fn work_due_queues(&self, tenant: &Tenant) -> anyhow::Result<TickReport> {
        let mut report = TickReport::default();
        self.work_queues(tenant, &mut report).await?;
        Ok(report)
    }
}
