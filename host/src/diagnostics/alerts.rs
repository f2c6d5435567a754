//! The alerts in the CRM: the task raised for a new incident and marked
//! completed when it closes, the contact the tasks go on, and the one
//! request path to the tenant's CRM (its token, its rate limiter).

use super::Diagnostics;
use crate::bindings::types::Service;
use crate::pipeline::Tenant;
use crate::ratelimit::Admission;
use crate::storage::Incident;
use crate::upstream::message_of;
use serde::Deserialize;
use serde_json::{Value, json};
/// `Version` of the contacts API (apps/contacts.json: create-contact,
/// create-task, update-task-completed).
const CONTACTS_VERSION: &str = "2021-07-28";

/// Storage namespace for what the runs remember besides incidents (the
/// alerts contact ConnectZero created), per tenant.
fn namespace(tenant: &str) -> String {
    format!("connectzero-diagnostics/{tenant}")
}

/// Key of the alerts contact ConnectZero created in a tenant's location.
const OWN_CONTACT_KEY: &str = "alert-contact-id";

impl Diagnostics {
    /// Create the alert task for `incident` (operationId `create-task`,
    /// `POST /contacts/{contactId}/tasks`, body `CreateTaskParams`: `title`,
    /// `body`, `dueDate`, `completed`). Returns (contact id, task id), or
    /// why not.
    pub(super) async fn raise(
        &self,
        tenant: &Tenant,
        incident: &Incident,
    ) -> Result<(String, String), String> {
        let id = tenant.id();
        let body = json!({
            "title": format!("ConnectZero: \"{}\" fails for tenant {id}", incident.check),
            "body": format!(
                "{}\n\nFix: {}\n\nCalls wait while this fails; none is lost. ConnectZero marks this task completed when the check passes again. Status page: /admin/t/{id}",
                crate::redact::text(&incident.detail),
                incident.hint
            ),
            "dueDate": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "completed": false,
        });
        // Twice at most: once more after ConnectZero's own contact was
        // found deleted in the CRM.
        for attempt in 0..2 {
            let contact = self.alert_contact(tenant).await?;
            let path = format!("/contacts/{}/tasks", urlencoding::encode(&contact));
            let (status, answer) = self
                .crm(tenant, reqwest::Method::POST, &path, &body)
                .await?;
            match status {
                200 | 201 => {
                    #[derive(Deserialize)]
                    struct Answer {
                        task: TaskId,
                    }
                    #[derive(Deserialize)]
                    struct TaskId {
                        id: String,
                    }
                    let task = serde_json::from_str::<Answer>(&answer)
                        .map_err(|_| "HighLevel's create-task answer has no task id".to_string())?;
                    return Ok((contact, task.task.id));
                }
                404 if attempt == 0 && self.forget_own_contact(tenant)? => continue,
                _ => {
                    return Err(format!(
                        "HighLevel answered {status} to create-task on contact {contact}: {}",
                        message_of(&answer)
                    ));
                }
            }
        }
        Err("HighLevel did not find the alerts contact it had just created".into())
    }

    /// Mark `incident`'s task completed (operationId
    /// `update-task-completed`, `PUT /contacts/{contactId}/tasks/{taskId}/completed`,
    /// body `UpdateTaskStatusParams` `{"completed": true}`). A task or
    /// contact deleted in the CRM meanwhile counts as done.
    pub(super) async fn complete(
        &self,
        tenant: &Tenant,
        incident: &Incident,
    ) -> Result<(), String> {
        let (Some(contact), Some(task)) = (&incident.alert_contact_id, &incident.alert_task_id)
        else {
            return Ok(());
        };
        let path = format!(
            "/contacts/{}/tasks/{}/completed",
            urlencoding::encode(contact),
            urlencoding::encode(task)
        );
        let body = json!({ "completed": true });
        match self.crm(tenant, reqwest::Method::PUT, &path, &body).await? {
            (200 | 201, _) => Ok(()),
            (404, _) => {
                tracing::info!(tenant = %tenant.id(), %task, "diagnostics: the alert task was deleted in the CRM; nothing to complete");
                Ok(())
            }
            (status, answer) => Err(format!(
                "HighLevel answered {status} to update-task-completed: {}",
                message_of(&answer)
            )),
        }
    }

    /// The contact the alert tasks go on — the one place that decides it.
    ///
    /// HighLevel has no notification API for apps, and a task needs a
    /// contact (`create-task` is `POST /contacts/{contactId}/tasks`). So:
    /// `settings.diagnostics.alert_contact_id` when set (an operator who
    /// wants them on a contact of their own, e.g. one assigned to the
    /// account's admin); otherwise a contact ConnectZero creates for itself
    /// on the first alert ("ConnectZero Alerts", tagged
    /// `connectzero-alerts`, no phone or email, so no call is ever matched
    /// to it) and remembers in storage. Why its own: alerts must work with
    /// no setup, and putting them on a real customer's contact would mix
    /// them into that customer's timeline.
    async fn alert_contact(&self, tenant: &Tenant) -> Result<String, String> {
        if let Some(configured) = &tenant.config.settings.diagnostics.alert_contact_id {
            return Ok(configured.clone());
        }
        let ns = namespace(tenant.id());
        let stored = self
            .storage
            .kv_get(&ns, OWN_CONTACT_KEY)
            .map_err(|e| format!("storage: {e}"))?;
        if let Some(id) = stored.and_then(|bytes| String::from_utf8(bytes).ok()) {
            return Ok(id);
        }
        // operationId `create-contact`, `POST /contacts/` (CreateContactDto).
        let body = json!({
            "locationId": tenant.config.crm.location_id,
            "firstName": "ConnectZero",
            "lastName": "Alerts",
            "tags": ["connectzero-alerts"],
            "source": "ConnectZero diagnostics",
        });
        let (status, answer) = self
            .crm(tenant, reqwest::Method::POST, "/contacts/", &body)
            .await?;
        if !matches!(status, 200 | 201) {
            return Err(format!(
                "HighLevel answered {status} to create-contact for the alerts contact: {}; set settings.diagnostics.alert_contact_id to an existing contact instead",
                message_of(&answer)
            ));
        }
        let id = serde_json::from_str::<Value>(&answer)
            .ok()
            .and_then(|v| v["contact"]["id"].as_str().map(str::to_string))
            .ok_or("HighLevel's create-contact answer has no contact id")?;
        // Two hosts raising different incidents at once may both get here:
        // only the first stored contact is used, so every alert of the
        // tenant lands on one contact.
        let stored_first = self
            .storage
            .kv_compare_and_swap(&ns, OWN_CONTACT_KEY, None, id.as_bytes())
            .map_err(|e| format!("storage: {e}"))?;
        if !stored_first {
            let winner = self
                .storage
                .kv_get(&ns, OWN_CONTACT_KEY)
                .map_err(|e| format!("storage: {e}"))?
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or("the alerts contact another process stored is unreadable")?;
            tracing::warn!(tenant = %tenant.id(), spare = %id, used = %winner, "diagnostics: another process created the ConnectZero Alerts contact at the same moment; the spare one (tag connectzero-alerts) can be deleted");
            return Ok(winner);
        }
        tracing::info!(tenant = %tenant.id(), contact = %id, "diagnostics: created the ConnectZero Alerts contact for alert tasks");
        Ok(id)
    }

    /// Forget ConnectZero's own alerts contact (deleted in the CRM), so
    /// the next alert creates a new one. False when the contact is the
    /// configured one: that is the operator's to fix.
    fn forget_own_contact(&self, tenant: &Tenant) -> Result<bool, String> {
        if tenant
            .config
            .settings
            .diagnostics
            .alert_contact_id
            .is_some()
        {
            return Ok(false);
        }
        self.storage
            .kv_delete(&namespace(tenant.id()), OWN_CONTACT_KEY)
            .map_err(|e| format!("storage: {e}"))?;
        Ok(true)
    }

    /// One request to the tenant's CRM with its token, through its
    /// location's rate limiter: (status, body) or why there was no answer.
    async fn crm(
        &self,
        tenant: &Tenant,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<(u16, String), String> {
        let credentials = crate::credentials::of(tenant);
        let token = credentials
            .access_token(Service::Crm)
            .await
            .map_err(|e| crate::pipeline::describe(&e))?;
        if let Some(limiter) = &tenant.crm_limiter
            && let Admission::Refused(wait) = limiter.acquire().await
        {
            return Err(format!(
                "the location's rate budget held the request back for {} s",
                wait.as_secs().max(1)
            ));
        }
        let base = tenant.config.crm.base_url.trim_end_matches('/');
        let response = self
            .http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&token)
            .header("Version", CONTACTS_VERSION)
            .json(body)
            .send()
            .await
            .map_err(|e| {
                crate::pipeline::describe(&crate::upstream::network_error(Service::Crm, &e))
            })?;
        let status = response.status().as_u16();
        if status == 401 {
            credentials.token_rejected(Service::Crm, &token);
        }
        if status == 429
            && let Some(limiter) = &tenant.crm_limiter
        {
            limiter.note_429(crate::ratelimit::parse_retry_after(
                response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()),
            ));
        }
        let text = crate::upstream::capped_text(response)
            .await
            .unwrap_or_default();
        Ok((status, text))
    }
}
