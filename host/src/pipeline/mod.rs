//! One tenant tick: poll → dedup → match → post → attach → trigger.
//!
//! Stages take and return whole batches, so each tick instantiates each
//! stage once (DESIGN: "batch across the component boundary"). Nothing is
//! dropped: a call that fails for a reason that may pass (network, 5xx,
//! 429, refused credentials) is released in the ledger and the cursor is
//! held before it, so the next tick retries it; a call that can never
//! succeed as it is (unreadable data, a 4xx the CRM will always give) is
//! parked with its reason.

mod backfill;
mod followups;
mod record;
mod stages;

pub use backfill::CallResult;

use crate::bindings::dedup::exports::connectzero::pipeline::dedup::{Claim, Completion, Outcome};
use crate::bindings::matcher::exports::connectzero::pipeline::matcher::MatchOutcome;
use crate::bindings::post::exports::connectzero::pipeline::post::{
    PostJob, PostOutcome, Posted, Target,
};
use crate::bindings::types::{
    Call, Direction, MatchRule, NoMatchPolicy, StageError, TenantSettings,
};
use crate::config::TenantConfig;
use crate::credentials::Credentials;
use crate::directory::Directory;
use crate::engine::Runtime;
use crate::storage::Storage;
use guest_support::policy::{self, CallDirection, CallFacts, Decision};
use guest_support::routing::{RouteDecision, RouteFacts};
use std::sync::Arc;
use std::time::Duration;

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
    /// Its CRM location's request budget, shared with every tenant on the
    /// same app and location (`crate::ratelimit`); `None` when off.
    pub crm_limiter: Option<Arc<crate::ratelimit::LocationLimiter>>,
    /// Active calls already turned into `call.started` events by this
    /// process (the trigger queue dedups across processes and restarts;
    /// this only saves matching the same call every tick).
    started_seen: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The validated logging policy; `None` keeps the seed's behaviour.
    pub policy: Option<guest_support::policy::Policy>,
    /// The route filter on a shared 3CX (`guest_support::routing`);
    /// `None`: the tenant takes every call.
    pub route: Option<guest_support::routing::Route>,
}

impl Tenant {
    /// Build the runtime view of `config`.
    pub fn new(config: TenantConfig, http: reqwest::Client) -> Self {
        crate::metrics::learn_tenant(&config);
        let credentials = Arc::new(Credentials::new(http.clone(), &config));
        let crm_limiter = crate::ratelimit::for_location(&config.crm);
        let directory = Arc::new(
            Directory::new(
                http,
                &config.crm.base_url,
                &config.crm.location_id,
                credentials.clone(),
            )
            .with_limiter(crm_limiter.clone()),
        );
        Self {
            policy: policy_of(&config),
            route: route_of(&config),
            crm_limiter,
            settings: config.wit_settings(),
            config,
            credentials,
            directory,
            started_seen: Default::default(),
        }
    }

    /// Tenant id.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// The same tenant with other behaviour settings (the status page's,
    /// `crate::web`). Credentials and directory are shared, so tokens and
    /// the warm matcher survive the change.
    pub fn with_options(&self, options: crate::config::TenantOptions) -> Self {
        let mut config = self.config.clone();
        config.settings = options;
        Self {
            policy: policy_of(&config),
            route: route_of(&config),
            settings: config.wit_settings(),
            config,
            credentials: self.credentials.clone(),
            directory: self.directory.clone(),
            crm_limiter: self.crm_limiter.clone(),
            started_seen: Default::default(),
        }
    }
}

/// The tenant's validated logging policy. `TenantConfig::validate` refuses
/// a bad policy before a tenant is built; should one slip through, logging
/// everything (no policy) is the safe side: nothing is lost.
fn policy_of(config: &TenantConfig) -> Option<guest_support::policy::Policy> {
    config.policy().unwrap_or_else(|error| {
        tracing::warn!(tenant = %config.id, %error, "logging policy ignored");
        None
    })
}

/// The tenant's validated route. `TenantConfig::validate` refuses a bad
/// route before a tenant is built; should one slip through, the tenant
/// takes no call (each recorded as routed elsewhere) rather than every
/// call, which would post other sub-accounts' calls into its CRM.
fn route_of(config: &TenantConfig) -> Option<guest_support::routing::Route> {
    config.route().unwrap_or_else(|error| {
        tracing::error!(tenant = %config.id, %error, "route unusable: this tenant takes no call until it is fixed");
        Some(guest_support::routing::Route::takes_nothing())
    })
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
    /// Recordings attached in this tick.
    pub attached: usize,
    /// Recording jobs that gave up in this tick.
    pub attach_gave_up: usize,
    /// Trigger deliveries made in this tick (one per event and workflow).
    pub triggers_delivered: usize,
    /// `call.started` events queued in this tick.
    pub calls_started: usize,
    /// New calls left for the next tick (more than `max_calls_per_tick`).
    pub deferred: usize,
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
    /// Bounds the ticks running at once. A tick holds one component instance
    /// at a time, so this stays below the engine's instance pool: with
    /// thousands of tenants, extra ticks wait here instead of failing to
    /// instantiate (found by `connectzero bench --scenario idle-tenants`).
    ticks: tokio::sync::Semaphore,
}

/// Ticks that may run at once, per pipeline: half the instance pool, which
/// leaves room for the HTTP endpoints' write-back instances.
const CONCURRENT_TICKS: usize = crate::engine::POOL_INSTANCES as usize / 2;

/// A call's fate within one tick.
struct Handled {
    call: Call,
    outcome: Result<Outcome, StageError>,
    rule: Option<MatchRule>,
    contact_id: Option<String>,
    conversation_id: Option<String>,
    /// The CRM user the call was logged for (`posted.user-id`).
    user_id: Option<String>,
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
            ticks: tokio::sync::Semaphore::new(CONCURRENT_TICKS),
        }
    }

    /// The storage this pipeline writes.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Run only the match stage on `calls`: nothing is claimed, posted or
    /// recorded (`connectzero match`, see `dry_run.rs`).
    pub async fn dry_run_match(
        &self,
        tenant: &Tenant,
        calls: &[Call],
    ) -> anyhow::Result<Vec<Result<MatchOutcome, StageError>>> {
        self.match_calls(tenant, calls).await
    }

    /// Run one tick for `tenant`. `Err` means a host or component fault
    /// (a trap); expected failures are in the report.
    pub async fn tick(&self, tenant: &Tenant) -> anyhow::Result<TickReport> {
        // The semaphore is never closed, so acquiring cannot fail.
        let _permit = self.ticks.acquire().await?;
        let mut report = TickReport::default();
        self.sync_history(tenant, &mut report).await?;
        self.follow_up(tenant, &mut report).await?;
        crate::metrics::tick(tenant.id(), &report);
        Ok(report)
    }

    /// Poll, claim, match, post and record the calls 3CX has finished.
    async fn sync_history(&self, tenant: &Tenant, report: &mut TickReport) -> anyhow::Result<()> {
        let batch = match self.fetch(tenant).await? {
            Ok(batch) => batch,
            Err(error) => {
                return {
                    report.fail(&error);
                    Ok(())
                };
            }
        };
        report.polled = batch.calls.len();
        report.rejected_rows = batch.rejected.len();
        self.park_rejected_rows(tenant, &batch)?;
        if batch.calls.is_empty() {
            return self.commit(tenant, batch.high_water).await;
        }

        let mut hold_cursor_at = batch.high_water;
        let Some(mine) = self
            .claim_bounded(tenant, batch.calls, report, &mut hold_cursor_at)
            .await?
        else {
            return Ok(());
        };
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
        // Recordings and triggers are queued before the ledger records the
        // calls as done: a crash in between then re-runs the calls (the post
        // stage finds its message, the queues ignore repeats) instead of
        // leaving done calls whose follow-ups were never queued.
        self.after_post(tenant, &handled).await?;
        self.finish(tenant, &completions, &released).await?;
        self.commit(tenant, hold_cursor_at).await
    }

    /// Claim at most `max_calls_per_tick` new calls, oldest first, in
    /// chunks of that size: calls already done (the overlap window re-reads
    /// them every tick) do not count, and calls past the bound are not
    /// claimed at all (claimed extras of the last chunk are released). The
    /// cursor is held before the first call left for the next tick, so a
    /// tenant with a large backlog works through it a bounded batch per
    /// tick and gives its tick slot and its share of the CRM rate limit
    /// back in between. `None` when the first claim failed (the report
    /// says why).
    async fn claim_bounded(
        &self,
        tenant: &Tenant,
        mut calls: Vec<Call>,
        report: &mut TickReport,
        hold_cursor_at: &mut i64,
    ) -> anyhow::Result<Option<Vec<Call>>> {
        let bound = (tenant.config.settings.max_calls_per_tick as usize).max(1);
        calls.sort_by_key(|c| c.start_time);
        let mut rest = calls.into_iter().peekable();
        let mut mine: Vec<Call> = Vec::new();
        while mine.len() < bound && rest.peek().is_some() {
            let chunk: Vec<Call> = rest.by_ref().take(bound).collect();
            let claims = match self.claim(tenant, &chunk).await? {
                Ok(claims) => claims,
                Err(error) if mine.is_empty() => {
                    report.fail(&error);
                    return Ok(None);
                }
                Err(error) => {
                    // Work what is claimed; the rest waits for the next tick.
                    tracing::warn!(tenant = tenant.id(), error = %describe(&error), "could not claim more calls this tick");
                    *hold_cursor_at = (*hold_cursor_at).min(chunk[0].start_time);
                    break;
                }
            };
            for (call, claim) in chunk.into_iter().zip(claims) {
                match claim {
                    Claim::Claimed => mine.push(call),
                    Claim::Done(_) => report.duplicates += 1,
                    Claim::InFlight => {
                        report.in_flight += 1;
                        *hold_cursor_at = (*hold_cursor_at).min(call.start_time);
                    }
                }
            }
        }
        let extra = if mine.len() > bound {
            mine.split_off(bound)
        } else {
            Vec::new()
        };
        let deferred: Vec<Call> = extra.iter().cloned().chain(rest).collect();
        if let Some(first) = deferred.iter().map(|c| c.start_time).min() {
            report.deferred = deferred.len();
            *hold_cursor_at = (*hold_cursor_at).min(first);
            tracing::debug!(
                tenant = tenant.id(),
                deferred = deferred.len(),
                "backlog larger than one tick; the rest waits for the next"
            );
        }
        if !extra.is_empty() {
            self.finish(tenant, &[], &extra).await?;
        }
        Ok(Some(mine))
    }

    /// Match and post the calls this worker claimed.
    async fn process(&self, tenant: &Tenant, calls: Vec<Call>) -> anyhow::Result<Vec<Handled>> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let mut handled = Vec::with_capacity(calls.len());
        // Routing comes first: a call another tenant on the same 3CX takes
        // costs no directory lookup and no CRM request here.
        let calls: Vec<Call> = match &tenant.route {
            None => calls,
            Some(route) => calls
                .into_iter()
                .filter_map(|call| match route.decide(&route_facts(&call)) {
                    RouteDecision::Take => Some(call),
                    RouteDecision::Elsewhere(reason) => {
                        handled.push(Handled::done(call, Outcome::Skipped(reason)));
                        None
                    }
                })
                .collect(),
        };
        let matches = if calls.is_empty() {
            Vec::new()
        } else {
            self.match_calls(tenant, &calls).await?
        };
        let mut jobs = Vec::new();
        for (call, matched) in calls.into_iter().zip(matches) {
            let decision = match (&tenant.policy, &matched) {
                (Some(policy), Ok(outcome)) => Some(policy.decide(&policy_facts(&call, outcome))),
                _ => None,
            };
            if let Some(Decision::Ignore(reason)) = decision {
                handled.push(Handled::done(call, Outcome::Skipped(reason)));
                continue;
            }
            match matched {
                Ok(MatchOutcome::Matched(m)) => jobs.push(PostJob {
                    call,
                    target: Target::Contact(m.contact),
                    rule: Some(m.rule),
                    ambiguous: !m.also_matching.is_empty(),
                    also_matching: m.also_matching,
                }),
                Ok(MatchOutcome::Unmatched(number)) => {
                    let create = decision == Some(Decision::LogAndCreateContact)
                        || matches!(
                            tenant.settings.no_match_policy,
                            NoMatchPolicy::CreateContact
                        );
                    if create && number.starts_with('+') {
                        jobs.push(PostJob {
                            call,
                            target: Target::CreateContact(number),
                            rule: None,
                            ambiguous: false,
                            also_matching: Vec::new(),
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
                Ok(PostOutcome::Posted(Posted {
                    message_id,
                    contact_id,
                    conversation_id,
                    user_id,
                })) => {
                    let mut h = Handled::done(call, Outcome::Posted(message_id));
                    h.contact_id = Some(contact_id);
                    h.conversation_id = Some(conversation_id);
                    h.user_id = user_id;
                    h
                }
                Ok(PostOutcome::NeedsReview(candidates)) => {
                    Handled::done(call, Outcome::Parked(needs_review_reason(&candidates)))
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
}

impl Handled {
    fn done(call: Call, outcome: Outcome) -> Self {
        Self {
            call,
            outcome: Ok(outcome),
            rule: None,
            contact_id: None,
            conversation_id: None,
            user_id: None,
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
            conversation_id: None,
            user_id: None,
        }
    }
}

impl TickReport {
    fn fail(&mut self, error: &StageError) {
        self.error = Some(describe(error));
        if let StageError::RateLimited(secs) = error {
            self.backoff = Some(Duration::from_secs(u64::from(*secs)));
        }
    }
}

/// The facts the logging policy decides on. The outside number is the one
/// the match stage normalised (matched on, or unmatched); a call matched by
/// its extension's owner falls back to the raw outside number when 3CX
/// wrote it in E.164. Kept in step with `components/app/src/tick.rs`.
pub(crate) fn policy_facts(call: &Call, outcome: &MatchOutcome) -> CallFacts {
    let outside_e164 = match outcome {
        MatchOutcome::Matched(m) if !matches!(m.rule, MatchRule::ExtensionOwner) => {
            Some(m.matched_on.clone())
        }
        MatchOutcome::Unmatched(number) if number.starts_with('+') => Some(number.clone()),
        _ => {
            let outside = match call.direction {
                Direction::Inbound => Some(&call.caller),
                Direction::Outbound => call.legs.iter().map(|l| &l.callee).find(|p| p.external),
                Direction::Internal => None,
            };
            outside.and_then(|p| policy::canonical_e164(&p.number))
        }
    };
    CallFacts {
        direction: match call.direction {
            Direction::Inbound => CallDirection::Inbound,
            Direction::Outbound => CallDirection::Outbound,
            Direction::Internal => CallDirection::Internal,
        },
        answered: call.answered,
        duration_secs: call.duration_secs,
        start_ms: call.start_time,
        outside_e164,
        // `guest_support::legs::reached_voicemail` (the Spin app's tick and
        // the post stage's call status), on the host's own binding of
        // `call`, which that function cannot take.
        voicemail: !call.answered
            && call.legs.last().is_some_and(|l| {
                matches!(l.callee.kind, crate::bindings::types::DnKind::Voicemail)
            }),
    }
}

/// What routing looks at in a call from 3CX's history: its DID (read from
/// the first leg's called side) and every extension it reached or came
/// from, derived by `RouteFacts::of_call` (shared with the Spin app's
/// `components/app/src/tick.rs`).
pub(crate) fn route_facts(call: &Call) -> RouteFacts {
    RouteFacts::of_call(
        matches!(call.direction, Direction::Inbound),
        &call.callee.number,
        call.callee.extension.as_deref(),
        extensions(call),
    )
}

/// What routing looks at in an active call (`active_to_call`): the same,
/// except that an inbound call whose `Callee` text names no DID has an
/// unknown DID (`RouteFacts::of_active_call`), so `call.started` by DID
/// needs the DID in 3CX's active-call text. As the Spin app's `components/app/src/tick.rs`.
pub(crate) fn active_route_facts(call: &Call) -> RouteFacts {
    RouteFacts::of_active_call(
        matches!(call.direction, Direction::Inbound),
        &call.callee.number,
        call.callee.extension.as_deref(),
        extensions(call),
    )
}

/// Each leg's caller and callee DN, in leg order.
fn extensions(call: &Call) -> impl Iterator<Item = Option<&str>> {
    call.legs.iter().flat_map(|leg| {
        [
            leg.caller.extension.as_deref(),
            leg.callee.extension.as_deref(),
        ]
    })
}

/// Prefix of the park reason of a call whose number several contacts
/// share and no tie-breaker settled; the status page lists these calls
/// for an operator to assign (`crate::web`). Shared with the Spin app
/// (`guest_support::review`).
pub use guest_support::review::NEEDS_REVIEW;

/// The park reason of a call the post stage left for review, e.g. "needs
/// review: 2 contacts share this number (contacts a1, b2); …": the text
/// of `guest_support::review::needs_review_reason`, pointing at the status
/// page (the status page shows the names from the post stage's review
/// entry; the reason, which is logged, has ids only).
pub fn needs_review_reason(candidates: &[crate::bindings::types::ContactRef]) -> String {
    guest_support::review::needs_review_reason(
        candidates.iter().map(|c| c.id.as_str()),
        guest_support::review::ReviewPlace::StatusPage,
    )
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
