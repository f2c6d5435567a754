//! The physical floor of this machine: one loopback HTTP round trip along
//! the path every component request takes (the allow-list, then the
//! process's pooling client; no sync, as after no write, and no rate
//! limiter) to a minimal server in this process. Every
//! figure made of requests sent one after another (one tenant's backlog,
//! a cold tick, latency) is bounded by it; the simulators add their own
//! handling on top.

use super::super::figures::Figures;
use super::super::load::cpu_time;
use super::super::percentile;
use crate::outbound::OutboundPolicy;
use http_body_util::BodyExt;
use std::time::{Duration, Instant};
use wasmtime_wasi_http::WasiHttpHooks;

/// Measure and print the round trip; returns its median.
pub(super) async fn loopback_round_trip(
    quick: bool,
    figures: &Figures,
) -> anyhow::Result<Duration> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().route("/ping", axum::routing::get(|| async { "{\"ok\":true}" }));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut policy = OutboundPolicy::allow_urls([url.as_str()]);
    // The first request opens the kept-alive connection the rest reuse,
    // as a tenant's requests do after its first.
    round_trip(&mut policy, &url).await?;
    let n = if quick { 200 } else { 5_000 };
    let mut times = Vec::with_capacity(n);
    let cpu = cpu_time();
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        round_trip(&mut policy, &url).await?;
        times.push(t.elapsed());
    }
    let took = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu);
    server.abort();
    times.sort_unstable();
    let median = percentile(&times, 50.0);
    let cpu_each = cpu / n as u32;
    println!(
        "  loopback round trip (a component's request path: allow-list, pooled client; a minimal server\n\
         \x20   in this process): p50 {:.0} µs, p99 {:.0} µs over {n} in {:.2} s; CPU {:.0} µs per request (both ends)",
        median.as_secs_f64() * 1e6,
        percentile(&times, 99.0).as_secs_f64() * 1e6,
        took.as_secs_f64(),
        cpu_each.as_secs_f64() * 1e6
    );
    figures.record(
        "floor.loopback-rtt",
        "loopback HTTP round trip (p50)",
        "µs",
        median.as_secs_f64() * 1e6,
        None,
    );
    figures.record(
        "floor.loopback-cpu",
        "CPU per loopback round trip, both ends",
        "µs",
        cpu_each.as_secs_f64() * 1e6,
        None,
    );
    Ok(median)
}

async fn round_trip(policy: &mut OutboundPolicy, url: &str) -> anyhow::Result<()> {
    let body = http_body_util::Empty::new()
        .map_err(|never: std::convert::Infallible| match never {})
        .boxed_unsync();
    let request = http::Request::get(format!("{url}/ping")).body(body)?;
    let sent = policy.send_request(request, None, Box::new(async { Ok(()) }));
    let (answer, _) = Box::into_pin(sent)
        .await
        .map_err(|e| anyhow::anyhow!("loopback request failed: {e:?}"))?;
    anyhow::ensure!(
        answer.status() == 200,
        "loopback answered {}",
        answer.status()
    );
    answer
        .into_body()
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("loopback answer cut: {e:?}"))?;
    Ok(())
}
