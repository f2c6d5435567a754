//! `connectzero backfill` and `connectzero replay`: calls outside the live
//! poll.
//!
//! A **backfill** posts a tenant's calls of a past window through the
//! normal stages (`Pipeline::run_calls`: claim, match, post, record, queue
//! the recording). It reads 3CX with `poll.fetch-window`, which never reads
//! or moves the tenant's cursor, so the live host (`connectzero run`) goes
//! on undisturbed, even at the same time: the dedup ledger decides who
//! posts each call, exactly once. The window is read in chunks of
//! `--chunk-hours` (default a day), oldest first; each chunk done is
//! recorded (`backfill_progress`), so a run that is interrupted (Ctrl-C,
//! kill) resumes at its first unfinished chunk, and calls already posted
//! are never posted again whatever is re-read.
//!
//! Safe to kill: one backfill per tenant runs at a time (an OS lock on
//! `<database>.backfill-<tenant>.lock`, released by the kernel when the
//! process dies), and it claims calls as the fixed worker
//! `backfill-<tenant>`, so a re-run takes over its dead predecessor's
//! claims at once instead of waiting out their leases.
//!
//! Triggers: `call.started` never fires (the calls are history, not
//! ringing). `call.ended` and `missed-call` are off unless
//! `--with-triggers`: workflows would treat a months-old call as one that
//! just ended (send a "sorry we missed you" text, open a task).
//!
//! A **replay** re-runs one parked call (see [`replay`]).

mod open;
mod report;
mod rerun;
mod window;

pub use crate::pipeline::replay::{ReplayError, call_start};
pub use open::{OpenTenant, open_tenant};
pub use report::BackfillSummary;
pub use rerun::{ReplayOptions, render_replay, replay};
pub use window::{DateError, Window, chunks, parse_window, rfc3339};

use crate::bindings::types::CallFate;
use crate::location::Location;
use crate::pipeline::{Pipeline, Tenant, TickReport, describe};
use anyhow::Context;
use chrono::Utc;
use report::Progress;
use std::path::{Path, PathBuf};
use std::time::Duration;
use window::refuse_forgotten_days;
/// Attempts at one chunk whose calls keep failing for now (5xx, 429,
/// network) before the run stops; a re-run resumes there.
const CHUNK_ATTEMPTS: u32 = 5;
/// First wait between attempts at a chunk (doubles each time).
const RETRY_BASE: Duration = Duration::from_secs(1);
/// Most passes over the recording and trigger queues after a chunk; each
/// pass works up to a batch of each, and a pass that does nothing ends it.
const QUEUE_PASSES: usize = 200;
/// Largest `--chunk-hours`: a month.
pub const MAX_CHUNK_HOURS: u32 = 31 * 24;

/// What `connectzero backfill` was asked.
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// Where the tenants are.
    pub location: Location,
    /// Tenant id.
    pub tenant: String,
    /// `--since` as given.
    pub since: String,
    /// `--until` as given.
    pub until: Option<String>,
    /// Queue `call.ended` / `missed-call` for the backfilled calls.
    pub with_triggers: bool,
    /// Ignore the progress an earlier run recorded for this window.
    pub restart: bool,
    /// Hours of history per chunk.
    pub chunk_hours: u32,
    /// Replacement components directory.
    pub components: Option<PathBuf>,
}

/// Hold the per-tenant backfill lock for as long as the returned file
/// lives. The kernel drops it when the process dies, so a killed run
/// never blocks the next.
fn lock(database: &Path, tenant: &str) -> anyhow::Result<std::fs::File> {
    let path = PathBuf::from(format!("{}.backfill-{tenant}.lock", database.display()));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "a backfill of tenant {tenant} is already running (it holds {}); wait for it to finish or stop it first",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Run a backfill (see the module documentation). `Err` when it could not
/// start or stopped before the end of the window; the progress made is
/// recorded either way and a re-run resumes.
pub async fn backfill(options: BackfillOptions) -> anyhow::Result<BackfillSummary> {
    if !(1..=MAX_CHUNK_HOURS).contains(&options.chunk_hours) {
        anyhow::bail!("--chunk-hours must be between 1 and {MAX_CHUNK_HOURS}");
    }
    let window = parse_window(&options.since, options.until.as_deref(), Utc::now())?;
    let opened = open_tenant(
        options.components.as_deref(),
        &options.location,
        &options.tenant,
    )?;
    let _lock = lock(&opened.database, &options.tenant)?;
    let OpenTenant {
        pipeline,
        tenant,
        storage,
        ..
    } = opened;
    let pipeline = pipeline.with_worker(format!("backfill-{}", options.tenant));
    let id = tenant.id().to_string();
    if options.restart {
        storage.clear_backfill_progress(&id, window.since_ms)?;
    }
    let resume = storage
        .backfill_progress(&id, window.since_ms)?
        .filter(|done| *done > window.since_ms);
    let start = resume.map_or(window.since_ms, |done| done.min(window.until_ms));
    // From where this run starts: a resumed run needs only its remaining
    // days inside the horizon.
    refuse_forgotten_days(
        start,
        tenant.config.settings.state_retention_days,
        Utc::now().timestamp_millis(),
    )?;
    let mut summary = BackfillSummary {
        window: Some(window),
        started_at_ms: start,
        ..BackfillSummary::default()
    };
    let chunk_ms = i64::from(options.chunk_hours) * 60 * 60 * 1000;
    let todo = chunks(start, window.until_ms, chunk_ms);
    let progress = Progress::new(todo.len());
    if let Some(done) = resume {
        progress.note(&format!(
            "backfill {id}: resuming at {} (an earlier run finished the window up to there; --restart reads it all again)",
            rfc3339(done.min(window.until_ms))
        ));
    }
    for (chunk_start, chunk_end) in todo {
        let result = backfill_chunk(
            &pipeline,
            &tenant,
            chunk_start,
            chunk_end,
            &options,
            &mut summary,
        )
        .await;
        if let Err(error) = result {
            progress.finish();
            return Err(error.context(format!(
                "backfill stopped at {}; what was done is kept: run the same command again to resume",
                rfc3339(chunk_start)
            )));
        }
        summary.chunks += 1;
        storage.set_backfill_progress(
            &id,
            window.since_ms,
            chunk_end,
            Utc::now().timestamp_millis(),
        )?;
        progress.chunk_done(&id, chunk_end, &summary);
    }
    progress.finish();
    Ok(summary)
}

/// One chunk: fetch, run the calls, retry those that failed for now a few
/// times, then work the recording (and trigger) queues.
async fn backfill_chunk(
    pipeline: &Pipeline,
    tenant: &Tenant,
    start: i64,
    end: i64,
    options: &BackfillOptions,
    summary: &mut BackfillSummary,
) -> anyhow::Result<()> {
    let mut wait = RETRY_BASE;
    for attempt in 1..=CHUNK_ATTEMPTS {
        let mut report = TickReport::default();
        let problem = match pipeline.window(tenant, start, end).await? {
            Err(error) => {
                report.backoff = match error {
                    crate::bindings::types::StageError::RateLimited(secs) => {
                        Some(Duration::from_secs(u64::from(
                            guest_support::waits::bounded_wait_secs(secs),
                        )))
                    }
                    _ => None,
                };
                Some(format!("reading 3CX: {}", describe(&error)))
            }
            Ok(batch) => {
                report.polled = batch.calls.len();
                report.rejected_rows = batch.unreadable.len();
                pipeline.park_rejected(tenant, &batch)?;
                let results = pipeline
                    .run_calls(tenant, batch.calls, options.with_triggers, &mut report)
                    .await?;
                // Re-reads of a retried chunk count only what is new.
                if attempt > 1 {
                    report.polled = 0;
                    report.duplicates = 0;
                    report.rejected_rows = 0;
                }
                summary.add(&report);
                results
                    .iter()
                    .find(|r| matches!(r.fate, CallFate::Retrying(_)))
                    .map(|r| format!("{} failed for now: {}", r.call_key, r.detail()))
            }
        };
        let Some(problem) = problem else {
            work_queues(pipeline, tenant, summary).await?;
            return Ok(());
        };
        if attempt == CHUNK_ATTEMPTS {
            anyhow::bail!(
                "{} to {}: {problem} (after {CHUNK_ATTEMPTS} attempts)",
                rfc3339(start),
                rfc3339(end)
            );
        }
        tracing::warn!(tenant = tenant.id(), chunk = %rfc3339(start), %problem, "retrying the chunk");
        // A real wait between attempts (backoff), not synchronisation.
        tokio::time::sleep(report.backoff.map_or(wait, |b| b.max(wait))).await;
        wait *= 2;
    }
    Ok(())
}

/// Work the recording and trigger queues until a pass does nothing.
async fn work_queues(
    pipeline: &Pipeline,
    tenant: &Tenant,
    summary: &mut BackfillSummary,
) -> anyhow::Result<()> {
    for _ in 0..QUEUE_PASSES {
        let report = pipeline.work_due_queues(tenant).await?;
        summary.attached += report.attached;
        summary.triggers_delivered += report.triggers_delivered;
        if report.attached + report.attach_gave_up + report.triggers_delivered == 0 {
            break;
        }
    }
    Ok(())
}
