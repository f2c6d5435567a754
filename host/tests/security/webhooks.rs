//! HighLevel's calls to the host: the signature rule.

use crate::common::*;
use connectzero::server::{HIGHLEVEL_WEBHOOK_KEY, ServerState, serve};
use connectzero::testbed::ACTION_SECRET;
use std::collections::HashMap;
use std::sync::Arc;

/// Before, a missing `x-wh-signature` was accepted even where the
/// operator had configured the key HighLevel signs with.
#[tokio::test]
async fn a_configured_key_requires_a_signature() {
    let (mut world, _) = seeded_world(defaults()).await;
    world
        .reconfigure(|config| {
            config.actions.signature_public_key = Some(HIGHLEVEL_WEBHOOK_KEY.to_string());
        })
        .unwrap();
    let state = Arc::new(ServerState {
        pipeline: world.pipeline.clone(),
        tenants: HashMap::from([(world.tenant.id().to_string(), world.tenant.clone())]),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, state));
    let http = reqwest::Client::new();
    for path in [
        "/t/demo/triggers/subscription",
        "/t/demo/actions/update-call-record",
    ] {
        let answer = http
            .post(format!("{base}{path}"))
            .header("x-connectzero-secret", ACTION_SECRET)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let text = answer.text().await.unwrap();
        assert_eq!(status, 401, "{path}: {text}");
        assert!(text.contains("x-wh-signature"), "{path}: {text}");
    }
}
