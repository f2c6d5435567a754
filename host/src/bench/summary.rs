//! The run's header and its end: the table of figures beside the previous
//! run's, and the run saved for the next one (`figures`).

use super::figures::{self, Figures};
use super::{Options, meminfo_kb};
use std::path::Path;

/// The reference run checked in with docs/BENCHMARKS.md, relative to the
/// workspace root (where `cargo run` starts the bench).
const REFERENCE_RUN: &str = "docs/benchmarks.json";

/// The run as it will be saved, its figures still to come.
pub(super) fn started(options: &Options) -> figures::Run {
    figures::Run {
        started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        commit: commit(),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .into(),
        load: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_string)),
        quick: options.quick,
        figures: Vec::new(),
    }
}

/// Print the figures beside the previous run's and save this one.
pub(super) fn finish(
    options: &Options,
    figures: &Figures,
    mut run: figures::Run,
) -> anyhow::Result<()> {
    run.figures = figures.all();
    let saved_at = options
        .results
        .as_deref()
        .map(|dir| figures::save_path(dir, options.quick));
    let previous = figures::previous(
        options.previous.as_deref(),
        saved_at.as_deref().unwrap_or(Path::new("")),
        Path::new(REFERENCE_RUN),
    );
    match &previous {
        Some((path, run)) => println!(
            "== figures == (previous: {}, {} at {})",
            path.display(),
            run.commit.as_deref().unwrap_or("unknown commit"),
            run.started
        ),
        None => println!("== figures == (no previous run to compare with)"),
    }
    print!(
        "{}",
        figures::table(&run, previous.as_ref().map(|(_, run)| run))
    );
    if let Some(path) = &saved_at {
        figures::save(&run, path)?;
        println!("saved in {}", path.display());
    }
    Ok(())
}

/// The commit this tree is at, when git can say.
fn commit() -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// What the run is measured on.
pub(super) fn print_header(options: &Options) {
    println!("ConnectZero benchmarks (loopback simulators, one process)");
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let memory = meminfo_kb("MemTotal:").map_or("unknown".into(), |kb| {
        format!("{:.1} GiB", kb as f64 / (1024.0 * 1024.0))
    });
    println!("  machine: {cpus} CPUs ({model}), {memory} RAM");
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        // Other work on the machine skews every figure; say how busy it was.
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!("  load:    {} (1, 5, 15 min) at start", load.join(" "));
    }
    let build = if cfg!(debug_assertions) {
        "debug (figures not representative; use --release)"
    } else {
        "release"
    };
    println!("  build:   {build}");
    if options.quick {
        println!("  mode:    --quick (small samples: a smoke run, not figures to quote)");
    }
}
