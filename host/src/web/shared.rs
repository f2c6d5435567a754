//! The tenant page's "Shared numbers" section: calls posted to one of
//! several contacts with their number by a tie-breaker (by default the
//! first contact with the number), flagged so an operator can check the
//! match, each with an "also log on" button per other contact. A click
//! asks for a copy (`crate::storage::Storage::ask_copy`): the next tick
//! logs the call on that contact too, once, as its own message
//! (`components/post/src/copies.rs`). A second click changes nothing.

use super::handlers::{AppState, admitted_tenant_post, back_to, refused, storage_failed};
use super::review::CallContactForm;
use super::templates::when;
use crate::storage::{CopyAsk, CopyState, SharedCall, Storage, is_call_key};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};

/// The shared-number calls of `tenant`.
pub(super) fn read(storage: &Storage, tenant: &str) -> rusqlite::Result<Vec<SharedCall>> {
    storage.shared_calls(tenant)
}

/// The outside number of a call: the caller inbound, else the callee.
fn number(call: &SharedCall) -> String {
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

fn label(id: &str, name: &str) -> String {
    if name.is_empty() {
        id.to_string()
    } else {
        name.to_string()
    }
}

/// The section: a table of flagged calls with a button per other contact,
/// or nothing when there are none (the common case needs no heading).
pub(super) fn section(calls: &[SharedCall], base: &str, csrf: &str, now_ms: i64) -> Markup {
    html! {
        @if !calls.is_empty() {
            h2 { "Shared numbers" }
            p.muted { "Several contacts share these numbers. Each call was logged once, on the contact named (how it was chosen is in the message too). If it belongs elsewhere as well, log it there: it is posted to that contact too, once, on the next poll." }
            table #shared {
                thead { tr { th { "Call" } th { "Ended" } th { "Number" } th { "Logged on" } th { "Also log on" } } }
                tbody {
                    @for c in calls {
                        tr data-call=(c.call_key) {
                            td { code { (c.call_key) } }
                            td { (when(c.ended_at_ms, now_ms)) }
                            td { (number(c)) }
                            td { (label(&c.chosen.id, &c.chosen.name)) div.sub.muted { (c.how) } }
                            td {
                                @for (other, state) in &c.others {
                                    @let name = label(&other.id, &other.name);
                                    @match state {
                                        CopyState::Logged(_) => {
                                            span.copy.logged data-contact=(other.id) { "also logged on " (name) } " "
                                        }
                                        CopyState::Requested { attempts: 0 } => {
                                            span.copy.requested data-contact=(other.id) { (name) ": on the next poll" } " "
                                        }
                                        CopyState::Requested { attempts } => {
                                            span.copy.requested data-contact=(other.id) { (name) ": being logged (attempt " (attempts) "; one that fails for now waits longer each time, the log says why)" } " "
                                        }
                                        CopyState::None | CopyState::Refused(_) => {
                                            form method="post" style="display:inline;margin-right:.4em" action={ (base) "/copy" } {
                                                input type="hidden" name="csrf" value=(csrf);
                                                input type="hidden" name="call_key" value=(c.call_key);
                                                input type="hidden" name="contact_id" value=(other.id);
                                                button type="submit" class="also-log" data-contact=(other.id) { (name) }
                                            }
                                            @if let CopyState::Refused(why) = state {
                                                span.copy.refused.parked { "not logged: " (crate::redact::text(why)) " " }
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
}

/// `POST /admin/t/{tenant}/copy`: log a shared-number call on one more of
/// its contacts.
pub(super) async fn ask(
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
    let contact = form.contact_id.trim();
    let refuse = |status: StatusCode, text: String| refused(&state, token, tenant, status, text);
    if !is_call_key(key) || contact.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Pick a contact next to a call listed under Shared numbers.".into(),
        );
    }
    let storage = state.server.pipeline.storage();
    match storage.ask_copy(&id, key, contact) {
        // The contact's name is personal data: not logged.
        Ok(CopyAsk::Queued(_)) => {
            tracing::info!(tenant = %id, call = %key, "status page: call to be logged on another contact with its number");
            back_to(
                &id,
                &format!("notice=copy&call={}", urlencoding::encode(key)),
            )
        }
        Ok(CopyAsk::Already(why)) => refuse(
            StatusCode::CONFLICT,
            format!("Nothing to do for call {key}: {why}."),
        ),
        Ok(CopyAsk::NotShared) => refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "Call {key} was not logged on one of several contacts with its number, so it cannot be copied."
            ),
        ),
        Ok(CopyAsk::NotACandidate) => refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "That contact does not share the number of call {key}: pick one of the buttons in its row."
            ),
        ),
        Err(error) => storage_failed(error),
    }
}
