//! The tenant page's HTML: health, status, parked and failed calls with
//! their actions, recordings, recent calls and the settings form.

use super::{Notice, grant, last_poll, layout, masked, notice, span, when};
use crate::storage::{CallRecord, TenantAuth};
use crate::web::PAGE_PATH;
use crate::web::settings::{FieldError, POLL_INTERVAL_MS, RECORDING_WINDOW_SECS, SettingsForm};
use crate::web::status::TenantStatus;
use maud::{Markup, html};
/// Everything the tenant page shows.
pub(in crate::web) struct TenantPage<'a> {
    pub status: &'a TenantStatus,
    /// The last 24 hours by hour (`crate::web::charts`).
    pub charts: &'a crate::web::charts::Charts,
    pub csrf: &'a str,
    pub notice: Option<Notice>,
    /// The settings form as shown: the effective settings, or what was
    /// typed when it needs fixing.
    pub form: SettingsForm,
    pub errors: Vec<FieldError>,
    /// Buttons to place demo calls, `(kind, label)`.
    pub demo: Vec<(&'static str, &'static str)>,
}

/// One tenant.
pub(in crate::web) fn tenant(page: &TenantPage<'_>) -> Markup {
    let s = page.status;
    let base = format!("{PAGE_PATH}/t/{}", s.id);
    layout(
        &format!("Tenant {}", s.id),
        Some(page.csrf),
        html! {
            p.muted { a href=(PAGE_PATH) { "All tenants" } " · " a href=(base) { "Refresh" } " · times in UTC" }
            (notice(page.notice.as_ref()))
            @if let TenantAuth::NeedsReauthorisation { reason, since_ms } = &s.auth {
                div.notice.warn #reauth {
                    strong { "Needs re-authorisation" } " since " (when(*since_ms, s.now_ms)) ": " (crate::redact::text(reason))
                    ". Calls wait meanwhile; an admin of the sub-account opens "
                    code { "/t/" (s.id) "/oauth/install" } " to approve the app again."
                }
            }
            (crate::web::health::section(&s.health, s.now_ms))
            h2 { "Status" }
            div.cards #status {
                div.card { div.label { "Last successful poll" } div.value #last-poll { (last_poll(s, s.now_ms)) }
                    @if let Some(error) = s.poll.as_ref().and_then(|p| p.last_error.as_ref()) {
                        div.sub.parked { "last tick failed: " (crate::redact::text(error)) }
                    } }
                div.card { div.label { "Lag" } div.value #lag { (s.lag_ms().map_or("–".to_string(), span)) } div.sub { "hang-up to handled, newest call" } }
                div.card { div.label { "Posted today" } div.value #today-posted { (s.today("posted")) } }
                div.card { div.label { "Skipped today" } div.value #today-skipped { (s.today("skipped")) } }
                div.card { div.label { "Parked today" } div.value #today-parked { (s.today("parked")) } }
                div.card { div.label { "Retrying" } div.value #today-retrying { (s.today("retrying")) } div.sub { "failed for now; retried every tick" } }
                div.card { div.label { "Recordings pending" } div.value #recordings-pending { (s.today.recordings_pending) } }
                div.card { div.label { "Call attribution to CRM users" } div.value #attribution { (s.attribution.describe()) }
                    @if let Some(at) = s.attribution.checked_at_ms() { div.sub { "checked " (when(at, s.now_ms)) } } }
                div.card { div.label { "Recordings given up" } div.value #recordings-gave-up { (s.today.recordings_gave_up) } }
                div.card { div.label { "CRM grant" } div.value { (grant(&s.auth)) } }
                div.card { div.label { "Poll cursor" } div.value { (s.cursor_ms.map_or("–".to_string(), |c| when(c, s.now_ms))) } div.sub { "start of the newest call read" } }
            }

            (super::charts::section(page.charts))
            (crate::web::review::section(&s.review, &base, page.csrf, s.now_ms))
            (crate::web::shared::section(&s.shared, &base, page.csrf, s.now_ms))
            h2 { "Parked and failed calls" }
            @if s.attention.is_empty() {
                p.muted #attention-empty { "None: every call was posted or deliberately skipped." }
            } @else {
                table #attention {
                    thead { tr { th { "Call" } th { "Direction" } th { "From → to" } th { "State" } th { "Reason" } th { "Handled" } th { "" } } }
                    tbody {
                        @for c in &s.attention {
                            tr data-call=(c.call_key) data-outcome=(c.outcome) {
                                td { code { (c.call_key) } }
                                td { (c.direction) }
                                td { (masked(&c.caller)) " → " (masked(&c.callee)) }
                                td class=(c.outcome) { (c.outcome) }
                                td { (crate::redact::text(&c.detail)) }
                                td { (when(c.handled_at_ms, s.now_ms)) }
                                td { (call_action(c, &base, page.csrf)) }
                            }
                        }
                    }
                }
            }

            h2 { "Recordings and 3CX insights pending or given up" }
            @if s.recordings.is_empty() {
                p.muted { "None." }
            } @else {
                table #recordings {
                    thead { tr { th { "Call" } th { "From → to" } th { "Recording" } th { "3CX insights" } th { "Call ended" } } }
                    tbody {
                        @for c in &s.recordings {
                            tr data-call=(c.call_key) {
                                td { code { (c.call_key) } }
                                td { (masked(&c.caller)) " → " (masked(&c.callee)) }
                                td class=(state_class(&c.recording)) { (crate::redact::text(&c.recording)) }
                                td.insights class=(state_class(&c.insights)) { (crate::redact::text(&c.insights)) }
                                td { (when(c.ended_at_ms, s.now_ms)) }
                            }
                        }
                    }
                }
            }

            h2 { "Settings" }
            (settings_form(page, &base))

            @if !page.demo.is_empty() {
                h2 { "Demo: place a call" }
                div.demo #demo {
                    p.muted { "Puts a call into the 3CX simulator as if it just ended; the next poll picks it up." }
                    @for (kind, label) in &page.demo {
                        form method="post" action={ (base) "/demo-call" } {
                            input type="hidden" name="csrf" value=(page.csrf);
                            input type="hidden" name="kind" value=(kind);
                            button type="submit" id={ "demo-" (kind) } { (label) }
                        }
                    }
                }
            }

            h2 { "Recent calls" }
            table #recent {
                thead { tr { th { "Call" } th { "Direction" } th { "From → to" } th { "Outcome" } th { "Rule" } th { "Detail" } th { "Recording" } th { "Insights" } th { "Handled" } } }
                tbody {
                    @for c in &s.recent {
                        tr data-call=(c.call_key) data-outcome=(c.outcome) {
                            td { code { (c.call_key) } }
                            td { (c.direction) }
                            td { (masked(&c.caller)) " → " (masked(&c.callee)) }
                            td class=(c.outcome) { (c.outcome) }
                            td { (c.rule.as_deref().unwrap_or("–"))
                                @if s.shared.iter().any(|shared| shared.call_key == c.call_key) {
                                    " " span.shared-number.parked title="several contacts share the number: see Shared numbers" { "shared number" }
                                } }
                            td { (crate::redact::text(&c.detail)) }
                            td { (crate::redact::text(&c.recording)) }
                            td.insights { (crate::redact::text(&c.insights)) }
                            td { (when(c.handled_at_ms, s.now_ms)) }
                        }
                    }
                }
            }
        },
    )
}

/// The class of a recording or insights state: waiting, or needing an
/// operator's eye (given up), or neither.
fn state_class(state: &str) -> &'static str {
    match state {
        "pending" => "retrying",
        s if s.starts_with("gave-up") => "parked",
        _ => "",
    }
}

fn call_action(c: &CallRecord, base: &str, csrf: &str) -> Markup {
    match c.outcome.as_str() {
        "parked" if c.detail.starts_with(crate::pipeline::NEEDS_REVIEW) => {
            html! { span.muted { "assign it under Needs review" } }
        }
        "parked" if crate::storage::is_call_key(&c.call_key) => html! {
            form method="post" action={ (base) "/retry" } {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="call_key" value=(c.call_key);
                button type="submit" class="retry" { "Retry" }
            }
        },
        "parked" => {
            html! { span.muted { "an unreadable 3CX row: fix it in 3CX; it is read again while inside the overlap window" } }
        }
        _ => html! { span.muted { "retried automatically" } },
    }
}

fn field_error(errors: &[FieldError], field: &str) -> Markup {
    html! {
        @for e in errors.iter().filter(|e| e.field == field) {
            div.error id={ "error-" (field) } { (e.message) }
        }
    }
}

fn settings_form(page: &TenantPage<'_>, base: &str) -> Markup {
    let f = &page.form;
    let s = page.status;
    html! {
        form.settings #settings method="post" action={ (base) "/settings" } {
            input type="hidden" name="csrf" value=(page.csrf);
            @if !page.errors.is_empty() {
                p.notice.bad #settings-errors { "Not saved: fix the fields marked below." }
            }
            p.hint {
                @match s.saved_at_ms {
                    Some(at) => { "Saved on this page " (when(at, s.now_ms)) "; the configuration's values apply to everything not shown here." }
                    None => { "As configured. Changes saved here are kept in the database and override the configuration." }
                }
                " They take effect from the tenant's next poll."
            }
            label {
                input #log_internal_calls type="checkbox" name="log_internal_calls" checked[f.log_internal_calls.is_some()];
                " Post internal (extension-to-extension) calls"
            }
            label for="default_country" { "Default country" span.hint { " — for numbers written without +, ISO 3166-1 alpha-2 (US, GB, DE…)" } }
            input #default_country type="text" name="default_country" value=(f.default_country) maxlength="8";
            (field_error(&page.errors, "default_country"))
            label for="no_match_policy" { "When no contact matches" }
            select #no_match_policy name="no_match_policy" {
                option value="skip" selected[f.no_match_policy == "skip"] { "skip the call (default: keeps spam and robocalls out of the CRM)" }
                option value="create-contact" selected[f.no_match_policy == "create-contact"] { "create a contact for the number" }
                @if !matches!(f.no_match_policy.as_str(), "skip" | "create-contact") {
                    option value=(f.no_match_policy) selected { (f.no_match_policy) }
                }
            }
            (field_error(&page.errors, "no_match_policy"))
            label for="recording_window_secs" { "Recording window, seconds" span.hint { " — how long to wait for 3CX to finalise a recording (" (RECORDING_WINDOW_SECS.start()) "–" (RECORDING_WINDOW_SECS.end()) ")" } }
            input #recording_window_secs type="text" inputmode="numeric" name="recording_window_secs" value=(f.recording_window_secs);
            (field_error(&page.errors, "recording_window_secs"))
            label for="poll_interval_ms" { "Poll interval, milliseconds" span.hint { " — " (POLL_INTERVAL_MS.start()) "–" (POLL_INTERVAL_MS.end()) } }
            input #poll_interval_ms type="text" inputmode="numeric" name="poll_interval_ms" value=(f.poll_interval_ms);
            (field_error(&page.errors, "poll_interval_ms"))
            label {
                input #call_timeline type="checkbox" name="call_timeline" checked[f.call_timeline.is_some()];
                " List the segments (IVR, queue, transfers) of a call in its CRM message"
            }
            label for="tie_breakers" { "Shared numbers: tie-breakers" span.hint { " — in order, comma-separated: assigned-user, recent-conversation, first-contact (the oldest contact: always decides); without first-contact, undecided calls go to Needs review; \"none\" sends every shared number there" } }
            input #tie_breakers type="text" name="tie_breakers" value=(f.tie_breakers);
            (field_error(&page.errors, "tie_breakers"))
            p {
                button.primary #save type="submit" { "Save settings" }
                " "
                @if s.saved_at_ms.is_some() {
                    button #reset type="submit" name="reset" value="1" { "Use the configuration's values" }
                }
            }
        }
    }
}
