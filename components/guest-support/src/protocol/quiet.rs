//! The cheap check of an idle tenant: the two 3CX reads that tell whether
//! the next tick would find anything new.
//!
//! A tick that found nothing to do reports the rows its poll read
//! (`tick-report.quiet`). Before the next tick the bundled host reads 3CX's
//! calls in progress and the same window's row ids; when 3CX lists no call
//! in progress and exactly those rows, the tick would read the same and
//! do nothing, so the host skips it. Skipping a tick never loses or doubles
//! a call — every call is handled by whichever tick runs next — it only
//! must not delay one: a new call shows either as a row in the window (it
//! starts after the window's start: a call that began earlier was listed in
//! progress then, and the tick was not quiet) or in progress.
//!
//! The poll builds its window read from [`history_query`], so the check
//! asks for the same rows.

use serde_json::Value;

/// The check reads one page of this many rows: 3CX's cap (NOTES §8: a
/// larger `$top` is refused). A full page may have more behind it, so a
/// window of this many rows or more is never skipped.
pub const MAX_ROWS: usize = 100;

/// `CallHistoryView`'s query for the rows that started at or after
/// `from_ms`, oldest first (the live poll's window, paged by the caller).
pub fn history_query(from_ms: i64) -> String {
    let filter = format!(
        "SegmentStartTime ge {}",
        crate::time::format_rfc3339_ms(from_ms)
    );
    format!(
        "/CallHistoryView?$filter={}&$orderby={}",
        urlencoding::encode(&filter),
        urlencoding::encode("SegmentStartTime asc,SegmentId asc"),
    )
}

/// The check's read of the window: only the row ids, one page of
/// [`MAX_ROWS`] (a full page means too many rows to compare).
pub fn history_check_path(from_ms: i64) -> String {
    format!(
        "{}&$select=SegmentId&$top={MAX_ROWS}&$skip=0",
        history_query(from_ms)
    )
}

/// The check's read of the calls in progress: is there any?
pub fn active_check_path() -> String {
    format!(
        "/ActiveCalls?$orderby={}&$select=Id&$top=1",
        urlencoding::encode("Id asc")
    )
}

/// Whether 3CX's answers show nothing new: no call in progress
/// (`active`), and the window holds exactly `segment_ids` (`history`,
/// ascending ids). Anything unexpected in either answer is "changed".
pub fn unchanged(segment_ids: &[i32], active: &Value, history: &Value) -> bool {
    let rows = |answer: &Value| answer.get("value").and_then(Value::as_array).cloned();
    let (Some(active), Some(history)) = (rows(active), rows(history)) else {
        return false;
    };
    if !active.is_empty() || history.len() >= MAX_ROWS || segment_ids.len() >= MAX_ROWS {
        return false;
    }
    let mut ids = Vec::with_capacity(history.len());
    for row in &history {
        match row
            .get("SegmentId")
            .and_then(Value::as_i64)
            .and_then(|id| i32::try_from(id).ok())
        {
            Some(id) => ids.push(id),
            None => return false,
        }
    }
    ids.sort_unstable();
    ids == segment_ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_same_rows_and_no_call_in_progress_are_unchanged() {
        let none = json!({"value": []});
        let rows = json!({"value": [{"SegmentId": 7}, {"SegmentId": 3}]});
        assert!(unchanged(&[3, 7], &none, &rows));
        assert!(!unchanged(&[3], &none, &rows), "a new row");
        assert!(!unchanged(&[3, 7, 9], &none, &rows), "a row gone");
        let talking = json!({"value": [{"Id": 1}]});
        assert!(!unchanged(&[3, 7], &talking, &rows), "a call in progress");
        assert!(!unchanged(&[], &json!({}), &none), "no list is no answer");
        let odd = json!({"value": [{"SegmentId": "7"}]});
        assert!(!unchanged(&[7], &none, &odd), "an id that is no number");
    }

    #[test]
    fn a_window_too_long_for_one_page_is_never_unchanged() {
        let ids: Vec<i32> = (0..MAX_ROWS as i32).collect();
        let rows =
            json!({"value": ids.iter().map(|id| json!({"SegmentId": id})).collect::<Vec<_>>()});
        assert!(!unchanged(&ids, &json!({"value": []}), &rows));
    }

    #[test]
    fn the_check_reads_the_polls_window() {
        let path = history_check_path(0);
        assert!(path.starts_with(&history_query(0)));
        assert!(path.contains("%3A"), "the time is encoded: {path}");
        assert!(
            path.ends_with("&$top=100&$skip=0"),
            "3CX refuses more: {path}"
        );
    }
}
