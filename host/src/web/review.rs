//! The tenant page's "Needs review" section: calls whose number several
//! contacts share and that no tie-breaker settled (the post stage parked
//! them, `components/post/src/ambiguity.rs`), each with one button per
//! candidate. A click assigns the call: it is posted, once, to that
//! contact on the tenant's next tick, through the same retry machinery as
//! the Retry button (`crate::storage::Storage::assign_review`). A second
//! click, or another operator's, is refused with 409.

use super::handlers::{AppState, admitted_tenant_post, back_to, refused, storage_failed};
use super::live;
use super::templates::when;
use crate::storage::{ReviewAssign, ReviewCall, Storage, is_call_key};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

/// The calls of `tenant` waiting for review.
pub(super) fn read(storage: &Storage, tenant: &str) -> rusqlite::Result<Vec<ReviewCall>> {
    storage.needs_review(tenant)
}

/// The outside number of a review call: the caller inbound, else the callee.
fn number(call: &ReviewCall) -> String {
    let n = if call.direction == "inbound" {
        &call.caller
    } else {
        &call.callee
    };
    if n.is_empty() {
        "–".into()
    } else {
        crate::redact::phone(n).to_string()
    }
}

/// The section: a table of calls with a button per candidate, or a line
/// saying none waits.
pub(super) fn section(calls: &[ReviewCall], base: &str, csrf: &str, now_ms: i64) -> Markup {
    html! {
        h2 { "Needs review" }
        @if calls.is_empty() {
            p.muted #review-empty { "None: every shared number was settled by a tie-breaker or an operator." }
        } @else {
            p.muted { "Several contacts share these numbers and no tie-breaker decided. Pick the contact: the call is posted to it once, on the next poll." }
            table #review {
                thead { tr { th { "Call" } th { "Ended" } th { "Number" } th { "Assign to" } } }
                tbody {
                    @for c in calls {
                        tr data-call=(c.call_key) {
                            td { code { (c.call_key) } }
                            td { (when(c.ended_at_ms, now_ms)) }
                            td { (number(c)) }
                            td {
                                @for candidate in &c.candidates {
                                    form method="post" style="display:inline;margin-right:.4em" action={ (base) "/review" } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="call_key" value=(c.call_key);
                                        input type="hidden" name="contact_id" value=(candidate.id);
                                        button type="submit" class="assign" data-contact=(candidate.id) {
                                            (if candidate.name.is_empty() { candidate.id.as_str() } else { candidate.name.as_str() })
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A form naming a call and one of its contacts: assigning a review call,
/// logging a shared-number call on another contact (`super::shared`).
#[derive(Deserialize)]
pub(super) struct CallContactForm {
    #[serde(default)]
    pub(super) csrf: String,
    #[serde(default)]
    pub(super) call_key: String,
    #[serde(default)]
    pub(super) contact_id: String,
}

/// `POST /admin/t/{tenant}/review`: assign a review call to a candidate.
pub(super) async fn assign(
    State(state): AppState,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CallContactForm>,
) -> Response {
    let (token, tenant) = match admitted_tenant_post(&state, &headers, &form.csrf, &id) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let key = form.call_key.trim();
    let refuse = |status: StatusCode, text: String| refused(&state, token, tenant, status, text);
    if !is_call_key(key) || form.contact_id.trim().is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Pick a contact for a call listed under Needs review.".into(),
        );
    }
    let now = chrono::Utc::now().timestamp_millis();
    let storage = state.server.pipeline.storage();
    match storage.assign_review(&id, key, form.contact_id.trim(), now) {
        // The contact's name is personal data: not logged.
        Ok(ReviewAssign::Queued(_)) => {
            live::changed();
            tracing::info!(tenant = %id, call = %key, "status page: review call assigned");
            back_to(
                &id,
                &format!("notice=assigned&call={}", urlencoding::encode(key)),
            )
        }
        Ok(ReviewAssign::NotWaiting(why)) => refuse(
            StatusCode::CONFLICT,
            format!("Call {key} is not waiting for review: {why}. Each call is assigned once."),
        ),
        Ok(ReviewAssign::NotACandidate) => refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "That contact does not share the number of call {key}: pick one of the buttons in its row."
            ),
        ),
        Err(error) => storage_failed(error),
    }
}
