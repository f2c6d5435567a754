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

use super::native_match;
use super::{ms, number, seed_contacts, throughput, world};
use crate::bindings::matcher::exports::connectzero::pipeline::matcher::MatchOutcome;
use crate::bindings::types::{Call, CallLeg, Direction, DnKind, ExtensionOwner, Party, StageError};
use crate::config::TenantOptions;
use crate::engine::{Runtime, Stage};
use crate::kv::KvCtx;
use crate::outbound::OutboundPolicy;
use crate::pipeline::Tenant;
use crate::state::{Grants, StoreData};
use crate::testbed::World;
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
            &world.tenant.directory,
        )
        .await;
        native += t.elapsed();
        same_answers(&component, &theirs)?;
    }
    let (cold, native) = (cold / reps as u32, native / reps as u32);
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
    warm_footprint(&runtime, &world).await?;
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
            throughput::run(runtime.clone(), dir, calls).await?
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
    println!(
        "  target < 1.05 on the whole pipeline: {}",
        if ratio < 1.05 { "met" } else { "NOT met" }
    );
    Ok(())
}

/// One batch through the component and through the native rules, in
/// the order given; checks both gave the same answers. Returns (component,
/// native) wall times.
async fn compare_once(
    runtime: &Runtime,
    world: &World,
    calls: &[Call],
    native_first: bool,
) -> anyhow::Result<(Duration, Duration)> {
    let settings = &world.tenant.settings;
    let directory = &world.tenant.directory;
    let (component, c, native, n) = if native_first {
        let t = Instant::now();
        let native = native_match::match_calls(settings, calls, directory).await;
        let n = t.elapsed();
        let t = Instant::now();
        let component = through_component(runtime, world, calls).await?;
        (component, t.elapsed(), native, n)
    } else {
        let t = Instant::now();
        let component = through_component(runtime, world, calls).await?;
        let c = t.elapsed();
        let t = Instant::now();
        let native = native_match::match_calls(settings, calls, directory).await;
        (component, c, native, t.elapsed())
    };
    same_answers(&component, &native)?;
    Ok((c, n))
}

/// What `Pipeline::match_calls` does: `match-calls` on the tenant's warm
/// instance, instantiated (store with only the match grants) when it has none.
async fn through_component(
    runtime: &Runtime,
    world: &World,
    calls: &[Call],
) -> anyhow::Result<Vec<Result<MatchOutcome, StageError>>> {
    let tenant = &world.tenant;
    runtime
        .match_calls(
            tenant.id(),
            &tenant.directory,
            || match_store(runtime, world, tenant),
            &tenant.settings,
            calls,
        )
        .await
}

/// A store with only the match grants for `tenant`.
fn match_store(runtime: &Runtime, world: &World, tenant: &Tenant) -> wasmtime::Store<StoreData> {
    let kv = KvCtx {
        namespace: tenant.id().to_string(),
        storage: world.storage.clone(),
    };
    let grants = Grants {
        directory: Some(tenant.directory.clone()),
        ..Grants::default()
    };
    runtime.new_store(Stage::Match, kv, OutboundPolicy::deny_all(), grants)
}

/// What the pipeline did before warm instances: a fresh store, instantiate,
/// call, drop.
async fn through_fresh_instance(
    runtime: &Runtime,
    world: &World,
    calls: &[Call],
) -> anyhow::Result<Vec<Result<MatchOutcome, StageError>>> {
    let tenant = &world.tenant;
    let mut store = match_store(runtime, world, tenant);
    let matcher = runtime.stages.matcher.instantiate_async(&mut store).await?;
    Ok(matcher
        .connectzero_pipeline_matcher()
        .call_match_calls(&mut store, &tenant.settings, calls)
        .await?)
}

/// Tenants whose warm matchers the footprint is measured over.
const FOOTPRINT_TENANTS: usize = 8;

/// Resident memory one idle warm matcher holds: RSS before and after
/// warming the matchers of [`FOOTPRINT_TENANTS`] more tenants (one call
/// each), divided by their number. Rough (allocator noise), but it is what
/// bounds [`crate::engine::WARM_MATCHERS`].
async fn warm_footprint(runtime: &Runtime, world: &World) -> anyhow::Result<()> {
    let http = crate::upstream::client(std::time::Duration::from_secs(30))?;
    let tenants: Vec<Tenant> = (0..FOOTPRINT_TENANTS)
        .map(|i| {
            let mut config = world.config().clone();
            config.id = format!("footprint-{i}");
            let mut tenant = Tenant::new(config, http.clone());
            tenant.credentials = world.tenant.credentials.clone();
            tenant
        })
        .collect();
    let calls = [call(0, 0)];
    let before = super::status_kb("VmRSS:");
    for tenant in &tenants {
        runtime
            .match_calls(
                tenant.id(),
                &tenant.directory,
                || match_store(runtime, world, tenant),
                &tenant.settings,
                &calls,
            )
            .await?;
    }
    if let (Some(before), Some(after)) = (before, super::status_kb("VmRSS:")) {
        println!(
            "  warm matcher footprint: RSS +{} for {FOOTPRINT_TENANTS} more idle warm instances ({:.1} MB each; at most {} kept: {:.0} MB)",
            super::mb(after.saturating_sub(before)),
            after.saturating_sub(before) as f64 / 1024.0 / FOOTPRINT_TENANTS as f64,
            runtime.warm_limits().idle,
            after.saturating_sub(before) as f64 / 1024.0 / FOOTPRINT_TENANTS as f64
                * runtime.warm_limits().idle as f64,
        );
    }
    Ok(())
}

fn summary(outcome: &Result<MatchOutcome, StageError>) -> String {
    match outcome {
        Ok(MatchOutcome::Matched(m)) => format!(
            "matched {} {:?} {} +{}",
            m.contact.id,
            m.rule,
            m.matched_on,
            m.also_matching.len()
        ),
        Ok(MatchOutcome::Unmatched(n)) => format!("unmatched {n}"),
        Ok(MatchOutcome::Skipped(r)) => format!("skipped {r}"),
        Err(e) => format!("error {}", crate::pipeline::describe(e)),
    }
}

fn same_answers(
    component: &[Result<MatchOutcome, StageError>],
    native: &[Result<MatchOutcome, StageError>],
) -> anyhow::Result<()> {
    anyhow::ensure!(
        component.len() == native.len(),
        "component answered {} times, native {}",
        component.len(),
        native.len()
    );
    for (c, n) in component.iter().zip(native) {
        let (c, n) = (summary(c), summary(n));
        anyhow::ensure!(c == n, "component and native rules disagree: {c} vs {n}");
        anyhow::ensure!(
            c.starts_with("matched"),
            "a benchmark call did not match: {c}"
        );
    }
    Ok(())
}

/// Call `i`, inbound from benchmark number `from` to extension 101.
fn call(i: usize, from: usize) -> Call {
    let end = chrono::Utc::now().timestamp_millis();
    let start = end - 30_000;
    let caller = Party {
        number: number(from),
        display_name: None,
        extension: None,
        external: true,
        owner: None,
        kind: DnKind::ExternalLine,
    };
    let callee = Party {
        number: "101".into(),
        display_name: Some("Alice Smith".into()),
        extension: Some("101".into()),
        external: false,
        owner: Some(ExtensionOwner {
            extension: "101".into(),
            first_name: "Alice".into(),
            last_name: "Smith".into(),
            email: Some("alice@acme.example".into()),
        }),
        kind: DnKind::Extension,
    };
    Call {
        key: format!("3cx:{}@{start}", 500_000 + i),
        legs: vec![CallLeg {
            leg_id: 500_000 + i as i32,
            start_time: start,
            end_time: end,
            direction: Direction::Inbound,
            answered: true,
            duration_secs: 30,
            caller: caller.clone(),
            callee: callee.clone(),
            recording: None,
        }],
        direction: Direction::Inbound,
        answered: true,
        start_time: start,
        end_time: end,
        duration_secs: 30,
        caller,
        answered_by: Some(callee.clone()),
        callee,
        route: Vec::new(),
        missed_reason: None,
    }
}
