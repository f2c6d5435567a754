//! Runaway components: a replacement matcher that never returns, sleeping
//! and spinning by turns, sleeping in one long host call (stopped by the
//! watchdog) or spinning without a host call (stopped by the epoch
//! callback, yielding meanwhile), is stopped
//! within its time allowance, while another tenant on the same host keeps
//! posting its calls. The fixture is `tests/hostile-matcher`.

use crate::common::*;
use connectzero::demo::{Placer, numbers};
use connectzero::engine::{Runtime, Stage, WarmLimits};
use connectzero::storage::Storage;
use connectzero::testbed::World;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The fixture's numbers (`tests/hostile-matcher/src/lib.rs`).
const SLEEPS_AND_SPINS: &str = "+14155550666";
const SLEEPS_AN_HOUR: &str = "+14155550667";
const SPINS: &str = "+14155550668";

/// The allowance the test's runtime grants each invocation: short, so the
/// test sees it act, and long enough for the calm tenant's ticks on a
/// loaded machine.
const ALLOWANCE: Duration = Duration::from_secs(4);

/// Longest the test waits for the runaway tick to be stopped before
/// calling it a failure (it would never end without the allowance).
const GIVE_UP: Duration = Duration::from_secs(120);

/// A directory holding the hostile matcher as the match stage's
/// replacement, built once per test binary.
fn replacements() -> &'static std::path::Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = DIR.get_or_init(|| {
        let wasm = build_component("connectzero-hostile-matcher", "connectzero_hostile_matcher")
            .expect("the hostile matcher builds");
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&wasm, dir.path().join(Stage::Match.file_name())).unwrap();
        let path = dir.path().to_path_buf();
        (dir, path)
    });
    path
}

/// Two tenants on one runtime whose matcher is the hostile one: the first
/// gets the poison call, the second (`calm`) ordinary ones.
async fn two_tenants() -> anyhow::Result<(World, World, Arc<Runtime>)> {
    let runtime = Runtime::with_limits(Some(replacements()), WarmLimits::default(), ALLOWANCE)?;
    let storage = Storage::in_memory()?;
    let hostile = World::start(runtime.clone(), storage.clone(), defaults(), false).await?;
    connectzero::demo::seed_directory(&hostile);
    let mut calm = World::start(runtime.clone(), storage, defaults(), false).await?;
    connectzero::demo::seed_directory(&calm);
    calm.reconfigure(|c| c.id = "calm".into())?;
    Ok((hostile, calm, runtime))
}

/// The poison call's tick is stopped by the allowance (not before it, and
/// not never), with the allowance named in the error, while `calm` posts
/// calls placed one after another during it.
async fn stopped_while_the_other_tenant_posts(poison: &str) -> anyhow::Result<()> {
    let (hostile, calm, _) = two_tenants().await?;
    let mut placer = Placer::default();
    place(
        &hostile,
        &mut placer,
        &one_leg(1, outside(poison), ext("101"), true, 30),
    );

    let hostile = Arc::new(hostile);
    let running = Arc::new(AtomicBool::new(true));
    let runaway = tokio::spawn({
        let (hostile, running) = (hostile.clone(), running.clone());
        async move {
            let started = Instant::now();
            let result = tokio::time::timeout(GIVE_UP, hostile.tick()).await;
            running.store(false, Ordering::SeqCst);
            (result, started.elapsed())
        }
    });

    // The calm tenant's calls, placed one at a time while the runaway
    // tick is still running, each post.
    let mut placer = Placer::default();
    let from = [numbers::DANA, numbers::ELI, numbers::FAY];
    let mut posted_during = 0;
    for (i, number) in from.iter().enumerate() {
        let id = 100 + i as i32;
        place(
            &calm,
            &mut placer,
            &one_leg(id, outside(number), ext("102"), true, 30),
        );
        let mut ticks = 0;
        while !posted_keys(&calm)
            .iter()
            .any(|k| k.starts_with(&format!("3cx:{id}@")))
        {
            assert!(ticks < 20, "call {id} not posted after {ticks} ticks");
            let report = calm.tick().await?;
            assert!(report.error.is_none(), "{report:?}");
            ticks += 1;
        }
        if running.load(Ordering::SeqCst) {
            posted_during += 1;
        }
    }
    assert_eq!(posted_keys(&calm).len(), from.len());

    let (result, took) = runaway.await?;
    let error = result
        .unwrap_or_else(|_| panic!("the runaway tick was still running after {GIVE_UP:?}"))
        .expect_err("the runaway tick cannot succeed");
    let error = format!("{error:#}");
    assert!(error.contains("time allowance"), "{error}");
    // Stopped once the allowance was used, and not before; and within
    // it, with a margin for a loaded machine: its sleeps were not
    // credited as waiting. (Crediting them, it would run ten allowances:
    // it spins a tenth of the time.)
    assert!(took >= ALLOWANCE, "stopped after {took:?}");
    assert!(took < 2 * ALLOWANCE, "stopped only after {took:?}");
    // The other tenant's calls went through while it ran (the first at
    // least: the allowance is short against a loaded machine's ticks).
    assert!(posted_during >= 1, "no call posted during the runaway tick");
    // Nothing of the poison call was posted, nor lost: it waits, unposted.
    assert!(hostile.crm.messages().is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matcher_sleeping_and_spinning_by_turns_is_stopped_and_others_keep_posting()
-> anyhow::Result<()> {
    stopped_while_the_other_tenant_posts(SLEEPS_AND_SPINS).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matcher_asleep_in_one_long_host_call_is_stopped_and_others_keep_posting()
-> anyhow::Result<()> {
    stopped_while_the_other_tenant_posts(SLEEPS_AN_HOUR).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matcher_spinning_without_a_host_call_is_stopped_and_others_keep_posting()
-> anyhow::Result<()> {
    stopped_while_the_other_tenant_posts(SPINS).await?;
    Ok(())
}

/// An instance kept warm gets its whole allowance again on every call:
/// a tick on the calm tenant's warm instance, long after the instance was
/// built (more than a whole allowance), runs to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_instance_gets_its_whole_allowance_on_every_call() -> anyhow::Result<()> {
    let (_, calm, runtime) = two_tenants().await?;
    let mut placer = Placer::default();
    place(
        &calm,
        &mut placer,
        &one_leg(1, outside(numbers::DANA), ext("102"), true, 30),
    );
    assert_eq!(calm.tick().await?.posted, 1);
    let before = runtime.tick_stats();
    // Time passes, more than an allowance, with the instance idle.
    tokio::time::sleep(ALLOWANCE + Duration::from_millis(500)).await;
    place(
        &calm,
        &mut placer,
        &one_leg(2, outside(numbers::ELI), ext("102"), true, 30),
    );
    let report = calm.tick().await?;
    assert_eq!(report.posted, 1, "{report:?}");
    let after = runtime.tick_stats();
    assert_eq!(
        after.reuses,
        before.reuses + 1,
        "the warm instance served it"
    );
    Ok(())
}
