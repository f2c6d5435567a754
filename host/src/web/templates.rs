//! The page's HTML (maud: checked at compile time, every value escaped).
//! No scripts: forms post and the server redirects back.
//!
//! The shared layout and the small pages live here; the tenant page,
//! with its calls and settings form, is `tenant_page`.

mod charts;
mod tenant_page;

pub(super) use tenant_page::{TenantPage, tenant};

use super::PAGE_PATH;
use super::status::TenantStatus;
use crate::storage::TenantAuth;
use maud::{DOCTYPE, Markup, PreEscaped, html};
const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2330;background:#f4f6f9}
header{background:#1d2b45;color:#fff;padding:.7rem 1.5rem;display:flex;align-items:center;gap:1.5rem}
header a{color:#cfe0ff}header h1{font-size:1.15rem;margin:0}header form{margin-left:auto}
main{padding:1rem 1.5rem;max-width:1200px}
h2{font-size:1.05rem;margin:1.6rem 0 .5rem}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:.7rem}
.card{background:#fff;border:1px solid #d8dee8;border-radius:6px;padding:.6rem .8rem}
.card .label{font-size:.75rem;color:#5b6577;text-transform:uppercase;letter-spacing:.03em}
.card .value{font-size:1.3rem;font-weight:600;margin-top:.15rem}.card .sub{font-size:.8rem;color:#5b6577}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d8dee8;font-size:.85rem}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e7ebf1;vertical-align:top}
th{background:#eef1f6;font-weight:600}
.posted{color:#17663a;font-weight:600}.skipped{color:#5b6577}.parked{color:#b3261e;font-weight:600}.retrying{color:#9a5b00;font-weight:600}
.notice{padding:.6rem .8rem;border-radius:6px;margin:.6rem 0}.ok{background:#e3f4e8;border:1px solid #9fd3b0}
.bad{background:#fde8e7;border:1px solid #f0aaa5}.warn{background:#fff4de;border:1px solid #f1cf85}
form.settings{background:#fff;border:1px solid #d8dee8;border-radius:6px;padding:.8rem 1rem;max-width:640px}
form.settings label{display:block;font-weight:600;margin-top:.7rem}
form.settings .hint{font-size:.8rem;color:#5b6577;font-weight:400}
form.settings .error{color:#b3261e;font-size:.85rem}
input[type=text],select{font:inherit;padding:.25rem .4rem;min-width:14rem}
button{font:inherit;padding:.3rem .8rem;border-radius:4px;border:1px solid #8a96aa;background:#fff;cursor:pointer}
button.primary{background:#1d4ed8;color:#fff;border-color:#1d4ed8}
.charts figure{margin:0 0 .9rem}.charts figcaption{font-weight:600;font-size:.9rem;margin:0 0 .3rem}
.charts svg{display:block;max-width:760px;background:#fff;border:1px solid #d8dee8}
.muted{color:#5b6577}.demo form{display:inline-block;margin-right:.4rem}
code{font-size:.85em}
";

/// A one-line message at the top of a page.
pub(super) struct Notice {
    /// Good news or a refusal.
    pub ok: bool,
    /// What happened.
    pub text: String,
}

fn layout(title: &str, csrf: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · ConnectZero" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { a href=(PAGE_PATH) { "ConnectZero" } }
                    span { (title) }
                    @if let Some(csrf) = csrf {
                        form method="post" action={ (PAGE_PATH) "/logout" } {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn notice(notice: Option<&Notice>) -> Markup {
    html! {
        @if let Some(n) = notice {
            p id="notice" class={ "notice " (if n.ok { "ok" } else { "bad" }) } { (n.text) }
        }
    }
}

/// `16:05:03 UTC (12 s ago)`; the date too when not today.
pub(super) fn when(ms: i64, now_ms: i64) -> String {
    let Some(at) = chrono::DateTime::from_timestamp_millis(ms) else {
        return "?".into();
    };
    let now = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or(at);
    let clock = if at.date_naive() == now.date_naive() {
        at.format("%H:%M:%S UTC").to_string()
    } else {
        at.format("%Y-%m-%d %H:%M UTC").to_string()
    };
    format!("{clock} ({} ago)", span(now_ms - ms))
}

/// `850 ms`, `12 s`, `4 min`, `3 h`.
fn span(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..120_000 => format!("{:.1} s", ms as f64 / 1000.0),
        120_000..7_200_000 => format!("{} min", ms / 60_000),
        _ => format!("{} h", ms / 3_600_000),
    }
}

/// Numbers are personal data: the page shows them masked like the logs.
fn masked(number: &str) -> String {
    if number.is_empty() {
        "–".into()
    } else {
        crate::redact::phone(number).to_string()
    }
}

/// The sign-in page.
pub(super) fn login(message: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            @if let Some(m) = message { p id="notice" class="notice bad" { (m) } }
            form.settings method="post" action={ (PAGE_PATH) "/login" } {
                label for="token" { "Admin token" }
                p.hint { "The value of " code { "CONNECTZERO_ADMIN_TOKEN" } " on the host (the demo prints one when it starts)." }
                input #token type="password" name="token" autocomplete="current-password" required;
                p { button.primary #sign-in type="submit" { "Sign in" } }
            }
        },
    )
}

/// The page when no admin token is configured.
pub(super) fn disabled() -> Markup {
    layout(
        "Status page off",
        None,
        html! {
            p.notice.warn {
                "The status page is off because no admin token is set. Set "
                code { "CONNECTZERO_ADMIN_TOKEN" } " (at least 16 characters, e.g. "
                code { "openssl rand -base64 32" } ") or " code { "CONNECTZERO_ADMIN_TOKEN_FILE" }
                " and restart the host."
            }
        },
    )
}

/// Every tenant at a glance.
pub(super) fn overview(rows: &[TenantStatus], csrf: &str, now_ms: i64) -> Markup {
    layout(
        "Tenants",
        Some(csrf),
        html! {
            @let reauth: Vec<&TenantStatus> = rows.iter().filter(|r| matches!(r.auth, TenantAuth::NeedsReauthorisation { .. })).collect();
            @if !reauth.is_empty() {
                div.notice.warn #reauth {
                    strong { "Needs re-authorisation: " }
                    @for r in &reauth { a href={ (PAGE_PATH) "/t/" (r.id) } { (r.id) } " " }
                    "— an admin of the sub-account opens " code { "/t/<tenant>/oauth/install" } "."
                }
            }
            table {
                thead { tr { th { "Tenant" } th { "Last successful poll" } th { "Posted today" } th { "Skipped" } th { "Parked" } th { "Retrying" } th { "Recordings pending / given up" } th { "CRM grant" } } }
                tbody {
                    @for s in rows {
                        tr {
                            td { a href={ (PAGE_PATH) "/t/" (s.id) } { (s.id) } }
                            td { (last_poll(s, now_ms)) }
                            td { (s.today("posted")) }
                            td { (s.today("skipped")) }
                            td { (s.parked()) }
                            td { (s.today("retrying")) }
                            td { (s.today.recordings_pending) " / " (s.today.recordings_gave_up) }
                            td { (grant(&s.auth)) }
                        }
                    }
                }
            }
        },
    )
}

fn grant(auth: &TenantAuth) -> Markup {
    match auth {
        TenantAuth::Authorised => html! { span.posted { "authorised" } },
        TenantAuth::NeedsReauthorisation { .. } => {
            html! { span.parked { "needs re-authorisation" } }
        }
    }
}

fn last_poll(s: &TenantStatus, now_ms: i64) -> String {
    match s.poll.as_ref().and_then(|p| p.last_ok_ms) {
        Some(ms) => when(ms, now_ms),
        None => "not yet (since this host started)".into(),
    }
}
