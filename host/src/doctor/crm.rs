//! The HighLevel checks: the refresh token still works for the tenant's
//! location, and the grant's scopes cover what the pipeline does.
//!
//! HighLevel reports the granted scopes only in the token endpoint's answer
//! (`scope` of `get-access-token`, HighLevel NOTES §2.2), so the check
//! refreshes. Refresh tokens are single-use and rotate (§2.3): the new one
//! is stored (encrypted, `crate::secrets`) before anything else happens,
//! where `connectzero run` takes it from, so running doctor never costs the
//! tenant its grant.

mod live;
mod probe;

pub(crate) use live::check_live;

use super::report::Check;
use super::transport_problem;
use crate::config::{CrmConfig, Secret, check_base_url};
use crate::upstream::message_of;
use probe::probe;
use serde::Deserialize;
/// Check names, as printed.
pub const TOKEN: &str = "HighLevel token";
/// See [`TOKEN`].
pub const SCOPES: &str = "HighLevel scopes";
/// See [`TOKEN`].
pub const RATE_BUDGET: &str = "HighLevel rate budget";

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
        "re-install the app for this sub-account{how}: with `connectzero run --listen` serving, open https://<this host>/t/{tenant}/oauth/install in a browser and approve the location (the install stores the new tokens; the app's redirect URL in the marketplace must be https://<this host>/oauth/callback, or https://<this host>/t/{tenant}/oauth/callback for a tenant with oauth.per_tenant_redirect), then run connectzero doctor again"
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
