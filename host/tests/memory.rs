//! Streaming a 100 MB recording from 3CX to the CRM keeps the process's
//! peak memory within 16 MB of where it started: the audio is never held
//! whole. Alone in its own test binary, so no other test's allocations
//! count against it.

#[path = "e2e/common.rs"]
mod common;

use anyhow::Context;
use common::*;
use connectzero::demo::{Placer, numbers};

const RECORDING_BYTES: u64 = 100 * 1024 * 1024;
const ALLOWED_GROWTH_KB: u64 = 16 * 1024;

/// A field of `/proc/self/status`, in kB.
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn streaming_a_100_mb_recording_keeps_peak_memory_within_16_mb() -> anyhow::Result<()> {
    let (world, _) = seeded_world(eager()).await?;
    world.pbx.add_recording(recording(900, true));
    world.pbx.set_synthetic_audio(900, RECORDING_BYTES);
    // Warm up: compile, connect, post a first call with its own recording,
    // so one-time allocations are done before measuring.
    world.pbx.add_recording(recording(901, true));
    let mut placer = Placer::default();
    let warm = place(
        &world,
        &mut placer,
        &one_leg(
            1,
            outside(numbers::ELI),
            ext("102").with_recording(901),
            true,
            5,
        ),
    );
    tick_until(&world, 5, |w| recording_of(w, &warm.key) == "attached").await?;

    // Reset the peak (VmHWM) to the current resident size.
    std::fs::write("/proc/self/clear_refs", "5")?;
    let before = status_kb("VmHWM:");
    let placed = place(
        &world,
        &mut placer,
        &one_leg(
            2,
            outside(numbers::DANA),
            ext("101").with_recording(900),
            true,
            30,
        ),
    );
    tick_until(&world, 5, |w| recording_of(w, &placed.key) == "attached").await?;
    let peak = status_kb("VmHWM:");

    let uploads = world.crm.uploads();
    let big = uploads
        .iter()
        .find(|u| u.size as u64 == RECORDING_BYTES)
        .context("the 100 MB upload arrived whole")?;
    assert!(big.file_name.ends_with("-900.wav"));
    let growth = peak.saturating_sub(before);
    println!(
        "peak RSS grew by {growth} kB while streaming {} MB",
        RECORDING_BYTES >> 20
    );
    assert!(
        growth < ALLOWED_GROWTH_KB,
        "peak RSS grew by {growth} kB (limit {ALLOWED_GROWTH_KB} kB)"
    );
    Ok(())
}

fn recording_of(world: &connectzero::testbed::World, key: &str) -> String {
    world
        .storage
        .calls(connectzero::testbed::TENANT)
        .unwrap()
        .into_iter()
        .find(|r| r.call_key == key)
        .map(|r| r.recording)
        .unwrap_or_default()
}
