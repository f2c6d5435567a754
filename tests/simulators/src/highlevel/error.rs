//! Error responses, shaped like `common/common-schemas.json`.
//!
//! - 400 `BadRequestDTO` `{"statusCode":400,"message":"..."}`
//! - 401 `UnauthorizedDTO` `{"statusCode":401,"message":"...","error":"Unauthorized"}`
//! - 422 `UnprocessableDTO` `{"statusCode":422,"message":["..."],"error":"Unprocessable Entity"}`
//! - 403/404/429/500 reuse the 400 shape [ASSUMED: not declared by the specs].
//! - upload errors use `UploadFilesErrorResponseDto` `{"status":413,"message":"Failed to upload the files"}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The spec's `UnauthorizedDTO` message, used for every token problem.
pub(crate) const INVALID_TOKEN: &str = "Invalid token: access token is invalid";

/// An API error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiError {
    /// 400 `BadRequestDTO`.
    BadRequest(String),
    /// 401 `UnauthorizedDTO`.
    Unauthorized(String),
    /// 403, e.g. a token used on another location.
    Forbidden(String),
    /// 404.
    NotFound(String),
    /// 422 `UnprocessableDTO`, one message per violated constraint.
    Unprocessable(Vec<String>),
    /// 429, with an optional `Retry-After` in seconds.
    TooManyRequests(Option<u64>),
    /// 500.
    Internal,
    /// `UploadFilesErrorResponseDto` with status 400, 413 or 415.
    Upload(StatusCode),
}

impl ApiError {
    /// 400 with `message`.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    /// 422 with a single message.
    pub(crate) fn unprocessable(message: impl Into<String>) -> Self {
        Self::Unprocessable(vec![message.into()])
    }

    /// 403 for a location the token is not bound to [ASSUMED message].
    pub(crate) fn wrong_location() -> Self {
        Self::Forbidden("The token does not have access to this location".to_owned())
    }

    /// The HTTP status of this error.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Upload(status) => *status,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = status.as_u16();
        let body = match &self {
            Self::BadRequest(m) | Self::Forbidden(m) | Self::NotFound(m) => {
                json!({"statusCode": code, "message": m})
            }
            Self::Unauthorized(m) => {
                json!({"statusCode": code, "message": m, "error": "Unauthorized"})
            }
            Self::Unprocessable(m) => {
                json!({"statusCode": code, "message": m, "error": "Unprocessable Entity"})
            }
            Self::TooManyRequests(_) => json!({"statusCode": code, "message": "Too Many Requests"}),
            Self::Internal => json!({"statusCode": code, "message": "Internal Server Error"}),
            Self::Upload(_) => json!({"status": code, "message": "Failed to upload the files"}),
        };
        let mut response = (status, Json(body)).into_response();
        if let Self::TooManyRequests(Some(secs)) = self
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert("retry-after", value);
        }
        response
    }
}

/// Parses a JSON request body: malformed JSON is a 400 (as NestJS answers),
/// a well-formed body of the wrong shape a 422 naming the problem.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|err| match err.classify() {
        serde_json::error::Category::Data => ApiError::unprocessable(err.to_string()),
        _ => ApiError::bad_request(format!("Unexpected token in JSON body: {err}")),
    })
}
