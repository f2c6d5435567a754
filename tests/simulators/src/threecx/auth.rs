//! `POST /connect/token` (OAuth 2 client credentials) and the gate every
//! request passes: request log, fault injection, bearer-token check.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::{ODataError, oauth_error};
use super::odata::decode_form;
use super::state::{Shared, lock};
use super::types::Fault;

/// `POST /connect/token` with a form-urlencoded body of `client_id`,
/// `client_secret` and `grant_type=client_credentials`. While a token is
/// active, a new request replaces it, gets it again, is refused or gets a
/// second one, as `ThreeCxConfig::token_issue` says.
pub(crate) async fn token(State(shared): State<Shared>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    let Ok(form) = decode_form(&text) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request body is malformed.",
        );
    };
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match field("grant_type") {
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The mandatory 'grant_type' parameter is missing.",
            );
        }
        Some("client_credentials") => {}
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "The specified 'grant_type' is not supported.",
            );
        }
    }
    let mut st = lock(&shared);
    let valid = field("client_id") == Some(st.config.client_id.as_str())
        && field("client_secret") == Some(st.config.client_secret.as_str());
    if !valid {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "The request requires valid user authentication.",
        );
    }
    let Some((access_token, expires_in)) = st.issue_token() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "An access token is already active for this client.",
        );
    };
    let body = json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "access_token": access_token,
        "refresh_token": null,
    });
    let mut resp = Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Runs before every route: logs the path; for `/xapi/` paths applies the
/// next injected fault, then requires the current bearer token (or, for
/// `DownloadRecording`, an `access_token` query parameter).
pub(crate) async fn gate(State(shared): State<Shared>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let is_api = path.starts_with("/xapi/");
    let fault = {
        let mut st = lock(&shared);
        st.request_log.push(path.clone());
        if is_api { st.faults.pop_front() } else { None }
    };
    match fault {
        Some(Fault::ServerError) => return ODataError::server_error().into_response(),
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            let mut resp = ODataError::too_many_requests().into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            return resp;
        }
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    if is_api {
        let query_token = path
            .contains("/Pbx.DownloadRecording")
            .then(|| query_access_token(req.uri().query()))
            .flatten();
        let presented = bearer(req.headers()).or(query_token);
        let valid = presented.is_some_and(|t| lock(&shared).token_is_valid(&t));
        if !valid {
            return ODataError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn query_access_token(query: Option<&str>) -> Option<String> {
    decode_form(query?)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer(&headers).as_deref(), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn access_token_query_is_decoded() {
        assert_eq!(
            query_access_token(Some("x=1&access_token=a%2Bb")).as_deref(),
            Some("a+b")
        );
        assert_eq!(query_access_token(Some("x=1")), None);
        assert_eq!(query_access_token(None), None);
    }
}
