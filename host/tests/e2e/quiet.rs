//! Quiet ticks: an idle tenant's scheduler checks 3CX instead of running
//! the pipeline, and runs the pipeline again as soon as 3CX shows anything
//! new — a call just ended, a row written late inside the window, a call
//! in progress.

use crate::common::*;
use connectzero::demo::Placer;
use connectzero::pipeline::{Tenant, TickReport};
use connectzero::scheduler;
use connectzero_simulators::threecx::SegmentWrites;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Most reports to wait for any one thing: at 100 ms a tick, 5 s.
const MAX_REPORTS: usize = 50;

/// The scheduler's reports, one by one.
struct Reports(mpsc::UnboundedReceiver<TickReport>);

impl Reports {
    /// The next report (the scheduler runs every 100 ms; a minute without
    /// one is a hang).
    async fn next(&mut self) -> anyhow::Result<TickReport> {
        tokio::time::timeout(Duration::from_secs(60), self.0.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the scheduler stopped"))
    }

    /// Reports until one satisfies `done`, at most [`MAX_REPORTS`]; the
    /// reports seen, that one last.
    async fn until(
        &mut self,
        done: impl Fn(&TickReport) -> bool,
    ) -> anyhow::Result<Vec<TickReport>> {
        let mut seen = Vec::new();
        while seen.len() < MAX_REPORTS {
            let report = self.next().await?;
            assert_eq!(report.error, None, "a tick failed");
            let found = done(&report);
            seen.push(report);
            if found {
                return Ok(seen);
            }
        }
        anyhow::bail!("not seen in {MAX_REPORTS} ticks: {seen:?}")
    }
}

#[tokio::test]
async fn an_idle_tenant_is_checked_not_ticked_and_what_3cx_shows_next_runs_at_once()
-> anyhow::Result<()> {
    let (world, _) = seeded_world(options().poll_interval_ms(100).build()).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(scheduler::run_tenant(
        world.pipeline.clone(),
        world.tenant.clone(),
        stopped,
        move |_: &Tenant, report: &TickReport| {
            let _ = tx.send(report.clone());
        },
    ));
    let mut reports = Reports(rx);

    // The first tick runs and finds nothing: quiet. Then checks only.
    let first = reports.next().await?;
    assert!(!first.probed && first.quiet.is_some(), "{first:?}");
    let history_reads = world.pbx.request_count("/xapi/v1/CallHistoryView");
    for _ in 0..5 {
        let report = reports.next().await?;
        assert!(
            report.probed,
            "an idle tenant's tick ran the pipeline: {report:?}"
        );
    }
    assert!(
        world.pbx.request_count("/xapi/v1/CallHistoryView") - history_reads >= 5,
        "each check reads the window"
    );

    // A call ends: the next check sees its row and the pipeline posts it.
    place_dana_call(&world, 1);
    let seen = reports.until(|r| r.posted == 1).await?;
    assert!(seen.len() <= 2, "posted only after {} ticks", seen.len());
    assert_eq!(world.crm.messages().len(), 1);
    reports.until(|r| r.probed).await?;

    // A row written late, starting well before the last tick (inside the
    // overlap window): the check sees the window changed.
    let mut placer = Placer::default();
    let late = one_leg(
        2,
        outside(connectzero::demo::numbers::ELI),
        ext("101"),
        true,
        30,
    );
    placer.place(
        &world,
        &late,
        chrono::Utc::now() - chrono::Duration::seconds(60),
    );
    let seen = reports.until(|r| r.posted == 1).await?;
    assert!(
        seen.len() <= 2,
        "the late row was posted after {} ticks",
        seen.len()
    );
    reports.until(|r| r.probed).await?;

    // A call in progress: the next tick runs and starts `call.started`.
    let ringing = one_leg(
        3,
        outside(connectzero::demo::numbers::DANA),
        ext("101"),
        true,
        600,
    );
    placer.begin(
        &world,
        &ringing,
        chrono::Utc::now(),
        SegmentWrites::AtCallEnd,
    );
    let seen = reports.until(|r| r.calls_started == 1).await?;
    assert!(seen.len() <= 2, "call.started after {} ticks", seen.len());
    // While it goes on, the tenant is not quiet: every tick runs.
    for _ in 0..3 {
        assert!(!reports.next().await?.probed);
    }

    stop.send(true)?;
    task.await?;
    assert_eq!(posted_keys(&world).len(), 2, "each call once");
    Ok(())
}
