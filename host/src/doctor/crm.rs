//! The HighLevel checks: the refresh token still works for the tenant's
//! location, and the grant's scopes cover what the pipeline does.
//!
//! HighLevel reports the granted scopes only in the token endpoint's answer
//! (`scope` of `get-access-token`, HighLevel NOTES §2.2), so the check
//! refreshes. Refresh tokens are single-use and rotate (§2.3): the new one
//! is stored (encrypted, `crate::secrets`) before anything else happens,
//! where `connectzero run` takes it from, so running doctor never costs the
//! tenant its grant.

use super::report::Check;
use super::transport_problem;
use crate::bindings::types::{Service, StageError};
use crate::config::{CrmConfig, Secret, check_base_url};
use crate::credentials::Credentials;
use crate::ratelimit::{Admission, LocationLimiter};
use crate::storage::TenantAuth;
use crate::upstream::message_of;
use serde::Deserialize;

/// Check names, as printed.
pub const TOKEN: &str = "HighLevel token";
/// See [`TOKEN`].
pub const SCOPES: &str = "HighLevel scopes";
/// See [`TOKEN`].
pub const RATE_BUDGET: &str = "HighLevel rate budget";

/// The rate budget line fails when less than this share (percent) of the
/// daily limit HighLevel reports is left: the calls stop once it is spent.
const LOW_DAILY_BUDGET_PERCENT: u64 = 10;

/// The scopes the pipeline uses, and what for (HighLevel NOTES §2.5, §4.1,
/// §5.1).
pub const REQUIRED_SCOPES: [(&str, &str); 7] = [
    ("contacts.readonly", "matching calls to contacts"),
    (
        "contacts.write",
        "creating contacts and writing notes and tags back",
    ),
    ("conversations.readonly", "finding a contact's conversation"),
    ("conversations.write", "creating a contact's conversation"),
    (
        "conversations/message.readonly",
        "checking a call was not posted already",
    ),
    (
        "conversations/message.write",
        "posting calls and attaching recordings",
    ),
    (
        "workflows.readonly",
        "workflow triggers and the Update Call Record action",
    ),
];

/// The scopes line for the `scope` a token answer reported (space
/// separated; `None` when it reported none).
pub fn scopes_check(tenant: &str, granted: Option<&str>) -> Check {
    let Some(granted) = granted else {
        return Check::fail(
            SCOPES,
            "HighLevel did not report the granted scopes",
            reinstall_hint(tenant, "with every scope listed in the README"),
        );
    };
    let granted: Vec<&str> = granted.split_whitespace().collect();
    let missing: Vec<String> = REQUIRED_SCOPES
        .iter()
        .filter(|(scope, _)| !granted.contains(scope))
        .map(|(scope, why)| format!("{scope} ({why})"))
        .collect();
    if missing.is_empty() {
        return Check::pass(
            SCOPES,
            format!("all {} scopes the pipeline uses", REQUIRED_SCOPES.len()),
        );
    }
    Check::fail(
        SCOPES,
        format!("missing {}", missing.join(", ")),
        reinstall_hint(
            tenant,
            "after adding the missing scopes to the app's Scopes in the HighLevel marketplace developer portal and, if it is set, to tenants.oauth.scopes (a grant keeps the scopes it was installed with)",
        ),
    )
}

fn reinstall_hint(tenant: &str, how: &str) -> String {
    let how = if how.is_empty() {
        String::new()
    } else {
        format!(" {how}")
    };
    format!(
        "re-install the app for this sub-account{how}: with `connectzero run --listen` serving, open https://<this host>/t/{tenant}/oauth/install in a browser and approve the location (the install stores the new tokens), then run connectzero doctor again"
    )
}

/// `GetAccessCodeSuccessfulResponseDto`, the fields doctor reads.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    refresh_token: Option<String>,
    scope: Option<String>,
    #[serde(rename = "locationId")]
    location_id: Option<String>,
}

/// Run the HighLevel checks of one tenant. `crm` carries the secrets as
/// `connectzero run` would use them; `marked` is the reason the tenant is
/// marked "needs re-authorisation", if it is; `save` stores a rotated
/// refresh token where `run` will find it.
pub async fn check(
    http: &reqwest::Client,
    tenant: &str,
    crm: &CrmConfig,
    marked: Option<&str>,
    save: impl FnOnce(&Secret) -> anyhow::Result<()>,
) -> Vec<Check> {
    let location = &crm.location_id;
    let base = crm.base_url.trim_end_matches('/');
    let fail = |detail: String, hint: String| {
        vec![
            Check::fail(TOKEN, detail, hint),
            Check::skipped(SCOPES, "no HighLevel token"),
            Check::skipped(RATE_BUDGET, "no HighLevel token"),
        ]
    };
    if let Err(error) = check_base_url(base) {
        return fail(
            format!("not contacted: {error:#}"),
            format!(
                "set tenants.crm.base_url to {} or remove it (plain http is refused except to loopback test servers)",
                crate::config::HIGHLEVEL_API
            ),
        );
    }
    // `run` does not refresh a marked tenant (HighLevel would refuse it
    // again), so neither does doctor: the mark is what holds the calls.
    if let Some(reason) = marked {
        return fail(
            format!("marked \"needs re-authorisation\", its calls wait: {reason}"),
            reinstall_hint(tenant, ""),
        );
    }
    let old = crm.refresh_token.expose();
    if old.is_empty() {
        return fail(
            format!("no refresh token for location {location}"),
            reinstall_hint(tenant, ""),
        );
    }
    let form = [
        ("client_id", crm.client_id.as_str()),
        ("client_secret", crm.client_secret.expose()),
        ("grant_type", "refresh_token"),
        ("refresh_token", old),
        ("user_type", "Location"),
    ];
    let response = match http
        .post(format!("{base}/oauth/token"))
        .form(&form)
        .send()
        .await
    {
        Ok(response) => response,
        Err(error) => {
            let (detail, hint) = transport_problem("HighLevel", base, &error);
            return fail(detail, hint);
        }
    };
    let status = response.status().as_u16();
    let body = match crate::upstream::capped_text(response).await {
        Ok(body) => body,
        Err(error) => {
            let (detail, hint) = transport_problem("HighLevel", base, &error);
            return fail(detail, hint);
        }
    };
    if status != 200 {
        let (detail, hint) = refused(tenant, crm, status, &message_of(&body));
        return fail(detail, hint);
    }
    let Ok(answer) = serde_json::from_str::<TokenAnswer>(&body) else {
        return fail(
            "HighLevel's token answer could not be read".into(),
            format!(
                "check tenants.crm.base_url is {}",
                crate::config::HIGHLEVEL_API
            ),
        );
    };
    // Persist the successor before using anything it came with: the old
    // refresh token is spent now.
    if let Some(rotated) = answer.refresh_token.as_deref().filter(|r| *r != old)
        && let Err(error) = save(&Secret::new(rotated))
    {
        return fail(
            format!(
                "refreshed, but the new refresh token could not be stored ({error:#}); the old one is used up"
            ),
            reinstall_hint(tenant, "once the database is writable"),
        );
    }
    if let Some(other) = answer.location_id.as_deref().filter(|l| l != location) {
        return fail(
            format!("the refresh token belongs to location {other}, not {location}"),
            format!(
                "set tenants.crm.location_id to {other}, or re-install the app choosing location {location}: open https://<this host>/t/{tenant}/oauth/install with `connectzero run --listen` serving"
            ),
        );
    }
    let (token_line, budget_line, _) =
        probe(http, tenant, base, location, &answer.access_token, None).await;
    vec![
        token_line,
        scopes_check(tenant, answer.scope.as_deref()),
        budget_line,
    ]
}

/// The HighLevel checks of a running tenant (`crate::diagnostics`): its
/// own token source hands out the access token (refreshing, rotating and
/// storing it as the pipeline does), so the run never spends a refresh
/// token behind the pipeline's back, and the probe takes its slot from the
/// location's rate limiter like every other request. The scopes line is
/// doctor's only: HighLevel reports scopes only when a token is refreshed.
pub(crate) async fn check_live(
    http: &reqwest::Client,
    tenant: &str,
    crm: &CrmConfig,
    credentials: &Credentials,
    limiter: Option<&LocationLimiter>,
) -> Vec<Check> {
    let base = crm.base_url.trim_end_matches('/');
    let fail = |detail: String, hint: String| {
        vec![
            Check::fail(TOKEN, detail, hint),
            Check::skipped(RATE_BUDGET, "no HighLevel token"),
        ]
    };
    if let Err(error) = check_base_url(base) {
        return fail(
            format!("not contacted: {error:#}"),
            format!(
                "set tenants.crm.base_url to {}",
                crate::config::HIGHLEVEL_API
            ),
        );
    }
    if let Ok(TenantAuth::NeedsReauthorisation { reason, .. }) = credentials.auth_status() {
        return fail(
            format!("marked \"needs re-authorisation\", its calls wait: {reason}"),
            reinstall_hint(tenant, ""),
        );
    }
    for attempt in 0..2 {
        let token = match credentials.access_token(Service::Crm).await {
            Ok(token) => token,
            Err(StageError::RateLimited(secs)) => {
                return vec![
                    Check::skipped(TOKEN, "the location's rate budget held the check back"),
                    budget_exhausted(u64::from(secs)),
                ];
            }
            Err(StageError::Network(message)) => {
                return fail(
                    format!("could not reach HighLevel ({message})"),
                    format!("check this host can reach {base} (DNS, firewall, proxy)"),
                );
            }
            Err(StageError::Unauthorized(e)) => {
                return fail(
                    format!(
                        "HighLevel refused the tenant's tokens ({}: {})",
                        e.status, e.message
                    ),
                    reinstall_hint(tenant, ""),
                );
            }
            Err(other) => {
                return fail(
                    format!("no HighLevel token: {}", crate::pipeline::describe(&other)),
                    "check the host log for the token refresh's error; ConnectZero retries by itself".into(),
                );
            }
        };
        if let Some(limiter) = limiter
            && let Admission::Refused(wait) = limiter.acquire().await
        {
            return vec![
                Check::skipped(TOKEN, "the location's rate budget held the check back"),
                budget_exhausted(wait.as_secs().max(1)),
            ];
        }
        let (token_line, budget_line, status) = probe(
            http,
            tenant,
            crm.base_url.trim_end_matches('/'),
            &crm.location_id,
            &token,
            limiter,
        )
        .await;
        if status == 401 && attempt == 0 {
            // An access token HighLevel no longer takes (revoked, or
            // replaced by another process): forget it and refresh once.
            credentials.token_rejected(Service::Crm, &token);
            continue;
        }
        return vec![token_line, budget_line];
    }
    unreachable!("the loop returns on its second pass")
}

/// The rate budget line when the location's requests are held back.
fn budget_exhausted(retry_secs: u64) -> Check {
    Check::fail(
        RATE_BUDGET,
        format!(
            "the location's request budget is used up: requests are held back for {retry_secs} s"
        ),
        "nothing to do if it passes by itself (the calls wait and are retried); if it keeps failing, another app or host shares this app's budget for the location: stop the other copy, or set tenants.crm.rate_limit to the share it may use",
    )
}

/// The rate budget line from HighLevel's rate-limit headers (HighLevel
/// NOTES §6.1: `X-RateLimit-Limit-Daily`, `X-RateLimit-Daily-Remaining`)
/// on an answer with `status`.
fn budget_check(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    retry_after: Option<u64>,
) -> Check {
    if status == 429 {
        return budget_exhausted(retry_after.unwrap_or(10));
    }
    let number =
        |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    match (
        number("x-ratelimit-daily-remaining"),
        number("x-ratelimit-limit-daily"),
    ) {
        // u128: the figures come from HighLevel's headers, so no product
        // of them may overflow.
        (Some(left), Some(daily))
            if u128::from(left) * 100
                < u128::from(daily) * u128::from(LOW_DAILY_BUDGET_PERCENT) =>
        {
            Check::fail(
                RATE_BUDGET,
                format!("only {left} of {daily} daily requests left for this app and location"),
                "HighLevel counts every request of this app in this location per day and refuses more once it is spent (the calls then wait): check no other copy of ConnectZero or script uses this app for the location; the budget comes back within 24 h",
            )
        }
        (Some(left), Some(daily)) => Check::pass(
            RATE_BUDGET,
            format!("{left} of {daily} daily requests left"),
        ),
        _ => Check::pass(RATE_BUDGET, "not limited (HighLevel sent no daily budget)"),
    }
}

/// Use the access token once (`get-duplicate-contact`, scope
/// `contacts.readonly`, the lookup the pipeline makes most). Returns the
/// token line, the rate budget line (from the answer's headers) and the
/// answer's status (0 for none). A 429 is reported to `limiter`.
async fn probe(
    http: &reqwest::Client,
    tenant: &str,
    base: &str,
    location: &str,
    access_token: &str,
    limiter: Option<&LocationLimiter>,
) -> (Check, Check, u16) {
    let answer = http
        .get(format!(
            "{base}/contacts/search/duplicate?locationId={}",
            urlencoding::encode(location)
        ))
        .bearer_auth(access_token)
        .header("Version", "2021-07-28")
        .send()
        .await;
    let response = match answer {
        Ok(response) => response,
        Err(error) => {
            let (detail, hint) = transport_problem("HighLevel", base, &error);
            return (
                Check::fail(TOKEN, detail, hint),
                Check::skipped(RATE_BUDGET, "HighLevel did not answer"),
                0,
            );
        }
    };
    let status = response.status().as_u16();
    let retry_after = crate::ratelimit::parse_retry_after(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
    );
    if status == 429
        && let Some(limiter) = limiter
    {
        limiter.note_429(retry_after);
    }
    let budget = budget_check(status, response.headers(), retry_after);
    if status == 429 {
        // Not the token's fault: the budget line reports it.
        let token = Check::skipped(TOKEN, "HighLevel answered 429 (rate limited)");
        return (token, budget, status);
    }
    if status == 200 {
        let token = Check::pass(
            TOKEN,
            format!("location {location} answered with the token"),
        );
        return (token, budget, status);
    }
    let message = message_of(
        &crate::upstream::capped_text(response)
            .await
            .unwrap_or_default(),
    );
    let token = Check::fail(
        TOKEN,
        format!("refreshed, but location {location} answered {status}: {message}"),
        match status {
            401 | 403 => reinstall_hint(tenant, "and approve this location"),
            _ => "HighLevel could not serve the request: try again in a few minutes".into(),
        },
    );
    (token, budget, status)
}

/// Detail and hint for a refused refresh.
fn refused(tenant: &str, crm: &CrmConfig, status: u16, message: &str) -> (String, String) {
    let location = &crm.location_id;
    match status {
        400 => (
            format!("HighLevel refused the refresh token of location {location} ({message})"),
            reinstall_hint(
                tenant,
                "(it was uninstalled, its grant revoked, or the token already used by another copy of ConnectZero)",
            ),
        ),
        401 => (
            format!("HighLevel refused the app's client credentials ({message})"),
            format!(
                "set tenants.crm.client_id and tenants.crm.client_secret to the Client ID and Client Secret of the app {:?} (the app's Client Keys in the HighLevel marketplace developer portal), then run connectzero doctor again",
                crm.client_id
            ),
        ),
        422 => (
            format!("HighLevel rejected the token request ({message})"),
            "set tenants.crm.client_id, client_secret and refresh_token (none may be empty), then run connectzero doctor again".into(),
        ),
        _ => (
            format!("the token endpoint answered {status}: {message}"),
            "HighLevel could not refresh the token: try again in a few minutes".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::report::Status;

    const ALL: &str = "contacts.readonly contacts.write conversations.readonly conversations.write conversations/message.readonly conversations/message.write workflows.readonly";

    #[test]
    fn the_rate_budget_fails_when_nearly_spent_or_refused() {
        let headers = |left: &str| {
            let mut map = reqwest::header::HeaderMap::new();
            map.insert("x-ratelimit-limit-daily", "200000".parse().unwrap());
            map.insert("x-ratelimit-daily-remaining", left.parse().unwrap());
            map
        };
        let plenty = budget_check(200, &headers("150000"), None);
        assert_eq!(plenty.status, Status::Pass, "{plenty:?}");
        assert!(plenty.detail.contains("150000 of 200000"), "{plenty:?}");
        let low = budget_check(200, &headers("1999"), None);
        assert_eq!(low.status, Status::Fail, "{low:?}");
        assert!(low.detail.contains("only 1999 of 200000"), "{low:?}");
        let none = budget_check(200, &reqwest::header::HeaderMap::new(), None);
        assert_eq!(none.status, Status::Pass);
        let limited = budget_check(429, &headers("150000"), Some(30));
        assert_eq!(limited.status, Status::Fail);
        assert!(limited.detail.contains("30 s"), "{limited:?}");
    }

    #[test]
    fn every_scope_the_pipeline_uses_passes() {
        assert_eq!(scopes_check("acme", Some(ALL)).status, Status::Pass);
        let extra = format!("users.readonly {ALL} locations.readonly");
        assert_eq!(scopes_check("acme", Some(&extra)).status, Status::Pass);
    }

    #[test]
    fn a_missing_scope_is_named_with_its_use_and_the_fix() {
        let without = ALL.replace(" workflows.readonly", "");
        let check = scopes_check("acme", Some(&without));
        assert_eq!(check.status, Status::Fail);
        assert!(
            check
                .detail
                .contains("workflows.readonly (workflow triggers"),
            "{check:?}"
        );
        assert!(!check.detail.contains("contacts.readonly"), "{check:?}");
        assert!(check.hint.unwrap().contains("/t/acme/oauth/install"));
        // A prefix of a scope is not the scope.
        let check = scopes_check("acme", Some("contacts"));
        assert_eq!(check.status, Status::Fail);
        assert!(scopes_check("acme", None).detail.contains("did not report"));
    }
}
