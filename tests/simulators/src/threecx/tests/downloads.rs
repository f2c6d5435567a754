//! Recordings that finalise after a delay, synthetic audio, broken downloads.

use std::time::Duration;

use reqwest::Response;

use super::{at, get, get_json, start, token};
use crate::threecx::{SimRecording, SimSegment, ThreeCxSim, silent_wav, synthetic_wav};

/// A recording of a two-minute inbound call, with a little stored audio.
fn recording(id: i32) -> SimRecording {
    let seg = SimSegment::inbound(
        5,
        50,
        (at("2025-03-01T10:00:00Z"), at("2025-03-01T10:02:00Z")),
        "+441234567890",
        "101",
        true,
    );
    SimRecording::from_segment(id, &seg, silent_wav(100))
}

async fn end_time(sim: &ThreeCxSim, token: &str, id: i32) -> serde_json::Value {
    let body = get_json(sim, token, &format!("/Recordings?$filter=Id%20eq%20{id}")).await;
    assert_eq!(body["value"].as_array().map(Vec::len), Some(1), "{body}");
    body["value"][0]["EndTime"].clone()
}

async fn download(sim: &ThreeCxSim, token: &str, id: i32) -> Response {
    get(
        sim,
        token,
        &format!("/Recordings/Pbx.DownloadRecording(recId={id})"),
    )
    .await
}

/// Reads a body chunk by chunk: the bytes received, and whether it ended
/// with an error rather than cleanly.
async fn drain(mut resp: Response) -> (u64, bool) {
    let mut received = 0u64;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => received += chunk.len() as u64,
            Ok(None) => return (received, false),
            Err(_) => return (received, true),
        }
    }
}

#[tokio::test]
async fn finalising_after_a_delay_is_evaluated_at_request_time() {
    let sim = start().await;
    let token = token(&sim).await;
    sim.add_recording_finalising_after(recording(1), Duration::ZERO);
    sim.add_recording_finalising_after(recording(2).in_progress(), Duration::ZERO);
    sim.add_recording_finalising_after(recording(3), Duration::from_secs(3600));
    sim.add_recording_finalising_after(recording(4), Duration::MAX);

    assert_eq!(end_time(&sim, &token, 1).await, "2025-03-01T10:02:00Z");
    // Without an end of its own it ends when it started.
    assert_eq!(end_time(&sim, &token, 2).await, "2025-03-01T10:00:00Z");
    assert!(end_time(&sim, &token, 3).await.is_null());
    assert!(end_time(&sim, &token, 4).await.is_null());
    let pending = get_json(&sim, &token, "/Recordings?$filter=EndTime%20eq%20null").await;
    assert_eq!(pending["value"].as_array().map(Vec::len), Some(2));

    // Still downloadable while being written; an explicit finalise wins.
    assert_eq!(download(&sim, &token, 3).await.status(), 200);
    sim.finalise_recording(3, at("2025-03-01T10:05:00Z"));
    assert_eq!(end_time(&sim, &token, 3).await, "2025-03-01T10:05:00Z");
}

#[tokio::test]
async fn synthetic_audio_has_exact_length_and_wav_header() {
    let sim = start().await;
    let token = token(&sim).await;
    sim.add_recording(recording(7));
    let len = 3 * 64 * 1024 + 1001;
    sim.set_synthetic_audio(7, len);

    let resp = download(&sim, &token, 7).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/x-wav");
    assert_eq!(resp.headers()["content-length"], len.to_string().as_str());
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len() as u64, len);
    let le32 = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().unwrap());
    let le16 = |at: usize| u16::from_le_bytes(body[at..at + 2].try_into().unwrap());
    assert_eq!(
        (&body[0..4], &body[8..16]),
        (&b"RIFF"[..], &b"WAVEfmt "[..])
    );
    assert_eq!(u64::from(le32(4)), len - 8);
    assert_eq!((le16(20), le16(22), le32(24), le16(34)), (1, 1, 8000, 16));
    assert_eq!(
        (&body[36..40], u64::from(le32(40))),
        (&b"data"[..], len - 44)
    );
    assert_eq!(body.as_ref(), synthetic_wav(len).as_slice());
    // Deterministic: a second download is byte for byte the same.
    let again = download(&sim, &token, 7).await.bytes().await.unwrap();
    assert_eq!(again, body);
}

#[tokio::test]
async fn broken_download_is_a_body_error_and_the_next_one_succeeds() {
    let sim = start().await;
    let token = token(&sim).await;
    sim.add_recording(recording(8));
    sim.set_synthetic_audio(8, 1_000_000);
    sim.fail_downloads(8, 100_000, 1);

    let resp = download(&sim, &token, 8).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "1000000");
    let (received, broken) = drain(resp).await;
    assert_eq!((received, broken), (100_000, true), "a broken body");

    let (received, broken) = drain(download(&sim, &token, 8).await).await;
    assert_eq!((received, broken), (1_000_000, false));

    // Stored audio breaks off the same way; failures queue per recording.
    sim.add_recording(recording(9));
    sim.fail_downloads(9, 10, 2);
    for _ in 0..2 {
        let resp = download(&sim, &token, 9).await;
        assert_eq!(resp.headers()["content-length"], "1644");
        assert_eq!(drain(resp).await, (10, true));
    }
    let body = download(&sim, &token, 9).await.bytes().await.unwrap();
    assert_eq!(body.as_ref(), silent_wav(100).as_slice());
}

#[tokio::test]
async fn download_count_counts_requests_per_recording() {
    let sim = start().await;
    let token = token(&sim).await;
    sim.add_recording(recording(10));
    sim.add_recording(recording(100));
    assert_eq!(sim.download_count(10), 0);
    for _ in 0..3 {
        download(&sim, &token, 10).await.bytes().await.unwrap();
    }
    download(&sim, &token, 100).await.bytes().await.unwrap();
    // Rejected requests arrived too.
    assert_eq!(download(&sim, "not-a-token", 10).await.status(), 401);
    assert_eq!(download(&sim, &token, 11).await.status(), 404);
    assert_eq!(sim.download_count(10), 4);
    assert_eq!(sim.download_count(100), 1);
    assert_eq!(sim.download_count(11), 1);
    assert_eq!(sim.download_count(12), 0);
}

/// The resident set size of this process in KiB (Linux).
#[cfg(target_os = "linux")]
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn hundred_megabytes_stream_without_buffering() {
    let sim = start().await;
    let token = token(&sim).await;
    sim.add_recording(recording(12));
    let len = 100_000_000;
    sim.set_synthetic_audio(12, len);
    let before = rss_kib();
    let resp = download(&sim, &token, 12).await;
    assert_eq!(resp.headers()["content-length"], "100000000");
    assert_eq!(drain(resp).await, (len, false));
    // Neither side held the body: growth far below its 100 MB (other tests
    // running in parallel allocate a little too).
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 40_000, "RSS grew by {grown} KiB");
}

/// The transcription fields of recording `id` as `ListRecording` serves them.
async fn transcription(sim: &ThreeCxSim, token: &str, id: i32) -> serde_json::Value {
    let body = get_json(
        sim,
        token,
        &format!(
            "/Recordings?$filter=Id%20eq%20{id}&$select=Id,CanBeTranscribed,IsTranscribed,TranscriptionResult,Transcription,Summary,SentimentScore"
        ),
    )
    .await;
    body["value"][0].clone()
}

#[tokio::test]
async fn transcriptions_come_after_a_delay_fail_or_never_come() {
    use crate::threecx::SimTranscription;
    let sim = start().await;
    let token = token(&sim).await;
    for id in 1..=4 {
        sim.add_recording(recording(id));
    }
    sim.set_transcription(
        1,
        SimTranscription::Transcribed {
            after: Duration::ZERO,
            summary: Some("asked for a quote".into()),
            transcription: Some("Hello.".into()),
            sentiment_score: Some(6),
        },
    );
    sim.set_transcription(
        2,
        SimTranscription::Transcribed {
            after: Duration::from_secs(3600),
            summary: Some("later".into()),
            transcription: None,
            sentiment_score: None,
        },
    );
    sim.set_transcription(
        3,
        SimTranscription::Fails {
            after: Duration::ZERO,
            result: 2,
        },
    );
    // 4: no plan, as a PBX without transcription serves it.

    let done = transcription(&sim, &token, 1).await;
    assert_eq!(done["CanBeTranscribed"], true);
    assert_eq!(done["IsTranscribed"], true);
    assert_eq!(done["TranscriptionResult"], 0);
    assert_eq!(done["Summary"], "asked for a quote");
    assert_eq!(done["SentimentScore"], 6);
    let waiting = transcription(&sim, &token, 2).await;
    assert_eq!(waiting["CanBeTranscribed"], true);
    assert_eq!(waiting["IsTranscribed"], false);
    assert!(waiting["Summary"].is_null(), "{waiting}");
    let failed = transcription(&sim, &token, 3).await;
    assert_eq!(failed["IsTranscribed"], false);
    assert_eq!(failed["TranscriptionResult"], 2);
    let none = transcription(&sim, &token, 4).await;
    assert_eq!(none["CanBeTranscribed"], false);
    assert!(sim.violations().take().is_empty());
}
