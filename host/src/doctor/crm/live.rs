//! The HighLevel checks of a running tenant: its own token source and
//! the location's rate limiter, never a refresh behind the pipeline's
//! back.

use super::probe::{budget_exhausted, probe};
use super::{RATE_BUDGET, TOKEN, reinstall_hint};
use crate::bindings::types::{Service, StageError};
use crate::config::{CrmConfig, check_base_url};
use crate::credentials::Credentials;
use crate::doctor::report::Check;
use crate::ratelimit::{Admission, LocationLimiter};
use crate::storage::TenantAuth;
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
