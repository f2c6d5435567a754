//! Diagnostics incidents (`connectzero::diagnostics`): one row per failure of
//! one check of one tenant, from the run that first saw it fail to the run
//! that saw it pass again.
//!
//! At most one incident per (tenant, check) is open at a time; a partial
//! unique index enforces it across every process sharing the database, so
//! a restart (or a second host) while a check keeps failing finds the open
//! incident and raises nothing new. The row also records the CRM alert
//! raised for it: the task's contact and id, whether it was completed, or
//! why it could not be delivered.

use super::Storage;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

const COLUMNS: &str = "id, tenant, check_name, detail, hint, opened_at_ms, last_seen_ms, closed_at_ms, alert_contact_id, alert_task_id, alert_error, task_completed";

/// One failure of one check, open or closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incident {
    /// Row id.
    pub id: i64,
    /// Tenant id.
    pub tenant: String,
    /// The doctor's check name, e.g. "3CX recordings access".
    pub check: String,
    /// What the latest failing run found (never a secret: doctor's texts).
    pub detail: String,
    /// The doctor's fix for it.
    pub hint: String,
    /// When a run first saw the check fail, ms since the epoch.
    pub opened_at_ms: i64,
    /// When a run last saw it fail.
    pub last_seen_ms: i64,
    /// When a run saw it pass again; `None` while open.
    pub closed_at_ms: Option<i64>,
    /// The CRM contact the alert task is on, once raised.
    pub alert_contact_id: Option<String>,
    /// The CRM task raised for it, once raised.
    pub alert_task_id: Option<String>,
    /// Why the alert could not be raised (or completed), when it could not.
    pub alert_error: Option<String>,
    /// Whether the task was marked completed after the incident closed.
    pub task_completed: bool,
}

fn incident_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Incident> {
    Ok(Incident {
        id: r.get(0)?,
        tenant: r.get(1)?,
        check: r.get(2)?,
        detail: r.get(3)?,
        hint: r.get(4)?,
        opened_at_ms: r.get(5)?,
        last_seen_ms: r.get(6)?,
        closed_at_ms: r.get(7)?,
        alert_contact_id: r.get(8)?,
        alert_task_id: r.get(9)?,
        alert_error: r.get(10)?,
        task_completed: r.get::<_, i64>(11)? != 0,
    })
}

impl Storage {
    /// A run saw `check` of `tenant` fail. Opens an incident unless one is
    /// open (then its detail and hint are brought up to date). Returns the
    /// incident and whether this call opened it.
    pub fn incident_failing(
        &self,
        tenant: &str,
        check: &str,
        detail: &str,
        hint: &str,
        now_ms: i64,
    ) -> rusqlite::Result<(Incident, bool)> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let updated = tx.execute(
            "UPDATE diagnostics_incidents SET detail = ?3, hint = ?4, last_seen_ms = ?5
             WHERE tenant = ?1 AND check_name = ?2 AND closed_at_ms IS NULL",
            params![tenant, check, detail, hint, now_ms],
        )?;
        if updated == 0 {
            tx.execute(
                "INSERT INTO diagnostics_incidents
                     (tenant, check_name, detail, hint, opened_at_ms, last_seen_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![tenant, check, detail, hint, now_ms],
            )?;
        }
        let incident = tx.query_row(
            &format!(
                "SELECT {COLUMNS} FROM diagnostics_incidents
                 WHERE tenant = ?1 AND check_name = ?2 AND closed_at_ms IS NULL"
            ),
            params![tenant, check],
            incident_from_row,
        )?;
        tx.commit()?;
        Ok((incident, updated == 0))
    }

    /// A run saw `check` of `tenant` pass: closes its open incident, if
    /// any, and returns it.
    pub fn incident_passing(
        &self,
        tenant: &str,
        check: &str,
        now_ms: i64,
    ) -> rusqlite::Result<Option<Incident>> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let open = tx
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM diagnostics_incidents
                     WHERE tenant = ?1 AND check_name = ?2 AND closed_at_ms IS NULL"
                ),
                params![tenant, check],
                incident_from_row,
            )
            .optional()?;
        let Some(mut incident) = open else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE diagnostics_incidents SET closed_at_ms = ?2 WHERE id = ?1",
            params![incident.id, now_ms],
        )?;
        tx.commit()?;
        incident.closed_at_ms = Some(now_ms);
        Ok(Some(incident))
    }

    /// `tenant`'s open incidents, oldest first.
    pub fn open_incidents(&self, tenant: &str) -> rusqlite::Result<Vec<Incident>> {
        let conn = self.lock()?;
        let mut statement = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM diagnostics_incidents
             WHERE tenant = ?1 AND closed_at_ms IS NULL ORDER BY opened_at_ms, id"
        ))?;
        statement
            .query_map(params![tenant], incident_from_row)?
            .collect()
    }

    /// Closed incidents of `tenant` whose CRM task is still open.
    pub fn incidents_with_open_tasks(&self, tenant: &str) -> rusqlite::Result<Vec<Incident>> {
        let conn = self.lock()?;
        let mut statement = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM diagnostics_incidents
             WHERE tenant = ?1 AND closed_at_ms IS NOT NULL
               AND alert_task_id IS NOT NULL AND task_completed = 0
             ORDER BY id"
        ))?;
        statement
            .query_map(params![tenant], incident_from_row)?
            .collect()
    }

    /// Claim the right to raise incident `id`'s alert: true unless it was
    /// raised already or another process claimed it less than `lease_ms`
    /// ago (a process that died holding a claim loses it after the lease).
    pub fn claim_incident_alert(
        &self,
        id: i64,
        now_ms: i64,
        lease_ms: i64,
    ) -> rusqlite::Result<bool> {
        let changed = self.lock()?.execute(
            "UPDATE diagnostics_incidents SET alert_claim_ms = ?2
             WHERE id = ?1 AND alert_task_id IS NULL AND closed_at_ms IS NULL
               AND (alert_claim_ms IS NULL OR alert_claim_ms <= ?2 - ?3)",
            params![id, now_ms, lease_ms],
        )?;
        Ok(changed == 1)
    }

    /// Incident `id`'s alert was raised as task `task_id` on `contact_id`.
    pub fn incident_alert_raised(
        &self,
        id: i64,
        contact_id: &str,
        task_id: &str,
    ) -> rusqlite::Result<()> {
        self.lock()?.execute(
            "UPDATE diagnostics_incidents SET alert_contact_id = ?2, alert_task_id = ?3,
                 alert_error = NULL, alert_claim_ms = NULL
             WHERE id = ?1",
            params![id, contact_id, task_id],
        )?;
        Ok(())
    }

    /// Incident `id`'s alert could not be raised or completed: `error`
    /// says why (shown on the status page); the claim is released so a
    /// later run tries again.
    pub fn incident_alert_failed(&self, id: i64, error: &str) -> rusqlite::Result<()> {
        self.lock()?.execute(
            "UPDATE diagnostics_incidents SET alert_error = ?2, alert_claim_ms = NULL
             WHERE id = ?1",
            params![id, error],
        )?;
        Ok(())
    }

    /// Incident `id`'s CRM task was marked completed.
    pub fn incident_task_completed(&self, id: i64) -> rusqlite::Result<()> {
        self.lock()?.execute(
            "UPDATE diagnostics_incidents SET task_completed = 1, alert_error = NULL WHERE id = ?1",
            params![id],
        )?;
        Ok(())
    }

    /// Open incidents per tenant, for the metrics.
    pub fn open_incident_counts(&self) -> rusqlite::Result<Vec<(String, i64)>> {
        let conn = self.lock()?;
        let mut statement = conn.prepare(
            "SELECT tenant, COUNT(*) FROM diagnostics_incidents
             WHERE closed_at_ms IS NULL GROUP BY tenant ORDER BY tenant",
        )?;
        statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_open_incident_per_check_until_it_passes() {
        let s = Storage::in_memory().unwrap();
        let (first, new) = s.incident_failing("t", "c", "d1", "h", 10).unwrap();
        assert!(new);
        let (again, new) = s.incident_failing("t", "c", "d2", "h", 20).unwrap();
        assert!(!new);
        assert_eq!((again.id, again.detail.as_str()), (first.id, "d2"));
        assert_eq!((again.opened_at_ms, again.last_seen_ms), (10, 20));
        assert_eq!(s.open_incidents("t").unwrap().len(), 1);
        assert!(s.claim_incident_alert(first.id, 20, 100).unwrap());
        // Claimed and within its lease: nobody else raises it.
        assert!(!s.claim_incident_alert(first.id, 50, 100).unwrap());
        s.incident_alert_raised(first.id, "contact", "task")
            .unwrap();
        assert!(!s.claim_incident_alert(first.id, 500, 100).unwrap());
        let closed = s.incident_passing("t", "c", 30).unwrap().unwrap();
        assert_eq!(closed.closed_at_ms, Some(30));
        assert!(s.incident_passing("t", "c", 40).unwrap().is_none());
        assert_eq!(s.incidents_with_open_tasks("t").unwrap().len(), 1);
        s.incident_task_completed(first.id).unwrap();
        assert!(s.incidents_with_open_tasks("t").unwrap().is_empty());
        let (next, new) = s.incident_failing("t", "c", "d3", "h", 50).unwrap();
        assert!(new && next.id != first.id);
        assert_eq!(s.open_incident_counts().unwrap(), vec![("t".into(), 1)]);
    }
}
