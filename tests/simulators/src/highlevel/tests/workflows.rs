//! Workflow triggers (subscriptions to the app, executions from it) and
//! custom actions, against a small app stub on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};

use super::{Fixture, Reply};
use crate::highlevel::{Fault, HighLevelConfig, RateLimit};

/// What the stub received: headers and exact body bytes of each POST.
type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// An app endpoint on 127.0.0.1:0 answering every POST with `status` and
/// `answer` (as JSON, or plain text `ok` when `None`). Returns its URL.
async fn app_stub(status: u16, answer: Option<Value>) -> (String, Received) {
    let received = Received::default();
    let log = received.clone();
    let handler = move |headers: HeaderMap, body: Bytes| {
        let log = log.clone();
        let answer = answer.clone();
        async move {
            log.lock().unwrap().push((headers, body));
            let status = StatusCode::from_u16(status).unwrap();
            match answer {
                Some(json) => (status, axum::Json(json)).into_response(),
                None => (status, "ok").into_response(),
            }
        }
    };
    let router = Router::new().route("/hook", post(handler));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, received)
}

/// The JSON body of the `index`th request the stub received.
fn body_of(received: &Received, index: usize) -> Value {
    serde_json::from_slice(&received.lock().unwrap()[index].1).unwrap()
}

/// `POST` to a trigger target URL with the fixture's token.
async fn fire(fx: &Fixture, url: &str, version: Option<&str>, body: &str) -> Reply {
    let mut request = fx
        .http
        .post(url)
        .bearer_auth(&fx.token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.to_owned());
    if let Some(version) = version {
        request = request.header("Version", version);
    }
    Reply::read(request.send().await.unwrap()).await
}

#[tokio::test]
async fn trigger_subscription_and_removal_reach_the_app() {
    let fx = Fixture::new().await;
    let (url, received) = app_stub(200, Some(json!({"ok": true}))).await;
    let sub = fx
        .sim
        .subscribe_trigger(
            &url,
            "call_logged",
            "CREATED",
            &[("x-app-secret", "s3cret")],
        )
        .await
        .unwrap();
    assert_eq!(sub.status, 200);
    assert_eq!(sub.key, "call_logged");
    let prefix = format!(
        "{}/workflows-marketplace/triggers/execute/",
        fx.sim.base_url()
    );
    let tail = sub.target_url.strip_prefix(&prefix).unwrap();
    let (a, b) = tail.split_once('/').unwrap();
    assert_eq!((a.len(), b), (24, sub.id.as_str()));
    let config = fx.sim.config();
    assert_eq!(
        body_of(&received, 0),
        json!({
            "triggerData": {
                "id": sub.id,
                "key": "call_logged",
                "filters": [],
                "eventType": "CREATED",
                "targetUrl": sub.target_url,
            },
            "meta": {"key": "call_logged", "version": "1.0"},
            "extras": {
                "locationId": config.location_id,
                "workflowId": sub.workflow_id,
                "companyId": config.company_id,
            },
        })
    );
    {
        let log = received.lock().unwrap();
        assert_eq!(log[0].0["x-app-secret"], "s3cret");
        assert_eq!(log[0].0["content-type"], "application/json");
    }

    let status = fx.sim.unsubscribe_trigger(&url, &sub, &[]).await.unwrap();
    assert_eq!(status, 200);
    let removal = body_of(&received, 1);
    assert_eq!(removal["triggerData"]["eventType"], "DELETED");
    assert_eq!(removal["triggerData"]["id"], sub.id.as_str());
    assert_eq!(removal["extras"]["workflowId"], sub.workflow_id.as_str());

    // The app's answer is passed through; an unreachable app is an error.
    let (refusing, _) = app_stub(401, None).await;
    let sub = fx
        .sim
        .subscribe_trigger(&refusing, "k", "CREATED", &[])
        .await;
    assert_eq!(sub.unwrap().status, 401);
    let closed = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let gone = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    assert!(
        fx.sim
            .subscribe_trigger(&gone, "k", "CREATED", &[])
            .await
            .is_err()
    );
}

#[tokio::test]
async fn trigger_executions_are_recorded_with_optional_version() {
    let fx = Fixture::new().await;
    let (url, _) = app_stub(200, None).await;
    let sub = fx
        .sim
        .subscribe_trigger(&url, "call_logged", "CREATED", &[])
        .await
        .unwrap();

    let payload = r#"{"contactId":"c1","callStatus":"completed"}"#;
    let reply = fire(&fx, &sub.target_url, Some("2021-04-15"), payload).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, json!({"success": true}));
    assert!(reply.header("x-trace-id").is_some());
    let other = format!(
        "{}/workflows-marketplace/triggers/execute/x/y",
        fx.sim.base_url()
    );
    assert_eq!(fire(&fx, &other, None, "{}").await.status, 200);

    let executions = fx.sim.trigger_executions();
    assert_eq!(executions.len(), 2);
    let path = sub.target_url.strip_prefix(&fx.sim.base_url()).unwrap();
    assert_eq!(executions[0].target_path, path);
    assert_eq!(
        executions[0].body,
        json!({"contactId": "c1", "callStatus": "completed"})
    );
    assert_eq!(executions[0].version_header.as_deref(), Some("2021-04-15"));
    assert_eq!(executions[1].version_header, None);
    assert!(executions[0].received_at < executions[1].received_at);

    // No token, a foreign token, a non-JSON content type, a non-object body.
    let anonymous = fx
        .http
        .post(&sub.target_url)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let anonymous = Reply::read(anonymous).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.body["error"], "Unauthorized");
    let forged = fx
        .http
        .post(&sub.target_url)
        .bearer_auth("nope")
        .json(&json!({}));
    assert_eq!(forged.send().await.unwrap().status(), 401);
    let text = fx
        .http
        .post(&sub.target_url)
        .bearer_auth(&fx.token)
        .header(header::CONTENT_TYPE, "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 400);
    assert_eq!(fire(&fx, &sub.target_url, None, "[1]").await.status, 422);
    assert_eq!(fire(&fx, &sub.target_url, None, "{oops").await.status, 400);
    assert_eq!(fx.sim.trigger_executions().len(), 2);
}

#[tokio::test]
async fn trigger_executions_obey_faults_and_the_rate_limit() {
    let fx = Fixture::with(HighLevelConfig {
        rate_limit: Some(RateLimit {
            max: 2,
            interval: Duration::from_secs(3600),
        }),
        ..HighLevelConfig::default()
    })
    .await;
    let url = format!(
        "{}/workflows-marketplace/triggers/execute/a/b",
        fx.sim.base_url()
    );
    fx.sim.inject_failures(Fault::ServerError, 1);
    assert_eq!(fire(&fx, &url, None, "{}").await.status, 500);
    let allowed = fire(&fx, &url, None, "{}").await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("x-ratelimit-max"), Some("2"));
    assert_eq!(fire(&fx, &url, None, "{}").await.status, 200);
    assert_eq!(fire(&fx, &url, None, "{}").await.status, 429);
    assert_eq!(fx.sim.trigger_executions().len(), 2);
    assert_eq!(
        fx.sim
            .request_count("POST", "/workflows-marketplace/triggers/execute/"),
        4
    );
}

#[tokio::test]
async fn custom_action_posts_the_payload_and_returns_the_answer() {
    let fx = Fixture::new().await;
    let (url, received) = app_stub(200, Some(json!({"noteId": "n1", "ok": true}))).await;
    let data = json!({"summary": "Missed call", "notify": true});
    let (status, answer) = fx
        .sim
        .execute_action(
            &url,
            "log_call",
            data.clone(),
            "contact00000000000001",
            &[("authorization", "Bearer app-key")],
        )
        .await
        .unwrap();
    assert_eq!((status, answer), (200, json!({"noteId": "n1", "ok": true})));
    let body = body_of(&received, 0);
    assert_eq!(body["data"], data);
    assert_eq!(body["meta"], json!({"key": "log_call", "version": "1.0"}));
    assert_eq!(body["isMarketplaceAction"], true);
    let extras = &body["extras"];
    assert_eq!(extras["locationId"], fx.location().as_str());
    assert_eq!(extras["contactId"], "contact00000000000001");
    assert_eq!(extras["workflowId"].as_str().map(str::len), Some(36));
    assert_eq!(
        received.lock().unwrap()[0].0["authorization"],
        "Bearer app-key"
    );

    // A non-JSON answer is Null; the status is passed through.
    let (plain, _) = app_stub(503, None).await;
    let result = fx
        .sim
        .execute_action(&plain, "log_call", json!({}), "c", &[])
        .await;
    assert_eq!(result.unwrap(), (503, Value::Null));
}

#[tokio::test]
async fn raw_custom_action_sends_the_exact_bytes() {
    let fx = Fixture::new().await;
    let (url, received) = app_stub(201, Some(json!({"accepted": true}))).await;
    let payload = fx
        .sim
        .action_payload("log_call", json!({"a": 1}), "contact1");
    let bytes = serde_json::to_vec_pretty(&payload).unwrap();
    let headers = [("x-wh-signature", "c2lnbmF0dXJl")];
    let (status, answer) = fx
        .sim
        .execute_action_raw(&url, bytes.clone(), &headers)
        .await
        .unwrap();
    assert_eq!((status, answer), (201, json!({"accepted": true})));
    {
        let log = received.lock().unwrap();
        assert_eq!(log[0].1.as_ref(), bytes.as_slice());
        assert_eq!(log[0].0["x-wh-signature"], "c2lnbmF0dXJl");
        assert_eq!(log[0].0["content-type"], "application/json");
    }
    // A Content-Type of the caller's replaces the default.
    let text = [("content-type", "text/plain")];
    fx.sim
        .execute_action_raw(&url, b"not json".to_vec(), &text)
        .await
        .unwrap();
    let log = received.lock().unwrap();
    assert_eq!(log[1].0.get_all("content-type").iter().count(), 1);
    assert_eq!(log[1].0["content-type"], "text/plain");
    assert_eq!(log[1].1.as_ref(), b"not json");
}
