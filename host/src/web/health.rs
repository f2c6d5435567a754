//! The tenant page's "Health" section: the open diagnostics incidents
//! (`crate::diagnostics`), each with its check, since when, what the last
//! run found, the doctor's fix, and what became of its CRM alert.

use crate::storage::{Incident, Storage};
use maud::{Markup, html};

/// The open incidents of `tenant`, oldest first.
pub(super) fn read(storage: &Storage, tenant: &str) -> rusqlite::Result<Vec<Incident>> {
    storage.open_incidents(tenant)
}

/// What became of an incident's CRM alert, in a few words.
fn alert(incident: &Incident) -> String {
    match (&incident.alert_task_id, &incident.alert_error) {
        (Some(task), _) => format!("CRM task {task} created"),
        (None, Some(error)) => format!("not in the CRM: {}", crate::redact::text(error)),
        (None, None) => "status page only".into(),
    }
}

/// The section: a table of open incidents, or a line saying all is well.
pub(super) fn section(incidents: &[Incident], now_ms: i64) -> Markup {
    html! {
        h2 { "Health" }
        @if incidents.is_empty() {
            p.muted #health-ok { "No failing checks: the last diagnostics run found nothing wrong (or none has run yet)." }
        } @else {
            table #health {
                thead { tr { th { "Check" } th { "Failing since" } th { "Found" } th { "Fix" } th { "Alert" } } }
                tbody {
                    @for i in incidents {
                        tr data-check=(i.check) {
                            td.parked { (i.check) }
                            td { (super::templates::when(i.opened_at_ms, now_ms)) }
                            td { (crate::redact::text(&i.detail)) }
                            td { (i.hint) }
                            td { (alert(i)) }
                        }
                    }
                }
            }
        }
    }
}
