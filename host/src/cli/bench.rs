//! `connectzero bench`: measure latency, throughput, memory and the
//! component boundary against the built-in simulators (see
//! docs/BENCHMARKS.md); the work is done by `connectzero::bench`.

use connectzero::bench;
use std::path::PathBuf;

/// The arguments of `connectzero bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Scenario to run (repeatable; default: all).
    #[arg(long = "scenario", value_enum, value_name = "NAME")]
    scenarios: Vec<bench::Scenario>,
    /// Calls the throughput scenario places (default 2000).
    #[arg(long, value_name = "N")]
    calls: Option<usize>,
    /// Small samples and short runs: a smoke test, not figures to quote.
    #[arg(long)]
    quick: bool,
    /// The Spin CLI for `--scenario spin-replicas` (default:
    /// ../shared/tools/spin/spin, else `spin` on PATH).
    #[arg(long, value_name = "PATH")]
    spin: Option<PathBuf>,
    /// Where the run's figures are saved, as `latest.json` (or
    /// `latest-quick.json` with `--quick`), the next run's previous figures.
    #[arg(long, value_name = "DIR", default_value = "target/bench")]
    results: PathBuf,
    /// A saved run to print beside this one (default: the run saved in
    /// `--results`, else docs/benchmarks.json).
    #[arg(long, value_name = "FILE")]
    previous: Option<PathBuf>,
}

/// `connectzero bench`: run the chosen scenarios and print their figures.
pub async fn run(components: Option<PathBuf>, args: BenchArgs) -> anyhow::Result<()> {
    let BenchArgs {
        scenarios,
        calls,
        quick,
        spin,
        results,
        previous,
    } = args;
    bench::run(bench::Options {
        scenarios,
        calls,
        quick,
        components,
        spin,
        results: Some(results),
        previous,
    })
    .await
}
