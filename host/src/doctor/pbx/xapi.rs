//! A minimal XAPI client for the 3CX probes: its first token (doctor's
//! own, or a running tenant's shared one), reads that renew a replaced
//! token once, the licence read and the permission lines.

use super::{LICENCE, LicenseParameters, LicenseStatus, licence_check};
use crate::bindings::types::{Service, StageError};
use crate::config::{PbxConfig, Secret};
use crate::credentials::Credentials;
use crate::doctor::report::Check;
use crate::doctor::transport_problem;
use crate::upstream::message_of;
use serde::Deserialize;
/// What `/connect/token` said.
pub(super) enum TokenAnswer {
    Issued(Secret),
    Refused { status: u16, message: String },
}

/// A minimal XAPI client for the probes.
pub(super) struct Xapi<'a> {
    pub(super) http: &'a reqwest::Client,
    pub(super) pbx: &'a PbxConfig,
    pub(super) base: &'a str,
    pub(super) token: Option<Secret>,
    /// The running tenant's token source, when there is one
    /// ([`super::check_with`]).
    pub(super) shared: Option<&'a Credentials>,
}

/// Path of the read that shows a shared token still works: the licence
/// parameters, which any API client with XAPI access may read.
const TOKEN_PROBE: &str = "/Defs/Pbx.GetLicenseParameters()";

impl Xapi<'_> {
    /// The first token: a new one for doctor, the pipeline's for a running
    /// host (checked with one read, and replaced once if 3CX refuses it).
    /// `Err` is the reachability line's detail and hint.
    pub(super) async fn first_token(&self) -> Result<TokenAnswer, (String, String)> {
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
    pub(super) async fn licence(&mut self) -> Check {
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
    pub(super) async fn readable(
        &mut self,
        name: &'static str,
        what: &str,
        paths: &[&str],
    ) -> Check {
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
