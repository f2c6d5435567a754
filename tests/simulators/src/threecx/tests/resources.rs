//! Users, recordings, active calls, licence, unknown paths.

use reqwest::Client;

use super::{at, get, get_error, get_json, start, token};
use crate::threecx::{
    SegmentWrites, SimActiveCall, SimParty, SimRecording, SimSegment, SimUser, silent_wav,
};

#[tokio::test]
async fn download_recording_serves_wav_bytes_and_end_time_marks_final() {
    let sim = start().await;
    let mut seg = SimSegment::inbound(
        5,
        50,
        (at("2025-03-01T10:00:00Z"), at("2025-03-01T10:02:00Z")),
        "+441234567890",
        "101",
        true,
    );
    seg.dst.rec_id = Some(3301);
    let audio = silent_wav(250);
    sim.add_recording(SimRecording::from_segment(3301, &seg, audio.clone()).in_progress());
    sim.add_segment(seg);
    let token = token(&sim).await;

    let body = get_json(&sim, &token, "/Recordings?$filter=Id%20eq%203301&$top=1").await;
    let rec = &body["value"][0];
    assert!(rec["EndTime"].is_null());
    assert_eq!(rec["StartTime"], "2025-03-01T10:00:00Z");
    assert_eq!(rec["CallType"], "InboundExternal");
    assert_eq!(
        (
            rec["FromDn"].as_str(),
            rec["ToDn"].as_str(),
            rec["ToCallerNumber"].as_str()
        ),
        (Some("10000"), Some("101"), Some("101"))
    );
    assert_eq!(
        (
            rec["FromIdParticipant"].as_i64(),
            rec["ToIdParticipant"].as_i64(),
            rec["RefParticipantId"].as_i64()
        ),
        (Some(51), Some(52), Some(52))
    );

    sim.finalise_recording(3301, at("2025-03-01T10:02:00Z"));
    let body = get_json(&sim, &token, "/Recordings?$filter=EndTime%20ne%20null").await;
    assert_eq!(body["value"][0]["EndTime"], "2025-03-01T10:02:00Z");

    let resp = get(
        &sim,
        &token,
        "/Recordings/Pbx.DownloadRecording(recId=3301)",
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/x-wav");
    assert_eq!(
        resp.headers()["content-length"],
        audio.len().to_string().as_str()
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), audio.as_slice());

    let url = format!(
        "{}/Recordings/Pbx.DownloadRecording(recId=3301)?access_token={token}",
        sim.api_url()
    );
    let resp = Client::new().get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().len(), audio.len());

    let error = get_error(
        &sim,
        &token,
        "/Recordings/Pbx.DownloadRecording(recId=9999)",
        404,
    )
    .await;
    assert!(error["message"].as_str().unwrap().contains("9999"));
    get_error(
        &sim,
        &token,
        "/Recordings/Pbx.DownloadRecording(recId=abc)",
        400,
    )
    .await;
    sim.violations().expect(&["`recId`: \"abc\""]);
}

#[tokio::test]
async fn users_list_select_and_lookup_by_number() {
    let sim = start().await;
    sim.add_user(SimUser::new(8, "102", "Bob", "Jones", "bob@example.com"));
    sim.add_user(SimUser::new(
        7,
        "101",
        "Alice",
        "Smith",
        "alice@example.com",
    ));
    let token = token(&sim).await;
    let body = get_json(&sim, &token, "/Users?$select=Id,Number,FirstName,LastName,EmailAddress,DisplayName&$orderby=Number%20asc&$top=100&$skip=0").await;
    let users = body["value"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["Number"], "101");
    assert_eq!(users[0]["DisplayName"], "Alice Smith");
    assert_eq!(users[0].as_object().unwrap().len(), 6);

    let user = get_json(&sim, &token, "/Users(Number='102')").await;
    assert_eq!(
        (user["Id"].as_i64(), user["EmailAddress"].as_str()),
        (Some(8), Some("bob@example.com"))
    );
    assert!(
        user["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("#Users/$entity")
    );
    assert_eq!(get_json(&sim, &token, "/Users(7)").await["Number"], "101");
    get_error(&sim, &token, "/Users(Number='999')", 404).await;
    let by_email = get_json(
        &sim,
        &token,
        "/Users?$filter=EmailAddress%20eq%20'alice@example.com'",
    )
    .await;
    assert_eq!(by_email["value"][0]["Id"], 7);
}

#[tokio::test]
async fn active_calls_appear_and_disappear() {
    let sim = start().await;
    let token = token(&sim).await;
    sim.add_active_call(SimActiveCall {
        id: 77,
        caller: "101 Alice Smith".into(),
        callee: "+15551234567".into(),
        status: "Talking".into(),
        established_at: at("2025-03-01T10:00:00Z"),
    });
    let body = get_json(&sim, &token, "/ActiveCalls?$orderby=EstablishedAt%20asc").await;
    let call = &body["value"][0];
    assert_eq!(
        (call["Id"].as_i64(), call["Status"].as_str()),
        (Some(77), Some("Talking"))
    );
    assert_eq!(call["EstablishedAt"], "2025-03-01T10:00:00Z");
    assert!(call["ServerNow"].as_str().unwrap().ends_with('Z'));
    sim.remove_active_call(77);
    let body = get_json(&sim, &token, "/ActiveCalls").await;
    assert_eq!(body["value"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_pbx_clock_set_back_is_its_server_now_and_its_hang_up_time() {
    let sim = start().await;
    let token = token(&sim).await;
    let then = at("2025-03-01T10:00:00Z");
    sim.set_clock(then.timestamp_millis());
    let leg = SimSegment::new(
        5,
        77,
        (
            then - chrono::Duration::seconds(30),
            then - chrono::Duration::seconds(20),
        ),
        SimParty::external("+15551234567", 0),
        SimParty::extension("101", "Alice Smith", 0),
        true,
    );
    sim.begin_call(
        SimActiveCall {
            id: 77,
            caller: "+15551234567".into(),
            callee: "101 Alice Smith".into(),
            status: "Talking".into(),
            established_at: then - chrono::Duration::seconds(30),
        },
        vec![leg],
        SegmentWrites::AtCallEnd,
    );
    let body = get_json(&sim, &token, "/ActiveCalls").await;
    let server_now = at(body["value"][0]["ServerNow"].as_str().unwrap());
    // The set time plus the moments this test took, not today.
    assert!((then..then + chrono::Duration::minutes(1)).contains(&server_now));
    sim.end_call(77, true);
    let written = sim.written_segments();
    assert_eq!(written.len(), 1);
    assert!((then..then + chrono::Duration::minutes(1)).contains(&written[0].end));
}

#[tokio::test]
async fn licence_edition_and_unknown_paths() {
    let sim = start().await;
    let token = token(&sim).await;
    let licence = get_json(&sim, &token, "/Defs/Pbx.GetLicenseParameters()").await;
    assert_eq!(licence["IsEnterprise"], true);
    sim.set_enterprise(false);
    let licence = get_json(&sim, &token, "/Defs/Pbx.GetLicenseParameters()").await;
    assert_eq!(
        (
            licence["IsEnterprise"].as_bool(),
            licence["IsProfessional"].as_bool()
        ),
        (Some(false), Some(true))
    );
    let status = get_json(
        &sim,
        &token,
        "/LicenseStatus?$select=LicenseActive,ProductCode",
    )
    .await;
    assert_eq!(status["LicenseActive"], true);
    assert!(status.get("LicenseKey").is_none());

    get_error(&sim, &token, "/NoSuchEntitySet", 404).await;
    get_error(&sim, &token, "/Defs/Pbx.Nothing()", 404).await;
    let resp = Client::new()
        .get(format!("{}/elsewhere", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    sim.violations()
        .expect(&["NoSuchEntitySet", "Pbx.Nothing()", "/elsewhere"]);
}

/// NOTES.md §8: pages read without a unique `$orderby` are unstable on v20.
/// Read in three pages without one, 250 users come back with some twice
/// and some missing (the chance that three shuffled pages still split
/// them exactly is about 1 in 10^118); with `$orderby=Number`, each once.
#[tokio::test]
async fn pages_without_a_unique_order_are_unstable_and_with_one_are_exact() {
    let sim = start().await;
    for i in 0..250 {
        sim.add_user(SimUser::new(
            1000 + i,
            &format!("{}", 1000 + i),
            "User",
            &format!("{i}"),
            &format!("u{i}@example.com"),
        ));
    }
    let token = token(&sim).await;
    let read = |order: &'static str| {
        let sim = sim.clone();
        let token = token.clone();
        async move {
            let mut numbers = Vec::new();
            for skip in [0, 100, 200] {
                let page = get_json(
                    &sim,
                    &token,
                    &format!("/Users?$select=Number{order}&$top=100&$skip={skip}"),
                )
                .await;
                numbers.extend(
                    page["value"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|u| u["Number"].as_str().unwrap().to_owned()),
                );
            }
            numbers.sort();
            numbers
        }
    };
    let all: Vec<String> = (0..250).map(|i| format!("{}", 1000 + i)).collect();
    assert_eq!(read("&$orderby=Number").await, all);
    let unordered = read("").await;
    assert_eq!(unordered.len(), 250);
    assert_ne!(
        unordered, all,
        "three unordered pages split the users exactly"
    );
}
