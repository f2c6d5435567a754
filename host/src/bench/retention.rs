//! `retention`: 1,000,000 calls over 90 simulated days, and the database
//! size day by day under the default horizons (30 days of call state, 30
//! days of call log).
//!
//! Posting a million calls through the simulators would take most of an
//! hour, and what retention is about is the state they leave, not the
//! posting. So a sample of real calls goes through every stage first
//! (recordings attached, a workflow trigger delivered), and what each left
//! behind — its ledger entries, send marker, follow-up done markers (its
//! `call.started` one included) and call-log row, byte for byte — is copied for every simulated call under
//! the call's own key and start time. The runtime's clock then runs a day
//! ahead at a time; each simulated day the tenant's queues are worked until
//! the retention sweep has passed over the whole keyspace once (a tenant
//! ticking every second makes hundreds of passes a day) and its old
//! call-log rows are deleted, as its ticks would.

use super::{call_plan, mb, seed_contacts, world};
use crate::config::TenantOptions;
use crate::demo::{Placer, RecordingPlan};
use crate::engine::Runtime;
use crate::storage::CallRecord;
use crate::testbed::World;
use guest_support::protocol::CURSOR_KEY;
use guest_support::retention::POSITION_KEY;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Days simulated.
const DAYS: usize = 90;

/// Real calls whose state is copied.
const SAMPLE: usize = 20;

/// Days between printed rows.
const PRINT_EVERY: usize = 5;

const DAY: Duration = Duration::from_secs(86_400);

/// What one sample call left behind.
struct LeftBehind {
    /// The call's key and start as its keys spell them.
    call_key: String,
    /// Its key-value entries.
    entries: Vec<(String, Vec<u8>)>,
    /// Its call-log row.
    row: CallRecord,
}

/// Run the scenario and print its figures.
pub async fn run(
    runtime: Arc<Runtime>,
    dir: &Path,
    calls: usize,
    figures: &super::figures::Figures,
) -> anyhow::Result<()> {
    anyhow::ensure!(calls >= DAYS, "--calls must be at least {DAYS}");
    let options = TenantOptions::default();
    let (state_days, log_days) = (options.state_retention_days, options.call_log_days);
    let world = world(runtime.clone(), dir, "retention", options).await?;
    let samples = sample(&world).await?;
    let per_call: usize = samples.iter().map(|s| s.entries.len()).sum::<usize>() / samples.len();
    let bytes_per_call: usize = samples
        .iter()
        .flat_map(|s| &s.entries)
        .map(|(k, v)| k.len() + v.len())
        .sum::<usize>()
        / samples.len();
    println!(
        "  measures: database size (pages in use, and the file) after each simulated day of {} calls\n\
         \x20           ({calls} calls over {DAYS} days); per call {per_call} keys, {bytes_per_call} bytes of keys and values\n\
         \x20           and a call-log row, copied from {SAMPLE} calls posted through every stage; horizons\n\
         \x20           state_retention_days = {state_days}, call_log_days = {log_days}",
        calls / DAYS
    );
    println!("  day    calls   keys (per-call)   call log   in use      file    pruned   sweep");
    let tenant = world.tenant.clone();
    let id = tenant.id().to_string();
    let storage = world.storage.clone();
    let mut written = 0usize;
    let mut pruned = 0usize;
    let mut peak = (0u64, 0u64);
    let started = Instant::now();
    for day in 0..DAYS {
        // The day's calls, spread over it, starting from the simulated now.
        let today = calls * (day + 1) / DAYS - calls * day / DAYS;
        let day_start = runtime.clock.now_ms();
        let step = (DAY.as_millis() as i64) / today as i64;
        let mut entries = Vec::with_capacity(today * per_call);
        let mut rows = Vec::with_capacity(today);
        for j in 0..today {
            let start = day_start + j as i64 * step;
            let sample = &samples[(written + j) % samples.len()];
            copy_call(sample, written + j, start, &id, &mut entries, &mut rows);
        }
        written += today;
        storage.kv_set_many(&id, &entries)?;
        storage.record_calls(&rows)?;
        // The day passes; the poll keeps up with it, so its cursor is near
        // the day's end.
        runtime.clock.run_ahead(DAY);
        let now = runtime.clock.now_ms();
        storage.kv_set(&id, CURSOR_KEY, (now - 60_000).to_string().as_bytes())?;
        let sweep = Instant::now();
        pruned += sweep_a_pass(&world).await?;
        loop {
            let gone = world.pipeline.forget_old_call_log_rows(&tenant);
            pruned += gone;
            if gone == 0 {
                break;
            }
        }
        let sweep = sweep.elapsed();
        let (in_use, file) = storage.database_bytes()?;
        peak = (peak.0.max(in_use), peak.1.max(file));
        if (day + 1) % PRINT_EVERY == 0 || day == 0 {
            let keys = storage.kv_count_prefix(&id, "")?;
            let per_call_keys = ["ledger/", "post/sending/", "attach/done/", "trigger/done/"]
                .iter()
                .map(|p| storage.kv_count_prefix(&id, p))
                .sum::<Result<i64, _>>()?;
            println!(
                "  {:>3} {:>8} {:>8} ({:>7}) {:>9} {:>9} {:>9} {:>9} {:>6.1} s",
                day + 1,
                written,
                keys,
                per_call_keys,
                storage.call_count(&id)?,
                mb(in_use / 1024),
                mb(file / 1024),
                pruned,
                sweep.as_secs_f64()
            );
        }
    }
    figures.record(
        "retention.peak-file",
        &format!("database file, peak over {DAYS} days of {calls} calls"),
        "MB",
        peak.1 as f64 / (1024.0 * 1024.0),
        None,
    );
    println!(
        "  peak: {} in use, {} file; {} s in all",
        mb(peak.0 / 1024),
        mb(peak.1 / 1024),
        started.elapsed().as_secs()
    );
    Ok(())
}

/// Post `SAMPLE` calls through every stage — half recorded, each with a
/// `call.ended` workflow — and collect what each left behind.
async fn sample(world: &World) -> anyhow::Result<Vec<LeftBehind>> {
    use crate::bindings::trigger::exports::connectzero::pipeline::trigger::{
        Subscription, SubscriptionChange,
    };
    seed_contacts(world, 0, SAMPLE);
    for key in ["call.started", "call.ended"] {
        let subscription = Subscription {
            id: format!("bench-{key}"),
            kind: guest_support::triggers::TriggerKind::from_key(key)
                .expect("a trigger key")
                .into(),
            target_url: format!(
                "{}/workflows-marketplace/triggers/execute/app/bench-{key}",
                world.crm.base_url()
            ),
            workflow_id: Some(format!("wf-{key}")),
        };
        world
            .pipeline
            .subscribe_trigger(&world.tenant, SubscriptionChange::Created, subscription)
            .await?
            .map_err(|e| anyhow::anyhow!("subscribing the sample's workflow: {e:?}"))?;
    }
    let plans: Vec<_> = (0..SAMPLE)
        .map(|i| {
            let mut plan = call_plan(i);
            if i % 2 == 0 {
                plan.recording = Some(RecordingPlan {
                    id: 7_000 + i as i32,
                    finalise_after: Duration::ZERO,
                    dialled: None,
                    transcribed: false,
                });
            }
            plan
        })
        .collect();
    // Ringing first (`call.started`), then hung up into the history.
    for plan in &plans {
        world
            .pbx
            .add_active_call(crate::demo::active_call(plan, chrono::Utc::now()));
    }
    world.tick().await?;
    let mut placer = Placer::default();
    let mut keys = Vec::new();
    for plan in &plans {
        world.pbx.remove_active_call(plan.call_id);
        let placed = placer.place(world, plan, chrono::Utc::now());
        keys.push((placed.key, plan.call_id));
    }
    let settled = |w: &World| {
        w.crm.messages().len() == SAMPLE && w.crm.trigger_executions().len() == 2 * SAMPLE
    };
    for _ in 0..20 {
        if settled(world)
            && world
                .storage
                .kv_count_prefix(world.tenant.id(), "attach/job/")?
                == 0
        {
            break;
        }
        world.tick().await?;
    }
    anyhow::ensure!(
        settled(world),
        "the sample calls did not settle in 20 ticks"
    );
    let id = world.tenant.id();
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = world.storage.kv_list(id, cursor.as_deref())?;
        let Some(last) = page.last().cloned() else {
            break;
        };
        for key in page {
            let value = world.storage.kv_get(id, &key)?.unwrap_or_default();
            all.push((key, value));
        }
        cursor = Some(last);
    }
    let rows = world.storage.calls(id)?;
    keys.into_iter()
        .map(|(call_key, call_id)| {
            let active = format!("3cx-active:{call_id}@");
            let entries: Vec<(String, Vec<u8>)> = all
                .iter()
                .filter(|(k, v)| {
                    k.contains(&call_key)
                        || k.contains(&active)
                        || (k.starts_with("ledger/")
                            && String::from_utf8_lossy(v).contains(&call_key))
                })
                .cloned()
                .collect();
            let row = rows
                .iter()
                .find(|r| r.call_key == call_key)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no call-log row for {call_key}"))?;
            Ok(LeftBehind {
                call_key,
                entries,
                row,
            })
        })
        .collect()
}

/// Write what `sample` left behind again as call number `n`, started at
/// `start`: every key and value with the sample's call key, ledger legs
/// and start replaced by the new call's.
fn copy_call(
    sample: &LeftBehind,
    n: usize,
    start: i64,
    tenant: &str,
    entries: &mut Vec<(String, Vec<u8>)>,
    rows: &mut Vec<CallRecord>,
) {
    let call_key = format!("3cx:{}@{start}", 10_000_000 + n);
    let (_, sample_start) = sample.call_key.rsplit_once('@').unwrap_or_default();
    let sample_start_ms: i64 = sample_start.parse().unwrap_or(0);
    for (leg, (key, value)) in sample.entries.iter().enumerate() {
        let key = if key.starts_with("ledger/") {
            format!("ledger/{}@{start}", 20_000_000 + n * 8 + leg)
        } else if let Some((before, _)) = key.split_once("3cx-active:") {
            format!("{before}3cx-active:{}@{start}", 10_000_000 + n)
        } else {
            key.replace(&sample.call_key, &call_key)
        };
        let value = String::from_utf8_lossy(value)
            .replace(&sample.call_key, &call_key)
            .replace(&sample_start_ms.to_string(), &start.to_string());
        entries.push((key, value.into_bytes()));
    }
    let mut row = sample.row.clone();
    row.tenant = tenant.to_string();
    row.call_key = call_key;
    row.ended_at_ms = start + 30_000;
    row.handled_at_ms = start + 40_000;
    rows.push(row);
}

/// Work the tenant's queues until the retention sweep has passed over the
/// whole keyspace once; returns the keys it deleted.
async fn sweep_a_pass(world: &World) -> anyhow::Result<usize> {
    let id = world.tenant.id();
    let mut pruned = 0;
    // Start a pass now, rather than after the rest that follows the last
    // one; it ends when the sweep rests again.
    world.storage.kv_delete(id, POSITION_KEY)?;
    for _ in 0..100_000 {
        let report = world.pipeline.work_due_queues(&world.tenant).await?;
        pruned += report.pruned;
        let position = world.storage.kv_get(id, POSITION_KEY)?.unwrap_or_default();
        let position: serde_json::Value = serde_json::from_slice(&position).unwrap_or_default();
        if position.get("rest_until").is_some() {
            return Ok(pruned);
        }
    }
    anyhow::bail!("the retention sweep never finished a pass")
}
