//! The figures a bench run measured, kept so the next run can print its
//! own beside them.
//!
//! Each scenario records its headline figures here as it prints them
//! (`Figures::record`). At the end the run prints one table — this run,
//! the previous run, the target and whether it is met — and saves the run
//! as JSON (`target/bench/latest.json`, or `latest-quick.json` for
//! `--quick` smoke runs, which are not figures to compare with full runs).
//! The previous run is the file it replaces, else the reference run
//! checked in with docs/BENCHMARKS.md (`docs/benchmarks.json`).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What a figure should reach.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Goal {
    /// At least this much (throughput).
    AtLeast(f64),
    /// At most this much (latency, memory, ratios).
    AtMost(f64),
}

impl Goal {
    /// Whether `value` reaches the goal.
    pub fn met_by(self, value: f64) -> bool {
        match self {
            Goal::AtLeast(goal) => value >= goal,
            Goal::AtMost(goal) => value <= goal,
        }
    }

    fn describe(self, unit: &str) -> String {
        match self {
            Goal::AtLeast(goal) => format!(">= {} {unit}", number(goal)),
            Goal::AtMost(goal) => format!("<= {} {unit}", number(goal)),
        }
    }
}

/// One measured figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// Stable name across runs (`throughput.tenants.calls-per-s`): what
    /// the previous run's figure is found by.
    pub key: String,
    /// What it is, for the table.
    pub label: String,
    /// Its unit (`calls/s`, `ms`, `MB`, `ratio`).
    pub unit: String,
    /// The value.
    pub value: f64,
    /// The target, when the issue set one.
    pub goal: Option<Goal>,
}

/// A whole run, as saved.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Run {
    /// When it started (RFC 3339, UTC).
    pub started: String,
    /// The commit the binary was built from, when known.
    pub commit: Option<String>,
    /// `release` or `debug`.
    pub build: String,
    /// The 1-minute load average at the start.
    pub load: Option<String>,
    /// Whether it was a `--quick` smoke run.
    pub quick: bool,
    /// The figures, in the order they were measured.
    pub figures: Vec<Figure>,
}

/// The figures of the run in progress; scenarios add to it.
#[derive(Debug, Default)]
pub struct Figures(Mutex<Vec<Figure>>);

impl Figures {
    /// Record `value` under `key`; a second value under the same key
    /// replaces the first.
    pub fn record(&self, key: &str, label: &str, unit: &str, value: f64, goal: Option<Goal>) {
        let figure = Figure {
            key: key.into(),
            label: label.into(),
            unit: unit.into(),
            value,
            goal,
        };
        let mut figures = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match figures.iter_mut().find(|f| f.key == key) {
            Some(existing) => *existing = figure,
            None => figures.push(figure),
        }
    }

    /// [`Figures::record`] when `measured`: a figure that could not be
    /// measured is left out (shown as missing), never recorded as a value.
    pub fn record_if(
        &self,
        measured: bool,
        key: &str,
        label: &str,
        unit: &str,
        value: f64,
        goal: Option<Goal>,
    ) {
        if measured {
            self.record(key, label, unit, value, goal);
        }
    }

    /// The value recorded under `key`, if any.
    pub fn get(&self, key: &str) -> Option<f64> {
        let figures = self.0.lock().unwrap_or_else(|e| e.into_inner());
        figures.iter().find(|f| f.key == key).map(|f| f.value)
    }

    /// Everything recorded so far.
    pub fn all(&self) -> Vec<Figure> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Where a run is saved: `dir/latest.json`, or `dir/latest-quick.json`
/// for a smoke run.
pub fn save_path(dir: &Path, quick: bool) -> PathBuf {
    dir.join(if quick {
        "latest-quick.json"
    } else {
        "latest.json"
    })
}

/// The run to compare with: `explicit` when given, else the run saved at
/// `saved`, else `reference` (the run checked in with the docs). A file
/// that is missing or unreadable is no previous run, said on stderr when
/// it was asked for.
pub fn previous(explicit: Option<&Path>, saved: &Path, reference: &Path) -> Option<(PathBuf, Run)> {
    let read = |path: &Path| -> Option<Run> {
        let text = std::fs::read_to_string(path).ok()?;
        match serde_json::from_str(&text) {
            Ok(run) => Some(run),
            Err(error) => {
                eprintln!(
                    "bench: {} is not a saved run ({error}); not compared",
                    path.display()
                );
                None
            }
        }
    };
    if let Some(path) = explicit {
        let run = read(path);
        if run.is_none() {
            eprintln!("bench: no previous run at {}", path.display());
        }
        return run.map(|r| (path.to_path_buf(), r));
    }
    [saved, reference]
        .into_iter()
        .find_map(|path| read(path).map(|r| (path.to_path_buf(), r)))
}

/// Save `run` at `path` (its folder created).
pub fn save(run: &Run, path: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(run)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

/// The side-by-side table of `run` against `previous`.
pub fn table(run: &Run, previous: Option<&Run>) -> String {
    let headers = ["figure", "this run", "previous", "target", ""];
    let mut rows: Vec<[String; 5]> = Vec::new();
    for figure in &run.figures {
        let before = previous
            .and_then(|p| p.figures.iter().find(|f| f.key == figure.key))
            .map_or_else(|| "-".to_string(), |f| with_unit(f.value, &f.unit));
        let (target, verdict) = match figure.goal {
            Some(goal) => (
                goal.describe(&figure.unit),
                if goal.met_by(figure.value) {
                    "met"
                } else {
                    "NOT met"
                },
            ),
            None => ("-".to_string(), ""),
        };
        rows.push([
            figure.label.clone(),
            with_unit(figure.value, &figure.unit),
            before,
            target,
            verdict.to_string(),
        ]);
    }
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            // Text left, numbers right.
            if i == 0 {
                text += &format!("{cell:<width$}");
            } else {
                text += &format!("  {cell:>width$}");
            }
        }
        text.trim_end().to_string() + "\n"
    };
    let mut out = line(headers);
    for row in &rows {
        out += &line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    out
}

fn with_unit(value: f64, unit: &str) -> String {
    format!("{} {unit}", number(value))
}

/// Three significant digits at most below 100, whole numbers above.
fn number(value: f64) -> String {
    if value.abs() >= 100.0 || value == value.trunc() {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(figures: &[(&str, f64, Option<Goal>)]) -> Run {
        let recorded = Figures::default();
        for (key, value, goal) in figures {
            recorded.record(key, key, "calls/s", *value, *goal);
        }
        Run {
            figures: recorded.all(),
            ..Run::default()
        }
    }

    #[test]
    fn the_table_puts_each_figure_beside_the_previous_and_the_target() {
        let now = run(&[
            ("a", 1200.0, Some(Goal::AtLeast(1000.0))),
            ("b", 1.5, Some(Goal::AtMost(1.05))),
            ("new", 7.0, None),
        ]);
        let before = run(&[("a", 392.0, None), ("b", 1.027, None)]);
        let table = table(&now, Some(&before));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[1].starts_with('a'), "{table}");
        for cell in ["1200 calls/s", "392 calls/s", ">= 1000 calls/s", "met"] {
            assert!(lines[1].contains(cell), "{cell} missing: {table}");
        }
        assert!(lines[2].contains("1.027 calls/s") && lines[2].ends_with("NOT met"));
        assert!(lines[3].contains(" - "), "no previous, no target: {table}");
    }

    #[test]
    fn a_figure_recorded_twice_keeps_the_last_value() {
        let figures = Figures::default();
        figures.record("x", "x", "ms", 1.0, None);
        figures.record("x", "x", "ms", 2.0, None);
        assert_eq!(figures.all().len(), 1);
        assert_eq!(figures.all()[0].value, 2.0);
    }

    #[test]
    fn a_saved_run_is_the_next_runs_previous() {
        let dir = std::env::temp_dir().join(format!("cz-figures-{}", rand::random::<u32>()));
        let saved = save_path(&dir, false);
        let reference = dir.join("reference.json");
        assert!(previous(None, &saved, &reference).is_none());
        save(&run(&[("a", 5.0, None)]), &reference).unwrap();
        let (from, _) = previous(None, &saved, &reference).unwrap();
        assert_eq!(from, reference, "no saved run: the reference");
        save(&run(&[("a", 6.0, None)]), &saved).unwrap();
        let (from, before) = previous(None, &saved, &reference).unwrap();
        assert_eq!((from, before.figures[0].value), (saved.clone(), 6.0));
        assert_ne!(save_path(&dir, true), saved, "smoke runs apart");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
