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
}

/// `connectzero bench`: run the chosen scenarios and print their figures.
pub async fn run(components: Option<PathBuf>, args: BenchArgs) -> anyhow::Result<()> {
    let BenchArgs {
        scenarios,
        calls,
        quick,
        spin,
    } = args;
    bench::run(bench::Options {
        scenarios,
        calls,
        quick,
        components,
        spin,
    })
    .await
}
