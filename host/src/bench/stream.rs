//! `stream-100mb`: peak RSS growth while one 100 MB recording streams from
//! the 3CX simulator into a CRM upload (as `host/tests/memory.rs` measures,
//! but in the bench process).

use super::{mb, reset_peak_rss, status_kb, world};
use crate::config::TenantOptions;
use crate::demo::{CallPlan, Expect, LegPlan, Placer, numbers};
use crate::engine::Runtime;
use crate::testbed::{TENANT, World};
use connectzero_simulators::threecx::{SimParty, SimRecording, silent_wav};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const RECORDING_BYTES: u64 = 100 * 1024 * 1024;
const TARGET_KB: u64 = 16 * 1024;

/// Run the scenario and print its figures.
pub async fn run(
    runtime: Arc<Runtime>,
    dir: &Path,
    figures: &super::figures::Figures,
) -> anyhow::Result<()> {
    let options = TenantOptions {
        retry_base_ms: 0,
        ..TenantOptions::default()
    };
    let world = world(runtime, dir, "stream", options).await?;
    world.crm.add_contact(
        connectzero_simulators::highlevel::SimContact::new("Dana", "Fox").phone(numbers::DANA),
    );
    world.crm.add_contact(
        connectzero_simulators::highlevel::SimContact::new("Eli", "Grant").phone(numbers::ELI),
    );
    world.pbx.add_recording(recording(900, numbers::DANA));
    world.pbx.set_synthetic_audio(900, RECORDING_BYTES);
    // Warm-up: a first call with a small recording, so compilation, tokens,
    // connections and one-time allocations are done before measuring.
    world.pbx.add_recording(recording(901, numbers::ELI));
    let mut placer = Placer::default();
    let warm = placer.place(&world, &plan(1, numbers::ELI, 901), chrono::Utc::now());
    attach(&world, &warm.key).await?;

    reset_peak_rss()?;
    let before = status_kb("VmHWM:").unwrap_or(0);
    let rss_before = status_kb("VmRSS:").unwrap_or(0);
    let started = Instant::now();
    let placed = placer.place(&world, &plan(2, numbers::DANA, 900), chrono::Utc::now());
    attach(&world, &placed.key).await?;
    let took = started.elapsed();
    let peak = status_kb("VmHWM:").unwrap_or(0);
    let uploaded = world
        .crm
        .uploads()
        .iter()
        .any(|u| u.size as u64 == RECORDING_BYTES);
    anyhow::ensure!(uploaded, "the 100 MB upload did not arrive whole");
    let growth = peak.saturating_sub(before);
    println!(
        "  measures: VmHWM (peak RSS, reset with /proc/self/clear_refs) before and after one\n\
         \x20           tick attaches a {} MB recording (3CX simulator download -> CRM simulator upload)",
        RECORDING_BYTES >> 20
    );
    println!(
        "  RSS before {}; peak during {}; peak growth {} ({growth} kB)",
        mb(rss_before),
        mb(peak),
        mb(growth)
    );
    println!(
        "  streamed {} MB in {:.2} s ({:.0} MB/s, both ends in this process)",
        RECORDING_BYTES >> 20,
        took.as_secs_f64(),
        (RECORDING_BYTES >> 20) as f64 / took.as_secs_f64()
    );
    figures.record(
        "stream.peak-growth",
        "peak RSS growth streaming 100 MB",
        "MB",
        growth as f64 / 1024.0,
        Some(super::figures::Goal::AtMost(TARGET_KB as f64 / 1024.0)),
    );
    println!(
        "  target < 16 MB: {}",
        if growth < TARGET_KB { "met" } else { "NOT met" }
    );
    Ok(())
}

fn recording(id: i32, number: &str) -> SimRecording {
    let now = chrono::Utc::now();
    SimRecording {
        id,
        start: now - chrono::Duration::seconds(30),
        end: Some(now),
        from_dn: "10000".into(),
        to_dn: "101".into(),
        from_caller_number: number.into(),
        to_caller_number: "101".into(),
        from_did_number: None,
        to_did_number: None,
        audio: silent_wav(1000),
    }
}

fn plan(call_id: i32, number: &str, recording: i32) -> CallPlan {
    CallPlan {
        label: "bench recording",
        call_id,
        first_segment_id: None,
        legs: vec![LegPlan {
            src: SimParty::external(number, 0),
            dst: SimParty::extension("101", "Alice Smith", 0).with_recording(recording),
            answered: true,
            secs: 30,
        }],
        expect: Expect::Skipped("unused"),
        recording: None,
    }
}

/// Tick until the call's recording is attached (at most 30 ticks, 100 ms
/// apart).
async fn attach(world: &World, key: &str) -> anyhow::Result<()> {
    let mut last = (None, None);
    for _ in 0..30 {
        let report = world.tick().await?;
        let status = world
            .storage
            .calls(TENANT)?
            .into_iter()
            .find(|r| r.call_key == key)
            .map(|r| format!("{} / recording {}", r.outcome, r.recording));
        if status
            .as_deref()
            .is_some_and(|s| s.ends_with("recording attached"))
        {
            return Ok(());
        }
        last = (status, Some(report));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!(
        "the recording of {key} was not attached after 30 ticks; call: {:?}; last tick: {:?}",
        last.0,
        last.1
    )
}
