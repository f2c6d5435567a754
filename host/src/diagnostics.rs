//! Periodic self-diagnostics: `connectzero doctor`'s checks, run inside
//! the host every `settings.diagnostics.interval_mins` (default 15; 0 is
//! off), so a sync that stops (a regenerated 3CX API key, a role taken
//! away, an expired licence, a revoked HighLevel grant, a spent rate
//! budget) never stops silently.
//!
//! Each failing check is an incident in storage (`Storage::incident_failing`):
//! the first run that sees a check fail opens it and raises ONE alert in the
//! CRM sub-account (a task, [`alert_contact`] says on which contact); while
//! it keeps failing nothing more is raised, across restarts and processes
//! (the incident is in the database); the first run that sees it pass
//! closes it and marks the task completed. An alert that cannot reach the
//! CRM (when the CRM is what fails) is recorded on the incident and tried
//! again on later runs; the incident shows on the status page's Health
//! section (`crate::web`), in the log and in the
//! `connectzero_diagnostics_open_incidents` metric either way.
//!
//! [`Diagnostics::run_once`] is one run (tests call it directly);
//! [`run_tenant`] is the thin loop `connectzero run` spawns per tenant.

mod alerts;

use crate::doctor::{self, Status, TenantReport};
use crate::pipeline::Tenant;
use crate::storage::Storage;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
/// How long a process's claim on raising an alert keeps others off it: a
/// process that dies mid-request loses its claim after this.
const ALERT_LEASE_MS: i64 = 5 * 60 * 1000;

/// What one run found and did.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Every check's outcome, as doctor would print it.
    pub report: TenantReport,
    /// Checks whose incident this run opened.
    pub opened: Vec<String>,
    /// Checks whose incident this run closed.
    pub closed: Vec<String>,
    /// CRM tasks this run created.
    pub alerts_raised: usize,
    /// CRM tasks this run marked completed.
    pub tasks_completed: usize,
    /// Alerts this run could not deliver, and why.
    pub alert_errors: Vec<String>,
}

/// Runs the checks of tenants and keeps their incidents.
pub struct Diagnostics {
    storage: Storage,
    http: reqwest::Client,
}

impl Diagnostics {
    /// Runs keeping incidents in `storage`, making requests with `http`
    /// (it should time out: a PBX that hangs must not hang the run).
    pub fn new(storage: Storage, http: reqwest::Client) -> Self {
        Self { storage, http }
    }

    /// One run for `tenant`: check, open and close incidents, raise alerts
    /// for open incidents that have none yet, complete the tasks of closed
    /// ones. Errors only when the database fails.
    pub async fn run_once(&self, tenant: &Tenant) -> anyhow::Result<RunReport> {
        let id = tenant.id();
        let report = doctor::check_running(&self.http, tenant).await;
        let now = chrono::Utc::now().timestamp_millis();
        let mut run = RunReport {
            report,
            opened: Vec::new(),
            closed: Vec::new(),
            alerts_raised: 0,
            tasks_completed: 0,
            alert_errors: Vec::new(),
        };
        for check in &run.report.checks {
            match check.status {
                Status::Fail => {
                    let hint = check.hint.as_deref().unwrap_or("");
                    let (_, new) =
                        self.storage
                            .incident_failing(id, check.name, &check.detail, hint, now)?;
                    if new {
                        tracing::error!(tenant = %id, check = check.name, detail = %crate::redact::text(&check.detail), fix = %hint, "diagnostics: a check started failing");
                        run.opened.push(check.name.to_string());
                    }
                }
                Status::Pass => {
                    if self
                        .storage
                        .incident_passing(id, check.name, now)?
                        .is_some()
                    {
                        tracing::info!(tenant = %id, check = check.name, "diagnostics: the check passes again; incident closed");
                        run.closed.push(check.name.to_string());
                    }
                }
                // Unknown this time (an earlier check failed): an open
                // incident stays open, none is opened.
                Status::Skipped => {}
            }
        }
        // When HighLevel is what fails, an alert cannot reach it: say so on
        // the incident instead of sending requests bound to fail.
        let crm_down = run
            .report
            .checks
            .iter()
            .any(|c| c.name == doctor::TOKEN && c.status == Status::Fail);
        if tenant.config.settings.diagnostics.alerts_in_crm() {
            for incident in self.storage.open_incidents(id)? {
                if incident.alert_task_id.is_some()
                    || !self
                        .storage
                        .claim_incident_alert(incident.id, now, ALERT_LEASE_MS)?
                {
                    continue;
                }
                let raised = if crm_down {
                    Err("not delivered: HighLevel itself fails (see the HighLevel token check); the task is created once HighLevel answers again".to_string())
                } else {
                    self.raise(tenant, &incident).await
                };
                match raised {
                    Ok((contact, task)) => {
                        self.storage
                            .incident_alert_raised(incident.id, &contact, &task)?;
                        tracing::info!(tenant = %id, check = %incident.check, task = %task, "diagnostics: alert task created in the CRM");
                        run.alerts_raised += 1;
                    }
                    Err(error) => {
                        self.storage.incident_alert_failed(incident.id, &error)?;
                        tracing::warn!(tenant = %id, check = %incident.check, %error, "diagnostics: the alert could not be raised in the CRM; the status page shows the incident, and later runs try again");
                        run.alert_errors.push(error);
                    }
                }
            }
        }
        // Tasks raised before are completed whatever the alert setting is
        // now: an operator must not be left with a task for a fixed fault.
        if !crm_down {
            for incident in self.storage.incidents_with_open_tasks(id)? {
                match self.complete(tenant, &incident).await {
                    Ok(()) => {
                        self.storage.incident_task_completed(incident.id)?;
                        run.tasks_completed += 1;
                    }
                    Err(error) => {
                        let error = format!("the task could not be marked completed: {error}");
                        self.storage.incident_alert_failed(incident.id, &error)?;
                        tracing::warn!(tenant = %id, check = %incident.check, %error, "diagnostics: later runs try again");
                        run.alert_errors.push(error);
                    }
                }
            }
        }
        Ok(run)
    }
}
/// Run `tenant`'s diagnostics every `settings.diagnostics.interval_mins`
/// until `stop` turns true; the first run waits one interval (the doctor
/// at start-up, and the first ticks, show start-up problems sooner).
/// Returns at once when the interval is 0 (off).
pub async fn run_tenant(
    diagnostics: Arc<Diagnostics>,
    tenant: Arc<Tenant>,
    mut stop: watch::Receiver<bool>,
) {
    let minutes = tenant.config.settings.diagnostics.interval_mins;
    if minutes == 0 {
        tracing::info!(tenant = %tenant.id(), "diagnostics are off (settings.diagnostics.interval_mins = 0)");
        return;
    }
    let interval = Duration::from_secs(u64::from(minutes) * 60);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
        if let Err(error) = diagnostics.run_once(&tenant).await {
            tracing::error!(tenant = %tenant.id(), error = %format!("{error:#}"), "diagnostics run failed (database); the next run tries again");
        }
    }
}
