//! `GetCallLogData`: the call log report, grouped by call.

use chrono::TimeDelta;
use serde_json::Value;

use super::{at, get_error, get_json, start, token};
use crate::threecx::{SimParty, SimSegment, ThreeCxSim};

fn report(from: &str, to: &str) -> String {
    format!(
        "/ReportCallLogData/Pbx.GetCallLogData(periodFrom={from},periodTo={to},sourceType=0,sourceFilter='',destinationType=0,destinationFilter='',callsType=0,callTimeFilterType=0,callTimeFilterFrom='0:00:0',callTimeFilterTo='0:00:0',hidePcalls=true)"
    )
}

/// Call 900: an inbound call ringing 100 (unanswered), then answered by 101.
/// Call 901: an outbound call that starts between them. Call 902 is outside the period.
fn seed(sim: &ThreeCxSim) {
    let t0 = at("2025-03-01T10:00:00Z");
    let span = |from: i64, secs: i64| {
        (
            t0 + TimeDelta::seconds(from),
            t0 + TimeDelta::seconds(from + secs),
        )
    };
    sim.add_segment(SimSegment::inbound(
        3,
        900,
        span(20, 95),
        "+441234567890",
        "101",
        true,
    ));
    sim.add_segment(SimSegment::outbound(
        2,
        901,
        span(10, 30),
        "102",
        "+15551234567",
        true,
    ));
    let mut ringing = SimSegment::inbound(1, 900, span(0, 20), "+441234567890", "100", false);
    ringing.src = SimParty::external("+441234567890", 11).with_recording(3301);
    sim.add_segment(ringing);
    sim.add_segment(SimSegment::internal(
        4,
        902,
        (at("2025-03-02T00:00:00Z"), at("2025-03-02T00:01:00Z")),
        "101",
        "102",
        true,
    ));
}

fn column(body: &Value, key: &str) -> Vec<Value> {
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[key].clone())
        .collect()
}

#[tokio::test]
async fn rows_are_grouped_by_call_id_within_the_period() {
    let sim = start().await;
    seed(&sim);
    let token = token(&sim).await;
    let body = get_json(
        &sim,
        &token,
        &format!(
            "{}?$count=true",
            report("2025-03-01T00:00:00Z", "2025-03-02T00:00:00Z")
        ),
    )
    .await;
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#Collection(Pbx.CallLogData)")
    );
    assert_eq!(body["@odata.count"], 3);
    assert_eq!(column(&body, "CallId"), [900, 900, 901]);
    assert_eq!(column(&body, "SegmentId"), [1, 3, 2]);
    assert_eq!(column(&body, "Indent"), [0, 1, 0]);
    assert_eq!(
        column(&body, "Direction"),
        ["Inbound", "Inbound", "Outbound"]
    );
    assert_eq!(
        column(&body, "Status"),
        ["Unanswered", "Answered", "Answered"]
    );
    let first = &body["value"][0];
    assert_eq!(first["CallHistoryId"], body["value"][1]["CallHistoryId"]);
    assert_ne!(first["CdrId"], body["value"][1]["CdrId"]);
    assert_eq!(first["StartTime"], "2025-03-01T10:00:00Z");
    assert_eq!(
        (
            first["RingingDuration"].as_str(),
            first["TalkingDuration"].as_str()
        ),
        (Some("PT20S"), Some("PT0S"))
    );
    assert_eq!(
        (first["SourceDn"].as_str(), first["SourceCallerId"].as_str()),
        (Some("10000"), Some("+441234567890"))
    );
    assert_eq!(
        (
            first["DestinationDn"].as_str(),
            first["actionDnDn"].as_str()
        ),
        (Some("100"), Some("100"))
    );
    assert_eq!(first["SrcRecId"], 3301);
    assert_eq!(first["Recordings"][0]["Id"], 3301);
    assert_eq!(body["value"][1]["TalkingDuration"], "PT1M35S");
}

#[tokio::test]
async fn period_is_half_open_and_odata_options_apply() {
    let sim = start().await;
    seed(&sim);
    let token = token(&sim).await;
    // periodTo = 10:00:20 excludes segment 3, which starts exactly then.
    let body = get_json(
        &sim,
        &token,
        &report("2025-03-01T10:00:00Z", "2025-03-01T11:00:20%2B01:00"),
    )
    .await;
    assert_eq!(column(&body, "SegmentId"), [1, 2]);
    let path = format!(
        "{}?$filter=CallId%20eq%20900&$orderby=SegmentId%20desc&$select=SegmentId,CallId",
        report("2025-03-01T00:00:00Z", "2025-03-03T00:00:00Z")
    );
    let body = get_json(&sim, &token, &path).await;
    assert_eq!(column(&body, "SegmentId"), [3, 1]);
    assert_eq!(body["value"][0].as_object().unwrap().len(), 2);
}

#[tokio::test]
async fn missing_parameter_is_400_and_unknown_function_is_404() {
    let sim = start().await;
    let token = token(&sim).await;
    let full = report("2025-03-01T00:00:00Z", "2025-03-02T00:00:00Z");
    let error = get_error(&sim, &token, &full.replace(",hidePcalls=true", ""), 400).await;
    assert!(error["message"].as_str().unwrap().contains("'hidePcalls'"));
    assert_eq!(error["target"], "hidePcalls");
    let error = get_error(
        &sim,
        &token,
        &full.replace("periodFrom=2025-03-01T00:00:00Z", "periodFrom=yesterday"),
        400,
    )
    .await;
    assert!(
        error["message"].as_str().unwrap().contains("`periodFrom`"),
        "{error}"
    );
    get_error(
        &sim,
        &token,
        &full.replace("GetCallLogData", "GetNothing"),
        404,
    )
    .await;
    get_error(&sim, &token, "/ReportCallLogData/Pbx.GetCallLogData", 404).await;
    sim.violations().expect(&[
        "no operation",
        "`periodFrom`",
        "`periodFrom`",
        "no operation",
        "no operation",
    ]);
}

#[tokio::test]
async fn routing_dn_types_and_reasons_are_served_in_both_views() {
    let sim = start().await;
    let t0 = at("2025-03-01T10:00:00Z");
    let span = |from: i64, secs: i64| {
        (
            t0 + TimeDelta::seconds(from),
            t0 + TimeDelta::seconds(from + secs),
        )
    };
    let caller = SimParty::external("+441234567890", 11);
    sim.add_segment(SimSegment::new(
        1,
        910,
        span(0, 10),
        caller.clone(),
        SimParty::ivr("800", "Main IVR", 12),
        true,
    ));
    sim.add_segment(
        SimSegment::new(
            2,
            910,
            span(10, 30),
            caller,
            SimParty::queue("801", "Sales", 22),
            false,
        )
        .with_reason("Out of office hours"),
    );
    let token = token(&sim).await;
    let log = get_json(
        &sim,
        &token,
        &report("2025-03-01T00:00:00Z", "2025-03-02T00:00:00Z"),
    )
    .await;
    assert_eq!(column(&log, "DestinationType"), [6, 4]);
    assert_eq!(column(&log, "SourceType"), [1, 1]);
    assert_eq!(
        column(&log, "Reason"),
        [Value::Null, Value::from("Out of office hours")]
    );
    let history = get_json(&sim, &token, "/CallHistoryView?$orderby=SegmentId%20asc").await;
    assert_eq!(column(&history, "DstDnType"), [6, 4]);
    assert_eq!(column(&history, "DstInternal"), [true, true]);
    assert_eq!(column(&history, "DstDisplayName"), ["Main IVR", "Sales"]);
}
