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

use crate::config::TenantConfig;
use crate::engine::Runtime;
use crate::location::{Location, Resolved};
pub use crate::pipeline::replay::{ReplayError, call_start};
use crate::pipeline::{CallResult, Pipeline, Tenant, TickReport, describe};
use crate::secrets::SecretStore;
use crate::storage::Storage;
use anyhow::Context;
use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use indicatif::{HumanDuration, ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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

/// A date on the command line that cannot be used. Each says what to
/// type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Neither `YYYY-MM-DD` nor RFC 3339.
    #[error(
        "{flag} {text:?} is not a date: use YYYY-MM-DD (a UTC day) or RFC 3339, e.g. 2026-11-01 or 2026-11-01T08:30:00Z"
    )]
    Unreadable {
        /// `--since` or `--until`.
        flag: &'static str,
        /// What was given.
        text: String,
    },
    /// After the present.
    #[error("{flag} {text:?} is in the future (it is now {now}); 3CX has no calls there yet")]
    Future {
        /// `--since` or `--until`.
        flag: &'static str,
        /// What was given.
        text: String,
        /// The present, RFC 3339.
        now: String,
    },
    /// `--since` not before `--until`.
    #[error("--since {since} is not before --until {until}: the window is empty")]
    Empty {
        /// Start, RFC 3339.
        since: String,
        /// End, RFC 3339.
        until: String,
    },
}

/// The window of a backfill: calls that started in [`since_ms`, `until_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start, ms since the epoch (inclusive).
    pub since_ms: i64,
    /// End, ms since the epoch (exclusive).
    pub until_ms: i64,
}

/// Read `--since` and `--until` at `now`. A bare date is a UTC day:
/// `--since` starts at its midnight, `--until` includes the whole day
/// (up to now, for today). `--until` defaults to now.
pub fn parse_window(
    since: &str,
    until: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Window, DateError> {
    let now_ms = now.timestamp_millis();
    let now_text = rfc3339(now_ms);
    let since_ms = match parse_date(since, "--since")? {
        Parsed::Day(day) => day,
        Parsed::Instant(at) => at,
    };
    if since_ms > now_ms {
        return Err(DateError::Future {
            flag: "--since",
            text: since.to_string(),
            now: now_text,
        });
    }
    let until_ms = match until {
        None => now_ms,
        Some(text) => {
            let future = || DateError::Future {
                flag: "--until",
                text: text.to_string(),
                now: now_text.clone(),
            };
            match parse_date(text, "--until")? {
                // Today's date means "up to now".
                Parsed::Day(day) if day > now_ms => return Err(future()),
                Parsed::Day(day) => (day + DAY_MS).min(now_ms),
                Parsed::Instant(at) if at > now_ms => return Err(future()),
                Parsed::Instant(at) => at,
            }
        }
    };
    if since_ms >= until_ms {
        return Err(DateError::Empty {
            since: rfc3339(since_ms),
            until: rfc3339(until_ms),
        });
    }
    Ok(Window { since_ms, until_ms })
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

enum Parsed {
    /// Midnight UTC starting the day.
    Day(i64),
    /// An instant.
    Instant(i64),
}

fn parse_date(text: &str, flag: &'static str) -> Result<Parsed, DateError> {
    let trimmed = text.trim();
    if let Ok(day) = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d") {
        let midnight = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default());
        return Ok(Parsed::Day(midnight.timestamp_millis()));
    }
    DateTime::parse_from_rfc3339(trimmed)
        .map(|at| Parsed::Instant(at.timestamp_millis()))
        .map_err(|_| DateError::Unreadable {
            flag,
            text: text.to_string(),
        })
}

/// `ms` as RFC 3339 UTC, to the second.
pub fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

/// `[start, end)` cut into consecutive chunks of at most `chunk_ms`.
pub fn chunks(start: i64, end: i64, chunk_ms: i64) -> Vec<(i64, i64)> {
    let chunk_ms = chunk_ms.max(1);
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        let next = at.saturating_add(chunk_ms).min(end);
        out.push((at, next));
        at = next;
    }
    out
}

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

/// What a backfill did, summed over its chunks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillSummary {
    /// The window.
    pub window: Option<Window>,
    /// Where this run started (later than `since` when it resumed).
    pub started_at_ms: i64,
    /// Chunks worked.
    pub chunks: usize,
    /// Calls read from 3CX.
    pub read: usize,
    /// Calls posted by this run.
    pub posted: usize,
    /// Calls deliberately not posted.
    pub skipped: usize,
    /// Calls parked for an operator (`connectzero replay`).
    pub parked: usize,
    /// Calls handled before (by an earlier run or the live host).
    pub already_handled: usize,
    /// Calls another worker (the live host) was handling.
    pub in_flight: usize,
    /// Unreadable 3CX rows, parked.
    pub rejected_rows: usize,
    /// Recordings attached while the run worked the queue.
    pub attached: usize,
    /// Trigger deliveries made while the run worked the queue.
    pub triggers_delivered: usize,
}

impl BackfillSummary {
    fn add(&mut self, report: &TickReport) {
        self.read += report.polled;
        self.posted += report.posted;
        self.skipped += report.skipped;
        self.parked += report.parked;
        self.already_handled += report.duplicates;
        self.in_flight += report.in_flight;
        self.rejected_rows += report.rejected_rows;
    }

    fn counts(&self) -> String {
        format!(
            "{} posted, {} skipped, {} parked, {} already handled, {} in flight elsewhere",
            self.posted, self.skipped, self.parked, self.already_handled, self.in_flight
        )
    }

    /// The closing lines printed on stdout.
    pub fn render(&self, tenant: &str) -> String {
        let Some(window) = self.window else {
            return String::new();
        };
        let mut text = format!(
            "backfill of {tenant} from {} to {}",
            rfc3339(window.since_ms),
            rfc3339(window.until_ms)
        );
        if self.started_at_ms > window.since_ms {
            text.push_str(&format!(" (resumed at {})", rfc3339(self.started_at_ms)));
        }
        text.push_str(&format!(
            ": {} chunks, {} calls read: {}",
            self.chunks,
            self.read,
            self.counts()
        ));
        if self.rejected_rows > 0 {
            text.push_str(&format!(
                "; {} unreadable 3CX rows parked",
                self.rejected_rows
            ));
        }
        text.push('\n');
        if self.parked > 0 {
            text.push_str(
                "parked calls are in the call log; after fixing the cause, `connectzero replay --call KEY` posts one\n",
            );
        }
        if self.in_flight > 0 {
            text.push_str("calls in flight elsewhere are being handled by another worker (the live host); nothing is lost\n");
        }
        text
    }
}

/// A tenant opened for a one-off command: its pipeline, with its secrets
/// in the encrypted store as `run` keeps them (a rotated HighLevel refresh
/// token is stored, so the live host keeps working).
pub struct OpenTenant {
    /// The pipeline.
    pub pipeline: Pipeline,
    /// The tenant.
    pub tenant: Arc<Tenant>,
    /// The database.
    pub storage: Storage,
    /// The database file.
    pub database: PathBuf,
    /// Held while open: `keys rotate` waits for the command to end.
    pub host_lock: crate::secrets::HostLock,
}

/// Find `tenant_id` in the configuration file at `location`, or else among
/// the tenants kept in its database (`crate::location`), and open it.
pub fn open_tenant(
    components: Option<&Path>,
    location: &Location,
    tenant_id: &str,
) -> anyhow::Result<OpenTenant> {
    let found = location.resolve()?;
    let database = found.database.clone();
    let storage = Storage::open(&database)?;
    let (secrets, host_lock) = crate::secrets::open_store_held(&storage, &database, None)?;
    let tenant_config = find_tenant(found, tenant_id, &secrets)?;
    let runtime = Runtime::new(components)?;
    let pipeline = Pipeline::new(runtime, storage.clone());
    let http = crate::upstream::client(Duration::from_secs(30))?;
    let tenant = Arc::new(Tenant::new(tenant_config, http));
    tenant
        .credentials
        .use_store(secrets)
        .with_context(|| format!("tenant {tenant_id}"))?;
    Ok(OpenTenant {
        pipeline,
        tenant,
        storage,
        database,
        host_lock,
    })
}

fn find_tenant(
    found: Resolved,
    tenant_id: &str,
    secrets: &SecretStore,
) -> anyhow::Result<TenantConfig> {
    let looked_in = found.describe();
    let config = found.config;
    let mut known: Vec<String> = config.tenants.iter().map(|t| t.id.clone()).collect();
    // Every tenant `run` serves, linked as `run` links them, so a backfill
    // routes calls and keys them for the CRM exactly as `run` does. A
    // database that cannot be read only matters when the tenant is there.
    let stored = crate::tenants::load_for_run(secrets);
    let mut all = config.tenants;
    if let Ok(stored) = &stored {
        all.extend(stored.iter().filter(|s| !known.contains(&s.id)).cloned());
    }
    crate::config::link_tenants(&mut all);
    if let Some(found) = all
        .iter()
        .find(|t| t.id == tenant_id && known.contains(&t.id))
    {
        return Ok(found.clone());
    }
    let stored = stored?;
    known.extend(stored.iter().map(|t| t.id.clone()));
    all.into_iter()
        .find(|t| t.id == tenant_id)
        .with_context(|| {
            format!(
                "no tenant {tenant_id:?} in {looked_in}; known tenants: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        })
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

/// The bar on a terminal: chunks done, ETA and the counts so far.
const BAR_TEMPLATE: &str =
    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} chunks · ETA {eta} · {msg}";

/// Progress display: a bar with an ETA on a terminal, else one line per
/// chunk on stderr (logs, CI, a test reading the output).
struct Progress {
    bar: ProgressBar,
    lines: bool,
}

impl Progress {
    fn new(chunks: usize) -> Self {
        let len = chunks as u64;
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template(BAR_TEMPLATE)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            Self { bar, lines: false }
        } else {
            // Hidden, but it still keeps position and the ETA estimate.
            let bar = ProgressBar::hidden();
            bar.set_length(len);
            Self { bar, lines: true }
        }
    }

    fn chunk_done(&self, tenant: &str, end_ms: i64, summary: &BackfillSummary) {
        self.bar.inc(1);
        // Short, so the bar keeps its width on an 80-column terminal.
        self.bar.set_message(format!(
            "{} posted, {} parked, {} done before",
            summary.posted, summary.parked, summary.already_handled
        ));
        if self.lines {
            eprintln!(
                "backfill {tenant}: chunk {}/{} done (up to {}): {}; ETA {}",
                self.bar.position(),
                self.bar.length().unwrap_or(0),
                rfc3339(end_ms),
                summary.counts(),
                HumanDuration(self.bar.eta())
            );
        }
    }

    fn note(&self, text: &str) {
        if self.lines {
            eprintln!("{text}");
        } else {
            self.bar.println(text);
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Refuse a window reaching back past what the tenant keeps of its calls:
/// a call whose ledger entries are already forgotten would be posted a
/// second time (`guest_support::retention`).
fn refuse_forgotten_days(since_ms: i64, days: u32, now: i64) -> anyhow::Result<()> {
    match guest_support::retention::backfill_floor_ms(now, days) {
        Some(floor) if since_ms < floor => anyhow::bail!(
            "--since {} reaches back further than this tenant keeps its calls' state ({days} days, settings.state_retention_days): calls from before {floor} may be forgotten already and would be posted a second time: use --since {floor} or later",
            rfc3339(since_ms),
            floor = rfc3339(floor),
        ),
        _ => Ok(()),
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
                    .find(|r| r.outcome == "retrying")
                    .map(|r| format!("{} failed for now: {}", r.call_key, r.detail))
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

/// What `connectzero replay` was asked.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Where the tenants are.
    pub location: Location,
    /// Tenant id.
    pub tenant: String,
    /// The call's key (`3cx:<call id>@<start ms>`).
    pub call: String,
    /// Queue `call.ended` / `missed-call` if the call posts.
    pub with_triggers: bool,
    /// Replacement components directory.
    pub components: Option<PathBuf>,
}

/// Re-run one parked (or retrying) call (`connectzero replay`): see
/// [`Pipeline::replay_call`]. Returns the call's result.
pub async fn replay(options: ReplayOptions) -> anyhow::Result<CallResult> {
    let key = options.call.trim().to_string();
    // Check the key before opening anything.
    call_start(&key)?;
    let opened = open_tenant(
        options.components.as_deref(),
        &options.location,
        &options.tenant,
    )?;
    let OpenTenant {
        pipeline, tenant, ..
    } = opened;
    let result = pipeline
        .replay_call(&tenant, &key, options.with_triggers)
        .await??;
    // Attach its recording now when 3CX has it; the live host retries later.
    pipeline.work_due_queues(&tenant).await?;
    Ok(result)
}

/// The line `connectzero replay` prints, and whether the call is now
/// handled (posted or skipped).
pub fn render_replay(result: &CallResult) -> (String, bool) {
    let key = &result.call_key;
    match result.outcome.as_str() {
        "posted" => {
            let mut text = format!("{key}: posted as message {}", result.detail);
            if let Some(contact) = &result.contact_id {
                text.push_str(&format!(" to contact {contact}"));
            }
            if let Some(rule) = &result.rule {
                text.push_str(&format!(" (matched by {rule})"));
            }
            (text, true)
        }
        "skipped" => (format!("{key}: skipped ({})", result.detail), true),
        "parked" => (
            format!(
                "{key}: parked again: {}; fix the cause and replay it again",
                result.detail
            ),
            false,
        ),
        "retrying" => (
            format!(
                "{key}: failed for now: {}; it stays open: run the same replay again",
                result.detail
            ),
            false,
        ),
        "done" => (
            format!(
                "{key}: already handled by another worker meanwhile ({})",
                result.detail
            ),
            true,
        ),
        _ => (
            format!(
                "{key}: another worker is processing it right now; check the call log, and replay again if it stays parked"
            ),
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn ms(text: &str) -> i64 {
        at(text).timestamp_millis()
    }

    #[test]
    fn dates_are_utc_days_or_rfc3339_and_until_includes_its_day() {
        let now = at("2026-11-27T15:00:00Z");
        let w = parse_window("2026-11-01", Some("2026-11-02"), now).unwrap();
        assert_eq!(w.since_ms, ms("2026-11-01T00:00:00Z"));
        assert_eq!(w.until_ms, ms("2026-11-03T00:00:00Z"));
        let w = parse_window("2026-11-01T08:30:00+01:00", None, now).unwrap();
        assert_eq!(w.since_ms, ms("2026-11-01T07:30:00Z"));
        assert_eq!(w.until_ms, now.timestamp_millis());
        // Today's date as --until means up to now, not a future midnight.
        let w = parse_window("2026-11-26", Some("2026-11-27"), now).unwrap();
        assert_eq!(w.until_ms, now.timestamp_millis());
    }

    #[test]
    fn a_window_past_what_the_tenant_keeps_is_refused_with_the_date_to_use() {
        let now = at("2026-12-04T12:00:00Z");
        let window = parse_window("2026-11-01", None, now).unwrap();
        let e = refuse_forgotten_days(window.since_ms, 30, now.timestamp_millis())
            .unwrap_err()
            .to_string();
        assert!(e.contains("state_retention_days"), "{e}");
        assert!(e.contains("--since 2026-11-05T12:00:00Z or later"), "{e}");
        // Inside the horizon, or with state kept forever: fine.
        assert!(refuse_forgotten_days(window.since_ms, 0, now.timestamp_millis()).is_ok());
        let inside = parse_window("2026-11-06", None, now).unwrap();
        assert!(refuse_forgotten_days(inside.since_ms, 30, now.timestamp_millis()).is_ok());
    }

    #[test]
    fn bad_dates_get_errors_that_say_what_to_type() {
        let now = at("2026-11-27T15:00:00Z");
        let e = parse_window("01/11/2026", None, now).unwrap_err();
        assert!(matches!(
            e,
            DateError::Unreadable {
                flag: "--since",
                ..
            }
        ));
        assert!(e.to_string().contains("YYYY-MM-DD"), "{e}");
        let e = parse_window("2026-11-01", Some("yesterday"), now).unwrap_err();
        assert!(matches!(
            e,
            DateError::Unreadable {
                flag: "--until",
                ..
            }
        ));
        let e = parse_window("2026-12-01", None, now).unwrap_err();
        assert!(
            matches!(
                e,
                DateError::Future {
                    flag: "--since",
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_window("2026-11-01", Some("2026-11-28"), now).unwrap_err();
        assert!(
            matches!(
                e,
                DateError::Future {
                    flag: "--until",
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_window("2026-11-01", Some("2026-11-27T16:00:00Z"), now).unwrap_err();
        assert!(
            matches!(
                e,
                DateError::Future {
                    flag: "--until",
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_window("2026-11-05", Some("2026-11-01"), now).unwrap_err();
        assert!(matches!(e, DateError::Empty { .. }), "{e}");
        assert!(e.to_string().contains("not before"), "{e}");
    }

    #[test]
    fn the_progress_bar_template_is_valid() {
        assert!(ProgressStyle::with_template(BAR_TEMPLATE).is_ok());
    }

    #[test]
    fn chunks_cover_the_window_end_to_end() {
        assert_eq!(chunks(0, 25, 10), vec![(0, 10), (10, 20), (20, 25)]);
        assert_eq!(chunks(5, 5, 10), Vec::<(i64, i64)>::new());
    }

    #[test]
    fn call_keys_give_their_start_and_rows_are_not_calls() {
        assert_eq!(call_start("3cx:42@1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(call_start("3cx-segment:7@5"), Ok(5));
        assert!(matches!(
            call_start("3cx-row:9"),
            Err(ReplayError::UnreadableRow(_))
        ));
        assert!(matches!(call_start("42"), Err(ReplayError::NotACallKey(_))));
        assert!(matches!(
            call_start("3cx:x@5"),
            Err(ReplayError::NotACallKey(_))
        ));
    }
}
