//! Calls from an explicit window, outside the tick: `connectzero backfill`
//! and `connectzero replay` (`connectzero::backfill`).
//!
//! The composed tick's `run-calls` handles them as a tick does — claim,
//! match, post, record, complete or release, queue the recording — but
//! the calls come from `fetch-window` and the cursor is never committed,
//! so the live poll is not disturbed. `call.started` is never raised:
//! history is not ringing now.

use super::{Pipeline, Tenant, TickReport, rule_name};
use crate::bindings::tick::exports::connectzero::pipeline::tick::Window;
use crate::bindings::types::{Call, CallFate, StageError};

/// What happened to one call given to [`Pipeline::run_calls`].
#[derive(Clone, Debug)]
pub struct CallResult {
    /// The call's key.
    pub call_key: String,
    /// What became of it: settled (posted, skipped, parked), retrying
    /// (failed for now, released), done before, or in flight elsewhere.
    pub fate: CallFate,
    /// The CRM contact, when one was matched or created.
    pub contact_id: Option<String>,
    /// The rule that matched, when one did.
    pub rule: Option<String>,
}

impl CallResult {
    /// The fate's word: "posted", "skipped", "parked", "retrying", "done"
    /// or "in-flight" ([`crate::names::fate_words`]).
    pub fn outcome(&self) -> &'static str {
        crate::names::fate_words(&self.fate).0
    }

    /// The message id, the reason, the error, or the ledger's outcome.
    pub fn detail(&self) -> String {
        crate::names::fate_words(&self.fate).1
    }
}

impl Pipeline {
    /// The same pipeline, claiming calls as `worker`. A backfill claims
    /// under one fixed name per tenant (and runs once at a time, see
    /// `connectzero::backfill`), so a re-run takes over the claims of a run that
    /// was killed instead of waiting for their leases to expire.
    pub fn with_worker(mut self, worker: impl Into<String>) -> Self {
        self.worker = worker.into();
        self
    }

    /// The calls that started in [`start`, `end`) (`tick.fetch-window`,
    /// `poll.fetch-window` inside); the cursor is neither read nor moved.
    /// `Err` is a host or component fault, the inner error what 3CX or
    /// the component reported.
    pub async fn window(
        &self,
        tenant: &Tenant,
        start: i64,
        end: i64,
    ) -> anyhow::Result<Result<Window, StageError>> {
        let _timer = crate::telemetry::stage_timer(crate::engine::Stage::Poll, "fetch-window");
        self.on_tick(
            tenant,
            async |store, tick| {
                tick.connectzero_pipeline_tick()
                    .call_fetch_window(store, &tenant.settings, start, end)
                    .await
            },
            |_| false,
        )
        .await
    }

    /// Park the rows of `window` 3CX sent that could not be read, as a
    /// tick does.
    pub fn park_rejected(&self, tenant: &Tenant, window: &Window) -> anyhow::Result<()> {
        crate::call_log::park_unreadable(&self.storage, tenant.id(), &window.unreadable)
    }

    /// Claim, match, post and record `calls`, oldest first, claiming at
    /// most `max_calls_per_tick` at a time; queue the recordings of posted
    /// calls, and their `call.ended` / `missed-call` events only when
    /// `triggers` is set (`tick.run-calls`). Counts go into `report`
    /// (`retrying` for calls that failed for now: they are released for a
    /// later run, nothing is lost). Returns one result per call.
    pub async fn run_calls(
        &self,
        tenant: &Tenant,
        calls: Vec<Call>,
        triggers: bool,
        report: &mut TickReport,
    ) -> anyhow::Result<Vec<CallResult>> {
        let options = self.options(tenant);
        let (wit_report, results) = self
            .on_tick(
                tenant,
                async |store, tick| {
                    tick.connectzero_pipeline_tick()
                        .call_run_calls(store, &options, &calls, triggers)
                        .await
                },
                |(report, _)| super::run::matched_calls(report),
            )
            .await?;
        report.add(self.apply(tenant, wit_report));
        Ok(results
            .into_iter()
            .map(|r| CallResult {
                call_key: r.call_key,
                fate: r.fate,
                contact_id: r.contact_id,
                rule: r.rule.map(|rule| rule_name(rule).to_string()),
            })
            .collect())
    }

    /// Work the tenant's due recording jobs and trigger deliveries once
    /// (at most a batch of each), without polling active calls.
    pub async fn work_due_queues(&self, tenant: &Tenant) -> anyhow::Result<TickReport> {
        let options = self.options(tenant);
        let report = self
            .on_tick(
                tenant,
                async |store, tick| {
                    tick.connectzero_pipeline_tick()
                        .call_work_queues(store, &options)
                        .await
                },
                |_| false,
            )
            .await?;
        Ok(self.apply(tenant, report))
    }
}

impl TickReport {
    /// Add the counts of `other` (a later batch of the same run); its error
    /// and backoff win when it has them.
    fn add(&mut self, other: TickReport) {
        self.polled += other.polled;
        self.posted += other.posted;
        self.skipped += other.skipped;
        self.parked += other.parked;
        self.retrying += other.retrying;
        self.duplicates += other.duplicates;
        self.in_flight += other.in_flight;
        self.rejected_rows += other.rejected_rows;
        self.attached += other.attached;
        self.attach_gave_up += other.attach_gave_up;
        self.triggers_delivered += other.triggers_delivered;
        self.calls_started += other.calls_started;
        self.deferred += other.deferred;
        self.pruned += other.pruned;
        if other.error.is_some() {
            self.error = other.error;
        }
        self.backoff = self.backoff.max(other.backoff);
    }
}
