//! The status page's charts (issue 21) from a call log with known
//! figures: calls per hour by outcome and the latency percentiles, as the
//! page's table of figures shows them, inside the 24-hour window only,
//! everything escaped.

use crate::common::{defaults, seeded_world, serve_admin};
use anyhow::Context;
use connectzero::storage::CallRecord;

const TOKEN: &str = "test-admin-token-0123456789";
const HOUR_MS: i64 = 3_600_000;

fn call(key: &str, outcome: &str, handled_at_ms: i64, latency_ms: i64) -> CallRecord {
    CallRecord {
        tenant: "demo".into(),
        call_key: key.into(),
        direction: "inbound".into(),
        caller: "+14155550101".into(),
        callee: "101".into(),
        outcome: outcome.into(),
        detail: String::new(),
        rule: None,
        contact_id: None,
        ended_at_ms: handled_at_ms - latency_ms,
        handled_at_ms,
        recording: "none".into(),
        triggers: String::new(),
        insights: "none".into(),
    }
}

/// The cells of the table row of the hour starting at `start_ms`.
fn row(html: &str, start_ms: i64) -> anyhow::Result<Vec<String>> {
    let hour = chrono::DateTime::from_timestamp_millis(start_ms)
        .context("a time")?
        .format("%H:00")
        .to_string();
    let table = html
        .split("id=\"charts-table\"")
        .nth(1)
        .context("the table")?;
    let row = table
        .split(&format!("<tr data-hour=\"{hour}\">"))
        .nth(1)
        .with_context(|| format!("the row of {hour}"))?;
    let row = row.split("</tr>").next().unwrap_or_default();
    Ok(row
        .split("<td>")
        .skip(1)
        .map(|c| c.split("</td>").next().unwrap_or_default().to_string())
        .collect())
}

#[tokio::test]
async fn the_charts_count_each_hours_calls_and_latencies_within_the_day() -> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    let base = serve_admin(&world, TOKEN).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let this_hour = now.div_euclid(HOUR_MS) * HOUR_MS;
    let busy = this_hour - 3 * HOUR_MS;
    let first = this_hour - 23 * HOUR_MS;
    world.storage.record_calls(&[
        call("3cx:1@1", "posted", busy + 60_000, 1_000),
        call("3cx:2@1", "posted", busy + 120_000, 2_000),
        call("3cx:3@1", "posted", busy + 180_000, 10_000),
        call("3cx:4@1", "skipped", busy + 240_000, 500),
        call("3cx:5@1", "parked", busy + 300_000, 500),
        call("3cx:6@1", "<script>alert(1)</script>", busy + 360_000, 500),
        call("3cx:7@1", "posted", first + 1, 4_000),
        // A day and more ago: outside the charts.
        call("3cx:8@1", "posted", this_hour - 25 * HOUR_MS, 4_000),
    ])?;

    let html = reqwest::Client::new()
        .get(format!("{base}/admin/t/demo"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .text()
        .await?;
    assert!(!html.contains("<script>alert"), "escaped: {html}");
    // Hour, then posted, skipped, retrying, parked, other, p50, p95, p99.
    let busy_row = row(&html, busy)?;
    assert_eq!(
        busy_row[1..],
        ["3", "1", "0", "1", "1", "2.0 s", "10.0 s", "10.0 s"]
    );
    assert_eq!(row(&html, first)?[1], "1");
    assert_eq!(row(&html, first)?[6], "4.0 s");
    let quiet = row(&html, this_hour - HOUR_MS)?;
    assert_eq!(quiet[1..], ["0", "0", "0", "0", "0", "–", "–", "–"]);
    // 24 hours, the day-old call in none of them.
    let rows = html.matches("<tr data-hour=").count();
    assert_eq!(rows, 24, "{html}");
    let posted: u32 = (0..24)
        .map(|h| {
            row(&html, first + h * HOUR_MS).unwrap()[1]
                .parse::<u32>()
                .unwrap()
        })
        .sum();
    assert_eq!(posted, 4);
    // The bars: one segment per outcome of the busy hour, "other" included.
    assert_eq!(html.matches("class=\"bar\"").count(), 5, "{html}");
    Ok(())
}
