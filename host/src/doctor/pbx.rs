//! The 3CX checks: reachability over HTTPS, the API client's credentials,
//! the licence, and what the API client's role may read.

use super::report::Check;
use super::transport_problem;
use crate::bindings::types::{Service, StageError};
use crate::config::{PbxConfig, Secret, check_base_url};
use crate::credentials::Credentials;
use crate::upstream::message_of;
use serde::Deserialize;

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

/// `Pbx.License`, the fields the verdict reads (operationId
/// `GetLicenseParameters`, `GET /xapi/v1/Defs/Pbx.GetLicenseParameters()`).
/// The `Is*` edition flags exist from 20.0.10 on.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LicenseParameters {
    /// Licence product code, e.g. "3CXPSENT"; values are not documented.
    pub product_code: Option<String>,
    /// Enterprise edition (20.0.10+).
    pub is_enterprise: Option<bool>,
    /// Professional edition (20.0.10+).
    pub is_professional: Option<bool>,
}

/// `Pbx.LicenseStatus`, the fields the verdict reads (operationId
/// `GetLicenseStatus`, `GET /xapi/v1/LicenseStatus`). `LicenseKey` is never
/// requested: it is not ours to print.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LicenseStatus {
    /// Whether the licence was activated.
    pub activated: Option<bool>,
    /// Whether the licence is currently active (not expired).
    pub license_active: Option<bool>,
    /// When the licence expires.
    pub expiration_date: Option<String>,
}

/// Whether this licence lets the API client use the XAPI.
///
/// [ASSUMED] (3CX NOTES §1 and §6 "Preflight logic"; DESIGN "3CX XAPI needs
/// an Enterprise licence"): the XAPI needs an Enterprise licence (8SC+
/// Enterprise, or the AI edition) that is activated and active.
/// `IsEnterprise` decides when present; 3CX before 20.0.10 lacks it, and
/// then a `ProductCode` containing "ENT" is read as Enterprise (the spec
/// does not document the codes). This is the only function that relies on
/// either reading.
pub fn licence_check(params: &LicenseParameters, status: &LicenseStatus) -> Check {
    const UPGRADE: &str = "3CX serves the XAPI only on an Enterprise licence (8SC+ Enterprise, or the AI edition): upgrade this PBX's licence with your 3CX partner, then run connectzero doctor again";
    if status.activated == Some(false) {
        return Check::fail(
            LICENCE,
            "the licence is not activated",
            "activate the licence in the 3CX Admin Console (Admin > License), then run connectzero doctor again",
        );
    }
    if status.license_active == Some(false) {
        let until = status
            .expiration_date
            .as_deref()
            .map(|d| format!(" (expired {d})"))
            .unwrap_or_default();
        return Check::fail(
            LICENCE,
            format!("the licence is not active{until}"),
            "renew the 3CX licence with your 3CX partner (Admin > License shows its state), then run connectzero doctor again",
        );
    }
    let code = params.product_code.as_deref().unwrap_or("no product code");
    match params.is_enterprise {
        Some(true) => Check::pass(LICENCE, format!("Enterprise ({code}), active")),
        Some(false) => {
            let edition = if params.is_professional == Some(true) {
                "Professional"
            } else {
                "not Enterprise"
            };
            Check::fail(
                LICENCE,
                format!("the edition is {edition} ({code})"),
                UPGRADE,
            )
        }
        None if code.to_ascii_uppercase().contains("ENT") => Check::pass(
            LICENCE,
            format!("Enterprise by its product code ({code}), active"),
        ),
        None => Check::fail(
            LICENCE,
            format!(
                "could not confirm an Enterprise edition (product code {code}; 3CX before 20.0.10 does not report the edition)"
            ),
            format!(
                "{UPGRADE}; if the licence is Enterprise already, update 3CX to 20.0.10 or later so it reports the edition"
            ),
        ),
    }
}

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

/// What `/connect/token` said.
enum TokenAnswer {
    Issued(Secret),
    Refused { status: u16, message: String },
}

/// A minimal XAPI client for the probes.
struct Xapi<'a> {
    http: &'a reqwest::Client,
    pbx: &'a PbxConfig,
    base: &'a str,
    token: Option<Secret>,
    /// The running tenant's token source, when there is one
    /// ([`check_with`]).
    shared: Option<&'a Credentials>,
}

/// Path of the read that shows a shared token still works: the licence
/// parameters, which any API client with XAPI access may read.
const TOKEN_PROBE: &str = "/Defs/Pbx.GetLicenseParameters()";

impl Xapi<'_> {
    /// The first token: a new one for doctor, the pipeline's for a running
    /// host (checked with one read, and replaced once if 3CX refuses it).
    /// `Err` is the reachability line's detail and hint.
    async fn first_token(&self) -> Result<TokenAnswer, (String, String)> {
        let Some(shared) = self.shared else {
            return self
                .request_token()
                .await
                .map_err(|error| transport_problem("3CX", self.base, &error));
        };
        for attempt in 0..2 {
            let token = match shared.access_token(Service::Pbx).await {
                Ok(token) => token,
                Err(error) => return refused_stage(&error),
            };
            let response = self
                .http
                .get(format!("{}/xapi/v1{TOKEN_PROBE}", self.base))
                .bearer_auth(&token)
                .send()
                .await
                .map_err(|error| transport_problem("3CX", self.base, &error))?;
            if response.status().as_u16() != 401 {
                return Ok(TokenAnswer::Issued(Secret::new(token)));
            }
            let message = message_of(
                &crate::upstream::capped_text(response)
                    .await
                    .unwrap_or_default(),
            );
            shared.token_rejected(Service::Pbx, &token);
            if attempt == 1 {
                return Ok(TokenAnswer::Refused {
                    status: 401,
                    message,
                });
            }
        }
        unreachable!("the loop returns on its second pass")
    }

    /// A new token after a 401: doctor's own grant, or the shared source's.
    async fn renew_token(&self, refused: &str) -> Option<Secret> {
        match self.shared {
            None => match self.request_token().await {
                Ok(TokenAnswer::Issued(token)) => Some(token),
                _ => None,
            },
            Some(shared) => {
                shared.token_rejected(Service::Pbx, refused);
                shared
                    .access_token(Service::Pbx)
                    .await
                    .ok()
                    .map(Secret::new)
            }
        }
    }

    /// Client credentials grant (3CX NOTES §1), as `credentials.rs` makes
    /// it. Transport errors come back as `Err`: that is the reachability
    /// line's business.
    async fn request_token(&self) -> Result<TokenAnswer, reqwest::Error> {
        #[derive(Deserialize)]
        struct Token {
            access_token: String,
        }
        let form = [
            ("client_id", self.pbx.client_id.as_str()),
            ("client_secret", self.pbx.client_secret.expose()),
            ("grant_type", "client_credentials"),
        ];
        let response = self
            .http
            .post(format!("{}/connect/token", self.base))
            .form(&form)
            .send()
            .await?;
        let status = response.status().as_u16();
        let body = crate::upstream::capped_text(response).await?;
        if status == 200 {
            return Ok(match serde_json::from_str::<Token>(&body) {
                Ok(token) => TokenAnswer::Issued(Secret::new(token.access_token)),
                Err(_) => TokenAnswer::Refused {
                    status,
                    message: "the answer is not a token response".into(),
                },
            });
        }
        Ok(TokenAnswer::Refused {
            status,
            message: message_of(&body),
        })
    }

    /// `GET /xapi/v1{path}` → (status, body). 3CX keeps one token per API
    /// client, so a running host may have replaced ours: a 401 fetches a
    /// new token and retries once.
    async fn get(&mut self, path: &str) -> Result<(u16, String), reqwest::Error> {
        for attempt in 0..2 {
            let token = self.token.as_ref().map(|t| t.expose()).unwrap_or_default();
            let response = self
                .http
                .get(format!("{}/xapi/v1{path}", self.base))
                .bearer_auth(token)
                .send()
                .await?;
            let status = response.status().as_u16();
            let body = crate::upstream::capped_text(response).await?;
            if status == 401
                && attempt == 0
                && let Some(token) = self.renew_token(token).await
            {
                self.token = Some(token);
                continue;
            }
            return Ok((status, body));
        }
        unreachable!("the loop returns on its second pass")
    }

    /// The licence line: `GetLicenseParameters` and `GetLicenseStatus`.
    async fn licence(&mut self) -> Check {
        let params = match self.get("/Defs/Pbx.GetLicenseParameters()").await {
            Ok((200, body)) => serde_json::from_str::<LicenseParameters>(&body).ok(),
            Ok((status, body)) => return self.licence_refused(status, &message_of(&body)),
            Err(error) => return network_fail(LICENCE, self.base, &error),
        };
        let status = match self
            .get("/LicenseStatus?$select=Activated,LicenseActive,ExpirationDate")
            .await
        {
            Ok((200, body)) => serde_json::from_str::<LicenseStatus>(&body).ok(),
            Ok((status, body)) => return self.licence_refused(status, &message_of(&body)),
            Err(error) => return network_fail(LICENCE, self.base, &error),
        };
        match (params, status) {
            (Some(params), Some(status)) => licence_check(&params, &status),
            _ => Check::fail(
                LICENCE,
                "3CX's licence answer could not be read",
                "update 3CX to v20 (20.0.9 or later), the version ConnectZero reads, then run connectzero doctor again",
            ),
        }
    }

    fn licence_refused(&self, status: u16, message: &str) -> Check {
        let detail = format!("3CX did not show its licence ({status}: {message})");
        if status == 403 {
            return Check::fail(
                LICENCE,
                detail,
                format!(
                    "the XAPI needs an Enterprise licence, and API client {:?} a System Owner role (Admin > Integrations > API > {0} > Role): check both, then run connectzero doctor again",
                    self.pbx.client_id
                ),
            );
        }
        Check::fail(
            LICENCE,
            detail,
            "update 3CX to v20 (20.0.9 or later), the version ConnectZero reads, then run connectzero doctor again",
        )
    }

    /// One permission line: every path must answer 200.
    async fn readable(&mut self, name: &'static str, what: &str, paths: &[&str]) -> Check {
        for path in paths {
            let (status, body) = match self.get(path).await {
                Ok(answer) => answer,
                Err(error) => return network_fail(name, self.base, &error),
            };
            if status == 200 {
                continue;
            }
            let message = message_of(&body);
            let endpoint = path.split(['?', '(']).next().unwrap_or(path);
            let detail = format!("{endpoint} answered {status}: {message}");
            let client = &self.pbx.client_id;
            return match status {
                403 => Check::fail(
                    name,
                    detail,
                    format!(
                        "give API client {client:?} a role that may read {what}: in the 3CX Admin Console open Admin > Integrations > API > {client} and set its Role to System Owner, save, then run connectzero doctor again"
                    ),
                ),
                401 => Check::fail(
                    name,
                    detail,
                    "3CX keeps one token per API client and another program took it twice while doctor ran: give ConnectZero its own API client (Admin > Integrations > API), then run connectzero doctor again",
                ),
                _ => Check::fail(
                    name,
                    detail,
                    "3CX could not serve this read: check the PBX is healthy and runs v20 (20.0.9 or later), then run connectzero doctor again",
                ),
            };
        }
        Check::pass(name, format!("{what} readable"))
    }
}

/// How the shared token source's refusal reads as doctor's token answer:
/// no answer at all is the reachability line's (`Err`), a refusal the
/// credentials line's.
fn refused_stage(error: &StageError) -> Result<TokenAnswer, (String, String)> {
    let refused = |status: u16, message: &str| {
        Ok(TokenAnswer::Refused {
            status,
            message: message.to_string(),
        })
    };
    match error {
        StageError::Network(message) => Err((
            format!("could not connect to 3CX ({message})"),
            "check the host and port in base_url, that 3CX is running, and that a firewall lets this host reach it".into(),
        )),
        StageError::Unauthorized(e) | StageError::Forbidden(e) | StageError::Upstream(e) => {
            refused(e.status, &e.message)
        }
        StageError::RateLimited(secs) => {
            refused(429, &format!("rate limited; retry after {secs} s"))
        }
        other => refused(0, &crate::pipeline::describe(other)),
    }
}

/// A line for a check whose request got no HTTP answer.
fn network_fail(name: &'static str, base: &str, error: &reqwest::Error) -> Check {
    let (detail, hint) = transport_problem("3CX", base, error);
    Check::fail(name, detail, hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::report::Status;

    fn active() -> LicenseStatus {
        LicenseStatus {
            activated: Some(true),
            license_active: Some(true),
            expiration_date: None,
        }
    }

    fn params(code: &str, enterprise: Option<bool>) -> LicenseParameters {
        LicenseParameters {
            product_code: Some(code.into()),
            is_enterprise: enterprise,
            is_professional: enterprise.map(|e| !e),
        }
    }

    #[test]
    fn an_active_enterprise_licence_qualifies() {
        let check = licence_check(&params("3CXPSENT", Some(true)), &active());
        assert_eq!(check.status, Status::Pass, "{check:?}");
        assert!(check.detail.contains("Enterprise"));
    }

    #[test]
    fn professional_does_not_qualify_and_says_to_upgrade() {
        let check = licence_check(&params("3CXPSPRO", Some(false)), &active());
        assert_eq!(check.status, Status::Fail);
        assert!(check.detail.contains("Professional"), "{check:?}");
        assert!(check.hint.unwrap().contains("Enterprise licence"));
    }

    #[test]
    fn the_edition_flag_wins_over_the_product_code() {
        let check = licence_check(&params("3CXPSENT", Some(false)), &active());
        assert_eq!(check.status, Status::Fail);
    }

    #[test]
    fn before_20_0_10_the_product_code_decides() {
        let ent = licence_check(&params("3CXPSENT", None), &active());
        assert_eq!(ent.status, Status::Pass, "{ent:?}");
        let pro = licence_check(&params("3CXPSPRO", None), &active());
        assert_eq!(pro.status, Status::Fail);
        assert!(pro.hint.unwrap().contains("20.0.10"));
    }

    #[test]
    fn an_expired_or_unactivated_enterprise_licence_fails() {
        let expired = LicenseStatus {
            license_active: Some(false),
            expiration_date: Some("2026-01-01T00:00:00Z".into()),
            ..active()
        };
        let check = licence_check(&params("3CXPSENT", Some(true)), &expired);
        assert_eq!(check.status, Status::Fail);
        assert!(check.detail.contains("2026-01-01"), "{check:?}");
        assert!(check.hint.unwrap().contains("renew"));
        let unactivated = LicenseStatus {
            activated: Some(false),
            ..active()
        };
        let check = licence_check(&params("3CXPSENT", Some(true)), &unactivated);
        assert!(check.detail.contains("not activated"), "{check:?}");
    }

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
