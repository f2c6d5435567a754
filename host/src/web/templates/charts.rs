//! The tenant page's charts as inline SVG (figures from
//! `crate::web::charts`): calls per hour stacked by outcome, and the
//! hang-up → CRM latency percentiles per hour as lines. No script: each
//! bar and point carries a `<title>` (the browser's tooltip), each chart
//! a title and description for screen readers, and a table below holds
//! every figure as text. All text goes through maud, which escapes it.

use super::span;
use crate::web::charts::{Charts, HOURS, Hour, OUTCOMES};
use maud::{Markup, html};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
/// Plot bottom: below are the hour labels and the legend.
const BOTTOM: f64 = 212.0;
const SLOT: f64 = (WIDTH - LEFT - RIGHT) / HOURS as f64;
const PERCENTILES: [(&str, &str); 3] = [("p50", "#1565c0"), ("p95", "#ef6c00"), ("p99", "#c62828")];

/// The section: both charts and the table of their figures.
pub(in crate::web) fn section(charts: &Charts) -> Markup {
    html! {
        h2 { "Last 24 hours" }
        div.charts #charts {
            figure {
                figcaption { "Calls per hour by outcome" }
                (calls_chart(charts))
            }
            figure {
                figcaption { "Hang-up → CRM latency per hour: p50, p95, p99 of the posted calls" }
                (latency_chart(charts))
            }
            @if charts.latencies_truncated {
                p.muted #charts-truncated { "Latencies of the oldest posted calls were left out: a day this busy shows the newest 50,000." }
            }
            details #charts-figures {
                summary { "The charts' figures as a table" }
                (table(charts))
            }
        }
    }
}

fn calls_chart(charts: &Charts) -> Markup {
    let top = nice_max(charts.hours.iter().map(Hour::total).max().unwrap_or(0));
    let total: i64 = charts.hours.iter().map(Hour::total).sum();
    let by_outcome: Vec<String> = OUTCOMES
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            format!(
                "{} {name}",
                charts.hours.iter().map(|h| h.calls[i]).sum::<i64>()
            )
        })
        .collect();
    let y = |n: i64| BOTTOM - (BOTTOM - TOP) * n as f64 / top as f64;
    html! {
        svg #calls-chart role="img" aria-labelledby="calls-chart-title calls-chart-desc"
            viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } width="100%" xmlns="http://www.w3.org/2000/svg" {
            title #calls-chart-title { "Calls per hour by outcome, last 24 hours (UTC)" }
            desc #calls-chart-desc { (total) " calls handled in the last 24 hours: " (by_outcome.join(", ")) ". Stacked bars, one per hour." }
            (axes(&[0, top / 2, top].map(|n| (y(n), n.to_string())), charts))
            @for (slot, hour, i, below, n) in bars(charts) {
                @let (name, colour) = OUTCOMES[i];
                rect.bar x=(fmt(LEFT + SLOT * slot as f64 + SLOT * 0.15)) y=(fmt(y(below + n)))
                    width=(fmt(SLOT * 0.7)) height=(fmt(y(below) - y(below + n))) fill=(colour)
                    data-outcome=(name) data-hour=(clock(hour.start_ms)) {
                    title { (clock(hour.start_ms)) " UTC: " (n) " " (name) }
                }
            }
            (legend(&OUTCOMES))
        }
    }
}

fn latency_chart(charts: &Charts) -> Markup {
    let worst = charts
        .hours
        .iter()
        .filter_map(|h| h.latency.map(|l| l[2]))
        .max();
    let top = nice_max(worst.unwrap_or(0).max(1_000));
    let y = |ms: i64| BOTTOM - (BOTTOM - TOP) * ms as f64 / top as f64;
    let x = |slot: usize| LEFT + SLOT * slot as f64 + SLOT / 2.0;
    let description = match worst {
        None => "No call was posted in the last 24 hours.".to_string(),
        Some(worst) => format!(
            "Hang-up to CRM latency per hour: 50th, 95th and 99th percentiles of the posted calls; the slowest hour's 99th percentile is {}.",
            span(worst)
        ),
    };
    html! {
        svg #latency-chart role="img" aria-labelledby="latency-chart-title latency-chart-desc"
            viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } width="100%" xmlns="http://www.w3.org/2000/svg" {
            title #latency-chart-title { "Hang-up to CRM latency per hour (p50, p95, p99), last 24 hours (UTC)" }
            desc #latency-chart-desc { (description) }
            (axes(&[0, top / 2, top].map(|ms| (y(ms), span(ms))), charts))
            @for (p, (name, colour)) in PERCENTILES.iter().enumerate() {
                @for run in runs(charts) {
                    @if run.len() > 1 {
                        polyline fill="none" stroke=(colour) stroke-width="2" data-percentile=(name)
                            points=(run.iter().map(|&s| format!("{},{}", fmt(x(s)), fmt(y(charts.hours[s].latency.map_or(0, |l| l[p]))))).collect::<Vec<_>>().join(" ")) {}
                    }
                }
                @for (slot, hour) in charts.hours.iter().enumerate() {
                    @if let Some(latency) = hour.latency {
                        circle.point cx=(fmt(x(slot))) cy=(fmt(y(latency[p]))) r="3" fill=(colour) data-percentile=(name) {
                            title { (clock(hour.start_ms)) " UTC: " (name) " " (span(latency[p])) }
                        }
                    }
                }
            }
            (legend(&PERCENTILES))
        }
    }
}

/// The bars' segments: `(slot, hour, outcome index, calls below, calls)`,
/// for each outcome an hour has calls of, stacked in [`OUTCOMES`]' order.
fn bars(charts: &Charts) -> Vec<(usize, &Hour, usize, i64, i64)> {
    let mut bars = Vec::new();
    for (slot, hour) in charts.hours.iter().enumerate() {
        let mut below = 0;
        for (i, &n) in hour.calls.iter().enumerate() {
            if n > 0 {
                bars.push((slot, hour, i, below, n));
                below += n;
            }
        }
    }
    bars
}

/// Runs of consecutive hours with a latency: a line joins only those.
fn runs(charts: &Charts) -> Vec<Vec<usize>> {
    let mut runs: Vec<Vec<usize>> = Vec::new();
    for (slot, hour) in charts.hours.iter().enumerate() {
        match (hour.latency, runs.last_mut()) {
            (Some(_), Some(run)) if run.last() == Some(&(slot.wrapping_sub(1))) => run.push(slot),
            (Some(_), _) => runs.push(vec![slot]),
            (None, _) => {}
        }
    }
    runs
}

/// Gridlines with their labels at `(y, label)`, and every third hour.
fn axes(lines: &[(f64, String)], charts: &Charts) -> Markup {
    html! {
        @for (y, label) in lines {
            line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(fmt(*y)) y2=(fmt(*y)) stroke="#d5dbe5" {}
            text x=(LEFT - 6.0) y=(fmt(y + 4.0)) text-anchor="end" font-size="11" fill="#5b6474" { (label) }
        }
        @for (slot, hour) in charts.hours.iter().enumerate().filter(|(s, _)| s % 3 == 0) {
            text x=(fmt(LEFT + SLOT * slot as f64 + SLOT / 2.0)) y=(BOTTOM + 16.0) text-anchor="middle" font-size="11" fill="#5b6474" { (clock(hour.start_ms)) }
        }
    }
}

fn legend(entries: &[(&str, &str)]) -> Markup {
    html! {
        @for (i, (name, colour)) in entries.iter().enumerate() {
            rect x=(LEFT + 90.0 * i as f64) y=(HEIGHT - 18.0) width="10" height="10" fill=(colour) {}
            text x=(LEFT + 14.0 + 90.0 * i as f64) y=(HEIGHT - 9.0) font-size="11" fill="#1d2330" { (name) }
        }
    }
}

fn table(charts: &Charts) -> Markup {
    html! {
        table #charts-table {
            thead { tr {
                th { "Hour (UTC)" }
                @for (name, _) in &OUTCOMES { th { (name) } }
                @for (name, _) in &PERCENTILES { th { (name) } }
            } }
            tbody {
                @for hour in &charts.hours {
                    tr data-hour=(clock(hour.start_ms)) {
                        td { (clock(hour.start_ms)) }
                        @for n in hour.calls { td { (n) } }
                        @for p in 0..PERCENTILES.len() {
                            td { (hour.latency.map_or("–".to_string(), |l| span(l[p]))) }
                        }
                    }
                }
            }
        }
    }
}

/// The smallest of 1, 2, 5 × 10ⁿ at least `n` (at least 1): round
/// gridline values.
fn nice_max(n: i64) -> i64 {
    let mut step = 1i64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= n {
                return step.saturating_mul(m).max(1);
            }
        }
        step = step.saturating_mul(10);
    }
}

fn clock(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or("?".into(), |t| t.format("%H:00").to_string())
}

/// Coordinates with one decimal: short markup, enough precision.
fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gridline_maxima_are_round() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(3), 5);
        assert_eq!(nice_max(11), 20);
        assert_eq!(nice_max(4_200), 5_000);
        assert_eq!(nice_max(i64::MAX), i64::MAX);
    }

    #[test]
    fn lines_join_only_consecutive_hours() {
        let mut charts = Charts {
            hours: vec![Hour::default(); 6],
            latencies_truncated: false,
        };
        for slot in [0, 1, 3, 4, 5] {
            charts.hours[slot].latency = Some([1, 2, 3]);
        }
        assert_eq!(runs(&charts), vec![vec![0, 1], vec![3, 4, 5]]);
    }
}
