//! Rate limiting, injected faults, request counting, trace ids.

use std::time::Duration;

use super::Fixture;
use crate::highlevel::{Fault, HighLevelConfig, RateLimit};

#[tokio::test]
async fn rate_limit_429_after_max_requests_with_retry_after() {
    let fx = Fixture::with(HighLevelConfig {
        rate_limit: Some(RateLimit {
            max: 3,
            interval: Duration::from_secs(10),
        }),
        ..HighLevelConfig::default()
    })
    .await;
    let path = format!("/conversations/search?locationId={}", fx.location());
    for expected_remaining in ["2", "1", "0"] {
        let reply = fx.get(&path).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.header("x-ratelimit-max"), Some("3"));
        assert_eq!(
            reply.header("x-ratelimit-remaining"),
            Some(expected_remaining)
        );
        assert_eq!(
            reply.header("x-ratelimit-interval-milliseconds"),
            Some("10000")
        );
        assert_eq!(reply.header("x-ratelimit-limit-daily"), Some("200000"));
        assert!(reply.header("x-ratelimit-daily-remaining").is_some());
    }
    let limited = fx.get(&path).await;
    assert_eq!(limited.status, 429);
    assert_eq!(
        limited.body,
        serde_json::json!({"statusCode": 429, "message": "Too Many Requests"})
    );
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    // The token endpoint is not rate limited.
    let pair = fx.sim.install();
    let config = fx.sim.config().clone();
    let refreshed = fx
        .token_request(&[
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.as_str()),
            ("grant_type", "refresh_token"),
            ("refresh_token", pair.refresh_token.as_str()),
        ])
        .await;
    assert_eq!(refreshed.status, 200);
}

#[tokio::test]
async fn injected_faults_hit_only_the_next_api_requests() {
    let fx = Fixture::new().await;
    let path = format!("/conversations/search?locationId={}", fx.location());
    fx.sim.inject_failures(Fault::ServerError, 1);
    fx.sim.inject_failures(
        Fault::TooManyRequests {
            retry_after_secs: Some(7),
        },
        1,
    );
    let first = fx.get(&path).await;
    assert_eq!(first.status, 500);
    assert_eq!(first.body["statusCode"], 500);
    let second = fx.get(&path).await;
    assert_eq!(second.status, 429);
    assert_eq!(second.header("retry-after"), Some("7"));
    assert_eq!(second.body["message"], "Too Many Requests");
    let third = fx.get(&path).await;
    assert_eq!(third.status, 200);
    assert!(third.header("x-trace-id").is_some());

    assert_eq!(fx.sim.request_count("GET", "/conversations/search"), 3);
    assert_eq!(fx.sim.request_count("get", "/conversations"), 3);
    assert_eq!(fx.sim.request_count("POST", "/conversations"), 0);
}
