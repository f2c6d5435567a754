//! What the page shows of a tenant, read from storage and from this
//! process's record of ticks.

use super::live::{PollSeen, poll_seen};
use super::settings::SettingsOverride;
use crate::config::TenantOptions;
use crate::pipeline::Tenant;
use crate::storage::{CallFilter, CallRecord, CallSummary, Storage, TenantAuth};

/// Rows shown per table.
const ROWS: usize = 50;

/// One tenant's status and settings.
pub(super) struct TenantStatus {
    pub id: String,
    /// Settings in effect (configuration with the page's applied).
    pub effective: TenantOptions,
    /// When the page's settings were saved, if they were.
    pub saved_at_ms: Option<i64>,
    pub poll: Option<PollSeen>,
    pub cursor_ms: Option<i64>,
    /// Calls handled today (UTC).
    pub today: CallSummary,
    pub attention: Vec<CallRecord>,
    pub recordings: Vec<CallRecord>,
    pub recent: Vec<CallRecord>,
    pub auth: TenantAuth,
    pub now_ms: i64,
    /// Calls parked "needs review" (`super::review`).
    pub review: Vec<crate::storage::ReviewCall>,
    /// Posted calls several contacts' number shares (`super::shared`).
    pub shared: Vec<crate::storage::SharedCall>,
    /// Open diagnostics incidents (`super::health`).
    pub health: Vec<crate::storage::Incident>,
    /// Whether HighLevel keeps calls' CRM users.
    pub attribution: crate::attribution::Attribution,
}

impl TenantStatus {
    /// Read `tenant`'s status.
    pub fn read(storage: &Storage, tenant: &Tenant) -> rusqlite::Result<Self> {
        let id = tenant.id().to_string();
        let now = chrono::Utc::now();
        let midnight = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp_millis());
        let saved = SettingsOverride::load(storage, &id)?;
        let effective = match &saved {
            Some((s, _)) => s.apply(&tenant.config.settings),
            None => tenant.config.settings.clone(),
        };
        Ok(Self {
            effective,
            saved_at_ms: saved.map(|(_, at)| at),
            poll: poll_seen(&id),
            cursor_ms: storage.poll_cursor(&id)?,
            today: storage.call_summary(&id, midnight)?,
            attention: storage.recent_calls(&id, CallFilter::NeedsAttention, ROWS)?,
            recordings: storage.recent_calls(&id, CallFilter::Recordings, ROWS)?,
            recent: storage.recent_calls(&id, CallFilter::All, ROWS)?,
            auth: storage.tenant_auth_status(&id)?,
            now_ms: now.timestamp_millis(),
            review: super::review::read(storage, &id)?,
            shared: super::shared::read(storage, &id)?,
            health: super::health::read(storage, &id)?,
            attribution: crate::attribution::Attribution::read(storage, &id)?,
            id,
        })
    }

    /// Calls today with `outcome`.
    pub fn today(&self, outcome: &str) -> i64 {
        self.today
            .outcomes
            .iter()
            .find(|(o, _)| o == outcome)
            .map_or(0, |(_, n)| *n)
    }

    /// Parked calls among those listed.
    pub fn parked(&self) -> usize {
        self.attention
            .iter()
            .filter(|c| c.outcome == "parked")
            .count()
    }

    /// Hang-up to handled of the newest call, ms.
    pub fn lag_ms(&self) -> Option<i64> {
        self.recent
            .iter()
            .find(|c| crate::storage::is_call_key(&c.call_key))
            .map(|c| (c.handled_at_ms - c.ended_at_ms).max(0))
    }
}
