//! `connectzero bench`: figures for the performance targets of issue 7,
//! measured against the loopback simulators in this process.
//!
//! Each scenario prints what it measured and how; nothing here asserts a
//! time. The scenarios, in the order they run:
//!
//! - `stream-100mb` ([`stream`]): peak RSS growth while a 100 MB recording
//!   streams from the 3CX simulator into a CRM upload.
//! - `idle-tenants` ([`tenants`]): process RSS with 1,000 and 10,000 tenants
//!   that have no calls, each ticked once and then run by its own scheduler
//!   task for a few seconds.
//! - `latency` ([`latency`]): hang-up in the 3CX simulator to message in the
//!   CRM simulator, with the real scheduler at the default 1 s interval.
//! - `throughput` ([`throughput`]): a backlog of distinct calls driven
//!   through every stage by back-to-back ticks.
//! - `boundary` ([`boundary`]): the match stage as a component against the
//!   same rules compiled natively into the host, and what the difference
//!   costs the whole pipeline.
//! - `retention` ([`retention`]): the database size over 90 simulated days
//!   of 1,000,000 calls under the default horizons.
//! - `spin-replicas` ([`spin_replicas`], only when asked for: it needs the
//!   Spin CLI and `redis-server`): 1, 2 and 3 Spin replicas on Redis next
//!   to the bundled host on the same tenants and calls.
//!
//! Memory figures are this process's `/proc/self/status` (Linux only); the
//! simulators run in the same process, so absolute RSS includes them.

mod boundary;
pub mod figures;
mod latency;
mod load;
mod native_match;
mod retention;
mod spin_replicas;
mod stream;
mod summary;
mod tenants;
mod throughput;

use crate::config::TenantOptions;
use crate::demo::{CallPlan, Expect, LegPlan};
use crate::engine::Runtime;
use crate::storage::Storage;
use crate::testbed::World;
use anyhow::Context;
use connectzero_simulators::highlevel::SimContact;
use connectzero_simulators::threecx::{SimParty, SimUser};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A benchmark scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Scenario {
    /// Peak RSS growth while streaming a 100 MB recording.
    #[value(name = "stream-100mb")]
    Stream100Mb,
    /// RSS with 1,000 and 10,000 idle tenants.
    #[value(name = "idle-tenants")]
    IdleTenants,
    /// Hang-up to CRM message latency at the default poll interval.
    #[value(name = "latency")]
    Latency,
    /// Calls per second through every stage, one tenant.
    #[value(name = "throughput")]
    Throughput,
    /// Calls per second through every stage across 100 tenants at once.
    #[value(name = "throughput-tenants")]
    ThroughputTenants,
    /// Hang-up to CRM latency while 100 tenants' calls keep coming.
    #[value(name = "latency-under-load")]
    LatencyUnderLoad,
    /// Match stage as a component versus native code.
    #[value(name = "boundary")]
    Boundary,
    /// Database size over 90 simulated days of 1,000,000 calls. Runs
    /// last: it moves the runtime's clock 90 days ahead.
    #[value(name = "retention")]
    Retention,
    /// 1, 2 and 3 Spin replicas on Redis next to the bundled host (only
    /// when asked for: needs the Spin CLI and redis-server).
    #[value(name = "spin-replicas")]
    SpinReplicas,
}

impl Scenario {
    /// Every scenario, in the order they run.
    pub const ALL: [Scenario; 8] = [
        Scenario::Stream100Mb,
        Scenario::IdleTenants,
        Scenario::Latency,
        Scenario::Throughput,
        Scenario::ThroughputTenants,
        Scenario::LatencyUnderLoad,
        Scenario::Boundary,
        Scenario::Retention,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Stream100Mb => "stream-100mb",
            Scenario::IdleTenants => "idle-tenants",
            Scenario::Latency => "latency",
            Scenario::Throughput => "throughput",
            Scenario::ThroughputTenants => "throughput-tenants",
            Scenario::LatencyUnderLoad => "latency-under-load",
            Scenario::Boundary => "boundary",
            Scenario::Retention => "retention",
            Scenario::SpinReplicas => "spin-replicas",
        }
    }
}

/// What `connectzero bench` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Scenarios to run; empty means all of them.
    pub scenarios: Vec<Scenario>,
    /// Calls the throughput scenario places (default 2,000; 300 with `quick`).
    pub calls: Option<usize>,
    /// Smaller, shorter runs: a smoke test, not figures to quote.
    pub quick: bool,
    /// Directory of replacement components, as for `connectzero run`.
    pub components: Option<PathBuf>,
    /// The Spin CLI for `spin-replicas`.
    pub spin: Option<PathBuf>,
    /// Where the run is saved for the next one ([`figures::save_path`]);
    /// `None`: not saved.
    pub results: Option<PathBuf>,
    /// A saved run to compare with instead of the last one.
    pub previous: Option<PathBuf>,
}

/// Run the chosen scenarios and print their figures on stdout.
pub async fn run(options: Options) -> anyhow::Result<()> {
    // The figures are the pipeline's: the simulators in this process skip
    // checking every exchange against the API documents (tests and the
    // demo do that).
    connectzero_simulators::spec::stop_refereeing();
    let mut scenarios = if options.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        options.scenarios.clone()
    };
    scenarios.sort_unstable();
    scenarios.dedup();

    summary::print_header(&options);
    let figures = figures::Figures::default();
    let saved_run = summary::started(&options);
    let started = Instant::now();
    let runtime = Runtime::new(options.components.as_deref())?;
    println!(
        "components ready in {:.2} s\n",
        started.elapsed().as_secs_f64()
    );
    let dir = ScratchDir::new()?;
    let mut pipeline = None;
    for scenario in scenarios {
        println!("== {} ==", scenario.name());
        let t = Instant::now();
        match scenario {
            Scenario::Stream100Mb => stream::run(runtime.clone(), dir.path(), &figures).await?,
            Scenario::IdleTenants => {
                tenants::run(runtime.clone(), dir.path(), options.quick, &figures).await?
            }
            Scenario::Latency => {
                latency::run(runtime.clone(), dir.path(), options.quick, &figures).await?
            }
            Scenario::Throughput => {
                let calls = options
                    .calls
                    .unwrap_or(if options.quick { 300 } else { 2000 });
                pipeline =
                    Some(throughput::run(runtime.clone(), dir.path(), calls, &figures).await?);
            }
            Scenario::ThroughputTenants => {
                load::throughput(runtime.clone(), dir.path(), options.quick, &figures).await?
            }
            Scenario::LatencyUnderLoad => {
                load::latency(runtime.clone(), dir.path(), options.quick, &figures).await?
            }
            Scenario::Boundary => {
                boundary::run(
                    runtime.clone(),
                    dir.path(),
                    options.quick,
                    pipeline,
                    &figures,
                )
                .await?
            }
            Scenario::Retention => {
                let calls = if options.quick { 100_000 } else { 1_000_000 };
                retention::run(runtime.clone(), dir.path(), calls, &figures).await?
            }
            Scenario::SpinReplicas => {
                spin_replicas::run(
                    runtime.clone(),
                    dir.path(),
                    options.quick,
                    options.spin.clone(),
                    &figures,
                )
                .await?
            }
        }
        println!(
            "({} took {:.1} s)\n",
            scenario.name(),
            t.elapsed().as_secs_f64()
        );
    }
    summary::finish(&options, &figures, saved_run)?;
    Ok(())
}

/// A field of `/proc/self/status` in kB (`VmRSS:`, `VmHWM:`), where the
/// platform has one.
pub(crate) fn status_kb(field: &str) -> Option<u64> {
    proc_kb("/proc/self/status", field)
}

fn meminfo_kb(field: &str) -> Option<u64> {
    proc_kb("/proc/meminfo", field)
}

fn proc_kb(file: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Reset the peak resident size (VmHWM) to the current one.
pub(crate) fn reset_peak_rss() -> anyhow::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5")
        .context("resetting the peak RSS through /proc/self/clear_refs (Linux only)")
}

/// kB as MB text.
pub(crate) fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

/// Milliseconds with two decimals.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The `p`-th percentile (0–100) of `sorted` by nearest rank.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A temporary directory for the scenarios' databases, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "connectzero-bench-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A world on a fresh database file (WAL, as in production) under `dir`,
/// with the CRM simulator's rate limit off.
pub(crate) async fn world(
    runtime: Arc<Runtime>,
    dir: &Path,
    name: &str,
    options: TenantOptions,
) -> anyhow::Result<World> {
    let storage = Storage::open(&dir.join(format!("{name}.db")))?;
    let world = World::start(runtime, storage, options, false).await?;
    world.pbx.add_user(SimUser::new(
        1,
        "101",
        "Alice",
        "Smith",
        "alice@acme.example",
    ));
    Ok(world)
}

/// Area codes the benchmark numbers are spread over.
const AREA_CODES: [u32; 10] = [415, 212, 646, 312, 617, 202, 303, 206, 512, 305];

/// The `i`-th distinct outside number, valid E.164 (US).
pub(crate) fn number(i: usize) -> String {
    let area = AREA_CODES[i % AREA_CODES.len()];
    let rest = i / AREA_CODES.len();
    format!("+1{area}{}{:04}", 555 + rest / 10_000, rest % 10_000)
}

/// Seed one CRM contact per number `first..first + count`.
pub(crate) fn seed_contacts(world: &World, first: usize, count: usize) {
    for i in first..first + count {
        world
            .crm
            .add_contact(SimContact::new(format!("Bench{i}"), "Contact").phone(number(i)));
    }
}

/// Call `i`: inbound from number `i` to extension 101 (even `i`), or
/// outbound from 101 to number `i` (odd), answered, 30 s, no recording.
pub(crate) fn call_plan(i: usize) -> CallPlan {
    let outside = SimParty::external(&number(i), 0);
    let ext = SimParty::extension("101", "Alice Smith", 0);
    let (src, dst) = if i.is_multiple_of(2) {
        (outside, ext)
    } else {
        (ext, outside)
    };
    CallPlan {
        label: "bench",
        call_id: 100_000 + i as i32,
        first_segment_id: None,
        legs: vec![LegPlan {
            src,
            dst,
            answered: true,
            secs: 30,
        }],
        expect: Expect::Skipped("unused"),
        recording: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&sorted, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&sorted, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(&sorted[..1], 95.0), Duration::from_millis(1));
    }

    #[test]
    fn benchmark_numbers_are_distinct() {
        let numbers: std::collections::HashSet<String> = (0..30_000).map(number).collect();
        assert_eq!(numbers.len(), 30_000);
    }
}
