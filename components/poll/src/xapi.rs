//! The 3CX XAPI requests the poll stage makes.

use crate::exports::connectzero::pipeline::poll::ActiveCall;
use crate::grouping::{LegId, LogFacts};
use guest_support::StageError;
use guest_support::api::ApiClient;
use guest_support::bindings::connectzero::pipeline::types::{
    ExtensionOwner, Service, TenantSettings,
};
use guest_support::time::{format_rfc3339_ms, parse_rfc3339_ms};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

/// Upper bound on pages read in one poll. At the largest page size this is
/// far more than a PBX writes between two polls; it stops a server that
/// never returns a short page from looping the component forever.
const MAX_PAGES: u32 = 500;

/// An OData collection response (`{"@odata.count"?, "value": [...]}`).
/// Unknown `@odata.*` keys are ignored.
#[derive(Deserialize)]
struct Collection<T> {
    value: Vec<T>,
}

/// A client for the tenant's XAPI at `{pbx}/xapi/v1`.
pub fn client(settings: &TenantSettings) -> ApiClient {
    ApiClient::new(
        Service::Pbx,
        &format!("{}/xapi/v1", settings.pbx_base_url.trim_end_matches('/')),
    )
}

/// Most `CallHistoryView` rows one live poll reads at first. A backlog
/// (first start on a busy PBX, a day-long CRM outage) is read this much
/// per tick, so a tick's time and the component's memory stay bounded
/// whatever the backlog; it is far more than a PBX writes between two
/// polls.
pub const MAX_ROWS_PER_POLL: u32 = 5_000;

/// Most rows a poll reads when the first [`MAX_ROWS_PER_POLL`] did not let
/// the cursor move (a call in progress holds it far back on a busy PBX).
/// Rows are parsed page by page, so only the legs are held.
pub const MAX_ROWS_HELD_BACK: u32 = 50_000;

/// `CallHistoryView` rows that started at or after `from_ms`, oldest
/// first, each turned into `T` by `parse` as its page arrives, following
/// `$top`/`$skip` paging until a short page or `max_rows`
/// (operationId `ListCallHistoryView`). The flag is true when the read
/// stopped at the bound with more rows to come.
pub fn call_history_since<T>(
    api: &ApiClient,
    from_ms: i64,
    page_size: u32,
    max_rows: u32,
    parse: impl FnMut(Value) -> T,
) -> Result<(Vec<T>, bool), StageError> {
    // The same query the host's check of an idle tenant reads.
    let base = guest_support::protocol::quiet::history_query(from_ms);
    let pages = max_rows.div_ceil(page_size.max(1));
    read_pages_with(api, &base, page_size, pages, parse)
}

/// Every `CallHistoryView` row that started in `[from_ms, until_ms)`,
/// oldest first, paged like [`call_history_since`].
pub fn call_history_between(
    api: &ApiClient,
    from_ms: i64,
    until_ms: i64,
    page_size: u32,
) -> Result<Vec<Value>, StageError> {
    let filter = format!(
        "SegmentStartTime ge {} and SegmentStartTime lt {}",
        format_rfc3339_ms(from_ms),
        format_rfc3339_ms(until_ms)
    );
    let base = format!(
        "/CallHistoryView?$filter={}&$orderby={}",
        urlencoding::encode(&filter),
        urlencoding::encode("SegmentStartTime asc,SegmentId asc"),
    );
    read_pages(api, &base, page_size)
}

/// 3CX call ids (and call log `Reason` texts) of the segments that started
/// in `[from_ms, to_ms)`, from the call log report (operationId
/// `GetCallLogData`).
///
/// [ASSUMED] (specs/3cx/NOTES.md §2b): `CallLogData.CallId` groups the
/// segments of one call, and its `SegmentId` + `StartTime` equal the
/// `CallHistoryView` row's `SegmentId` + `SegmentStartTime`; "0" arguments
/// mean "all". This is the only function that relies on it. `Reason` is
/// passed on as 3CX wrote it; only `missed::missed_reason` reads it.
pub fn call_log(
    api: &ApiClient,
    from_ms: i64,
    to_ms: i64,
    page_size: u32,
) -> Result<HashMap<LegId, LogFacts>, StageError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Row {
        call_id: i32,
        segment_id: Option<i32>,
        start_time: Option<String>,
        #[serde(default)]
        reason: Option<String>,
    }
    let function = format!(
        "/ReportCallLogData/Pbx.GetCallLogData(periodFrom={},periodTo={},sourceType=0,sourceFilter='',destinationType=0,destinationFilter='',callsType=0,callTimeFilterType=0,callTimeFilterFrom='0:00:0',callTimeFilterTo='0:00:0',hidePcalls=false)",
        urlencoding::encode(&format_rfc3339_ms(from_ms)),
        urlencoding::encode(&format_rfc3339_ms(to_ms)),
    );
    // A unique order, or `$skip` pages are unstable (NOTES §8).
    let base = format!(
        "{function}?$select=CallId,SegmentId,StartTime,Reason&$orderby={}",
        urlencoding::encode("StartTime asc,SegmentId asc")
    );
    // Parsed page by page: a long window holds only the small rows.
    // Enough pages for twice the most history rows a poll reads, at any
    // page size (a call's segments have one call-log row each).
    let max_pages = (2 * MAX_ROWS_HELD_BACK).div_ceil(page_size.max(1));
    let (rows, more) = read_pages_with(api, &base, page_size, max_pages, |row| {
        serde_json::from_value::<Row>(row).ok()
    })?;
    if more {
        return Err(StageError::InvalidData(format!(
            "GetCallLogData kept returning full pages after {max_pages} pages of {page_size}; check the PBX"
        )));
    }
    let mut ids = HashMap::new();
    // Rows this client cannot read only lose their grouping: the leg then
    // posts as a call of its own rather than not at all.
    for row in rows.into_iter().flatten() {
        let (Some(segment), Some(start)) = (row.segment_id, row.start_time) else {
            continue;
        };
        if let Ok(start) = parse_rfc3339_ms(&start) {
            // A long text is no reason 3CX gives; it is dropped, not the leg.
            let reason = row
                .reason
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty() && r.len() <= 256);
            ids.insert(
                (segment, start),
                LogFacts {
                    call_id: row.call_id,
                    reason,
                },
            );
        }
    }
    Ok(ids)
}

/// Extension owners by extension number (operationId `ListUser`).
pub fn extension_owners(
    api: &ApiClient,
    page_size: u32,
) -> Result<HashMap<String, ExtensionOwner>, StageError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct User {
        number: Option<String>,
        first_name: Option<String>,
        last_name: Option<String>,
        email_address: Option<String>,
    }
    let base = format!(
        "/Users?$select=Id,Number,FirstName,LastName,EmailAddress&$orderby={}",
        urlencoding::encode("Number asc")
    );
    let mut owners = HashMap::new();
    for row in read_pages(api, &base, page_size)? {
        let Ok(user) = serde_json::from_value::<User>(row) else {
            continue;
        };
        let Some(number) = user.number.filter(|n| !n.is_empty()) else {
            continue;
        };
        owners.insert(
            number.clone(),
            ExtensionOwner {
                extension: number,
                first_name: user.first_name.unwrap_or_default(),
                last_name: user.last_name.unwrap_or_default(),
                email: user.email_address.filter(|e| !e.is_empty()),
            },
        );
    }
    Ok(owners)
}

/// Recording ids asked for in one `Recordings` read (one `$filter` of
/// `Id eq …` alternatives; a page's worth).
const DIDS_PER_READ: usize = 20;

/// `ToDidNumber` of each of `ids` that has one (operationId
/// `ListRecording`, `$filter=Id eq a or Id eq b …`; `/Recordings(<id>)`
/// answers 404 on v20, NOTES §8). Bare digits, as 3CX writes them.
pub fn recording_dids(
    api: &ApiClient,
    ids: &[i32],
) -> Result<Vec<(i32, Option<String>)>, StageError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Row {
        id: Option<i32>,
        to_did_number: Option<String>,
        #[serde(default)]
        end_time: Option<String>,
    }
    let mut unique = ids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let mut found = Vec::new();
    for chunk in unique.chunks(DIDS_PER_READ) {
        let filter = chunk
            .iter()
            .map(|id| format!("Id eq {id}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let path = format!(
            "/Recordings?$filter={}&$select=Id,ToDidNumber,EndTime&$orderby={}&$top={}",
            urlencoding::encode(&filter),
            urlencoding::encode("Id asc"),
            chunk.len()
        );
        let page: Collection<Value> = api.get_json(&path)?;
        for row in page.value {
            let Ok(Row {
                id: Some(id),
                to_did_number,
                end_time,
            }) = serde_json::from_value::<Row>(row)
            else {
                continue;
            };
            let did = to_did_number.as_deref().and_then(valid_did);
            // [ASSUMED] 3CX may list a recording before it is final and
            // fill in its DID only then: one still being written without a
            // DID counts as not listed yet, so nobody routes it as DID-less.
            if did.is_none() && end_time.is_none() {
                continue;
            }
            // Only ids asked for, once: a hostile answer cannot name others.
            if chunk.contains(&id) && !found.iter().any(|(seen, _)| *seen == id) {
                found.push((id, did));
            }
        }
    }
    Ok(found)
}

/// A DID as 3CX writes it (bare digits, maybe a leading `+`), or `None`
/// for anything else: the text ends up in routing decisions and skip
/// reasons, so an answer that is no phone number is no DID.
fn valid_did(text: &str) -> Option<String> {
    let text = text.trim();
    let digits = text.strip_prefix('+').unwrap_or(text);
    (!digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.to_owned())
}

/// Most calls in progress read from `ActiveCalls`.
const MAX_ACTIVE_CALLS: u32 = 2_000;

/// The calls in progress right now (operationId `ListActiveCall`).
pub struct ActiveNow {
    /// The calls. Rows without an id are skipped; a missing
    /// `EstablishedAt` reads as `now`.
    pub calls: Vec<ActiveCall>,
    /// Whether each call's `EstablishedAt` was given (same order).
    pub established_given: Vec<bool>,
    /// The PBX's clock (`ServerNow`) when any row carried it.
    pub server_now: Option<i64>,
    /// Whether the list came in one page: read over several, calls ending
    /// between the pages shift the rest, and one still going on may be
    /// missing.
    pub one_page: bool,
}

/// The calls in progress (operationId `ListActiveCall`), with the PBX's
/// clock when 3CX sent it.
pub fn active_calls(api: &ApiClient, now: i64, page_size: u32) -> Result<ActiveNow, StageError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Row {
        id: Option<i32>,
        caller: Option<String>,
        callee: Option<String>,
        status: Option<String>,
        established_at: Option<String>,
        server_now: Option<String>,
    }
    // `Id` is unique: a stable order for paging (NOTES §8).
    let base = format!("/ActiveCalls?$orderby={}", urlencoding::encode("Id asc"));
    // A PBX has at most a few hundred calls at once (its licence's
    // simultaneous calls); a list longer than this is broken or hostile,
    // and is refused rather than kept (every entry would be stored).
    let pages = MAX_ACTIVE_CALLS.div_ceil(page_size.max(1));
    let (rows, more) = read_pages_upto(api, &base, page_size, pages)?;
    let one_page = rows.len() < page_size.max(1) as usize;
    if more {
        return Err(StageError::InvalidData(format!(
            "3CX lists more than {MAX_ACTIVE_CALLS} calls in progress; check the PBX"
        )));
    }
    let mut calls = Vec::new();
    let mut established_given = Vec::new();
    let mut server_now = None;
    for row in rows {
        let Ok(row) = serde_json::from_value::<Row>(row) else {
            continue;
        };
        let Some(id) = row.id else { continue };
        if let Some(pbx_now) = row.server_now.and_then(|t| parse_rfc3339_ms(&t).ok()) {
            server_now = Some(pbx_now);
        }
        let established = row.established_at.and_then(|t| parse_rfc3339_ms(&t).ok());
        established_given.push(established.is_some());
        let established_at = established.unwrap_or(now);
        calls.push(ActiveCall {
            id,
            caller: row.caller.unwrap_or_default(),
            callee: row.callee.unwrap_or_default(),
            status: row.status.unwrap_or_default(),
            established_at,
        });
    }
    Ok(ActiveNow {
        calls,
        established_given,
        server_now,
        one_page,
    })
}

/// Read `base` page by page. 3CX's `@odata.count` is not reliable on every
/// endpoint (NOTES §2a), so a short page is what ends the loop.
fn read_pages(api: &ApiClient, base: &str, page_size: u32) -> Result<Vec<Value>, StageError> {
    match read_pages_upto(api, base, page_size, MAX_PAGES)? {
        (rows, false) => Ok(rows),
        (_, true) => Err(StageError::InvalidData(format!(
            "3CX kept returning full pages after {MAX_PAGES} pages of {page_size}; raise page-size or check the PBX"
        ))),
    }
}

/// Read at most `max_pages` pages of `base`; true when the last one was
/// full (there may be more).
fn read_pages_upto(
    api: &ApiClient,
    base: &str,
    page_size: u32,
    max_pages: u32,
) -> Result<(Vec<Value>, bool), StageError> {
    read_pages_with(api, base, page_size, max_pages, |row| row)
}

/// [`read_pages_upto`], turning each row into `T` as its page arrives so
/// a long read holds only what `parse` keeps.
fn read_pages_with<T>(
    api: &ApiClient,
    base: &str,
    page_size: u32,
    max_pages: u32,
    mut parse: impl FnMut(Value) -> T,
) -> Result<(Vec<T>, bool), StageError> {
    let page_size = page_size.max(1);
    let separator = if base.contains('?') { '&' } else { '?' };
    let mut rows = Vec::new();
    for page in 0..max_pages {
        let skip = u64::from(page) * u64::from(page_size);
        let path = format!("{base}{separator}$top={page_size}&$skip={skip}");
        let batch: Collection<Value> = api.get_json(&path)?;
        let short = batch.value.len() < page_size as usize;
        rows.extend(batch.value.into_iter().map(&mut parse));
        if short {
            return Ok((rows, false));
        }
    }
    Ok((rows, true))
}
