//! `boundary`: the match stage as a component against the same rules
//! compiled into the host ([`native_match`](super::native_match)).
//!
//! The component is invoked on the tenant's warm stand-alone instance
//! (`Runtime::match_calls`), one `match-calls` call per batch: what the
//! pipeline pays inside a warm composed tick, which keeps its matcher
//! between ticks the same way. One extra row shows what a fresh instance
//! pays (a tenant's first tick with calls): a fresh store and instance per
//! batch, which rebuilds the phone-number tables every time. Its `directory` import is the host's
//! `Directory`, which searches the CRM simulator over HTTP; the directory
//! cannot be replaced by an in-memory one without changing production code,
//! so both sides use the same simulator-backed directory and the same
//! per-batch cache rules. Batches alternate between the two sides.

mod cold;
mod floor;
mod footprint;
mod sides;

use super::native_match;
use super::{ms, seed_contacts, throughput, world};
use crate::bindings::types::Call;
use crate::config::TenantOptions;
use crate::engine::Runtime;
use footprint::warm_footprint;
use sides::{call, compare_once, same_answers, through_fresh_instance};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
/// A batch shape.
struct Mix {
    name: &'static str,
    what: &'static str,
    calls: Vec<Call>,
}

/// Run the scenario and print its figures. `pipeline` is the throughput
/// scenario's result, when it ran in this invocation.
pub async fn run(
    runtime: Arc<Runtime>,
    dir: &Path,
    quick: bool,
    pipeline: Option<throughput::Throughput>,
    figures: &super::figures::Figures,
) -> anyhow::Result<()> {
    let batch = if quick { 20 } else { 100 };
    let reps = if quick { 2 } else { 60 };
    let world = world(runtime.clone(), dir, "boundary", TenantOptions::default()).await?;
    seed_contacts(&world, 0, batch);
    let mixes = [
        Mix {
            name: "empty batch",
            what: "0 calls: store + instantiate + call only",
            calls: Vec::new(),
        },
        Mix {
            name: "1 call",
            what: "1 inbound call, 1 directory search",
            calls: vec![call(0, 0)],
        },
        Mix {
            name: "same number",
            what: "calls from one number: 1 directory search, then cache hits",
            calls: (0..batch).map(|i| call(i, 0)).collect(),
        },
        Mix {
            name: "distinct numbers",
            what: "calls from distinct contacts: 1 directory search per call",
            calls: (0..batch).map(|i| call(i, i)).collect(),
        },
    ];

    // Warm both sides: tokens, connections, the host's phone-number tables,
    // the tenant's warm match instance.
    compare_once(&runtime, &world, &mixes[3].calls, false).await?;
    println!(
        "  measures: wall time per match-stage batch, component (match-calls on the tenant's warm instance,\n\
         \x20           as a warm tick runs it) vs. the same rules as native host code; both use the host\n\
         \x20           directory (HTTP search on the CRM simulator), {reps} alternating batches each"
    );
    println!(
        "  {:<17} {:>6} {:>12} {:>12} {:>8} {:>14}",
        "batch", "calls", "component", "native", "ratio", "extra per call"
    );
    for mix in &mixes {
        let (mut component, mut native) = (Duration::ZERO, Duration::ZERO);
        for rep in 0..reps {
            let (c, n) = compare_once(&runtime, &world, &mix.calls, rep % 2 == 1).await?;
            component += c;
            native += n;
        }
        let (component, native) = (component / reps as u32, native / reps as u32);
        let extra = component.saturating_sub(native);
        let per_call = if mix.calls.is_empty() {
            "-".to_string()
        } else {
            let d = extra / mix.calls.len() as u32;
            format!("{:.1} µs", d.as_secs_f64() * 1e6)
        };
        println!(
            "  {:<17} {:>6} {:>12} {:>12} {:>8} {:>14}",
            mix.name,
            mix.calls.len(),
            ms(component),
            ms(native),
            if native.is_zero() {
                "-".to_string()
            } else {
                format!("{:.2}", component.as_secs_f64() / native.as_secs_f64())
            },
            per_call
        );
        println!("  {:<17} ({})", "", mix.what);
    }

    // What a fresh instance per batch costs (the pipeline before warm
    // instances; still the cost of a tenant's first batch in a process).
    let (mut cold, mut native) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..reps {
        let t = Instant::now();
        let component = through_fresh_instance(&runtime, &world, &mixes[1].calls).await?;
        cold += t.elapsed();
        let t = Instant::now();
        let theirs = native_match::match_calls(
            &world.tenant.settings,
            &mixes[1].calls,
            world.tenant.directory.as_ref(),
        )
        .await;
        native += t.elapsed();
        same_answers(&component, &theirs)?;
    }
    let (cold, native) = (cold / reps as u32, native / reps as u32);
    figures.record(
        "boundary.fresh-matcher",
        "fresh matcher instance, first call",
        "ms",
        cold.as_secs_f64() * 1000.0,
        None,
    );
    println!(
        "  {:<17} {:>6} {:>12} {:>12} {:>8} {:>14}",
        "1 call, fresh",
        1,
        ms(cold),
        ms(native),
        format!("{:.2}", cold.as_secs_f64() / native.as_secs_f64().max(1e-9)),
        format!("{:.1} µs", cold.saturating_sub(native).as_secs_f64() * 1e6)
    );
    println!(
        "  {:<17} (as \"1 call\", but a fresh store and instance per batch: a tenant's first batch)",
        ""
    );
    warm_footprint(&runtime, &world, figures).await?;
    let round_trip = floor::loopback_round_trip(quick, figures).await?;
    cold::fresh_tick(&runtime, dir, quick, figures, round_trip).await?;
    let stats = runtime.matcher_stats();
    println!(
        "  warm matcher pool: {} instantiations, {} reuses, {} dropped after an error, {} retired, {} evicted, {} idle (limit {}, {} uses each)",
        stats.instantiations,
        stats.reuses,
        stats.discarded,
        stats.retired,
        stats.evicted,
        stats.idle,
        runtime.warm_limits().idle,
        runtime.warm_limits().max_uses,
    );

    // The whole pipeline: the throughput backlog's match batch (same size,
    // distinct numbers) through both sides, against the backlog's wall time.
    let pipeline = match pipeline {
        Some(p) => p,
        None => {
            let calls = if quick { 100 } else { 1000 };
            println!(
                "  (no throughput figure from this run: measuring one with {calls} calls for the pipeline ratio)"
            );
            throughput::run(runtime.clone(), dir, calls, figures).await?
        }
    };
    let n = pipeline.calls;
    seed_contacts(&world, batch, n.saturating_sub(batch));
    let calls: Vec<Call> = (0..n).map(|i| call(i, i)).collect();
    // The backlog's calls in the batches its ticks matched them in (one
    // per tick, as even as the per-tick bound makes them).
    let per_tick = n.div_ceil(pipeline.ticks.max(1)).max(1);
    let batches: Vec<&[Call]> = calls.chunks(per_tick).collect();
    for b in &batches {
        compare_once(&runtime, &world, b, false).await?;
    }
    let pipeline_reps: u32 = if quick { 1 } else { 4 };
    let (mut component, mut native) = (Duration::ZERO, Duration::ZERO);
    for rep in 0..pipeline_reps {
        for b in &batches {
            let (c, n) = compare_once(&runtime, &world, b, rep % 2 == 1).await?;
            component += c;
            native += n;
        }
    }
    let (component, native) = (component / pipeline_reps, native / pipeline_reps);
    let extra = component.saturating_sub(native);
    let with = pipeline.elapsed;
    let without = with.saturating_sub(extra);
    let ratio = with.as_secs_f64() / without.as_secs_f64().max(1e-9);
    println!(
        "  throughput backlog's batches ({n} distinct numbers in {} batch(es)): component {}, native {} (ratio {:.2}, {pipeline_reps} each)",
        batches.len(),
        ms(component),
        ms(native),
        component.as_secs_f64() / native.as_secs_f64().max(1e-9)
    );
    println!(
        "  whole pipeline: {n} calls in {} ({} tick(s)) with the match component; {} with its measured\n\
         \x20   extra time over native taken off: ratio {ratio:.3}",
        ms(with),
        pipeline.ticks,
        ms(without),
    );
    figures.record(
        "boundary.ratio",
        "component / native, whole pipeline",
        "ratio",
        ratio,
        Some(super::figures::Goal::AtMost(1.05)),
    );
    println!(
        "  target < 1.05 on the whole pipeline: {}",
        if ratio < 1.05 { "met" } else { "NOT met" }
    );
    Ok(())
}
