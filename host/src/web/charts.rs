//! The tenant page's charts (issue 21): calls per hour by outcome and
//! the hang-up → CRM latency percentiles per hour over the last 24 hours,
//! from the call log. Drawn as server-side SVG (`templates::charts`): the
//! page runs no script (its CSP allows none).

use crate::storage::{CallsByHour, Storage};

/// Hours shown: the current one and the 23 before it.
pub(super) const HOURS: usize = 24;
const HOUR_MS: i64 = 3_600_000;
/// Posted calls whose latency is read at most: a busy day's page stays
/// cheap; beyond it the oldest hours' percentiles are left out, and the
/// page says so.
const MAX_LATENCIES: usize = 50_000;

/// The outcomes drawn, in stacking order, with their colours; any other
/// outcome counts as "other".
pub(super) const OUTCOMES: [(&str, &str); 5] = [
    ("posted", "#2e7d32"),
    ("skipped", "#8d99ae"),
    ("retrying", "#ef6c00"),
    ("parked", "#c62828"),
    ("other", "#6a4c93"),
];

/// One hour of the charts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Hour {
    /// Start of the hour, ms since the epoch.
    pub start_ms: i64,
    /// Calls per outcome, in [`OUTCOMES`]' order.
    pub calls: [i64; OUTCOMES.len()],
    /// p50, p95 and p99 of hang-up → CRM, ms, when a call was posted.
    pub latency: Option<[i64; 3]>,
}

impl Hour {
    /// Calls handled in the hour, every outcome.
    pub fn total(&self) -> i64 {
        self.calls.iter().sum()
    }
}

/// The charts' figures.
#[derive(Clone, Debug, Default)]
pub(super) struct Charts {
    /// Oldest first, [`HOURS`] of them.
    pub hours: Vec<Hour>,
    /// Some posted calls' latencies were left out (see [`MAX_LATENCIES`]).
    pub latencies_truncated: bool,
}

impl Charts {
    /// `tenant`'s last [`HOURS`] hours up to `now_ms`.
    pub fn read(storage: &Storage, tenant: &str, now_ms: i64) -> rusqlite::Result<Self> {
        let start_ms = (now_ms.div_euclid(HOUR_MS) - (HOURS as i64 - 1)) * HOUR_MS;
        let rows = storage.calls_by_hour(tenant, start_ms, HOURS, MAX_LATENCIES)?;
        Ok(Self::from_rows(rows))
    }

    fn from_rows(rows: CallsByHour) -> Self {
        let hours = rows
            .hours
            .into_iter()
            .enumerate()
            .map(|(n, mut hour)| {
                let mut calls = [0; OUTCOMES.len()];
                for (outcome, count) in &hour.outcomes {
                    let slot = OUTCOMES
                        .iter()
                        .position(|(name, _)| name == outcome)
                        .unwrap_or(OUTCOMES.len() - 1);
                    calls[slot] += count;
                }
                hour.latencies_ms.sort_unstable();
                let latency = (!hour.latencies_ms.is_empty())
                    .then(|| [50, 95, 99].map(|p| percentile(&hour.latencies_ms, p)));
                Hour {
                    start_ms: rows.start_ms + n as i64 * HOUR_MS,
                    calls,
                    latency,
                }
            })
            .collect();
        Self {
            hours,
            latencies_truncated: rows.latencies_truncated,
        }
    }
}

/// The nearest-rank `p`th percentile of `sorted` (not empty): the
/// smallest value at least `p`% of the values are at or below.
fn percentile(sorted: &[i64], p: usize) -> i64 {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::HourRows;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50), 50);
        assert_eq!(percentile(&values, 95), 95);
        assert_eq!(percentile(&values, 99), 99);
        assert_eq!(percentile(&[7], 99), 7);
        assert_eq!(percentile(&[1, 2, 3], 50), 2);
        assert_eq!(percentile(&[1, 2, 3], 99), 3);
    }

    #[test]
    fn unknown_outcomes_count_as_other_and_empty_hours_have_no_latency() {
        let charts = Charts::from_rows(CallsByHour {
            start_ms: 0,
            hours: vec![
                HourRows {
                    outcomes: vec![("posted".into(), 2), ("surprise".into(), 1)],
                    latencies_ms: vec![3_000, 1_000],
                },
                HourRows::default(),
            ],
            latencies_truncated: false,
        });
        assert_eq!(charts.hours[0].calls, [2, 0, 0, 0, 1]);
        assert_eq!(charts.hours[0].latency, Some([1_000, 3_000, 3_000]));
        assert_eq!(charts.hours[1].start_ms, HOUR_MS);
        assert_eq!(charts.hours[1].latency, None);
        assert_eq!(charts.hours[1].total(), 0);
    }
}
