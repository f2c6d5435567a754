//! HTTP answers: the success reply, the one error type every check returns,
//! and the single place an error becomes a response.

use guest_support::api::service_name;
use guest_support::{StageError, UpstreamError};
use serde_json::{Value, json};

/// An HTTP answer with a JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Extra headers (content-type is always JSON).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// A 200 with `body`, already encoded.
    pub fn ok(body: Vec<u8>) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body,
        }
    }
}

/// Why a call is refused: a status and a message saying what is wrong and
/// how to fix it. Messages never contain secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// `{"error": message}`.
    pub message: String,
}

impl ApiError {
    /// An error with `status`.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 500: the component is misconfigured or its host failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, message)
    }

    /// The response for this error.
    pub fn into_reply(self) -> Reply {
        let mut headers = Vec::new();
        if self.status == 405 {
            headers.push(("allow".to_string(), "POST".to_string()));
        }
        Reply {
            status: self.status,
            headers,
            body: json!({ "error": self.message }).to_string().into_bytes(),
        }
    }
}

/// Turn a failed CRM request into the action's answer: an unknown contact
/// is a 404; refused credentials, rate limits, server errors and
/// unreachable APIs are a 502 carrying the CRM's own message; a settings or
/// storage problem on this side is a 500.
pub fn crm_error(error: StageError, contact_id: &str) -> ApiError {
    let crm = |e: &UpstreamError| {
        format!(
            "{} answered {}: {}",
            service_name(e.service),
            e.status,
            e.message
        )
    };
    match error {
        StageError::Upstream(e) if e.status == 404 => ApiError::new(
            404,
            format!(
                "contact {contact_id:?} does not exist in this HighLevel location ({}); check the contact id the workflow passes",
                crm(&e)
            ),
        ),
        StageError::Unauthorized(e) => ApiError::new(
            502,
            format!(
                "{}; re-authorise the ConnectZero app for this location",
                crm(&e)
            ),
        ),
        StageError::Forbidden(e) => ApiError::new(
            502,
            format!("{}; the app needs the contacts.write scope", crm(&e)),
        ),
        StageError::RateLimited(secs) => ApiError::new(
            502,
            format!("HighLevel is rate limiting this location; retry after {secs} s"),
        ),
        StageError::Upstream(e) => ApiError::new(502, crm(&e)),
        StageError::Network(m) => {
            ApiError::new(502, format!("HighLevel could not be reached: {m}"))
        }
        StageError::InvalidData(m) => {
            ApiError::new(502, format!("HighLevel answered unexpectedly: {m}"))
        }
        StageError::InvalidSettings(m) => ApiError::internal(format!("invalid settings: {m}")),
        StageError::Storage(m) => ApiError::internal(format!("key-value store: {m}")),
        StageError::NotImplemented(m) => ApiError::internal(format!("not implemented: {m}")),
    }
}

/// The success body: the action's custom variables.
pub fn applied_body(
    contact_id: &str,
    notes: bool,
    tags: &[String],
    sentiment: Option<&str>,
    score: Option<f64>,
    note_id: Option<&str>,
) -> Value {
    let mut body = json!({
        "applied": {
            "notes": notes,
            "tags": tags,
            "sentiment": sentiment,
            "score": score,
        },
        "contactId": contact_id,
    });
    if let Some(id) = note_id {
        body["noteId"] = Value::String(id.to_string());
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_support::Service;

    fn upstream(status: u16, message: &str) -> UpstreamError {
        UpstreamError {
            service: Service::Crm,
            status,
            message: message.into(),
        }
    }

    #[test]
    fn errors_become_json_and_405_names_the_allowed_method() {
        let reply = ApiError::new(405, "use POST").into_reply();
        assert_eq!(reply.status, 405);
        assert_eq!(
            reply.headers,
            vec![("allow".to_string(), "POST".to_string())]
        );
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body, json!({"error": "use POST"}));
    }

    #[test]
    fn crm_failures_map_to_404_502_and_500() {
        let missing = crm_error(
            StageError::Upstream(upstream(404, "Contact not found")),
            "c1",
        );
        assert_eq!(missing.status, 404);
        assert!(
            missing.message.contains("\"c1\"") && missing.message.contains("Contact not found")
        );
        for e in [
            StageError::Unauthorized(upstream(401, "Invalid token")),
            StageError::Forbidden(upstream(403, "scope")),
            StageError::RateLimited(7),
            StageError::Upstream(upstream(503, "down")),
            StageError::Network("refused".into()),
        ] {
            assert_eq!(crm_error(e, "c1").status, 502);
        }
        let limited = crm_error(StageError::RateLimited(7), "c1");
        assert!(limited.message.contains("7 s"));
        let server = crm_error(StageError::Upstream(upstream(503, "down")), "c1");
        assert!(server.message.contains("503") && server.message.contains("down"));
        assert_eq!(crm_error(StageError::Storage("x".into()), "c1").status, 500);
    }

    #[test]
    fn applied_body_has_every_variable_and_note_id_only_when_created() {
        let body = applied_body(
            "c1",
            false,
            &["vip".into()],
            Some("positive"),
            Some(0.8),
            None,
        );
        assert_eq!(
            body,
            json!({"applied": {"notes": false, "tags": ["vip"], "sentiment": "positive", "score": 0.8}, "contactId": "c1"})
        );
        let body = applied_body("c1", true, &[], None, None, Some("n1"));
        assert_eq!(body["noteId"], "n1");
        assert_eq!(body["applied"]["sentiment"], Value::Null);
    }
}
