//! One tenant tick: poll → dedup → match → post → attach → trigger.
//!
//! Stages take and return whole batches, so each tick instantiates each
//! stage once (DESIGN: "batch across the component boundary"). Nothing is
//! dropped: a call that fails for a reason that may pass (network, 5xx,
//! 429, refused credentials) is released in the ledger and the cursor is
//! held before it, so the next tick retries it; a call that can never
//! succeed as it is (unreadable data, a 4xx the CRM will always give) is
//! parked with its reason.

use crate::bindings::attach::exports::connectzero::pipeline::attach::{AttachJob, AttachOutcome};
use crate::bindings::dedup::exports::connectzero::pipeline::dedup::{Claim, Completion, Outcome};
use crate::bindings::matcher::exports::connectzero::pipeline::matcher::MatchOutcome;
use crate::bindings::poll::exports::connectzero::pipeline::poll::PollBatch;
use crate::bindings::post::exports::connectzero::pipeline::post::{PostJob, Posted, Target};
use crate::bindings::trigger::exports::connectzero::pipeline::trigger::{
    CallEvent, Delivery, EventKind,
};
use crate::bindings::types::{
    Call, Direction, MatchRule, NoMatchPolicy, StageError, TenantSettings,
};
use crate::config::TenantConfig;
use crate::credentials::Credentials;
use crate::directory::Directory;
use crate::engine::{Runtime, Stage};
use crate::kv::KvCtx;
use crate::outbound::OutboundPolicy;
use crate::state::Grants;
use crate::storage::{CallRecord, Storage};
use std::sync::Arc;
use std::time::Duration;

/// How long a claim protects a call from other workers. Longer than any
/// tick takes; a worker that dies releases its calls to others after this.
pub const CLAIM_LEASE: Duration = Duration::from_secs(120);

/// A tenant as the pipeline runs it.
pub struct Tenant {
    /// Its configuration.
    pub config: TenantConfig,
    /// The settings record passed to components.
    pub settings: TenantSettings,
    /// Its token source.
    pub credentials: Arc<Credentials>,
    /// Its contact directory.
    pub directory: Arc<Directory>,
}

impl Tenant {
    /// Build the runtime view of `config`.
    pub fn new(config: TenantConfig, http: reqwest::Client) -> Self {
        let credentials = Arc::new(Credentials::new(http.clone(), &config));
        let directory = Arc::new(Directory::new(
            http,
            &config.crm.base_url,
            &config.crm.location_id,
            credentials.clone(),
        ));
        Self {
            settings: config.wit_settings(),
            config,
            credentials,
            directory,
        }
    }

    /// Tenant id.
    pub fn id(&self) -> &str {
        &self.config.id
    }
}

/// What one tick did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Calls read from 3CX (including ones already handled).
    pub polled: usize,
    /// Calls posted to the CRM.
    pub posted: usize,
    /// Calls deliberately not posted.
    pub skipped: usize,
    /// Calls parked for an operator.
    pub parked: usize,
    /// Calls that failed for now and will be retried.
    pub retrying: usize,
    /// Calls already handled earlier.
    pub duplicates: usize,
    /// Calls another worker is handling.
    pub in_flight: usize,
    /// History rows 3CX sent that could not be read.
    pub rejected_rows: usize,
    /// Why the tick could not run at all, when it could not.
    pub error: Option<String>,
    /// Wait at least this long before the next tick (a 429's Retry-After).
    pub backoff: Option<Duration>,
}

/// What to do with a call whose stage failed.
enum Disposition {
    Retry,
    Park,
}

fn disposition(error: &StageError) -> Disposition {
    match error {
        StageError::Upstream(e) if (400..500).contains(&e.status) && e.status != 408 => {
            Disposition::Park
        }
        StageError::InvalidData(_) | StageError::NotImplemented(_) => Disposition::Park,
        _ => Disposition::Retry,
    }
}

/// Readable text of a stage error.
pub fn describe(error: &StageError) -> String {
    use crate::upstream::service_name;
    match error {
        StageError::Unauthorized(e) => format!(
            "{} refused the credentials ({}): {}",
            service_name(e.service),
            e.status,
            e.message
        ),
        StageError::Forbidden(e) => format!(
            "{} denied access ({}): {} — check the API user's role and licence",
            service_name(e.service),
            e.status,
            e.message
        ),
        StageError::RateLimited(secs) => format!("rate limited; retrying after {secs} s"),
        StageError::Upstream(e) => format!(
            "{} answered {}: {}",
            service_name(e.service),
            e.status,
            e.message
        ),
        StageError::Network(m) => format!("network: {m}"),
        StageError::InvalidData(m) => format!("invalid data: {m}"),
        StageError::InvalidSettings(m) => format!("invalid settings: {m}"),
        StageError::Storage(m) => format!("storage: {m}"),
        StageError::NotImplemented(m) => format!("not implemented: {m}"),
    }
}

/// Runs ticks for tenants.
pub struct Pipeline {
    runtime: Arc<Runtime>,
    storage: Storage,
    worker: String,
}

/// A call's fate within one tick.
struct Handled {
    call: Call,
    outcome: Result<Outcome, StageError>,
    rule: Option<MatchRule>,
    contact_id: Option<String>,
}

impl Pipeline {
    /// A pipeline over `runtime` and `storage`, claiming calls as a worker
    /// with a unique name.
    pub fn new(runtime: Arc<Runtime>, storage: Storage) -> Self {
        let worker = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
        Self {
            runtime,
            storage,
            worker,
        }
    }

    /// The storage this pipeline writes.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    fn store(&self, stage: Stage, tenant: &Tenant) -> wasmtime::Store<crate::state::StoreData> {
        let s = &tenant.settings;
        let (outbound, grants) = match stage {
            Stage::Poll => (
                OutboundPolicy::allow_urls([s.pbx_base_url.as_str()]),
                self.io_grants(tenant),
            ),
            Stage::Post | Stage::Trigger | Stage::WriteBack => (
                OutboundPolicy::allow_urls([s.crm_base_url.as_str()]),
                self.io_grants(tenant),
            ),
            Stage::Attach => (
                OutboundPolicy::allow_urls([s.pbx_base_url.as_str(), s.crm_base_url.as_str()]),
                self.io_grants(tenant),
            ),
            Stage::Match => (
                OutboundPolicy::deny_all(),
                Grants {
                    credentials: None,
                    directory: Some(tenant.directory.clone()),
                },
            ),
            Stage::Dedup => (OutboundPolicy::deny_all(), Grants::default()),
        };
        let kv = KvCtx {
            namespace: tenant.id().to_string(),
            storage: self.storage.clone(),
        };
        self.runtime.new_store(stage, kv, outbound, grants)
    }

    fn io_grants(&self, tenant: &Tenant) -> Grants {
        Grants {
            credentials: Some(tenant.credentials.clone()),
            directory: None,
        }
    }

    /// Run one tick for `tenant`. `Err` means a host or component fault
    /// (a trap); expected failures are in the report.
    pub async fn tick(&self, tenant: &Tenant) -> anyhow::Result<TickReport> {
        let mut report = TickReport::default();
        let batch = match self.fetch(tenant).await? {
            Ok(batch) => batch,
            Err(error) => return Ok(report.failed(&error)),
        };
        report.polled = batch.calls.len();
        report.rejected_rows = batch.rejected.len();
        self.park_rejected_rows(tenant, &batch)?;
        if batch.calls.is_empty() {
            self.commit(tenant, batch.high_water).await?;
            return Ok(report);
        }

        let claims = match self.claim(tenant, &batch.calls).await? {
            Ok(claims) => claims,
            Err(error) => return Ok(report.failed(&error)),
        };
        let mut mine = Vec::new();
        let mut hold_cursor_at = batch.high_water;
        for (call, claim) in batch.calls.into_iter().zip(claims) {
            match claim {
                Claim::Claimed => mine.push(call),
                Claim::Done(_) => report.duplicates += 1,
                Claim::InFlight => {
                    report.in_flight += 1;
                    hold_cursor_at = hold_cursor_at.min(call.start_time);
                }
            }
        }
        let handled = self.process(tenant, mine).await?;

        let mut completions = Vec::new();
        let mut released = Vec::new();
        for h in &handled {
            match &h.outcome {
                Ok(outcome) => {
                    match outcome {
                        Outcome::Posted(_) => report.posted += 1,
                        Outcome::Skipped(_) => report.skipped += 1,
                        Outcome::Parked(_) => report.parked += 1,
                    }
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
                }
                Err(error) => {
                    report.retrying += 1;
                    if let StageError::RateLimited(secs) = error {
                        let wait = Duration::from_secs(u64::from(*secs));
                        report.backoff = Some(report.backoff.map_or(wait, |b| b.max(wait)));
                    }
                    hold_cursor_at = hold_cursor_at.min(h.call.start_time);
                    released.push(h.call.clone());
                }
            }
            self.record(tenant, h)?;
        }
        self.finish(tenant, &completions, &released).await?;
        self.after_post(tenant, &handled).await?;
        self.commit(tenant, hold_cursor_at).await?;
        Ok(report)
    }

    /// Match and post the calls this worker claimed.
    async fn process(&self, tenant: &Tenant, calls: Vec<Call>) -> anyhow::Result<Vec<Handled>> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let matches = self.match_calls(tenant, &calls).await?;
        let mut handled = Vec::with_capacity(calls.len());
        let mut jobs = Vec::new();
        for (call, matched) in calls.into_iter().zip(matches) {
            match matched {
                Ok(MatchOutcome::Matched(m)) => jobs.push(PostJob {
                    call,
                    target: Target::Contact(m.contact),
                    rule: Some(m.rule),
                    ambiguous: !m.also_matching.is_empty(),
                }),
                Ok(MatchOutcome::Unmatched(number)) => {
                    let create = matches!(
                        tenant.settings.no_match_policy,
                        NoMatchPolicy::CreateContact
                    );
                    if create && number.starts_with('+') {
                        jobs.push(PostJob {
                            call,
                            target: Target::CreateContact(number),
                            rule: None,
                            ambiguous: false,
                        });
                    } else {
                        handled.push(Handled::done(call, Outcome::Skipped("no-match".into())));
                    }
                }
                Ok(MatchOutcome::Skipped(reason)) => {
                    handled.push(Handled::done(call, Outcome::Skipped(reason)))
                }
                Err(error) => handled.push(Handled::failed(call, error)),
            }
        }
        let rules: Vec<(Option<MatchRule>, Option<String>)> = jobs
            .iter()
            .map(|j| {
                let contact = match &j.target {
                    Target::Contact(c) => Some(c.id.clone()),
                    Target::CreateContact(_) => None,
                };
                (j.rule, contact)
            })
            .collect();
        let calls: Vec<Call> = jobs.iter().map(|j| j.call.clone()).collect();
        let posted = if jobs.is_empty() {
            Vec::new()
        } else {
            self.post(tenant, jobs).await?
        };
        for ((call, result), (rule, contact)) in calls.into_iter().zip(posted).zip(rules) {
            let mut h = match result {
                Ok(Posted {
                    message_id,
                    contact_id,
                    ..
                }) => {
                    let mut h = Handled::done(call, Outcome::Posted(message_id));
                    h.contact_id = Some(contact_id);
                    h
                }
                Err(error) => {
                    let mut h = Handled::failed(call, error);
                    h.contact_id = contact;
                    h
                }
            };
            h.rule = rule;
            handled.push(h);
        }
        handled.sort_by_key(|h| h.call.start_time);
        Ok(handled)
    }

    /// Attach recordings and fire triggers for the calls just posted.
    async fn after_post(&self, tenant: &Tenant, handled: &[Handled]) -> anyhow::Result<()> {
        let posted: Vec<(&Handled, &String)> = handled
            .iter()
            .filter_map(|h| match &h.outcome {
                Ok(Outcome::Posted(id)) => Some((h, id)),
                _ => None,
            })
            .collect();
        if posted.is_empty() {
            return Ok(());
        }
        let jobs = posted
            .iter()
            .map(|(h, id)| AttachJob {
                call: h.call.clone(),
                message_id: (*id).clone(),
            })
            .collect();
        for (result, (h, _)) in self.attach(tenant, jobs).await?.into_iter().zip(&posted) {
            tracing::debug!(tenant = tenant.id(), call = %h.call.key, ?result, "attach");
        }
        let events: Vec<CallEvent> = posted
            .iter()
            .flat_map(|(h, id)| {
                let missed = !h.call.answered && matches!(h.call.direction, Direction::Inbound);
                let kinds = if missed {
                    vec![EventKind::CallEnded, EventKind::MissedCall]
                } else {
                    vec![EventKind::CallEnded]
                };
                kinds.into_iter().map(|kind| CallEvent {
                    kind,
                    call: h.call.clone(),
                    contact_id: h.contact_id.clone(),
                    message_id: Some((*id).clone()),
                })
            })
            .collect();
        for result in self.fire(tenant, events).await? {
            tracing::debug!(tenant = tenant.id(), ?result, "trigger");
        }
        Ok(())
    }

    fn park_rejected_rows(&self, tenant: &Tenant, batch: &PollBatch) -> anyhow::Result<()> {
        let now = chrono::Utc::now().timestamp_millis();
        for row in &batch.rejected {
            let key = match row.leg_id {
                Some(id) => format!("3cx-row:{id}"),
                None => format!("3cx-row:unknown:{}", row.reason),
            };
            if self.storage.call_outcome(tenant.id(), &key)?.is_none() {
                tracing::warn!(tenant = tenant.id(), row = %key, reason = %row.reason, "parked an unreadable 3CX call-history row");
            }
            self.storage.record_call(&CallRecord {
                tenant: tenant.id().to_string(),
                call_key: key,
                direction: "unknown".into(),
                caller: String::new(),
                callee: String::new(),
                outcome: "parked".into(),
                detail: row.reason.clone(),
                rule: None,
                contact_id: None,
                ended_at_ms: now,
                handled_at_ms: now,
            })?;
        }
        Ok(())
    }

    fn record(&self, tenant: &Tenant, h: &Handled) -> anyhow::Result<()> {
        let (outcome, detail) = match &h.outcome {
            Ok(Outcome::Posted(id)) => ("posted", id.clone()),
            Ok(Outcome::Skipped(reason)) => ("skipped", reason.clone()),
            Ok(Outcome::Parked(reason)) => ("parked", reason.clone()),
            Err(error) => ("retrying", describe(error)),
        };
        match &h.outcome {
            Ok(Outcome::Parked(reason)) => {
                tracing::warn!(tenant = tenant.id(), call = %h.call.key, %reason, "call parked")
            }
            Err(error) => {
                tracing::warn!(tenant = tenant.id(), call = %h.call.key, error = %describe(error), "call will be retried")
            }
            Ok(_) => {
                tracing::info!(tenant = tenant.id(), call = %h.call.key, outcome, "call handled")
            }
        }
        let callee = match h.call.direction {
            Direction::Outbound => h
                .call
                .legs
                .iter()
                .map(|l| &l.callee)
                .find(|p| p.external)
                .unwrap_or(&h.call.callee),
            _ => &h.call.callee,
        };
        self.storage.record_call(&CallRecord {
            tenant: tenant.id().to_string(),
            call_key: h.call.key.clone(),
            direction: direction_name(h.call.direction).into(),
            caller: h.call.caller.number.clone(),
            callee: callee.number.clone(),
            outcome: outcome.into(),
            detail,
            rule: h.rule.map(|r| rule_name(r).to_string()),
            contact_id: h.contact_id.clone(),
            ended_at_ms: h.call.end_time,
            handled_at_ms: chrono::Utc::now().timestamp_millis(),
        })?;
        Ok(())
    }

    // --- one function per stage invocation -------------------------------

    async fn fetch(&self, tenant: &Tenant) -> anyhow::Result<Result<PollBatch, StageError>> {
        let mut store = self.store(Stage::Poll, tenant);
        let poll = self
            .runtime
            .stages
            .poll
            .instantiate_async(&mut store)
            .await?;
        Ok(poll
            .connectzero_pipeline_poll()
            .call_fetch(&mut store, &tenant.settings)
            .await?)
    }

    async fn commit(&self, tenant: &Tenant, cursor: i64) -> anyhow::Result<()> {
        let mut store = self.store(Stage::Poll, tenant);
        let poll = self
            .runtime
            .stages
            .poll
            .instantiate_async(&mut store)
            .await?;
        if let Err(error) = poll
            .connectzero_pipeline_poll()
            .call_commit(&mut store, &tenant.settings, cursor)
            .await?
        {
            tracing::warn!(tenant = tenant.id(), error = %describe(&error), "could not move the cursor; the calls will be re-read");
        }
        Ok(())
    }

    async fn claim(
        &self,
        tenant: &Tenant,
        calls: &[Call],
    ) -> anyhow::Result<Result<Vec<Claim>, StageError>> {
        let mut store = self.store(Stage::Dedup, tenant);
        let dedup = self
            .runtime
            .stages
            .dedup
            .instantiate_async(&mut store)
            .await?;
        let lease = CLAIM_LEASE.as_millis() as u64;
        Ok(dedup
            .connectzero_pipeline_dedup()
            .call_claim_calls(&mut store, calls, &self.worker, lease)
            .await?)
    }

    /// Record final outcomes and release the calls to retry. A storage
    /// failure here is not fatal to the calls: unfinished claims expire and
    /// the calls are processed again.
    async fn finish(
        &self,
        tenant: &Tenant,
        completions: &[Completion],
        released: &[Call],
    ) -> anyhow::Result<()> {
        let mut store = self.store(Stage::Dedup, tenant);
        let dedup = self
            .runtime
            .stages
            .dedup
            .instantiate_async(&mut store)
            .await?;
        let ledger = dedup.connectzero_pipeline_dedup();
        if !completions.is_empty()
            && let Err(error) = ledger.call_complete(&mut store, completions).await?
        {
            tracing::error!(tenant = tenant.id(), error = %describe(&error), "could not record outcomes in the ledger");
        }
        if !released.is_empty()
            && let Err(error) = ledger
                .call_release(&mut store, released, &self.worker)
                .await?
        {
            tracing::warn!(tenant = tenant.id(), error = %describe(&error), "could not release calls; they retry when the lease expires");
        }
        Ok(())
    }

    async fn match_calls(
        &self,
        tenant: &Tenant,
        calls: &[Call],
    ) -> anyhow::Result<Vec<Result<MatchOutcome, StageError>>> {
        let mut store = self.store(Stage::Match, tenant);
        let matcher = self
            .runtime
            .stages
            .matcher
            .instantiate_async(&mut store)
            .await?;
        let results = matcher
            .connectzero_pipeline_matcher()
            .call_match_calls(&mut store, &tenant.settings, calls)
            .await?;
        ensure_one_per_input("match", calls.len(), results)
    }

    async fn post(
        &self,
        tenant: &Tenant,
        jobs: Vec<PostJob>,
    ) -> anyhow::Result<Vec<Result<Posted, StageError>>> {
        let mut store = self.store(Stage::Post, tenant);
        let post = self
            .runtime
            .stages
            .post
            .instantiate_async(&mut store)
            .await?;
        let results = post
            .connectzero_pipeline_post()
            .call_post_calls(&mut store, &tenant.settings, &jobs)
            .await?;
        ensure_one_per_input("post", jobs.len(), results)
    }

    async fn attach(
        &self,
        tenant: &Tenant,
        jobs: Vec<AttachJob>,
    ) -> anyhow::Result<Vec<Result<AttachOutcome, StageError>>> {
        let mut store = self.store(Stage::Attach, tenant);
        let attach = self
            .runtime
            .stages
            .attach
            .instantiate_async(&mut store)
            .await?;
        let results = attach
            .connectzero_pipeline_attach()
            .call_attach_recordings(&mut store, &tenant.settings, &jobs)
            .await?;
        ensure_one_per_input("attach", jobs.len(), results)
    }

    async fn fire(
        &self,
        tenant: &Tenant,
        events: Vec<CallEvent>,
    ) -> anyhow::Result<Vec<Result<Delivery, StageError>>> {
        let mut store = self.store(Stage::Trigger, tenant);
        let trigger = self
            .runtime
            .stages
            .trigger
            .instantiate_async(&mut store)
            .await?;
        let results = trigger
            .connectzero_pipeline_trigger()
            .call_fire(&mut store, &tenant.settings, &events)
            .await?;
        ensure_one_per_input("trigger", events.len(), results)
    }
}

/// A batch stage must answer once per input; a replacement component that
/// does not is broken, and guessing which answer belongs to which call
/// could post a call to the wrong contact.
fn ensure_one_per_input<T>(stage: &str, inputs: usize, results: Vec<T>) -> anyhow::Result<Vec<T>> {
    anyhow::ensure!(
        results.len() == inputs,
        "the {stage} component answered {} results for {inputs} inputs",
        results.len()
    );
    Ok(results)
}

impl Handled {
    fn done(call: Call, outcome: Outcome) -> Self {
        Self {
            call,
            outcome: Ok(outcome),
            rule: None,
            contact_id: None,
        }
    }

    fn failed(call: Call, error: StageError) -> Self {
        let outcome = match disposition(&error) {
            Disposition::Park => Ok(Outcome::Parked(describe(&error))),
            Disposition::Retry => Err(error),
        };
        Self {
            call,
            outcome,
            rule: None,
            contact_id: None,
        }
    }
}

impl TickReport {
    fn failed(mut self, error: &StageError) -> Self {
        self.error = Some(describe(error));
        if let StageError::RateLimited(secs) = error {
            self.backoff = Some(Duration::from_secs(u64::from(*secs)));
        }
        self
    }
}

/// "inbound", "outbound" or "internal".
pub fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
        Direction::Internal => "internal",
    }
}

/// "caller-number", "called-number" or "extension-owner".
pub fn rule_name(rule: MatchRule) -> &'static str {
    match rule {
        MatchRule::CallerNumber => "caller-number",
        MatchRule::CalledNumber => "called-number",
        MatchRule::ExtensionOwner => "extension-owner",
    }
}
