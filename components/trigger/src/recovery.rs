//! Missed-call recovery: which queued calls close which missed calls.
//!
//! When the stage queues a `missed-call` event it remembers the missed call
//! under the caller's phone (E.164 as posted); when it queues a
//! `call-ended` event for an answered inbound or outbound call to a phone
//! with open missed calls inside the tenant's window, every one of those
//! missed calls is recovered by it: one `missed-call.recovered` event per
//! missed call, so a CRM task opened for each missed call can close itself.
//! A missed call is recovered once (its record is removed, and the queue
//! ignores a second event for the same missed call key).
//!
//! The rules live here, free of the key-value store, so they are unit
//! tested natively and both runtimes (host and Spin) run the same code.

use serde::{Deserialize, Serialize};

/// Most open missed calls remembered per phone; beyond it the oldest is
/// forgotten, so a number that keeps calling and is never answered cannot
/// grow its record without bound.
pub const MAX_OPEN_PER_PHONE: usize = 20;

/// One open (not yet recovered) missed call.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Missed {
    /// Key of the missed call.
    pub call_key: String,
    /// HighLevel contact id of the missed call, when matched.
    pub contact_id: Option<String>,
    /// HighLevel message id of the missed call, when posted.
    pub message_id: Option<String>,
    /// When the call was missed (its end, else its start), ms since the
    /// epoch: the callback clock runs from when the caller gave up.
    pub missed_at: i64,
}

/// A missed call closed by a later answered call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The missed call.
    pub missed: Missed,
    /// Seconds from the missed call to the start of the recovering call.
    pub time_to_callback_secs: u32,
}

/// The key-value key holding the open missed calls of `phone`, or none
/// when the phone is unknown (an empty number cannot be matched).
pub fn state_key(phone: &str) -> Option<String> {
    let phone = phone.trim();
    (!phone.is_empty()).then(|| format!("trigger/missed/{phone}"))
}

/// Drop the records that can no longer be recovered at `at` (older than
/// the window), so state stays bounded by what is still actionable.
pub fn prune(open: &mut Vec<Missed>, at: i64, window_ms: i64) {
    open.retain(|m| at - m.missed_at <= window_ms);
}

/// Remember `missed` (once per call key), dropping stale and surplus
/// records.
pub fn remember(open: &mut Vec<Missed>, missed: &Missed, window_ms: i64) {
    prune(open, missed.missed_at, window_ms);
    if open.iter().any(|m| m.call_key == missed.call_key) {
        return;
    }
    open.push(missed.clone());
    open.sort_by_key(|m| m.missed_at);
    let surplus = open.len().saturating_sub(MAX_OPEN_PER_PHONE);
    open.drain(..surplus);
}

/// The missed calls an answered call with key `call_key`, started at
/// `started_at`, recovers: those missed before it started and no longer
/// than the window before. A call never recovers itself.
pub fn recovered_by(
    open: &[Missed],
    call_key: &str,
    started_at: i64,
    window_ms: i64,
) -> Vec<Recovered> {
    open.iter()
        .filter(|m| m.call_key != call_key)
        .filter_map(|m| {
            let waited = started_at - m.missed_at;
            // A call that started before the miss was over (e.g. a parallel
            // leg) is no callback; a call that late is outside the window.
            (0..=window_ms).contains(&waited).then(|| Recovered {
                missed: m.clone(),
                time_to_callback_secs: u32::try_from(waited / 1000).unwrap_or(u32::MAX),
            })
        })
        .collect()
}

/// Forget the missed calls in `recovered` and the stale ones.
pub fn forget(open: &mut Vec<Missed>, recovered: &[String], at: i64, window_ms: i64) {
    prune(open, at, window_ms);
    open.retain(|m| !recovered.contains(&m.call_key));
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    fn missed(key: &str, at: i64) -> Missed {
        Missed {
            call_key: key.into(),
            contact_id: Some("c1".into()),
            message_id: None,
            missed_at: at,
        }
    }

    #[test]
    fn an_answered_call_inside_the_window_recovers_with_time_to_callback() {
        let open = vec![missed("m1", 1_000_000)];
        let got = recovered_by(&open, "cb", 1_000_000 + 90_500, DAY);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].missed.call_key, "m1");
        assert_eq!(got[0].time_to_callback_secs, 90);
    }

    #[test]
    fn a_call_outside_the_window_recovers_nothing() {
        let open = vec![missed("m1", 0)];
        assert!(recovered_by(&open, "cb", DAY + 1, DAY).is_empty());
        assert_eq!(
            recovered_by(&open, "cb", DAY, DAY).len(),
            1,
            "the window's edge counts"
        );
    }

    #[test]
    fn a_call_never_recovers_itself_nor_an_earlier_call() {
        let open = vec![missed("m1", 10 * HOUR)];
        assert!(recovered_by(&open, "m1", 11 * HOUR, DAY).is_empty());
        assert!(recovered_by(&open, "early", 9 * HOUR, DAY).is_empty());
    }

    #[test]
    fn one_callback_recovers_every_open_missed_call_of_the_number() {
        let mut open = Vec::new();
        remember(&mut open, &missed("m1", HOUR), DAY);
        remember(&mut open, &missed("m2", 2 * HOUR), DAY);
        let got = recovered_by(&open, "cb", 3 * HOUR, DAY);
        let secs: Vec<_> = got
            .iter()
            .map(|r| (r.missed.call_key.as_str(), r.time_to_callback_secs))
            .collect();
        assert_eq!(secs, [("m1", 7200), ("m2", 3600)]);
        let keys: Vec<String> = got.into_iter().map(|r| r.missed.call_key).collect();
        forget(&mut open, &keys, 3 * HOUR, DAY);
        assert!(open.is_empty(), "recovered calls are closed");
        assert!(recovered_by(&open, "cb2", 4 * HOUR, DAY).is_empty());
    }

    #[test]
    fn remembering_is_idempotent_and_drops_stale_and_surplus_records() {
        let mut open = Vec::new();
        remember(&mut open, &missed("old", 0), DAY);
        remember(&mut open, &missed("m1", 2 * DAY), DAY);
        remember(&mut open, &missed("m1", 2 * DAY), DAY);
        assert_eq!(
            open,
            vec![missed("m1", 2 * DAY)],
            "stale dropped, duplicate ignored"
        );
        for i in 0..MAX_OPEN_PER_PHONE as i64 {
            remember(&mut open, &missed(&format!("n{i}"), 2 * DAY + i + 1), DAY);
        }
        assert_eq!(open.len(), MAX_OPEN_PER_PHONE);
        assert!(
            !open.iter().any(|m| m.call_key == "m1"),
            "the oldest goes first"
        );
    }

    #[test]
    fn an_unknown_phone_has_no_state() {
        assert_eq!(state_key("  "), None);
        assert_eq!(
            state_key("+15551230000").as_deref(),
            Some("trigger/missed/+15551230000")
        );
    }
}
