//! Loopback tests: a started simulator, driven over HTTP with reqwest.

mod access;
mod call_log;
mod downloads;
mod history;
mod resources;

use chrono::{DateTime, Utc};
use reqwest::{Client, Response};
use serde_json::Value;

use super::{ThreeCxConfig, ThreeCxSim};

/// Parses an RFC 3339 instant.
fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

async fn start() -> ThreeCxSim {
    ThreeCxSim::start(ThreeCxConfig::default()).await.unwrap()
}

/// Requests a token with the given secret.
async fn token_response(sim: &ThreeCxSim, secret: &str) -> Response {
    Client::new()
        .post(sim.token_url())
        .form(&[
            ("client_id", "connectzero"),
            ("client_secret", secret),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap()
}

/// A valid token for the default credentials.
async fn token(sim: &ThreeCxSim) -> String {
    let body: Value = token_response(sim, "sim-3cx-secret")
        .await
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// `GET {api}{path_and_query}` with a bearer token.
async fn get(sim: &ThreeCxSim, token: &str, path_and_query: &str) -> Response {
    Client::new()
        .get(format!("{}{path_and_query}", sim.api_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// `GET` expecting 200 and a JSON body.
async fn get_json(sim: &ThreeCxSim, token: &str, path_and_query: &str) -> Value {
    let resp = get(sim, token, path_and_query).await;
    assert_eq!(resp.status(), 200, "GET {path_and_query}");
    resp.json().await.unwrap()
}

/// `GET` expecting `status` and an ODataError body; returns `error`.
async fn get_error(sim: &ThreeCxSim, token: &str, path_and_query: &str, status: u16) -> Value {
    let resp = get(sim, token, path_and_query).await;
    assert_eq!(resp.status(), status, "GET {path_and_query}");
    let body: Value = resp.json().await.unwrap();
    let error = body["error"].clone();
    for key in ["code", "message", "target", "details", "innerError"] {
        assert!(error.get(key).is_some(), "ODataError lacks {key}: {body}");
    }
    error
}
