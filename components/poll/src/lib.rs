//! # Stage 3: poll — read new 3CX call history
//!
//! Each `fetch` reads every `CallHistoryView` row that started after the
//! tenant's cursor minus the overlap window (so a row 3CX writes late is
//! still seen), follows paging to the end, groups the legs into calls, and
//! names each extension's owner. The cursor only moves on `commit`, which
//! the host calls once the calls before it are handled: a crash or a failed
//! post re-reads the same calls, and the dedup stage keeps that harmless.

mod grouping;
mod history;
mod xapi;

use guest_support::bindings::connectzero::pipeline::types::TenantSettings;
use guest_support::{StageError, kv, time};

guest_support::stage_bindings!(http_kv "poll-stage");

use exports::connectzero::pipeline::poll::{ActiveCall, Guest, PollBatch, RejectedRow};

/// Key of the tenant's cursor: start of the newest leg handled, in ms.
const CURSOR_KEY: &str = "poll/cursor";

/// How far back the first poll of a new tenant reads: one day, so a fresh
/// install shows today's calls. Older history is a backfill's job.
const INITIAL_LOOKBACK_MS: i64 = 24 * 60 * 60 * 1000;

/// How far past "now" the call log report window reaches, to cover clock
/// skew between this host and the PBX.
const CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

struct Poll;

impl Guest for Poll {
    fn fetch(settings: TenantSettings) -> Result<PollBatch, StageError> {
        let bucket = kv::open()?;
        let now = time::now_ms();
        let cursor = kv::get_json::<i64>(&bucket, CURSOR_KEY)?.unwrap_or(now - INITIAL_LOOKBACK_MS);
        let from = cursor - i64::from(settings.overlap_window_secs) * 1000;
        let api = xapi::client(&settings);

        let rows = xapi::call_history_since(&api, from, settings.page_size)?;
        let mut legs = Vec::with_capacity(rows.len());
        let mut rejected = Vec::new();
        for row in &rows {
            match history::parse_row(row) {
                Ok(leg) => legs.push(leg),
                Err(reason) => rejected.push(RejectedRow {
                    leg_id: history::leg_id_of(row),
                    reason,
                }),
            }
        }
        let high_water = legs
            .iter()
            .map(|l| l.start_time)
            .max()
            .unwrap_or(cursor)
            .max(cursor);
        if legs.is_empty() {
            return Ok(PollBatch {
                calls: Vec::new(),
                rejected,
                high_water,
            });
        }
        let call_ids = xapi::call_ids(
            &api,
            from,
            now.max(high_water) + CLOCK_SKEW_MS,
            settings.page_size,
        )?;
        let owners = xapi::extension_owners(&api, settings.page_size)?;
        Ok(PollBatch {
            calls: grouping::group_calls(legs, &call_ids, &owners),
            rejected,
            high_water,
        })
    }

    fn active_calls(settings: TenantSettings) -> Result<Vec<ActiveCall>, StageError> {
        xapi::active_calls(&xapi::client(&settings), time::now_ms(), settings.page_size)
    }

    fn commit(_settings: TenantSettings, cursor: i64) -> Result<(), StageError> {
        let bucket = kv::open()?;
        let stored = kv::get_json::<i64>(&bucket, CURSOR_KEY)?;
        // Never move backwards: two workers may commit out of order.
        if stored.is_none_or(|s| cursor > s) {
            kv::set_json(&bucket, CURSOR_KEY, &cursor)?;
        }
        Ok(())
    }
}

// Exported only when building the component: a native build (unit tests)
// would otherwise put WIT export names into the host linker's symbol list.
#[cfg(target_arch = "wasm32")]
export!(Poll);
