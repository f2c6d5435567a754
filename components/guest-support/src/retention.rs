//! Forgetting per-call state once it can no longer matter, so the store
//! stops growing.
//!
//! Every call leaves keys behind: its legs' ledger entries
//! (`ledger/<leg>@<start ms>`), the send marker of its message
//! (`post/sending/<call key>`) and the done markers of its follow-up jobs
//! (`attach/done/<call key>`, `trigger/done/<kind>/<call key>`); a call
//! several contacts share also its message kept for copies
//! (`post/shared/<call key>`) and each copy's marker
//! (`post/shared/<call key>/copy/<contact id>`). Each names
//! the call's start, so its age is read from the key alone. A sweep walks
//! the keyspace a page per tick, from where the last tick stopped, and
//! deletes those that started longer ago than the horizon. Keys it cannot
//! date (settings, queues, caches, write-back records) are left alone.
//!
//! Why forgetting is safe: every one of these keys exists to stop a call
//! from being handled twice while it may still be handled at all. The poll
//! reads history from its cursor less the overlap window, and the cursor
//! waits at the oldest call not yet handled, however old (a call that keeps
//! failing holds it): so the sweep never deletes the keys of a call that
//! started later than a day before that point, whatever the horizon says.
//! A backfill may not reach back further than the horizon less a day
//! ([`backfill_floor_ms`]). So by the time a key goes, nothing can bring its
//! call back; the one way left is a Retry of a call an operator parked,
//! which posts it on purpose.

use crate::StageError;
use crate::kv::{self, Store};
use crate::protocol::CURSOR_KEY;

/// Where the sweep goes on from, or until when it rests between passes.
pub const POSITION_KEY: &str = "retention/position";

/// How long the sweep rests after a pass: a pass frees only what aged out
/// since the last one, so passing again at once would only cost reads
/// (and a position write per tick).
pub const REST_MS: i64 = 60 * 60 * 1000;

/// Keys one sweep looks at when the store hands back every key at once
/// (Spin refuses list cursors): the same bound a page of the bundled
/// host's listing gives.
pub const SWEEP_KEYS: usize = 1_000;

/// The shortest horizon a tenant may set, in days: a backlog (a CRM down
/// for days) must finish before its calls' keys go.
pub const MIN_DAYS: u32 = 7;

/// The default horizon, in days.
pub const DEFAULT_DAYS: u32 = 30;

/// How far a backfill may reach back from `now` under a horizon of `days`
/// (0: forever): a day inside the horizon, so every call it reads is still
/// in the ledger while it runs.
pub fn backfill_floor_ms(now: i64, days: u32) -> Option<i64> {
    (days > 0).then(|| now - (i64::from(days) - 1) * DAY_MS)
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Check a horizon setting: 0 (keep forever) or at least [`MIN_DAYS`].
pub fn check_days(days: u32) -> Result<u32, String> {
    if days != 0 && days < MIN_DAYS {
        return Err(format!(
            "{days} days is too short to keep call state: use 0 (keep forever) or at least {MIN_DAYS} days, so a backlog of several days still finds its calls' ledger entries"
        ));
    }
    Ok(days)
}

/// Check that `missed_call_recovery_window_secs` ends inside a horizon of
/// `days`: a recovered event is queued once per missed call only while the
/// missed call's done marker is kept.
pub fn check_recovery_window(window_secs: u32, days: u32) -> Result<(), String> {
    let window_ms = i64::from(window_secs) * 1000;
    if days > 0 && window_ms >= (i64::from(days) - 1) * DAY_MS {
        return Err(format!(
            "missed_call_recovery_window_secs ({window_secs}) must end a day inside state_retention_days ({days} days): shorten the window or keep call state longer"
        ));
    }
    Ok(())
}

/// Keys dated by their value alone, forgotten `days` after the time it
/// gives (not by any call: the poll cannot bring them back): Update Call
/// Record's idempotency records (`write-back/done|note/<digest>`, stored
/// with [`stamp`]) and the Spin app's OAuth install states
/// (`oauth/state/<digest>`, dated by their expiry).
fn dated_by_value(key: &str) -> bool {
    ["write-back/done/", "write-back/note/", "oauth/state/"]
        .iter()
        .any(|prefix| key.starts_with(prefix))
}

/// `value` as stored with the time it was stored (`{"at": ms, "value":
/// …}`), so the sweep can date it.
pub fn stamp(value: &serde_json::Value, now: i64) -> Vec<u8> {
    serde_json::json!({ "at": now, "value": value })
        .to_string()
        .into_bytes()
}

/// The value [`stamp`] stored; a value stored before stamps existed
/// comes back as it is.
pub fn unstamp(bytes: &[u8]) -> serde_json::Value {
    let Ok(stored) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned());
    };
    match stored.as_object() {
        Some(fields) if fields.len() == 2 && fields.contains_key("at") => fields
            .get("value")
            .cloned()
            .unwrap_or(serde_json::Value::Null),
        _ => stored,
    }
}

/// When the call a key belongs to started, ms since the epoch, for the
/// keys the sweep may delete; `None` for every other key.
pub fn call_started_at(key: &str) -> Option<i64> {
    if let Some(leg) = key.strip_prefix("ledger/") {
        return leg.rsplit_once('@')?.1.parse().ok();
    }
    let call_key = key
        .strip_prefix("post/sending/")
        .or_else(|| shared_call(key))
        .or_else(|| queue_done_id(key))?;
    // A call key is `3cx:<call id>@<start ms>` (or
    // `3cx-segment:<leg>@<start ms>`, the poll's `grouping`; an active
    // call's, for `call.started`, `3cx-active:<id>@<established ms>`),
    // after the trigger kind for trigger jobs (`call.ended/3cx:...`).
    let (call, start) = call_key.rsplit_once('@')?;
    let is_call = ["3cx:", "3cx-segment:", "3cx-active:"]
        .iter()
        .any(|kind| call.contains(kind));
    if !is_call {
        return None;
    }
    start.parse().ok()
}

/// When a value was written, for values that say (ledger entries and send
/// markers carry `"at"`, ms since the epoch).
fn written_at(value: &[u8]) -> Option<i64> {
    serde_json::from_slice::<serde_json::Value>(value)
        .ok()?
        .get("at")?
        .as_i64()
}

/// The entry a copy's marker (`post/shared/<call key>/copy/<contact>`)
/// belongs to.
fn copy_marker_entry(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("post/shared/")?;
    let slash = rest.find('/')?;
    Some(&key[.."post/shared/".len() + slash])
}

/// The call key of a shared-number call's entry (`post/shared/<call
/// key>`) or of one of its copies' markers (`…/copy/<contact id>`). Call
/// keys hold no `/`. (The host's copy requests, `post/also/<call key>`,
/// are not swept: the host drops each once the post stage settled it.)
fn shared_call(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("post/shared/")?;
    Some(rest.split_once('/').map_or(rest, |(call_key, _)| call_key))
}

/// The job id of a queue's done marker (`<queue>/done/<id>`).
fn queue_done_id(key: &str) -> Option<&str> {
    let (queue, rest) = key.split_once('/')?;
    let id = rest.strip_prefix("done/")?;
    (!queue.is_empty() && !queue.contains('/')).then_some(id)
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Keys looked at.
    pub visited: u32,
    /// Keys deleted.
    pub pruned: u32,
    /// The sweep reached the end of the keyspace; the next pass starts
    /// over once [`REST_MS`] has passed.
    pub pass_complete: bool,
}

/// Where the sweep stands between ticks.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Position {
    /// The store's cursor for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
    /// With a store that lists every key at once: the last key looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
    /// Between passes: no sweep before this time, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rest_until: Option<i64>,
}

/// Look at the next page of keys and delete those of calls that started
/// more than `days` days before `now`, and more than a day before what
/// the poll may still read (its cursor less `overlap_ms`). `days` = 0
/// keeps everything.
pub fn sweep(
    store: &impl Store,
    now: i64,
    days: u32,
    overlap_ms: i64,
) -> Result<Swept, StageError> {
    if days == 0 {
        return Ok(Swept {
            pass_complete: true,
            ..Swept::default()
        });
    }
    let mut horizon = now - i64::from(days) * DAY_MS;
    if let Some(cursor) = kv::get_json::<i64>(store, CURSOR_KEY)? {
        horizon = horizon.min(cursor - overlap_ms - DAY_MS);
    }
    let position: Position = match store.get(POSITION_KEY)? {
        Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        None => Position::default(),
    };
    // A rest ending more than a rest from now was set by a clock that ran
    // ahead (since corrected, or another host's): not trusted, or the
    // sweep could stop for as long as that clock was wrong.
    if position
        .rest_until
        .is_some_and(|until| now < until && until <= now + REST_MS)
    {
        return Ok(Swept::default());
    }
    let (keys, next) = match store.list(position.cursor.as_deref()) {
        Ok(page) => page,
        // A cursor the store no longer takes: start the pass over.
        Err(_) if position.cursor.is_some() => store.list(None)?,
        Err(error) => return Err(error),
    };
    let (batch, next_position) = if next.is_none() && keys.len() > SWEEP_KEYS {
        // Every key at once: take the next SWEEP_KEYS in key order.
        let mut keys = keys;
        keys.sort_unstable();
        let from = match &position.after {
            Some(after) => keys.partition_point(|k| k <= after),
            None => 0,
        };
        let batch: Vec<String> = keys.into_iter().skip(from).take(SWEEP_KEYS).collect();
        let position = (batch.len() == SWEEP_KEYS).then(|| Position {
            after: batch.last().cloned(),
            ..Position::default()
        });
        (batch, position)
    } else {
        let position = next.map(|cursor| Position {
            cursor: Some(cursor),
            ..Position::default()
        });
        (keys, position)
    };
    let mut swept = Swept {
        visited: batch.len() as u32,
        pruned: 0,
        pass_complete: next_position.is_none(),
    };
    let by_value_horizon = now - i64::from(days) * DAY_MS;
    for key in &batch {
        if dated_by_value(key) {
            let stored = store.get(key)?;
            let date = stored.as_deref().and_then(|v| {
                written_at(v).or_else(|| {
                    serde_json::from_slice::<serde_json::Value>(v)
                        .ok()?
                        .get("expires_at_ms")?
                        .as_i64()
                })
            });
            if date.is_some_and(|at| at < by_value_horizon) {
                store.delete(key)?;
                swept.pruned += 1;
            }
            continue;
        }
        if call_started_at(key).is_none_or(|started| started >= horizon) {
            continue;
        }
        // State written lately for an old call (a replay of it) is kept
        // the horizon from when it was written.
        let written = store.get(key)?.as_deref().and_then(written_at);
        if written.is_some_and(|at| at >= horizon) {
            continue;
        }
        // A copy's marker outlives its call's entry: while the entry may
        // still be copied from, the marker says the copy was made.
        if let Some(entry) = copy_marker_entry(key)
            && store.get(entry)?.is_some()
        {
            continue;
        }
        store.delete(key)?;
        swept.pruned += 1;
    }
    let position = next_position.unwrap_or(Position {
        rest_until: Some(now + REST_MS),
        ..Position::default()
    });
    kv::set_json(store, POSITION_KEY, &position)?;
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::tests::Memory;

    const NOW: i64 = 1_800_000_000_000;

    fn call_key(start_ms: i64) -> String {
        format!("3cx:{}@{start_ms}", start_ms / 1000)
    }

    /// The keys one call leaves behind.
    fn call_keys(start_ms: i64) -> Vec<String> {
        let key = call_key(start_ms);
        vec![
            format!("ledger/{}@{start_ms}", start_ms / 1000),
            format!("ledger/{}@{start_ms}", start_ms / 1000 + 1),
            format!("post/sending/{key}"),
            format!("post/shared/{key}"),
            format!("post/shared/{key}/copy/contact-2"),
            format!("attach/done/{key}"),
            format!("trigger/done/call.ended/{key}"),
            format!("trigger/done/missed-call.recovered/{key}"),
            format!(
                "trigger/done/call.started/3cx-active:{}@{start_ms}",
                start_ms / 1000
            ),
        ]
    }

    fn fill(store: &Memory, starts: impl IntoIterator<Item = i64>) {
        for start in starts {
            for key in call_keys(start) {
                store.set(&key, b"{}").unwrap();
            }
        }
    }

    /// A whole pass from the start, whatever the last one left.
    fn sweep_a_pass(store: &Memory, days: u32) -> Swept {
        store.delete(POSITION_KEY).unwrap();
        let mut total = Swept::default();
        for _ in 0..10_000 {
            let swept = sweep(store, NOW, days, 0).unwrap();
            total.visited += swept.visited;
            total.pruned += swept.pruned;
            if swept.pass_complete {
                total.pass_complete = true;
                return total;
            }
        }
        panic!("the sweep never finished a pass");
    }

    #[test]
    fn every_per_call_key_is_dated_by_its_calls_start() {
        let start = NOW - 3 * DAY_MS + 123;
        for key in call_keys(start) {
            assert_eq!(call_started_at(&key), Some(start), "{key}");
        }
        let segment = format!("post/sending/3cx-segment:77@{start}");
        assert_eq!(call_started_at(&segment), Some(start));
        // Keys that are not per-call state, or cannot be dated, stay.
        for key in [
            "poll/cursor",
            "trigger/pages",
            "trigger/index/3",
            "trigger/job/call.ended/3cx:1@1577836800000",
            "write-back/done/9f86d081884c7d65",
            "write-back/done/someone@1577836800000",
            "post/sending/3cx:1@2020-01-01T00:00:00Z",
            "post/conversation/contact-1",
            "post/also/3cx:1@1577836800000",
            "post/shared/3cx:1@yesterday/copy/contact-2",
            "trigger/missed/+15551234567",
            "ledger/12",
            "post/sending/3cx:1@yesterday",
            "retention/position",
        ] {
            assert_eq!(call_started_at(key), None, "{key}");
        }
    }

    #[test]
    fn a_copys_marker_is_kept_while_its_calls_entry_is() {
        let start = NOW - 40 * DAY_MS;
        let key = call_key(start);
        let store = Memory::paged(100);
        store.set(CURSOR_KEY, NOW.to_string().as_bytes()).unwrap();
        // The entry was written again lately (kept for the horizon from
        // then); its copy's marker, written long ago, must stay with it.
        let entry = format!("post/shared/{key}");
        let marker = format!("{entry}/copy/contact-2");
        store
            .set(&entry, format!(r#"{{"at":{}}}"#, NOW - DAY_MS).as_bytes())
            .unwrap();
        store
            .set(&marker, format!(r#"{{"at":{start}}}"#).as_bytes())
            .unwrap();
        assert_eq!(sweep_a_pass(&store, 30).pruned, 0);
        assert!(store.get(&marker).unwrap().is_some());
        // Once the entry is gone, so is the marker.
        store.delete(&entry).unwrap();
        assert_eq!(sweep_a_pass(&store, 30).pruned, 1);
        assert!(store.get(&marker).unwrap().is_none());
        assert_eq!(copy_marker_entry(&marker), Some(entry.as_str()));
        assert_eq!(copy_marker_entry(&entry), None);
    }

    #[test]
    fn a_pass_deletes_the_state_of_calls_past_the_horizon_and_nothing_else() {
        for store in [Memory::paged(50), Memory::default()] {
            let old: Vec<i64> = (0..300).map(|i| NOW - 31 * DAY_MS - i * 60_000).collect();
            let young: Vec<i64> = (0..300).map(|i| NOW - 29 * DAY_MS + i * 60_000).collect();
            fill(&store, old.iter().copied());
            fill(&store, young.iter().copied());
            store.set(CURSOR_KEY, NOW.to_string().as_bytes()).unwrap();
            store
                .set("trigger/job/call.ended/3cx:1@1577836800000", b"{}")
                .unwrap();
            let swept = sweep_a_pass(&store, 30);
            assert_eq!(swept.pruned, 300 * call_keys(0).len() as u32);
            for start in old {
                for key in call_keys(start) {
                    assert!(store.get(&key).unwrap().is_none(), "{key} kept");
                }
            }
            for start in young {
                for key in call_keys(start) {
                    assert!(store.get(&key).unwrap().is_some(), "{key} deleted");
                }
            }
            assert!(store.get(CURSOR_KEY).unwrap().is_some());
            assert!(
                store
                    .get("trigger/job/call.ended/3cx:1@1577836800000")
                    .unwrap()
                    .is_some(),
                "a queued job is work, not state to forget"
            );
            // The pass is over: the sweep rests, then starts over.
            assert_eq!(sweep(&store, NOW + 60_000, 30, 0).unwrap().visited, 0);
            let again = sweep(&store, NOW + REST_MS, 30, 0).unwrap();
            assert!(again.visited > 0);
            // A rest set by a clock far ahead is not trusted.
            let ahead = format!(r#"{{"rest_until":{}}}"#, NOW + 400 * DAY_MS);
            store.set(POSITION_KEY, ahead.as_bytes()).unwrap();
            assert!(sweep(&store, NOW, 30, 0).unwrap().visited > 0);
        }
    }

    #[test]
    fn each_sweep_looks_at_a_bounded_number_of_keys() {
        // A store that hands back every key at once (Spin).
        let store = Memory::default();
        fill(&store, (0..1_000).map(|i| NOW - 40 * DAY_MS + i));
        let swept = sweep(&store, NOW, 30, 0).unwrap();
        assert_eq!(swept.visited as usize, SWEEP_KEYS);
        assert!(!swept.pass_complete);
        // A paged store: one page.
        let store = Memory::paged(100);
        fill(&store, (0..1_000).map(|i| NOW - 40 * DAY_MS + i));
        assert_eq!(sweep(&store, NOW, 30, 0).unwrap().visited, 100);
    }

    #[test]
    fn nothing_the_poll_may_still_read_is_forgotten() {
        // One call keeps failing and holds the cursor 40 days back; the
        // calls after it were posted and are re-read on every poll, so
        // their ledger entries must stay whatever the horizon.
        let store = Memory::paged(100);
        let held = NOW - 40 * DAY_MS;
        store.set(CURSOR_KEY, held.to_string().as_bytes()).unwrap();
        fill(&store, [held - 5 * 60_000, held + 60_000, held + DAY_MS]);
        // Older than a day before the read window: nothing reads it.
        fill(&store, [held - 2 * DAY_MS]);
        let per_call = call_keys(0).len() as u32;
        let swept = sweep_a_pass(&store, 30);
        assert_eq!(swept.pruned, per_call);
        for start in [held - 5 * 60_000, held + 60_000, held + DAY_MS] {
            for key in call_keys(start) {
                assert!(store.get(&key).unwrap().is_some(), "{key} deleted");
            }
        }
        // The poll reads from the cursor less the overlap window: with a
        // 10-minute overlap, a call 5 minutes before the day's margin is
        // kept, and goes once the overlap is shorter.
        fill(&store, [held - DAY_MS - 5 * 60_000]);
        assert_eq!(sweep_a_pass_with_overlap(&store, 30, 600_000).pruned, 0);
        assert_eq!(
            sweep_a_pass_with_overlap(&store, 30, 60_000).pruned,
            per_call
        );
    }

    /// A whole pass from the start, whatever the last one left.
    fn sweep_a_pass_with_overlap(store: &Memory, days: u32, overlap_ms: i64) -> Swept {
        store.delete(POSITION_KEY).unwrap();
        let mut total = Swept::default();
        for _ in 0..10_000 {
            let swept = sweep(store, NOW, days, overlap_ms).unwrap();
            total.pruned += swept.pruned;
            if swept.pass_complete {
                return total;
            }
        }
        panic!("the sweep never finished a pass");
    }

    #[test]
    fn state_written_lately_for_an_old_call_is_kept_from_when_it_was_written() {
        // A call of 40 days ago replayed yesterday: its send marker and
        // ledger entries were written then, and may be what stops a second
        // replay from posting it again.
        let store = Memory::paged(100);
        let start = NOW - 40 * DAY_MS;
        let key = call_key(start);
        let yesterday = NOW - DAY_MS;
        let marker = format!("post/sending/{key}");
        let leg = format!("ledger/7@{start}");
        let fresh = format!(r#"{{"conversation":"c","crm_key":"{key}","at":{yesterday}}}"#);
        store.set(&marker, fresh.as_bytes()).unwrap();
        let entry =
            format!(r#"{{"state":"done","call":"{key}","outcome":"posted:m","at":{yesterday}}}"#);
        store.set(&leg, entry.as_bytes()).unwrap();
        // The same written 35 days ago goes.
        let old = format!("ledger/8@{start}");
        let stale = format!(
            r#"{{"state":"done","call":"{key}","outcome":"posted:m","at":{}}}"#,
            NOW - 35 * DAY_MS
        );
        store.set(&old, stale.as_bytes()).unwrap();
        assert_eq!(sweep_a_pass(&store, 30).pruned, 1);
        assert!(store.get(&marker).unwrap().is_some());
        assert!(store.get(&leg).unwrap().is_some());
        assert!(store.get(&old).unwrap().is_none());
    }

    #[test]
    fn records_dated_by_their_value_go_the_horizon_after_that_date() {
        let store = Memory::paged(100);
        let old = stamp(&serde_json::json!({"contactId": "c1"}), NOW - 31 * DAY_MS);
        let young = stamp(&serde_json::json!("note-1"), NOW - 29 * DAY_MS);
        store.set("write-back/done/aa", &old).unwrap();
        store.set("write-back/note/bb", &young).unwrap();
        // Stored before stamps: no date, kept.
        store
            .set("write-back/done/cc", br#"{"contactId":"c2"}"#)
            .unwrap();
        let expired = format!(r#"{{"expires_at_ms":{},"used":false}}"#, NOW - 31 * DAY_MS);
        store.set("oauth/state/dd", expired.as_bytes()).unwrap();
        assert_eq!(sweep_a_pass(&store, 30).pruned, 2);
        assert!(store.get("write-back/done/aa").unwrap().is_none());
        assert!(store.get("oauth/state/dd").unwrap().is_none());
        assert!(store.get("write-back/note/bb").unwrap().is_some());
        assert!(store.get("write-back/done/cc").unwrap().is_some());
        // What was stamped reads back as it was, and so does an old value.
        assert_eq!(unstamp(&young), serde_json::json!("note-1"));
        assert_eq!(
            unstamp(br#"{"contactId":"c2"}"#),
            serde_json::json!({"contactId": "c2"})
        );
        assert_eq!(unstamp(b"null"), serde_json::Value::Null);
    }

    #[test]
    fn zero_days_keeps_everything_and_short_horizons_are_refused() {
        let store = Memory::paged(100);
        fill(&store, [NOW - 400 * DAY_MS]);
        assert_eq!(sweep_a_pass(&store, 0).pruned, 0);
        assert_eq!(store.keys_under("ledger/").len(), 2);
        assert!(check_days(6).unwrap_err().contains("at least 7"));
        assert!(check_recovery_window(86_400, 30).is_ok());
        assert!(check_recovery_window(u32::MAX, 0).is_ok());
        let e = check_recovery_window(29 * 86_400, 30).unwrap_err();
        assert!(e.contains("missed_call_recovery_window_secs"), "{e}");
        assert_eq!(check_days(0), Ok(0));
        assert_eq!(check_days(7), Ok(7));
        assert_eq!(backfill_floor_ms(NOW, 0), None);
        assert_eq!(backfill_floor_ms(NOW, 30), Some(NOW - 29 * DAY_MS));
    }
}
