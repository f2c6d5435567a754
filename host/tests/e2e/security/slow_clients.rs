//! Slow and abusive HTTP clients: connections that announce a body and
//! never send it, or never finish their headers, are closed within the
//! server's limits, take at most a bounded share of Update Call Record's
//! slots, and never stop calls from posting.

use crate::common::*;
use connectzero::demo::{Placer, numbers};
use connectzero::server::listen::{Limits, serve};
use connectzero::server::{ServerState, router};
use connectzero::testbed::ACTION_SECRET;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short limits, so the test sees them act; fewer connections than the
/// test opens, so some wait for others to be closed.
const LIMITS: Limits = Limits {
    max_connections: 150,
    header_timeout: Duration::from_secs(1),
    request_timeout: Duration::from_secs(2),
    body_timeout: Duration::from_secs(1),
};

/// Open a connection and send `head` (and nothing after it).
async fn stalled(addr: std::net::SocketAddr, head: String) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(head.as_bytes()).await?;
    Ok(stream)
}

/// Read until the server closes the connection; what it said, or `None`
/// when it had not closed it after `within`.
async fn closed_within(mut stream: TcpStream, within: Duration) -> Result<String, String> {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    match read {
        Ok(()) => Ok(text),
        Err(_) => Err(text),
    }
}

#[tokio::test]
async fn two_hundred_stalled_bodies_are_closed_in_time_and_calls_still_post() -> anyhow::Result<()>
{
    let (world, _) = seeded_world(defaults()).await?;
    let state = Arc::new(ServerState {
        pipeline: world.pipeline.clone(),
        tenants: HashMap::from([(world.tenant.id().to_string(), world.tenant.clone())]),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener, router(state), LIMITS));

    // 200 requests that announce 1,000 bytes and send one: half to the
    // action, half to the subscription endpoint; half of each with the
    // shared secret (past the gate), half without.
    let mut sockets = Vec::new();
    for i in 0..200 {
        let path = if i % 2 == 0 {
            "/t/demo/actions/update-call-record"
        } else {
            "/t/demo/triggers/subscription"
        };
        let secret = if i % 4 < 2 {
            format!("x-connectzero-secret: {ACTION_SECRET}\r\n")
        } else {
            String::new()
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{secret}content-length: 1000\r\n\r\n{{"
        );
        sockets.push(stalled(addr, head).await?);
    }
    // And 20 that never finish their headers.
    for _ in 0..20 {
        sockets.push(
            stalled(
                addr,
                "POST /t/demo/triggers/subscription HTTP/1.1\r\nhost: x\r\n".into(),
            )
            .await?,
        );
    }

    // Calls arrive meanwhile and post as ever.
    let mut placer = Placer::default();
    for id in 1..=3 {
        place(
            &world,
            &mut placer,
            &one_leg(id, outside(numbers::DANA), ext("101"), true, 30),
        );
    }
    let report = world.tick().await?;
    assert_eq!(report.posted, 3, "{report:?}");

    // Every stalled connection is answered or closed within the limits,
    // with room for a loaded machine (some waited for a free connection).
    let mut answers = HashMap::<(&str, String), usize>::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let answer = closed_within(socket, Duration::from_secs(20))
            .await
            .unwrap_or_else(|so_far| panic!("connection {i} still open; it was told {so_far:?}"));
        let status = answer
            .split_whitespace()
            .nth(1)
            .unwrap_or("closed")
            .to_string();
        let kind = match i {
            200.. => "unfinished headers",
            _ if i % 4 >= 2 => "no secret",
            _ if i % 2 == 0 => "action",
            _ => "subscription",
        };
        *answers.entry((kind, status)).or_default() += 1;
    }
    let count = |kind: &str, status: &str| {
        answers
            .get(&(kind, status.to_string()))
            .copied()
            .unwrap_or(0)
    };
    // Without the secret: refused before any body is read.
    assert_eq!(count("no secret", "401"), 100, "{answers:?}");
    // With it, the action: a few slots for the tenant, the rest told to
    // come back (429, which HighLevel retries).
    assert!(count("action", "429") >= 40, "{answers:?}");
    // Headers never finished: closed without an answer.
    assert_eq!(count("unfinished headers", "closed"), 20, "{answers:?}");
    // No stalled request got a success.
    assert!(
        answers.keys().all(|(_, status)| !status.starts_with('2')),
        "{answers:?}"
    );

    // The server still serves.
    let health = reqwest::get(format!("http://{addr}/healthz")).await?;
    assert_eq!(health.status(), 200);
    Ok(())
}
