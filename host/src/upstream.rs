//! Turning HTTP answers the host receives itself (token endpoints, contact
//! search) into the same typed errors components return.

use crate::bindings::types::{Service, StageError};
use std::time::Duration;

/// Most bytes the host reads of any answer it receives itself (a token,
/// a contact search page, an error): the rest is not read.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// The client for every request the host makes itself to 3CX, HighLevel
/// or a doctor's probe (tokens, contact search, diagnostics, backfill,
/// `match`): it never follows a redirect, so a client secret, a refresh
/// token or an access token never travels to wherever a 3xx points (the
/// answer is read as the 3xx it is), and gives up after `timeout`.
pub fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// The answer's body as text, at most [`MAX_ANSWER_BYTES`] of it (read no
/// further: a hostile server cannot make the host buffer an endless
/// body). Cut, it is no longer valid JSON, and is refused as such.
pub async fn capped_text(mut response: reqwest::Response) -> reqwest::Result<String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_ANSWER_BYTES - body.len();
        if chunk.len() >= room {
            body.extend_from_slice(&chunk[..room]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Human name of a service (`guest_support::api::service_name`).
pub fn service_name(service: Service) -> &'static str {
    guest_support::api::service_name(service.into())
}

/// The service's own message from an error body, cut to a bounded length
/// (`guest_support::api::error_message`, as the components word it).
pub fn message_of(body: &str) -> String {
    guest_support::api::error_message(body.as_bytes())
}

/// A typed error for a non-success `status` (401, 403, 429 or other, as the
/// components map it, `guest_support::api::status_error`).
pub fn status_error(
    service: Service,
    status: u16,
    retry_after: Option<u32>,
    message: String,
) -> StageError {
    guest_support::api::status_error(service.into(), status, retry_after, message).into()
}

/// A typed error for a transport failure (no HTTP answer).
pub fn network_error(service: Service, error: &reqwest::Error) -> StageError {
    // reqwest's text names the URL, never headers or form fields, so no
    // secret can leak through it.
    StageError::Network(format!(
        "{} could not be reached: {error}",
        service_name(service)
    ))
}

/// `Retry-After` in whole seconds, when present, at most an hour
/// (`guest_support::waits`).
pub fn retry_after(response: &reqwest::Response) -> Option<u32> {
    guest_support::waits::retry_after_secs(response.headers().get("retry-after")?.to_str().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_come_from_each_error_shape() {
        assert_eq!(message_of(r#"{"error":{"message":"nope"}}"#), "nope");
        assert_eq!(
            message_of(r#"{"error":"unauthorized","error_description":"bad"}"#),
            "bad"
        );
        assert_eq!(
            message_of(r#"{"statusCode":422,"message":["a","b"]}"#),
            "a; b"
        );
        assert_eq!(message_of(""), "(empty body)");
        // Cut to 300 bytes, marked as cut.
        assert_eq!(
            message_of(&"x".repeat(1000)),
            format!("{}…", "x".repeat(300))
        );
    }

    #[test]
    fn statuses_map_to_the_matching_error_case() {
        assert!(matches!(
            status_error(Service::Pbx, 401, None, "m".into()),
            StageError::Unauthorized(_)
        ));
        assert!(matches!(
            status_error(Service::Pbx, 403, None, "m".into()),
            StageError::Forbidden(_)
        ));
        assert!(matches!(
            status_error(Service::Crm, 429, Some(7), "m".into()),
            StageError::RateLimited(7)
        ));
        assert!(matches!(
            status_error(Service::Crm, 502, None, "m".into()),
            StageError::Upstream(_)
        ));
    }
}
