//! `ListCallHistoryView`: full rows and the OData options.

use chrono::TimeDelta;
use reqwest::Client;
use serde_json::{Value, json};

use super::{at, get_error, get_json, start, token};
use crate::threecx::{SimParty, SimSegment, SimUser, ThreeCxSim};

/// Segment `i` (1-based) starts at 10:0i:00Z and lasts 3m35s; odd ones are answered.
fn seed(sim: &ThreeCxSim) {
    sim.add_user(SimUser::new(
        7,
        "101",
        "Alice",
        "Smith",
        "alice@example.com",
    ));
    for i in 1..=5 {
        let start = at(&format!("2025-03-01T10:0{i}:00Z"));
        let span = (start, start + TimeDelta::seconds(215));
        let mut seg = SimSegment::inbound(
            50_000 + i,
            900 + i,
            span,
            "+441234567890",
            "101",
            i % 2 == 1,
        );
        seg.dst = SimParty::extension("101", "Alice Smith", 9912).with_recording(3300 + i);
        sim.add_segment(seg);
    }
}

fn segment_ids(body: &Value) -> Vec<i64> {
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["SegmentId"].as_i64().unwrap_or(-1))
        .collect()
}

#[tokio::test]
async fn rows_carry_every_spec_field_in_wire_format() {
    let sim = start().await;
    seed(&sim);
    let token = token(&sim).await;
    let body = get_json(&sim, &token, "/CallHistoryView?$orderby=SegmentId&$top=1").await;
    assert_eq!(
        body["@odata.context"],
        format!("{}/$metadata#CallHistoryView", sim.api_url())
    );
    assert!(body.get("@odata.count").is_none());
    let row = &body["value"][0];
    assert_eq!(row.as_object().unwrap().len(), 27);
    assert_eq!(row["SegmentId"], 50_001);
    assert_eq!(row["SegmentStartTime"], "2025-03-01T10:01:00Z");
    assert_eq!(row["SegmentEndTime"], "2025-03-01T10:04:35Z");
    assert_eq!(row["CallTime"], "PT3M35S");
    assert_eq!(row["CallAnswered"], true);
    assert_eq!(
        (
            row["SrcInternal"].clone(),
            row["SrcExternal"].clone(),
            row["SrcDnType"].clone()
        ),
        (json!(false), json!(true), json!(1))
    );
    assert_eq!(
        (row["SrcDn"].clone(), row["SrcCallerNumber"].clone()),
        (json!("10000"), json!("+441234567890"))
    );
    assert_eq!(row["SrcExtendedDisplayName"], "+441234567890");
    assert!(row["SrcDisplayName"].is_null() && row["SrcRecId"].is_null());
    assert_eq!(
        (
            row["DstDn"].clone(),
            row["DstDnType"].clone(),
            row["DstId"].clone()
        ),
        (json!("101"), json!(0), json!(7))
    );
    assert_eq!(row["DstExtendedDisplayName"], "Alice Smith (101)");
    assert_eq!(
        (row["DstParticipantId"].clone(), row["DstRecId"].clone()),
        (json!(9912), json!(3301))
    );
    let unanswered = get_json(
        &sim,
        &token,
        "/CallHistoryView?$filter=SegmentId%20eq%2050002",
    )
    .await;
    assert_eq!(unanswered["value"][0]["CallTime"], "PT0S");
}

#[tokio::test]
async fn filter_orderby_and_paging_walk_the_documented_poll() {
    let sim = start().await;
    seed(&sim);
    sim.add_raw_call_history_row(json!({"SegmentId": 1, "Junk": true}));
    let token = token(&sim).await;
    let page = |skip: usize| {
        format!(
            "/CallHistoryView?$filter=SegmentStartTime%20gt%202025-03-01T10%3A01%3A00Z&$orderby=SegmentStartTime%20desc,SegmentId%20asc&$top=2&$skip={skip}&$count=true"
        )
    };
    let first = get_json(&sim, &token, &page(0)).await;
    assert_eq!(first["@odata.count"], 4);
    assert_eq!(segment_ids(&first), [50_005, 50_004]);
    let second = get_json(&sim, &token, &page(2)).await;
    assert_eq!(segment_ids(&second), [50_003, 50_002]);
    let third = get_json(&sim, &token, &page(4)).await;
    assert_eq!(segment_ids(&third), Vec::<i64>::new());
    assert_eq!(sim.request_count("/xapi/v1/CallHistoryView"), 3);
}

#[tokio::test]
async fn offset_literals_plus_spaces_and_boolean_logic() {
    let sim = start().await;
    seed(&sim);
    let token = token(&sim).await;
    // `+01:00` sent as %2B; 11:03+01:00 is 10:03Z.
    let body = get_json(&sim, &token, "/CallHistoryView?$filter=SegmentStartTime%20ge%202025-03-01T11%3A03%3A00.000%2B01%3A00&$orderby=SegmentId").await;
    assert_eq!(segment_ids(&body), [50_003, 50_004, 50_005]);
    // reqwest form-encodes spaces as `+` and `$` as %24.
    let resp = Client::new()
        .get(format!("{}/CallHistoryView", sim.api_url()))
        .bearer_auth(&token)
        .query(&[
            ("$filter", "(SegmentId eq 50001 or SegmentId eq 50005) and not (CallAnswered eq false) and SrcCallerNumber eq '+441234567890'"),
            ("$orderby", "SegmentId desc"),
            ("$select", "SegmentId,CallTime"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["value"],
        json!([{"SegmentId": 50_005, "CallTime": "PT3M35S"}, {"SegmentId": 50_001, "CallTime": "PT3M35S"}])
    );
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("#CallHistoryView(SegmentId,CallTime)")
    );
}

#[tokio::test]
async fn raw_rows_are_served_as_is_and_sort_last() {
    let sim = start().await;
    seed(&sim);
    sim.add_raw_call_history_row(json!({"SegmentId": 42, "SegmentStartTime": "not a date"}));
    sim.add_raw_call_history_row(json!({"Unexpected": [1, 2]}));
    let token = token(&sim).await;
    let body = get_json(
        &sim,
        &token,
        "/CallHistoryView?$orderby=SegmentStartTime%20desc&$count=true",
    )
    .await;
    assert_eq!(body["@odata.count"], 7);
    assert_eq!(
        segment_ids(&body),
        [50_005, 50_004, 50_003, 50_002, 50_001, 42, -1]
    );
    assert_eq!(body["value"][6], json!({"Unexpected": [1, 2]}));
    let filtered = get_json(
        &sim,
        &token,
        "/CallHistoryView?$filter=SegmentStartTime%20lt%202030-01-01T00%3A00%3A00Z&$count=true",
    )
    .await;
    assert_eq!(filtered["@odata.count"], 5);
    // Malformed rows on purpose: the client must survive what the document
    // forbids.
    sim.violations()
        .expect(&["`/value/5/SegmentStartTime`", "`/value/5/SegmentStartTime`"]);
}

#[tokio::test]
async fn repeated_segment_ids_are_all_kept() {
    let sim = start().await;
    let span = (at("2025-03-01T10:00:00Z"), at("2025-03-01T10:00:30Z"));
    sim.add_segment(SimSegment::outbound(
        7,
        1,
        span,
        "101",
        "+15551234567",
        false,
    ));
    sim.add_segment(SimSegment::internal(7, 2, span, "101", "102", true));
    let token = token(&sim).await;
    let body = get_json(&sim, &token, "/CallHistoryView?$filter=SegmentId%20eq%207").await;
    assert_eq!(segment_ids(&body), [7, 7]);
}

#[tokio::test]
async fn bad_options_are_400_odata_errors_naming_the_problem() {
    let sim = start().await;
    let token = token(&sim).await;
    let cases = [
        ("/CallHistoryView?$filter=Nope%20eq%201", "'Nope'"),
        ("/CallHistoryView?$filter=SegmentId%20eq", "Syntax error"),
        (
            "/CallHistoryView?$filter=SegmentStartTime%20gt%20'2025-03-01'",
            "incompatible types",
        ),
        (
            "/CallHistoryView?$filter=SegmentStartTime%20gt%202025-03-01T10:00:00+01:00",
            "DateTimeOffset",
        ),
        ("/CallHistoryView?$orderby=Nope%20asc", "'Nope'"),
        (
            "/CallHistoryView?$orderby=SegmentId%20sideways",
            "Syntax error",
        ),
        ("/CallHistoryView?$top=-5", "$top"),
        ("/CallHistoryView?$select=SegmentId,Nope", "'Nope'"),
    ];
    for (path, needle) in cases {
        let error = get_error(&sim, &token, path, 400).await;
        assert_eq!(error["code"], "BadRequest");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(needle), "{path}: {message}");
    }
    sim.violations().expect(&["`$top`: -5"]);
}

#[tokio::test]
async fn a_top_above_the_limit_is_refused_as_v20_does() {
    let sim = ThreeCxSim::start(crate::threecx::ThreeCxConfig::default())
        .await
        .unwrap();
    seed(&sim);
    let token = token(&sim).await;
    let body = get_json(&sim, &token, "/CallHistoryView?$top=100&$count=true").await;
    assert_eq!(segment_ids(&body).len(), 5);
    let error = get_error(&sim, &token, "/CallHistoryView?$top=101", 400).await;
    assert_eq!(error["target"], "$top", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("limit of '100'"),
        "{error}"
    );
}
