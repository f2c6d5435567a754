//! An authenticated JSON client for the 3CX XAPI and the HighLevel API.
//!
//! Tokens come from the host's `credentials` interface; the component never
//! sees a secret. A 401 is reported back (`token-rejected`) and the request is
//! retried once with a fresh token, so an expired token costs one round trip
//! instead of a failed batch. Every other failure becomes a typed
//! [`StageError`] that tells the host whether to retry, back off or park.

use crate::bindings::connectzero::pipeline::credentials;
use crate::http::{self, HttpMethod, Request, Response};
use crate::{Service, StageError, UpstreamError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Longest service error message kept in a [`StageError`]; the rest is cut so
/// a misbehaving server cannot flood logs.
const MAX_ERROR_MESSAGE: usize = 300;

/// Back-off used when a 429 carries no `Retry-After` header.
const DEFAULT_RETRY_AFTER_SECS: u32 = 10;

/// A client for one service at one base URL.
#[derive(Clone, Debug)]
pub struct ApiClient {
    service: Service,
    base_url: String,
    headers: Vec<(String, String)>,
    /// Whether a 401 tells the host the token was refused (and the request
    /// is sent once more with a fresh one).
    reports_refused_tokens: bool,
}

impl ApiClient {
    /// A client for `service` at `base_url` (no trailing slash needed).
    pub fn new(service: Service, base_url: &str) -> Self {
        Self {
            service,
            base_url: base_url.trim_end_matches('/').to_string(),
            headers: Vec::new(),
            reports_refused_tokens: true,
        }
    }

    /// Send `name: value` on every request (e.g. HighLevel's `Version`).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// A 401 from this endpoint is only its answer, not news that the
    /// service's token is bad: it is returned as `unauthorized` without
    /// dropping the token. For endpoints a third party controls (a
    /// workflow's trigger URL), whose every refusal would otherwise make
    /// the host refresh the tenant's grant.
    pub fn keeping_the_token_on_401(mut self) -> Self {
        self.reports_refused_tokens = false;
        self
    }

    /// `GET path` and decode the JSON answer.
    pub fn get_json<T: DeserializeOwned>(&self, path_and_query: &str) -> Result<T, StageError> {
        let response = self.execute(HttpMethod::Get, path_and_query, None)?;
        self.decode(path_and_query, &response)
    }

    /// `POST path` with a JSON body and decode the JSON answer.
    pub fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, StageError> {
        let response = self.execute(HttpMethod::Post, path, Some(to_json(body)?))?;
        self.decode(path, &response)
    }

    /// `POST path` with a JSON body; the answer body is ignored.
    pub fn post_json_ignoring_answer<B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(), StageError> {
        self.execute(HttpMethod::Post, path, Some(to_json(body)?))
            .map(|_| ())
    }

    /// `PUT path` with a JSON body; the answer body is ignored.
    pub fn put_json<B: Serialize>(&self, path: &str, body: &B) -> Result<(), StageError> {
        self.execute(HttpMethod::Put, path, Some(to_json(body)?))
            .map(|_| ())
    }

    /// A request to `path` carrying a current bearer token, for callers that
    /// stream bodies themselves (see [`crate::http::stream_to_upload`]).
    /// Returns the token too, to report with [`Self::reject_token`] on a 401.
    pub fn authorized(
        &self,
        method: HttpMethod,
        path: &str,
        content_type: Option<&str>,
    ) -> Result<(Request, String), StageError> {
        let token = credentials::access_token(self.service)?;
        let mut headers = self.headers.clone();
        headers.push(("authorization".into(), format!("Bearer {token}")));
        if let Some(content_type) = content_type {
            headers.push(("content-type".into(), content_type.into()));
        }
        let request = Request {
            method,
            url: format!("{}{}", self.base_url, path),
            headers,
            body: Vec::new(),
        };
        Ok((request, token))
    }

    /// Tell the host the service refused `token` (HTTP 401).
    pub fn reject_token(&self, token: &str) {
        credentials::token_rejected(self.service, token);
    }

    /// `Ok` for a 2xx answer, else the typed error for its status.
    pub fn check(&self, response: Response) -> Result<Response, StageError> {
        self.check_status(response)
    }

    /// Decode a JSON answer.
    pub fn decode_json<T: DeserializeOwned>(
        &self,
        what: &str,
        response: &Response,
    ) -> Result<T, StageError> {
        self.decode(what, response)
    }

    /// Send with a bearer token, retrying once with a fresh token on a 401.
    fn execute(
        &self,
        method: HttpMethod,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response, StageError> {
        let mut refreshed = false;
        loop {
            let token = credentials::access_token(self.service)?;
            let mut headers = self.headers.clone();
            headers.push(("authorization".into(), format!("Bearer {token}")));
            headers.push(("accept".into(), "application/json".into()));
            if body.is_some() {
                headers.push(("content-type".into(), "application/json".into()));
            }
            let request = Request {
                method,
                url: format!("{}{}", self.base_url, path),
                headers,
                body: body.clone().unwrap_or_default(),
            };
            let response = http::send(&request).map_err(crate::budget::request_error)?;
            if response.status == 401 && !refreshed && self.reports_refused_tokens {
                credentials::token_rejected(self.service, &token);
                refreshed = true;
                continue;
            }
            return self.check_status(response);
        }
    }

    fn check_status(&self, response: Response) -> Result<Response, StageError> {
        let status = response.status;
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let retry_after = response
            .header("retry-after")
            .and_then(crate::waits::retry_after_secs);
        Err(status_error(
            self.service,
            status,
            retry_after,
            error_message(&response.body),
        ))
    }

    fn decode<T: DeserializeOwned>(
        &self,
        path: &str,
        response: &Response,
    ) -> Result<T, StageError> {
        serde_json::from_slice(&response.body).map_err(|e| {
            let what = path.split('?').next().unwrap_or(path);
            StageError::InvalidData(format!(
                "{} answered {what} with JSON this client cannot read: {e}",
                service_name(self.service)
            ))
        })
    }
}

/// Human name of a service, for messages.
pub fn service_name(service: Service) -> &'static str {
    match service {
        Service::Pbx => "3CX",
        Service::Crm => "HighLevel",
    }
}

/// Readable text of a stage error, for logs and park reasons, on both
/// runtimes (the bundled host converts its binding's error to call this).
/// Errors carry no secrets: clients put only status and message in them.
pub fn describe(error: &StageError) -> String {
    match error {
        StageError::Unauthorized(e) => format!(
            "{} refused the credentials ({}): {}",
            service_name(e.service),
            e.status,
            e.message
        ),
        StageError::Forbidden(e) => format!(
            "{} denied access ({}): {} — check the API user's role and licence",
            service_name(e.service),
            e.status,
            e.message
        ),
        StageError::RateLimited(secs) => format!("rate limited; retrying after {secs} s"),
        StageError::Upstream(e) => format!(
            "{} answered {}: {}",
            service_name(e.service),
            e.status,
            e.message
        ),
        StageError::Network(m) => format!("network: {m}"),
        StageError::InvalidData(m) => format!("invalid data: {m}"),
        StageError::InvalidSettings(m) => format!("invalid settings: {m}"),
        StageError::Storage(m) => format!("storage: {m}"),
        StageError::NotImplemented(m) => format!("not implemented: {m}"),
    }
}

fn to_json<B: Serialize>(body: &B) -> Result<Vec<u8>, StageError> {
    serde_json::to_vec(body).map_err(|e| StageError::InvalidData(format!("encoding request: {e}")))
}

/// The typed error of a non-success `status` from `service` (401 →
/// unauthorized, 403 → forbidden, 429 → rate limited for `retry_after`
/// seconds or a default, else upstream), for both runtimes: the guests'
/// client and the bundled host's.
pub fn status_error(
    service: Service,
    status: u16,
    retry_after: Option<u32>,
    message: String,
) -> StageError {
    let error = UpstreamError {
        service,
        status,
        message,
    };
    match status {
        401 => StageError::Unauthorized(error),
        403 => StageError::Forbidden(error),
        429 => StageError::RateLimited(retry_after.unwrap_or(DEFAULT_RETRY_AFTER_SECS)),
        _ => StageError::Upstream(error),
    }
}

/// The service's own message from an error body, whichever shape it has:
/// OData `{"error":{"message"}}` (3CX), OAuth `{"error_description"}`, or
/// HighLevel `{"message": string | [string]}`.
pub fn error_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(json) => message_from_json(&json).unwrap_or_else(|| json.to_string()),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let mut text = text.trim().to_string();
    if text.len() > MAX_ERROR_MESSAGE {
        let mut cut = MAX_ERROR_MESSAGE;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    if text.is_empty() {
        "(empty body)".into()
    } else {
        text
    }
}

fn message_from_json(json: &serde_json::Value) -> Option<String> {
    if let Some(message) = json.pointer("/error/message").and_then(|m| m.as_str()) {
        return Some(message.to_string());
    }
    if let Some(description) = json.get("error_description").and_then(|m| m.as_str()) {
        return Some(description.to_string());
    }
    match json.get("message")? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(items) => Some(
            items
                .iter()
                .filter_map(|i| i.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_reads_odata_oauth_and_highlevel_shapes() {
        let odata = br#"{"error":{"code":"403","message":"Role too low"}}"#;
        assert_eq!(error_message(odata), "Role too low");
        let oauth = br#"{"error":"unauthorized","error_description":"bad client"}"#;
        assert_eq!(error_message(oauth), "bad client");
        let hl = br#"{"statusCode":422,"message":["a missing","b missing"]}"#;
        assert_eq!(error_message(hl), "a missing; b missing");
        assert_eq!(error_message(b"plain text"), "plain text");
        assert_eq!(error_message(b""), "(empty body)");
    }

    #[test]
    fn error_message_is_cut_to_a_bounded_length() {
        let long = "é".repeat(1000);
        let message = error_message(long.as_bytes());
        assert!(message.len() <= MAX_ERROR_MESSAGE + '…'.len_utf8());
        assert!(message.ends_with('…'));
    }
}
