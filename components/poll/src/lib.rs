//! # The poll stage — read new 3CX call history
//!
//! Each `fetch` first reads 3CX's `ActiveCalls` (remembered between
//! ticks as sightings, see [`active`]), then every `CallHistoryView` row
//! that started after the tenant's cursor minus the overlap window (so a
//! row 3CX writes late is still seen), follows paging to the end, groups
//! the legs into calls, and names each extension's owner. 3CX writes a
//! call's rows when the call ends (NOTES §8), so a call still going on
//! holds the cursor before its start, and a call whose later segments may
//! still come waits (`protocol::completeness`). The cursor only moves on
//! `commit`, which the tick calls once the calls before it are handled: a
//! crash or a failed post re-reads the same calls, and the dedup stage
//! keeps that harmless.
//!
//! `fetch-window` reads an explicit window instead (a backfill, or one call
//! to replay) and never touches the cursor, so it cannot disturb the live
//! poll.
//!
//! It depends on `guest-support` and on what the `poll-stage` world grants
//! (`wit/worlds.wit`): never on the host, the runtime or another stage.

mod active;
mod grouping;
mod history;
mod missed;
mod xapi;

use guest_support::bindings::connectzero::pipeline::types::{CallLeg, TenantSettings};
use guest_support::protocol::{self, Completeness, CursorFacts};
use guest_support::{StageError, kv, time};

guest_support::stage_bindings!(http_kv "poll-stage");

use exports::connectzero::pipeline::poll::{ActiveCall, Guest, PollBatch};
use guest_support::bindings::connectzero::pipeline::types::{UnreadableRow, WindowRows};

/// Key of the tenant's cursor: start of the newest leg handled, in ms.
use guest_support::protocol::CURSOR_KEY;

/// How far back the first poll of a new tenant reads: one day, so a fresh
/// install shows today's calls. Older history is a backfill's job.
const INITIAL_LOOKBACK_MS: i64 = 24 * 60 * 60 * 1000;

/// How far past "now" the call log report window reaches, to cover clock
/// skew between this host and the PBX.
const CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

/// Least margin `fetch-window` reads past each edge of its window: one
/// hour, far more than the legs of one call are apart, so a call crossing
/// the edge between two windows is grouped whole in the window where it
/// starts and dropped (as starting outside) by the other.
const WINDOW_MARGIN_MS: i64 = 60 * 60 * 1000;

struct Poll;

impl Guest for Poll {
    fn fetch(settings: TenantSettings) -> Result<PollBatch, StageError> {
        let bucket = kv::open()?;
        let now = time::now_ms();
        let cursor = kv::get_json::<i64>(&bucket, CURSOR_KEY)?.unwrap_or(now - INITIAL_LOOKBACK_MS);
        let api = xapi::client(&settings);
        // Calls in progress first, then history: a call that ends between
        // the two reads is then either listed (and holds the cursor) or
        // written (and read). See `protocol::next_cursor`.
        let active = active::observe(&bucket, &api, now, settings.page_size)?;
        let first = read_history(
            &settings,
            &api,
            &active,
            cursor,
            now,
            xapi::MAX_ROWS_PER_POLL,
        )?;
        if !first.cut || first.batch.high_water > cursor {
            return Ok(first.batch);
        }
        // The bounded read let the cursor move nowhere: a call in progress
        // (or waiting for its last segment) holds it before more rows than
        // the bound. Read further once, so the calls behind the hold are
        // not starved; beyond that the tenant waits for the call to end.
        let deeper = read_history(
            &settings,
            &api,
            &active,
            cursor,
            now,
            xapi::MAX_ROWS_HELD_BACK,
        )?;
        if deeper.cut && deeper.batch.high_water <= cursor {
            eprintln!(
                "poll: more than {} history rows behind a call in progress; calls after them wait until it ends",
                xapi::MAX_ROWS_HELD_BACK
            );
        }
        Ok(deeper.batch)
    }

    fn fetch_window(
        settings: TenantSettings,
        from: i64,
        until: i64,
    ) -> Result<PollBatch, StageError> {
        if until <= from {
            return Err(StageError::InvalidSettings(format!(
                "fetch-window: window-end ({until}) must be after window-start ({from})"
            )));
        }
        // Read past both edges so a call crossing one is grouped whole,
        // then keep only the calls that start inside: adjacent windows
        // return each call once (see the WIT doc of `fetch-window`).
        let margin = (i64::from(settings.overlap_window_secs) * 1000).max(WINDOW_MARGIN_MS);
        let (read_from, read_until) = (from.saturating_sub(margin), until.saturating_add(margin));
        let api = xapi::client(&settings);
        let rows = xapi::call_history_between(&api, read_from, read_until, settings.page_size)?;
        let (legs, rejected) = parse_rows(&rows);
        if legs.is_empty() {
            return Ok(PollBatch {
                calls: Vec::new(),
                rejected,
                high_water: from,
                active: Vec::new(),
                settled: None,
            });
        }
        let call_log = xapi::call_log(
            &api,
            read_from,
            read_until.saturating_add(CLOCK_SKEW_MS),
            settings.page_size,
        )?;
        let owners = xapi::extension_owners(&api, settings.page_size)?;
        let calls: Vec<_> = grouping::group_calls(legs, &call_log, &owners)
            .into_iter()
            .filter(|c| (from..until).contains(&c.start_time))
            .collect();
        let high_water = calls
            .iter()
            .flat_map(|c| c.legs.iter().map(|l| l.start_time))
            .max()
            .unwrap_or(from);
        Ok(PollBatch {
            calls,
            rejected,
            high_water,
            active: Vec::new(),
            settled: None,
        })
    }

    fn active_calls(settings: TenantSettings) -> Result<Vec<ActiveCall>, StageError> {
        xapi::active_calls(&xapi::client(&settings), time::now_ms(), settings.page_size)
            .map(|active| active.calls)
    }

    fn recording_dids(
        settings: TenantSettings,
        recording_ids: Vec<i32>,
    ) -> Result<Vec<(i32, Option<String>)>, StageError> {
        xapi::recording_dids(&xapi::client(&settings), &recording_ids)
    }

    fn commit(_settings: TenantSettings, cursor: i64) -> Result<(), StageError> {
        let bucket = kv::open()?;
        let stored = kv::get_json::<i64>(&bucket, CURSOR_KEY)?;
        if let Some(cursor) = protocol::cursor_to_store(stored, cursor) {
            kv::set_json(&bucket, CURSOR_KEY, &cursor)?;
        }
        Ok(())
    }
}

/// One bounded read of the live window: the batch, and whether the read
/// stopped at `max_rows` with more to come.
struct Read {
    batch: PollBatch,
    cut: bool,
}

/// Read at most `max_rows` history rows from the cursor minus the overlap
/// window, group them into calls, and keep the calls that are complete
/// and whole within the read; the batch's high-water says how far the
/// cursor may move.
fn read_history(
    settings: &TenantSettings,
    api: &guest_support::api::ApiClient,
    active: &active::Observed,
    cursor: i64,
    now: i64,
    max_rows: u32,
) -> Result<Read, StageError> {
    let from = cursor - i64::from(settings.overlap_window_secs) * 1000;
    let (parsed, more) =
        xapi::call_history_since(api, from, settings.page_size, max_rows, |row| {
            read_row(&row)
        })?;
    let (legs, rejected) = split(parsed);
    let newest_leg_start = legs.iter().map(|l| l.start_time).max();
    // A read cut at the bound: rows starting at the last start read may
    // continue on the next page, and so may the calls that were still
    // going on then. Those wait for the next tick (it reads on from the
    // cursor held before them).
    let boundary = more.then_some(newest_leg_start).flatten();
    let mut facts = CursorFacts {
        stored: Some(cursor),
        newest_leg_start,
        unsettled_starts: boundary.into_iter().collect(),
        sightings: active.sightings.clone(),
        pbx_now: active.pbx_now,
    };
    // Every row read, for `settled`; kept only if every one ends up in a
    // complete call of the batch.
    let mut segment_ids: Vec<i32> = legs.iter().map(|l| l.leg_id).collect();
    segment_ids.sort_unstable();
    let window = |facts: &CursorFacts, rejected: &[UnreadableRow]| {
        let nothing_left = !more
            && facts.unsettled_starts.is_empty()
            && rejected.is_empty()
            && active.calls.is_empty()
            && active.sightings.is_empty();
        nothing_left.then(|| WindowRows {
            start: from,
            segment_ids: segment_ids.clone(),
        })
    };
    if legs.is_empty() {
        return Ok(Read {
            batch: PollBatch {
                calls: Vec::new(),
                high_water: protocol::next_cursor(&facts).unwrap_or(cursor),
                active: active.calls.clone(),
                settled: window(&facts, &rejected),
                rejected,
            },
            cut: more,
        });
    }
    let call_log_until = match boundary {
        Some(boundary) => boundary.saturating_add(1),
        None => now.max(newest_leg_start.unwrap_or(now)) + CLOCK_SKEW_MS,
    };
    let call_log = xapi::call_log(api, from, call_log_until, settings.page_size)?;
    let owners = xapi::extension_owners(api, settings.page_size)?;
    let mut calls = Vec::new();
    for call in grouping::group_calls(legs, &call_log, &owners) {
        if let Some(boundary) = boundary
            && !grouping::ended_before(&call, boundary)
        {
            facts.unsettled_starts.push(call.start_time);
            continue;
        }
        match active::completeness(&call, &active.sightings, active.pbx_now) {
            Completeness::Complete => calls.push(call),
            // Its later segments are not written yet: neither posted now
            // (it would freeze as a partial call) nor passed by the cursor.
            Completeness::Waiting(_) => facts.unsettled_starts.push(call.start_time),
        }
    }
    Ok(Read {
        batch: PollBatch {
            calls,
            high_water: protocol::next_cursor(&facts).unwrap_or(cursor),
            active: active.calls.clone(),
            settled: window(&facts, &rejected),
            rejected,
        },
        cut: more,
    })
}

/// Parse call-history rows into legs; unreadable rows are reported, not
/// dropped.
fn parse_rows(rows: &[serde_json::Value]) -> (Vec<CallLeg>, Vec<UnreadableRow>) {
    split(rows.iter().map(read_row))
}

/// One call-history row as a leg, or the row's rejection.
fn read_row(row: &serde_json::Value) -> Result<CallLeg, UnreadableRow> {
    history::parse_row(row).map_err(|reason| UnreadableRow {
        leg_id: history::leg_id_of(row),
        reason,
    })
}

/// Legs and rejected rows apart.
fn split(
    rows: impl IntoIterator<Item = Result<CallLeg, UnreadableRow>>,
) -> (Vec<CallLeg>, Vec<UnreadableRow>) {
    let mut legs = Vec::new();
    let mut rejected = Vec::new();
    for row in rows {
        match row {
            Ok(leg) => legs.push(leg),
            Err(row) => rejected.push(row),
        }
    }
    (legs, rejected)
}

// Exported only when building the component: a native build (unit tests)
// would otherwise put WIT export names into the host linker's symbol list.
#[cfg(target_arch = "wasm32")]
export!(Poll);
