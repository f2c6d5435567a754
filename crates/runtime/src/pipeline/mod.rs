//! One tenant tick, run by the composed tick component.
//!
//! The orchestration — poll → dedup → match → post → call log → ledger →
//! attach → trigger — is the `tick` component (`components/tick`), composed
//! with the stages by the same wac graph as the Spin app
//! (`connectzero_compose::Deployable::Tick`). The host runs it in a store
//! holding the tenant's grants (fresh, or the tenant's warm one), passes
//! the tenant's settings (`run.rs`), writes down each call, recording and
//! workflow delivery through the `call-log` import (`crate::call_log`) and
//! turns the report into metrics, log lines and the backoff.
//!
//! Nothing is dropped: a call that fails for a reason that may pass
//! (network, 5xx, 429, refused credentials) is released in the ledger and
//! the cursor is held before it, so the next tick retries it; a call that
//! can never succeed as it is (unreadable data, a 4xx the CRM will always
//! give) is parked with its reason.

mod backfill;
pub mod replay;
mod run;
pub mod settings;
mod stages;

pub use backfill::CallResult;

use crate::bindings::matcher::exports::connectzero::matcher::matcher::MatchOutcome;
use crate::bindings::types::{Call, LoggingPolicy, Routing, StageError, TenantSettings};
use crate::config::TenantConfig;
use crate::credentials::TokenSource;
use crate::directory::ContactDirectory;
use crate::engine::Runtime;
use crate::storage::Storage;
use std::sync::Arc;
use std::time::Duration;

/// A tenant as the pipeline runs it.
pub struct Tenant {
    /// Its configuration.
    pub config: TenantConfig,
    /// The settings record passed to components.
    pub settings: TenantSettings,
    /// Its token source.
    pub credentials: Arc<dyn TokenSource>,
    /// Its contact directory.
    pub directory: Arc<dyn ContactDirectory>,
    /// Its CRM location's request budget, shared with every tenant on the
    /// same app and location (`crate::ratelimit`); `None` when off.
    pub crm_limiter: Option<Arc<crate::ratelimit::LocationLimiter>>,
    /// The validated logging policy as the tick takes it
    /// (`[tenants.settings.policy]`); `None`: log every call.
    pub policy: Option<LoggingPolicy>,
    /// Which calls of its 3CX the tenant takes, as the tick takes it (the
    /// route with the other tenants' claims in `elsewhere`).
    pub routing: Routing,
    /// Its Update Call Record invocations running at once
    /// (`connectzero::server`'s gate).
    pub action_slots: Arc<tokio::sync::Semaphore>,
    /// Asks 3CX whether anything changed since a quiet tick, without
    /// running the pipeline (`crate::scheduler`); `None`: every tick runs.
    pub probe: Option<Arc<dyn crate::quiet::QuietProbe>>,
}

/// Update Call Record invocations running at once for one tenant.
pub const MAX_ACTIONS_PER_TENANT: usize = 4;

impl Tenant {
    /// The runtime view of `config`, over its token source, its contact
    /// directory and its CRM location's request budget (the host builds
    /// them: `connectzero::connect::tenant`).
    pub fn new(
        config: TenantConfig,
        credentials: Arc<dyn TokenSource>,
        directory: Arc<dyn ContactDirectory>,
        crm_limiter: Option<Arc<crate::ratelimit::LocationLimiter>>,
    ) -> Self {
        crate::telemetry::sink().tenant_services(&config.pbx.base_url, &config.crm.base_url);
        Self {
            probe: None,
            policy: logging_policy(&config),
            routing: routing(&config),
            crm_limiter,
            settings: settings::settings_record(&config),
            config,
            credentials,
            directory,
            action_slots: Arc::new(tokio::sync::Semaphore::new(MAX_ACTIONS_PER_TENANT)),
        }
    }

    /// Tenant id.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// The same tenant with other behaviour settings (the status page's,
    /// `connectzero::web`). Credentials and directory are shared, so tokens and
    /// the warm tick survive the change.
    pub fn with_options(&self, options: crate::config::TenantOptions) -> Self {
        let mut config = self.config.clone();
        config.settings = options;
        Self {
            policy: logging_policy(&config),
            routing: routing(&config),
            settings: settings::settings_record(&config),
            config,
            credentials: self.credentials.clone(),
            directory: self.directory.clone(),
            crm_limiter: self.crm_limiter.clone(),
            action_slots: self.action_slots.clone(),
            probe: self.probe.clone(),
        }
    }
}

/// The tenant's validated logging policy. `TenantConfig::validate`
/// refuses a bad policy before a tenant is built; should one slip through,
/// logging everything (no policy) is the safe side: nothing is lost.
fn logging_policy(config: &TenantConfig) -> Option<LoggingPolicy> {
    match config.policy() {
        Ok(policy) => policy.map(|p| p.config().into()),
        Err(error) => {
            tracing::warn!(tenant = %config.id, %error, "logging policy ignored");
            None
        }
    }
}

/// The tenant's validated route, with its peers' claims. `TenantConfig::validate`
/// refuses a bad route before a tenant is built; should one slip through,
/// the tenant takes no call (its calls wait in 3CX) rather than every
/// call, which would post other sub-accounts' calls into its CRM.
fn routing(config: &TenantConfig) -> Routing {
    match config.route() {
        Ok(None) => Routing::EveryCall,
        Ok(Some(route)) => Routing::ByRoute((&route.to_config()).into()),
        Err(error) => {
            tracing::error!(tenant = %config.id, %error, "route unusable: this tenant takes no call until it is fixed");
            // "route.<setting>: <problem>", as start-up would have said it.
            Routing::NoCall(format!("{error:#}"))
        }
    }
}

pub use crate::report::TickReport;

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
    /// Per tenant, when its call log is next pruned (ms since the epoch).
    call_log_pruned_at: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    /// Update Call Record invocations running at once on this host.
    action_slots: Arc<tokio::sync::Semaphore>,
}

/// Update Call Record invocations running at once on one host.
pub const MAX_ACTIONS: usize = 16;

/// Most call-log rows one tick deletes: a day's calls of a busy tenant
/// go within minutes of ticks, and no tick holds the database for long.
const CALL_LOG_ROWS_PER_TICK: usize = 1_000;

/// How often a tenant's call log is pruned once it is caught up.
const CALL_LOG_PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Ticks that may run at once, per pipeline: half the instance pool, which
/// leaves room for the HTTP endpoints' write-back instances.
const CONCURRENT_TICKS: usize = crate::engine::POOL_INSTANCES as usize / 2;

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
            call_log_pruned_at: Default::default(),
            action_slots: Arc::new(tokio::sync::Semaphore::new(MAX_ACTIONS)),
        }
    }

    /// The storage this pipeline writes.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The host's Update Call Record slots (`connectzero::server`'s gate).
    pub fn action_slots(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.action_slots
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
        self.apply_status_page_retries(tenant).await;
        let mut report = self.run_tick(tenant).await?;
        report.pruned += self.forget_old_call_log_rows(tenant);
        crate::telemetry::sink().tick(tenant.id(), &report);
        Ok(report)
    }

    /// Whether `tenant` may skip its next tick: nothing waits on the status
    /// page (a retry or a copy asked for) and its 3CX shows nothing new
    /// since the quiet tick that read `window` (`crate::scheduler`). A
    /// database error counts as "no": the tick runs.
    pub async fn still_quiet(&self, tenant: &Tenant, window: &crate::report::QuietWindow) -> bool {
        let Some(probe) = tenant.probe.clone() else {
            return false;
        };
        let now = self.runtime.clock.now_ms();
        let asked = self
            .storage
            .pending_retries(tenant.id(), now, 1)
            .map(|r| !r.is_empty())
            .unwrap_or(true)
            || self.storage.has_copy_requests(tenant.id()).unwrap_or(true);
        !asked
            && probe
                .unchanged(window.clone(), tenant.credentials.clone())
                .await
    }

    /// Delete a bounded batch of the tenant's call-log rows older than its
    /// `call_log_days` (none when 0). Each tick while a batch was full,
    /// else every [`CALL_LOG_PRUNE_EVERY`], so an idle tenant's ticks do
    /// not scan its old parked rows each time. A failure is logged and
    /// retried later: the rows only take space.
    pub fn forget_old_call_log_rows(&self, tenant: &Tenant) -> usize {
        let days = tenant.config.settings.call_log_days;
        if days == 0 {
            return 0;
        }
        let now = self.runtime.clock.now_ms();
        let id = tenant.id();
        let mut next = self
            .call_log_pruned_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if next.get(id).is_some_and(|at| now < *at) {
            return 0;
        }
        let before = now - i64::from(days) * 86_400_000;
        let pruned = match self
            .storage()
            .prune_calls(id, before, CALL_LOG_ROWS_PER_TICK)
        {
            Ok(pruned) => pruned,
            Err(error) => {
                tracing::warn!(tenant = id, %error, "could not delete old call-log rows; retried later");
                0
            }
        };
        let wait = if pruned == CALL_LOG_ROWS_PER_TICK {
            0
        } else {
            CALL_LOG_PRUNE_EVERY.as_millis() as i64
        };
        next.insert(id.to_string(), now + wait);
        pruned
    }
}

// The names and wording of calls and errors live in a leaf module, so the
// capabilities can use them without depending on the pipeline.
pub use crate::names::{NEEDS_REVIEW, describe, direction_name, needs_review_reason, rule_name};

#[cfg(test)]
mod tests {
    use super::*;

    /// A tenant from TOML with `settings`, not validated (as a config that
    /// slipped past `TenantConfig::validate` would be).
    fn tenant(settings: &str) -> TenantConfig {
        toml::from_str(&format!(
            "id = \"a\"\n[pbx]\nbase_url = \"https://pbx.example.com\"\nclient_id = \"c\"\n[crm]\nlocation_id = \"L\"\nconversation_provider_id = \"p\"\nclient_id = \"c\"\n[settings]\n{settings}"
        ))
        .unwrap()
    }

    #[test]
    fn no_route_takes_every_call_and_a_route_goes_over_as_checked() {
        assert!(matches!(routing(&tenant("")), Routing::EveryCall));
        let Routing::ByRoute(route) =
            routing(&tenant("[settings.route]\ndids = [\"+44 20 7946 0000\"]"))
        else {
            panic!("a valid route is sent as a route");
        };
        // Canonical E.164, as the tick will check it again.
        assert_eq!(route.claims.dids, ["+442079460000"]);
    }

    #[test]
    fn an_unusable_route_takes_no_call_and_says_why() {
        let Routing::NoCall(why) = routing(&tenant("[settings.route]\ndids = [\"01615550100\"]"))
        else {
            panic!("an unusable route must never take every call");
        };
        assert!(why.starts_with("route.dids: "), "{why}");
    }

    #[test]
    fn a_policy_goes_over_as_written_and_an_unusable_one_logs_everything() {
        let policy = logging_policy(&tenant("[settings.policy]\nmissed = \"ignore\"")).unwrap();
        assert_eq!(policy.missed, crate::bindings::types::CallAction::Ignore);
        assert!(logging_policy(&tenant("")).is_none());
        assert!(logging_policy(&tenant("[settings.policy]\nown_numbers = [\"x\"]")).is_none());
    }
}
