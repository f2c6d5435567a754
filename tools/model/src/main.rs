//! Run the protocol model with deeper bounds than CI does.
//!
//! `cargo run --release -p connectzero-model -- --workers 3 --faults 2`

use clap::Parser;
use connectzero_model::{Config, Scenario, StopAt, Variant, check, explain, safety_and_liveness};

/// Model-check ConnectZero's exactly-once protocol (docs/MODEL.md).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// 3CX calls: mixed, long-and-short, segmented or single.
    #[arg(long, default_value = "mixed")]
    scenario: String,
    /// Workers sharing the store.
    #[arg(long, default_value_t = 2)]
    workers: u8,
    /// Faults (crashes, lost CRM answers) in one run.
    #[arg(long, default_value_t = 1)]
    faults: u8,
    /// Only crashes; no lost CRM answers.
    #[arg(long)]
    no_lost_answers: bool,
    /// Claim lease, model time units.
    #[arg(long, default_value_t = 2)]
    lease: u8,
    /// Overlap window, model time units.
    #[arg(long, default_value_t = 0)]
    overlap: u8,
    /// Time may not pass between a worker's ActiveCalls read and its
    /// history read.
    #[arg(long)]
    no_stall_between_reads: bool,
    /// A claim that finds its call done marks only the legs without an
    /// entry (the defect the model found) instead of every leg not done.
    #[arg(long)]
    join_unmarked: bool,
    /// Last model time explored (default: last call end + lease).
    #[arg(long)]
    horizon: Option<u8>,
    /// implemented, cursor-on-start-only, no-claim-recheck,
    /// followups-after-done, or all.
    #[arg(long, default_value = "implemented")]
    variant: String,
    /// Checker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// For each property that fails, find its shortest counterexample
    /// (one thread, breadth first) and print it step by step.
    #[arg(long)]
    explain: bool,
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let scenario = Scenario::named(&args.scenario)
        .ok_or_else(|| format!("unknown scenario {:?}", args.scenario))?;
    let variants: Vec<Variant> = if args.variant == "all" {
        Variant::ALL.to_vec()
    } else {
        vec![
            Variant::ALL
                .into_iter()
                .find(|v| v.name() == args.variant)
                .ok_or_else(|| format!("unknown variant {:?}", args.variant))?,
        ]
    };
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let mut failed = 0usize;
    for variant in variants {
        let mut config = Config::new(scenario.clone(), variant);
        config.workers = args.workers;
        config.faults = args.faults;
        config.lost_answers = !args.no_lost_answers;
        config.lease = args.lease;
        config.overlap = args.overlap;
        config.stall_between_reads = !args.no_stall_between_reads;
        if args.join_unmarked {
            config.join = connectzero_model::Join::Unmarked;
        }
        config.horizon = args.horizon.unwrap_or(scenario.last_event() + args.lease);
        println!("{} on {:?}:", variant.name(), args.scenario);
        if args.explain {
            for name in safety_and_liveness() {
                let report = check(config.clone(), 1, StopAt::Discovery(name));
                match report.discoveries.get(name) {
                    Some(trace) => {
                        failed += 1;
                        println!(
                            "  {name}: counterexample in {} steps ({} states, {:.1?}):\n{}",
                            trace.actions.len(),
                            report.unique_states,
                            report.elapsed,
                            explain(&config, trace)
                        )
                    }
                    None => println!(
                        "  {name}: holds ({} states, {:.1?})",
                        report.unique_states, report.elapsed
                    ),
                }
            }
            continue;
        }
        let report = check(config, threads, StopAt::Exhausted);
        println!(
            "  {} unique states ({} generated), depth {}, {:.1?}",
            report.unique_states, report.states, report.max_depth, report.elapsed
        );
        for (name, trace) in &report.discoveries {
            println!("  found: {name} ({} steps)", trace.actions.len());
            println!("    {:?}", trace.actions);
            if safety_and_liveness().contains(name) {
                failed += 1;
            }
        }
    }
    // A property that fails is a failed run (scripts and CI see it).
    if failed > 0 {
        return Err(format!("{failed} property failures found"));
    }
    Ok(())
}
