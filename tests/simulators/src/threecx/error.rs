//! Error bodies: `Pbx.ODataErrors.ODataError` for the API, and the OAuth
//! `{error, error_description}` shape for `/connect/token`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An API error, rendered as
/// `{"error":{"code","message","target","details","innerError"}}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ODataError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// The offending parameter or field; when set it is repeated in `details[]`.
    pub target: Option<String>,
}

impl ODataError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let code = status
            .canonical_reason()
            .unwrap_or("Error")
            .replace([' ', '\''], "");
        Self {
            status,
            code,
            message: message.into(),
            target: None,
        }
    }

    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Authorization has been denied for this request.",
        )
    }

    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "The API client's role does not allow this operation (System Owner is required).",
        )
    }

    pub fn server_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An unexpected error occurred (injected by the simulator).",
        )
    }

    pub fn too_many_requests() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests; retry after the delay in Retry-After.",
        )
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let details: Vec<Value> = match &self.target {
            Some(t) => vec![json!({"code": self.code, "message": self.message, "target": t})],
            None => Vec::new(),
        };
        json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "target": self.target,
                "details": details,
                "innerError": {},
            }
        })
    }
}

impl IntoResponse for ODataError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// The OAuth error shape used only by `/connect/token`.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odata_error_body_has_all_main_error_keys() {
        let body = ODataError::bad_request("bad $top")
            .with_target("$top")
            .body();
        let err = &body["error"];
        assert_eq!(err["code"], "BadRequest");
        assert_eq!(err["message"], "bad $top");
        assert_eq!(err["target"], "$top");
        assert_eq!(err["details"][0]["target"], "$top");
        assert!(err["innerError"].is_object());
    }

    #[test]
    fn untargeted_error_has_null_target_and_empty_details() {
        let body = ODataError::unauthorized().body();
        assert_eq!(body["error"]["code"], "Unauthorized");
        assert!(body["error"]["target"].is_null());
        assert_eq!(body["error"]["details"], json!([]));
    }
}
