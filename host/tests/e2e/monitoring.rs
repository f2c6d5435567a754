//! The monitoring kit in `deploy/` against what the host exposes: every
//! metric the Grafana dashboard (`deploy/grafana/connectzero.json`) and
//! the alert rules (`deploy/prometheus/connectzero.rules.yml`) name must be
//! one `/metrics` serves, and Prometheus's own `promtool` must accept the
//! rules, pass their unit tests and parse every dashboard query.
//!
//! `promtool` is Debian's `prometheus` package, which `.ci/run` installs:
//! with `CI` set a missing `promtool` fails the test; elsewhere the
//! promtool test says it skipped and passes.

use crate::common;

use anyhow::Context;
use common::*;
use connectzero::demo::{Placer, numbers};
use connectzero::testbed::{TENANT, World};
use connectzero_simulators::highlevel::Fault as CrmFault;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(relative: &str) -> anyhow::Result<String> {
    let path = root().join(relative);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// Series names Prometheus's own scrape adds, not the host's.
const SCRAPE_SERIES: [&str; 1] = ["up"];

/// PromQL's aggregation operators: `sum by (le) (…)` puts a label list,
/// not a parenthesis, after the word.
const AGGREGATIONS: [&str; 12] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// Words of PromQL that are not metric names.
const KEYWORDS: [&str; 14] = [
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
    "atan2",
];

/// The metric names in a PromQL expression: identifiers that are not
/// functions (followed by `(`), keywords, label names (inside `{…}` or
/// the list after `by`/`without`/`on`/`ignoring`/`group_*`), strings,
/// durations (`[…]`, `offset 15m`) or numbers. Grafana's `$variables`
/// inside braces and brackets are skipped with them.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut label_list_next = false;
    let mut after_offset = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    i += 1;
                }
                i += 1;
            }
            '(' if label_list_next => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                i += 1;
                label_list_next = false;
            }
            c if c.is_ascii_digit() || c == '.' => {
                // A number or a duration (`15m`, `1h30m`, `1e3`).
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                after_offset = false;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let lower = word.to_ascii_lowercase();
                if KEYWORDS.contains(&lower.as_str()) {
                    label_list_next = matches!(
                        lower.as_str(),
                        "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                    );
                    after_offset = lower == "offset";
                } else if chars.get(next) == Some(&'(') || AGGREGATIONS.contains(&lower.as_str()) {
                    // A function, or an aggregation with its `by` after the parentheses.
                } else if after_offset {
                    after_offset = false;
                } else {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Every sample name `/metrics` exposes once the host has worked: a
/// recorded call posted after one rate-limited attempt, its recording not
/// final yet (so retried), through the real pipeline against the
/// simulators, then the registry's exposition (what the `/metrics`
/// handler serves; a family with no series yet is not in it at all,
/// which is why the work is needed). Its `# TYPE` lines, with each type's
/// sample suffixes.
async fn exposed_names() -> anyhow::Result<BTreeSet<String>> {
    let (world, _) = seeded_world(eager()).await?;
    world.crm.inject_failures_on(
        "/conversations/messages/inbound",
        CrmFault::TooManyRequests {
            retry_after_secs: Some(0),
        },
        1,
    );
    world.pbx.add_recording(recording(701, false));
    place(
        &world,
        &mut Placer::default(),
        &one_leg(
            1,
            outside(numbers::DANA),
            ext("101").with_recording(701),
            true,
            30,
        ),
    );
    let exposition = |w: &World| connectzero::metrics::encode(&w.storage, [TENANT]);
    let retried = format!(r#"connectzero_attach_retries_total{{tenant="{TENANT}"}}"#);
    tick_until(&world, 8, |w| {
        w.crm.messages().len() == 1 && exposition(w).contains(&retried)
    })
    .await?;
    let text = exposition(&world);
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(declared) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = declared
            .split_once(' ')
            .with_context(|| format!("TYPE line {line:?}"))?;
        let suffixes: &[&str] = match kind {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            "gauge" | "unknown" => &[""],
            other => anyhow::bail!("{name}: metric type {other} not handled here"),
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    Ok(names)
}

/// Every PromQL expression of the dashboard: its panels' queries (rows'
/// nested panels too) and its variables' `label_values(metric, label)`.
fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    fn panels(list: &Value, out: &mut Vec<String>) {
        for panel in list.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push(expr.to_string());
                }
            }
            panels(&panel["panels"], out);
        }
    }
    let mut exprs = Vec::new();
    panels(&dashboard["panels"], &mut exprs);
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let query = variable["query"]["query"]
            .as_str()
            .or_else(|| variable["query"].as_str())
            .unwrap_or_default();
        if let Some(args) = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
        {
            // label_values(metric, label): the metric is the expression.
            let metric = args.rsplit_once(',').map_or(args, |(m, _)| m);
            exprs.push(metric.trim().to_string());
        }
    }
    exprs
}

fn rule_exprs(rules: &serde_yaml_ng::Value) -> Vec<String> {
    rules["groups"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|group| group["rules"].as_sequence().into_iter().flatten())
        .filter_map(|rule| rule["expr"].as_str().map(String::from))
        .collect()
}

fn dashboard() -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&read(
        "deploy/grafana/connectzero.json",
    )?)?)
}

fn rules() -> anyhow::Result<serde_yaml_ng::Value> {
    Ok(serde_yaml_ng::from_str(&read(
        "deploy/prometheus/connectzero.rules.yml",
    )?)?)
}

#[test]
fn metric_names_are_read_from_promql_without_labels_functions_or_durations() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (tenant, le) (rate(connectzero_a_bucket{status!="429", x=~"$tenant"}[$__rate_interval]))) > 30
           and on (tenant) connectzero_b > (connectzero_b offset 15m) or time() - connectzero_c:rate5m * 1e3"#,
    );
    let expected: BTreeSet<String> = [
        "connectzero_a_bucket",
        "connectzero_b",
        "connectzero_c:rate5m",
    ]
    .map(String::from)
    .into();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn every_metric_the_dashboard_and_the_rules_use_is_exposed() -> anyhow::Result<()> {
    let exposed = exposed_names().await?;
    let mut used = BTreeSet::new();
    let sources = [
        (
            "deploy/grafana/connectzero.json",
            dashboard_exprs(&dashboard()?),
        ),
        (
            "deploy/prometheus/connectzero.rules.yml",
            rule_exprs(&rules()?),
        ),
    ];
    for (file, exprs) in &sources {
        assert!(!exprs.is_empty(), "no expressions found in {file}");
        for expr in exprs {
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{file}: no metric in {expr:?}");
            for name in names {
                assert!(
                    exposed.contains(&name) || SCRAPE_SERIES.contains(&name.as_str()),
                    "{file} uses {name}, which /metrics does not expose (in {expr:?}); exposed: {exposed:#?}"
                );
                used.insert(name);
            }
        }
    }
    // What an operator must see is there: one series of each.
    for needed in [
        "connectzero_calls_posted_total",
        "connectzero_call_end_to_posted_seconds_bucket",
        "connectzero_call_lag_seconds",
        "connectzero_last_successful_tick_timestamp_seconds",
        "connectzero_attach_gave_up_total",
        "connectzero_upstream_errors_total",
        "connectzero_queue_depth",
        "connectzero_grant_needs_reauthorisation",
        "connectzero_calls_parked_total",
    ] {
        assert!(used.contains(needed), "nothing uses {needed}");
    }
    Ok(())
}

/// `promtool` on the PATH; `None` (and a note) outside CI when it is
/// missing. Under `CI` its absence fails the test: CI installs it.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is missing and CI is set: install Debian's prometheus package (.ci/run does)"
        );
        eprintln!("promtool not found: SKIPPED the promtool checks (apt-get install prometheus)");
    }
    found
}

fn run(promtool: &Path, dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new(promtool)
        .current_dir(dir)
        .args(args)
        .output()
        .with_context(|| format!("running promtool {args:?}"))?;
    assert!(
        output.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

#[test]
fn promtool_accepts_the_rules_their_tests_pass_and_the_dashboard_queries_parse()
-> anyhow::Result<()> {
    let Some(promtool) = promtool() else {
        return Ok(());
    };
    let dir = root().join("deploy/prometheus");
    run(
        &promtool,
        &dir,
        &["check", "rules", "connectzero.rules.yml"],
    )?;
    run(
        &promtool,
        &dir,
        &["test", "rules", "connectzero.rules.test.yml"],
    )?;

    // The dashboard's queries as recording rules, so promtool parses each
    // one (Grafana's variables replaced by what they stand for).
    let scratch = tempfile::tempdir()?;
    let rules: Vec<Value> = dashboard_exprs(&dashboard()?)
        .into_iter()
        .enumerate()
        .map(|(i, expr)| {
            let expr = expr
                .replace("$__rate_interval", "5m")
                .replace("$tenant", ".*");
            serde_json::json!({"record": format!("connectzero:dashboard_query_{i}"), "expr": expr})
        })
        .collect();
    // JSON is YAML: one group holding every query.
    let file = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    std::fs::write(scratch.path().join("dashboard.rules.yml"), file.to_string())?;
    run(
        &promtool,
        scratch.path(),
        &["check", "rules", "dashboard.rules.yml"],
    )?;
    Ok(())
}
