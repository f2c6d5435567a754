//! What the page changes reaches the scheduler through here: saved
//! settings and retry requests are picked up before a tenant's next tick,
//! and each tick's result is noted for the page.

use super::settings::SettingsOverride;
use crate::pipeline::{Tenant, TickReport};
use crate::storage::Storage;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Bumped whenever this process's page saves settings or queues a retry,
/// so the tenant's next tick looks at the database at once.
static CHANGES: AtomicU64 = AtomicU64::new(0);

/// How often a tenant looks for changes made by another process sharing
/// the database (this process's own changes are seen on the next tick).
const RECHECK: Duration = Duration::from_secs(5);

/// Tell the schedulers something changed.
pub(super) fn changed() {
    CHANGES.fetch_add(1, Ordering::Release);
}

/// What the last ticks of a tenant did, as this process saw them.
#[derive(Clone, Debug, Default)]
pub(super) struct PollSeen {
    /// Last tick that polled 3CX without error, ms since the epoch.
    pub last_ok_ms: Option<i64>,
    /// Last tick, ms since the epoch.
    pub last_tick_ms: Option<i64>,
    /// Why the last tick failed, when it did.
    pub last_error: Option<String>,
}

static POLLS: LazyLock<Mutex<HashMap<String, PollSeen>>> = LazyLock::new(Default::default);

/// Note a finished tick of `tenant` for the page.
pub fn note_tick(tenant: &str, report: &TickReport) {
    let now = chrono::Utc::now().timestamp_millis();
    let mut polls = POLLS.lock().unwrap_or_else(|p| p.into_inner());
    let seen = polls.entry(tenant.to_string()).or_default();
    seen.last_tick_ms = Some(now);
    seen.last_error = report.error.clone();
    if report.error.is_none() {
        seen.last_ok_ms = Some(now);
    }
}

/// What this process knows of `tenant`'s ticks.
pub(super) fn poll_seen(tenant: &str) -> Option<PollSeen> {
    POLLS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(tenant)
        .cloned()
}

/// A tenant as the scheduler runs it: the configured tenant with the
/// settings saved on the page applied.
pub struct LiveTenant {
    base: Arc<Tenant>,
    current: Arc<Tenant>,
    applied: Option<SettingsOverride>,
    seen_changes: u64,
    checked_at: Option<Instant>,
}

impl LiveTenant {
    /// Follow the page's changes for `tenant`.
    pub fn new(tenant: Arc<Tenant>) -> Self {
        Self {
            current: tenant.clone(),
            base: tenant,
            applied: None,
            seen_changes: 0,
            checked_at: None,
        }
    }

    /// The tenant to tick now. Before returning it, applies the retries
    /// asked for on the page and picks up newly saved settings (first
    /// call: always; later: when this process saved something, or every
    /// few seconds for other processes' changes). A database error keeps
    /// the tenant as it was: the tick must not depend on the page.
    pub fn before_tick(&mut self, storage: &Storage) -> Arc<Tenant> {
        let changes = CHANGES.load(Ordering::Acquire);
        let due = self.checked_at.is_none_or(|at| at.elapsed() >= RECHECK);
        if changes == self.seen_changes && !due {
            return self.current.clone();
        }
        self.seen_changes = changes;
        self.checked_at = Some(Instant::now());
        let id = self.base.id().to_string();
        match SettingsOverride::load(storage, &id) {
            Ok(saved) => {
                let saved = saved.map(|(s, _)| s);
                if saved != self.applied {
                    self.current = match &saved {
                        Some(s) => {
                            Arc::new(self.base.with_options(s.apply(&self.base.config.settings)))
                        }
                        None => self.base.clone(),
                    };
                    tracing::info!(tenant = %id, from_page = saved.is_some(), "settings changed; in effect from this tick");
                    self.applied = saved;
                }
            }
            Err(error) => {
                tracing::warn!(tenant = %id, %error, "could not read the settings saved on the status page; keeping the current ones")
            }
        }
        self.current.clone()
    }
}

/// The scheduler runs a tenant followed by the page through this: the
/// page's saved settings before each tick, the tick noted for the page
/// after it.
impl crate::scheduler::TickObserver for LiveTenant {
    fn tenant_for_tick(&mut self, base: &Arc<Tenant>, storage: &Storage) -> Arc<Tenant> {
        debug_assert_eq!(base.id(), self.base.id(), "a LiveTenant follows one tenant");
        self.before_tick(storage)
    }

    fn tick_done(&mut self, tenant: &Tenant, report: &TickReport) {
        note_tick(tenant.id(), report);
    }
}

/// Run `tenant` on the scheduler until `stop` turns true, following the
/// page: what `connectzero run` and the demo do for every tenant, so both
/// apply the settings saved on the page and show each tick there.
pub async fn run_tenant(
    pipeline: Arc<crate::pipeline::Pipeline>,
    tenant: Arc<Tenant>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let live = LiveTenant::new(tenant.clone());
    crate::scheduler::run_tenant(pipeline, tenant, stop, live).await;
}
