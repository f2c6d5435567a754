//! Operating the real binary: `/metrics`, `/readyz` and what the logs may
//! show, after a demo run.

use anyhow::Context;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_connectzero");

use crate::binary::Running;

/// The scrapers' token the demo is started with.
const METRICS_TOKEN: &str = "ops-test-metrics-token-0123";

/// A plain HTTP/1.1 GET over loopback (with the scrapers' token):
/// status and body.
fn get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {METRICS_TOKEN}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The value of the sample `name` (with its labels, exactly as exported).
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_demo_run_serves_metrics_and_readiness_and_logs_numbers_only_masked() -> anyhow::Result<()> {
    let mut child = Command::new(BIN)
        .args(["--log-format", "json", "demo", "--keep-running"])
        .env("RUST_LOG", "warn,connectzero=info")
        .env("CONNECTZERO_METRICS_TOKEN", METRICS_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stderr = child.stderr.take().context("stderr is piped")?;
    let stdout = child.stdout.take().context("stdout is piped")?;
    let child = Running(child);
    // Drain stderr as it comes, so the binary never blocks on a full pipe.
    let logs = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    // The demo prints its endpoint first and "Still serving" once every
    // call is handled; it exits (ending the loop) if anything goes wrong.
    let mut addr = None;
    let mut printed = String::new();
    let mut lines = BufReader::new(stdout).lines();
    while let Some(Ok(line)) = lines.next() {
        printed.push_str(&line);
        printed.push('\n');
        if let Some(url) = line.trim().strip_prefix("action endpoint:") {
            let url = url.trim().trim_start_matches("http://");
            addr = url.split('/').next().map(str::to_string);
        }
        if line.contains("Still serving") {
            break;
        }
    }
    assert!(
        printed.contains("Still serving"),
        "the demo did not finish:\n{printed}"
    );
    let addr = addr.context("the demo printed its action endpoint")?;
    assert!(printed.contains("16 posted"), "{printed}");

    let (status, body) = get(&addr, "/readyz")?;
    assert_eq!(
        (status, body.trim()),
        (200, "ready: storage open, components loaded")
    );

    let (status, metrics) = get(&addr, "/metrics")?;
    assert_eq!(status, 200, "{metrics}");
    let posted = sample(&metrics, r#"connectzero_calls_posted_total{tenant="demo"}"#);
    assert_eq!(posted, Some(16.0), "{metrics}");
    let skipped = sample(
        &metrics,
        r#"connectzero_calls_skipped_total{tenant="demo"}"#,
    );
    assert_eq!(skipped, Some(5.0), "{metrics}");
    assert!(
        sample(&metrics, r#"connectzero_calls_polled_total{tenant="demo"}"#)
            .is_some_and(|n| n >= 20.0),
        "{metrics}"
    );
    // The overlap window re-reads handled calls: the ledger counts them.
    assert!(
        sample(
            &metrics,
            r#"connectzero_calls_duplicate_total{tenant="demo"}"#
        )
        .is_some_and(|n| n > 0.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"connectzero_call_end_to_posted_seconds_count{tenant="demo"}"#
        ),
        Some(16.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"connectzero_recordings_attached_total{tenant="demo"}"#
        ),
        Some(3.0),
        "{metrics}"
    );
    for (stage, function) in [
        ("poll", "fetch"),
        ("dedup", "claim-calls"),
        ("match", "match-calls"),
        ("post", "post-calls"),
        ("attach", "process-due"),
        ("trigger", "deliver-due"),
    ] {
        let count = format!(
            r#"connectzero_stage_duration_seconds_count{{stage="{stage}",function="{function}"}}"#
        );
        assert!(
            sample(&metrics, &count).is_some_and(|n| n > 0.0),
            "no {count} in:\n{metrics}"
        );
        // Every invocation falls in the +Inf bucket; the finite buckets are there too.
        let bucket = format!(
            r#"connectzero_stage_duration_seconds_bucket{{le="+Inf",stage="{stage}",function="{function}"}}"#
        );
        assert_eq!(
            sample(&metrics, &bucket),
            sample(&metrics, &count),
            "{metrics}"
        );
    }
    // One recording is finalised late, so the attach stage retried it.
    assert!(
        sample(
            &metrics,
            r#"connectzero_attach_retries_total{tenant="demo"}"#
        )
        .is_some_and(|n| n > 0.0),
        "{metrics}"
    );
    // Every recording is attached by now, so its queue is empty; the
    // trigger queue is reported too (its value depends on delivery timing).
    let depth = |queue: &str| {
        sample(
            &metrics,
            &format!(r#"connectzero_queue_depth{{tenant="demo",queue="{queue}"}}"#),
        )
    };
    assert_eq!(depth("attach"), Some(0.0), "{metrics}");
    assert!(depth("trigger").is_some(), "{metrics}");

    drop(child);
    let logs = logs.join().unwrap();
    // Each handled call is logged at info with its numbers masked:
    // country code and last two digits only.
    assert!(logs.contains(r#""caller":"+1********01""#), "{logs}");
    assert!(logs.contains(r#""caller":"+44********58""#), "{logs}");
    for clear in ["4155550101", "4155550104", "2079460958", "555-0101"] {
        assert!(!logs.contains(clear), "{clear} logged in clear:\n{logs}");
    }
    Ok(())
}
