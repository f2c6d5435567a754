//! Token flow, bearer checks, fault injection and the forbidden role.

use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};

use super::{get, get_error, get_json, start, token, token_response};
use crate::threecx::{Fault, SimRecording, SimSegment, ThreeCxConfig, ThreeCxSim, silent_wav};

#[tokio::test]
async fn wrong_secret_gets_oauth_401_then_rotated_secret_works() {
    let sim = start().await;
    sim.set_client_secret("rotated");
    let resp = token_response(&sim, "sim-3cx-secret").await;
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "unauthorized", "error_description": "The request requires valid user authentication."})
    );

    let resp = token_response(&sim, "rotated").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(body["refresh_token"].is_null());
    let token = body["access_token"].as_str().unwrap();
    get_json(&sim, token, "/Users").await;
    assert_eq!(sim.token_requests(), 2);
    assert_eq!(sim.request_count("/connect/token"), 2);
}

#[tokio::test]
async fn wrong_grant_type_is_oauth_400() {
    let sim = start().await;
    let resp = Client::new()
        .post(sim.token_url())
        .form(&[
            ("client_id", "connectzero"),
            ("client_secret", "sim-3cx-secret"),
            ("grant_type", "password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");
    assert!(body["error_description"].is_string());
}

#[tokio::test]
async fn new_token_invalidates_previous_and_expire_tokens_invalidates_all() {
    let sim = start().await;
    let first = token(&sim).await;
    get_json(&sim, &first, "/Users").await;
    let second = token(&sim).await;
    assert_ne!(first, second);

    let resp = get(&sim, &first, "/Users").await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Unauthorized");
    get_json(&sim, &second, "/Users").await;

    sim.expire_tokens();
    get_error(&sim, &second, "/Users", 401).await;
    let third = token(&sim).await;
    get_json(&sim, &third, "/Users").await;
}

#[tokio::test]
async fn each_reading_of_one_active_token_is_played() {
    use crate::threecx::TokenIssue;
    let sim = start().await;
    // The active token is answered again, with what it has left.
    sim.set_token_issue(TokenIssue::ReturnActive);
    let first = token(&sim).await;
    let again: Value = token_response(&sim, "sim-3cx-secret")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["access_token"], first.as_str());
    assert!(again["expires_in"].as_u64().unwrap() <= 3600);
    assert_eq!(sim.tokens_issued(), 1);
    // Refused while one is active; the active one keeps working.
    sim.set_token_issue(TokenIssue::RefuseWhileActive);
    let refused = token_response(&sim, "sim-3cx-secret").await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    get_json(&sim, &first, "/Users").await;
    // Several tokens, each valid.
    sim.set_token_issue(TokenIssue::Coexist);
    let second = token(&sim).await;
    assert_ne!(first, second);
    get_json(&sim, &first, "/Users").await;
    get_json(&sim, &second, "/Users").await;
    // Once expired, a new one is issued whatever the reading.
    sim.expire_tokens();
    sim.set_token_issue(TokenIssue::RefuseWhileActive);
    let third = token(&sim).await;
    get_error(&sim, &second, "/Users", 401).await;
    get_json(&sim, &third, "/Users").await;
    assert_eq!(sim.tokens_issued(), 3);
}

#[tokio::test]
async fn api_without_token_or_with_lapsed_token_is_401() {
    let sim = ThreeCxSim::start(ThreeCxConfig {
        token_lifetime_secs: 0,
        ..ThreeCxConfig::default()
    })
    .await
    .unwrap();
    let resp = Client::new()
        .get(format!("{}/Users", sim.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let lapsed = token(&sim).await;
    get_error(&sim, &lapsed, "/CallHistoryView", 401).await;
}

#[tokio::test]
async fn injected_faults_hit_api_requests_only_then_clear() {
    let sim = start().await;
    sim.inject_failures(
        Fault::TooManyRequests {
            retry_after_secs: 7,
        },
        1,
    );
    sim.inject_failures(Fault::ServerError, 1);
    sim.inject_failures(Fault::Slow(Duration::from_millis(40)), 1);
    let token = token(&sim).await; // the token endpoint is not affected

    let resp = get(&sim, &token, "/Users").await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TooManyRequests");

    let error = get_error(&sim, &token, "/Users", 500).await;
    assert_eq!(error["code"], "InternalServerError");

    let started = Instant::now();
    get_json(&sim, &token, "/Users").await;
    assert!(started.elapsed() >= Duration::from_millis(40));
    get_json(&sim, &token, "/Users").await;
    assert_eq!(sim.request_count("/xapi/v1/Users"), 4);
}

#[tokio::test]
async fn low_role_gets_403_on_history_reports_and_recordings() {
    let sim = start().await;
    let seg = SimSegment::inbound(
        1,
        10,
        (
            super::at("2025-03-01T10:00:00Z"),
            super::at("2025-03-01T10:01:00Z"),
        ),
        "+441234567890",
        "101",
        true,
    );
    sim.add_recording(SimRecording::from_segment(3301, &seg, silent_wav(10)));
    sim.add_segment(seg);
    let token = token(&sim).await;
    sim.set_forbidden(true);
    let call_log = "/ReportCallLogData/Pbx.GetCallLogData(periodFrom=2025-03-01T00:00:00Z,periodTo=2025-03-02T00:00:00Z,sourceType=0,sourceFilter='',destinationType=0,destinationFilter='',callsType=0,callTimeFilterType=0,callTimeFilterFrom='0:00:0',callTimeFilterTo='0:00:0',hidePcalls=true)";
    for path in [
        "/CallHistoryView?$top=1",
        "/Recordings?$top=1",
        "/Recordings/Pbx.DownloadRecording(recId=3301)",
        call_log,
    ] {
        let error = get_error(&sim, &token, path, 403).await;
        assert_eq!(error["code"], "Forbidden");
    }
    get_json(&sim, &token, "/Users").await;
    get_json(&sim, &token, "/Defs/Pbx.GetLicenseParameters()").await;

    sim.set_forbidden(false);
    let body = get_json(&sim, &token, "/CallHistoryView?$top=1").await;
    assert_eq!(body["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn forbidding_recordings_leaves_history_readable() {
    let sim = start().await;
    let token = token(&sim).await;
    sim.forbid_recordings(true);
    for path in [
        "/Recordings?$top=1",
        "/Recordings/Pbx.DownloadRecording(recId=3301)",
    ] {
        let error = get_error(&sim, &token, path, 403).await;
        assert_eq!(error["code"], "Forbidden");
    }
    get_json(&sim, &token, "/CallHistoryView?$top=1").await;
    sim.forbid_recordings(false);
    get_json(&sim, &token, "/Recordings?$top=1").await;
}
