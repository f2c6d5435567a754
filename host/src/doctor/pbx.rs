//! The 3CX checks: reachability over HTTPS, the API client's credentials,
//! the licence, and what the API client's role may read.

mod licence;
mod xapi;

pub use licence::{LicenseParameters, LicenseStatus, licence_check};

use super::report::Check;
use crate::config::{PbxConfig, Secret, check_base_url};
use crate::credentials::Credentials;
use xapi::{TokenAnswer, Xapi};
/// Check names, as printed.
pub const REACHABLE: &str = "3CX reachable over HTTPS";
/// See [`REACHABLE`].
pub const CREDENTIALS: &str = "3CX API credentials";
/// See [`REACHABLE`].
pub const LICENCE: &str = "3CX licence";
/// See [`REACHABLE`].
pub const CALL_HISTORY: &str = "3CX call history access";
/// See [`REACHABLE`].
pub const RECORDINGS: &str = "3CX recordings access";
/// See [`REACHABLE`].
pub const EXTENSIONS: &str = "3CX extensions and active calls";

/// The checks that need a 3CX token, skipped together when there is none.
const NEED_TOKEN: [&str; 4] = [LICENCE, CALL_HISTORY, RECORDINGS, EXTENSIONS];

/// Run every 3CX check of one tenant, with a token of doctor's own.
pub async fn check(http: &reqwest::Client, pbx: &PbxConfig) -> Vec<Check> {
    check_with(http, pbx, None).await
}

/// Run every 3CX check of one tenant. `shared` is the running tenant's
/// token source (`crate::diagnostics`): 3CX keeps one token per API client
/// and a new one logs out the old, so a periodic run inside the host uses
/// the pipeline's token instead of requesting its own. `None` (doctor, a
/// process of its own) requests one with the client credentials grant.
pub(crate) async fn check_with(
    http: &reqwest::Client,
    pbx: &PbxConfig,
    shared: Option<&Credentials>,
) -> Vec<Check> {
    let base = pbx.base_url.trim_end_matches('/');
    let mut checks = Vec::new();
    if let Err(error) = check_base_url(base) {
        checks.push(Check::fail(
            REACHABLE,
            format!("not contacted: {error:#}"),
            "set tenants.pbx.base_url to https://<your PBX's FQDN>[:port] (plain http is refused except to loopback test servers)",
        ));
        return skip_rest(checks, "3CX was not contacted");
    }
    // A running tenant's API key may live in the database only; the
    // shared token source holds it and this copy never sends one, so an
    // empty one here must not read as "no API key" in the refusal's text.
    let mut with_key = pbx.clone();
    if shared.is_some() && with_key.client_secret.expose().is_empty() {
        with_key.client_secret = Secret::new("(stored)");
    }
    let pbx = &with_key;
    let mut api = Xapi {
        http,
        pbx,
        base,
        token: None,
        shared,
    };
    let answer = match api.first_token().await {
        Ok(answer) => answer,
        Err((detail, hint)) => {
            checks.push(Check::fail(REACHABLE, detail, hint));
            return skip_rest(checks, "3CX was not reached");
        }
    };
    let how = if base.starts_with("https://") {
        "over HTTPS"
    } else {
        "over plain http (loopback test server)"
    };
    checks.push(Check::pass(REACHABLE, format!("{base} answered {how}")));
    match answer {
        TokenAnswer::Issued(token) => {
            api.token = Some(token);
            checks.push(Check::pass(
                CREDENTIALS,
                format!("API client {:?} got a token", pbx.client_id),
            ));
        }
        TokenAnswer::Refused { status, message } => {
            checks.push(refused_credentials(pbx, status, &message));
            return skip_rest(checks, "no 3CX token");
        }
    }
    checks.push(api.licence().await);
    let window = chrono::Utc::now();
    let call_log = format!(
        "/ReportCallLogData/Pbx.GetCallLogData(periodFrom={},periodTo={},sourceType=0,sourceFilter='',destinationType=0,destinationFilter='',callsType=0,callTimeFilterType=0,callTimeFilterFrom='0:00:0',callTimeFilterTo='0:00:0',hidePcalls=false)?$top=1",
        urlencoding::encode(
            &(window - chrono::Duration::days(1))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        urlencoding::encode(&window.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    // The same reads the stages make (poll: history, call log, users,
    // active calls; attach: recordings), one row each.
    checks.push(
        api.readable(
            CALL_HISTORY,
            "call history",
            &["/CallHistoryView?$top=1", &call_log],
        )
        .await,
    );
    checks.push(
        api.readable(RECORDINGS, "recordings", &["/Recordings?$top=1"])
            .await,
    );
    checks.push(
        api.readable(
            EXTENSIONS,
            "extensions and active calls",
            &["/Users?$top=1", "/ActiveCalls?$top=1"],
        )
        .await,
    );
    checks
}

/// Append a skipped line for every token-dependent check not yet present.
fn skip_rest(mut checks: Vec<Check>, why: &str) -> Vec<Check> {
    for name in std::iter::once(CREDENTIALS).chain(NEED_TOKEN) {
        if !checks.iter().any(|c| c.name == name) {
            checks.push(Check::skipped(name, why));
        }
    }
    checks
}

/// The credentials line for a refused token request.
fn refused_credentials(pbx: &PbxConfig, status: u16, message: &str) -> Check {
    let client = &pbx.client_id;
    if pbx.client_secret.expose().is_empty() {
        return Check::fail(
            CREDENTIALS,
            format!("no API key for API client {client:?} in the file or the database"),
            "set tenants.pbx.client_secret to the API key 3CX showed when the client was created (Admin > Integrations > API; regenerate it there if it is lost), then run connectzero doctor again",
        );
    }
    match status {
        400 | 401 | 403 => Check::fail(
            CREDENTIALS,
            format!("3CX refused API client {client:?} ({status}: {message})"),
            format!(
                "in the 3CX Admin Console open Admin > Integrations > API, check the client whose Client ID is {client:?} exists and has \"3CX Configuration API Access\" ticked, and set tenants.pbx.client_id to its Client ID and tenants.pbx.client_secret to its API key (shown once: if it is lost, regenerate it there)"
            ),
        ),
        404 => Check::fail(
            CREDENTIALS,
            format!(
                "no token endpoint at {}/connect/token (404)",
                pbx.base_url.trim_end_matches('/')
            ),
            "set tenants.pbx.base_url to the address of the 3CX web client, https://<FQDN>[:port], without /xapi/v1",
        ),
        300..=399 => Check::fail(
            CREDENTIALS,
            format!("the token endpoint redirects ({status}: {message})"),
            "set tenants.pbx.base_url to the address the PBX redirects to (its https:// FQDN and port)",
        ),
        _ => Check::fail(
            CREDENTIALS,
            format!("the token endpoint answered {status}: {message}"),
            "3CX had a problem issuing a token: check the PBX is healthy (Admin Console dashboard), then run connectzero doctor again",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::report::Status;
    #[test]
    fn a_wrong_secret_names_the_client_never_the_secret() {
        let pbx = PbxConfig {
            base_url: "https://pbx.example.com".into(),
            client_id: "connectzero".into(),
            client_secret: Secret::new("hunter2"),
        };
        let check =
            refused_credentials(&pbx, 401, "The request requires valid user authentication.");
        assert_eq!(check.status, Status::Fail);
        assert!(check.detail.contains("\"connectzero\""), "{check:?}");
        let hint = check.hint.clone().unwrap();
        assert!(hint.contains("Admin > Integrations > API"), "{hint}");
        assert!(!format!("{} {hint}", check.detail).contains("hunter2"));
        // No API key at all gets its own fix.
        let empty = PbxConfig {
            client_secret: Secret::default(),
            ..pbx
        };
        let check = refused_credentials(&empty, 401, "m");
        assert!(check.detail.contains("no API key"), "{check:?}");
    }

    #[test]
    fn without_a_token_the_dependent_checks_are_skipped_not_failed() {
        let checks = skip_rest(vec![Check::pass(REACHABLE, "ok")], "no token");
        let names: Vec<_> = checks.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                REACHABLE,
                CREDENTIALS,
                LICENCE,
                CALL_HISTORY,
                RECORDINGS,
                EXTENSIONS
            ]
        );
        assert!(checks[1..].iter().all(|c| c.status == Status::Skipped));
    }
}
