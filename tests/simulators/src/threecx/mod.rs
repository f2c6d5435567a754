//! # 3CX v20 XAPI simulator
//!
//! A loopback HTTP server that behaves like the parts of the 3CX v20
//! Configuration API (XAPI) that ConnectZero reads, following
//! `shared/specs/3cx/swagger.yaml` (20.0.10) and `shared/specs/3cx/NOTES.md`:
//!
//! | Path | operationId |
//! |---|---|
//! | `POST /connect/token` | OAuth 2 client credentials |
//! | `GET /xapi/v1/CallHistoryView` | `ListCallHistoryView` |
//! | `GET /xapi/v1/ReportCallLogData/Pbx.GetCallLogData(...)` | `GetCallLogData` |
//! | `GET /xapi/v1/Users`, `GET /xapi/v1/Users(Number='101')`, `GET /xapi/v1/Users(5)` | `ListUser`, `GetUserByNumber`, `GetUser` |
//! | `GET /xapi/v1/Recordings` | `ListRecording` |
//! | `GET /xapi/v1/Recordings/Pbx.DownloadRecording(recId=N)` | `DownloadRecording` |
//! | `GET /xapi/v1/ActiveCalls` | `ListActiveCall` |
//! | `GET /xapi/v1/Defs/Pbx.GetLicenseParameters()` | `GetLicenseParameters` |
//! | `GET /xapi/v1/LicenseStatus` | `GetLicenseStatus` |
//!
//! Collections support the OData subset implemented in `odata`: `$filter`
//! (`eq ne gt ge lt le`, `and or not`, parentheses), `$orderby`, `$top` (at most
//! [`ThreeCxConfig::page_size_cap`], 100 as on v20: more is a 400), `$skip`, `$count` and `$select`.
//! `$search`, `$expand` and `$format` are accepted and ignored.
//!
//! Conventions the spec leaves open (all **assumed**, see [`types`]):
//! `*DnType` is [`DN_TYPE_EXTENSION`] (0) for extensions,
//! [`DN_TYPE_EXTERNAL_LINE`] (1) for external lines, and 2 / 4 / 5 / 6 for
//! ring groups, queues, voicemail and IVRs (see [`types`]); `CallLogData.Direction` is
//! `"Internal"` when both parties are internal, `"Inbound"` when the source is
//! external, `"Outbound"` otherwise.
//!
//! Tests script it through [`ThreeCxSim`]: add users, segments and recordings,
//! rotate credentials, expire tokens, inject faults, then count requests.
//! Recordings can finalise after a delay
//! ([`ThreeCxSim::add_recording_finalising_after`]), serve large generated
//! audio without holding it in memory ([`ThreeCxSim::set_synthetic_audio`])
//! and break their downloads off ([`ThreeCxSim::fail_downloads`]).

mod audio;
mod auth;
mod calllog;
mod convert;
mod download;
mod duration;
mod error;
mod functions;
mod model;
mod odata;
mod routes;
mod schema;
mod state;
pub mod transcription;
pub mod types;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::server::ServerTask;
use crate::spec::Violations;
use chrono::{DateTime, Utc};

pub use audio::synthetic_wav;
use state::{HistoryRow, PendingEnd, Shared, State, lock};
pub use transcription::SimTranscription;
pub use types::{
    DEFAULT_TRUNK_DN, DN_TYPE_END_CALL, DN_TYPE_EXTENSION, DN_TYPE_EXTERNAL_LINE, DN_TYPE_IVR,
    DN_TYPE_QUEUE, DN_TYPE_RING_GROUP, DN_TYPE_ROUTING, DN_TYPE_VOICEMAIL, Fault, SimActiveCall,
    SimParty, SimRecording, SimSegment, SimUser, silent_wav,
};

/// How the PBX writes the history rows of a call with several segments
/// (queue, then agent, then transfer target). NOTES §8 says rows appear
/// when the call ends but not whether a call's segments can appear one by
/// one; a client must be right either way, so tests play both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentWrites {
    /// Every segment of the call is written when the call ends.
    AtCallEnd,
    /// Each segment is written when it ends, while the call goes on.
    OneByOne,
}

/// Writes the segments of call `id` still held back.
fn write_segments(st: &mut State, id: i32) {
    for segment in st.in_progress.remove(&id).unwrap_or_default() {
        st.history.push(HistoryRow::Segment(Box::new(segment)));
    }
    st.generation += 1;
}

/// What the PBX does when a token is asked for while one it issued is
/// still active. NOTES §1 and §8 say "one active access token per API
/// client"; §1 assumes [ASSUMED] a new token invalidates the previous one,
/// and nothing says which reading is true, so a client must be right under
/// each and tests play each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenIssue {
    /// A new token is issued and the previous one stops working (NOTES §1's
    /// assumption).
    #[default]
    Replace,
    /// The active token is answered again, `expires_in` being what it has
    /// left.
    ReturnActive,
    /// The request is refused (400 `invalid_request`, [ASSUMED] wording)
    /// until the active token expires.
    RefuseWhileActive,
    /// Every token works until it expires (no "one active token" at all).
    Coexist,
}

/// Settings of one simulated PBX.
#[derive(Clone, Debug)]
pub struct ThreeCxConfig {
    /// The API client id (the DN entered under Admin > Integrations > API).
    pub client_id: String,
    /// The API key shown once when the client is created.
    pub client_secret: String,
    /// `expires_in` of issued tokens, in seconds (3CX 20.0.9+ uses seconds).
    pub token_lifetime_secs: u64,
    /// The largest `$top` accepted; a larger one is answered 400, as v20
    /// does at 100 (NOTES §8).
    pub page_size_cap: usize,
    /// What a token request does while a token is active.
    pub token_issue: TokenIssue,
}

impl Default for ThreeCxConfig {
    fn default() -> Self {
        Self {
            client_id: "connectzero".to_owned(),
            client_secret: "sim-3cx-secret".to_owned(),
            token_lifetime_secs: 3600,
            page_size_cap: 100,
            token_issue: TokenIssue::default(),
        }
    }
}

/// Handle to a running 3CX XAPI simulator. Cheap to clone; all clones share
/// the same state. The server stops when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct ThreeCxSim {
    state: Shared,
    addr: SocketAddr,
    violations: Violations,
    _server: Arc<ServerTask>,
}

impl ThreeCxSim {
    /// Binds `127.0.0.1:0` and serves the simulator on a tokio task.
    pub async fn start(config: ThreeCxConfig) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let state: Shared = Arc::new(Mutex::new(State::new(config, base_url)));
        let violations = Violations::default();
        let app = routes::router(state.clone(), violations.clone());
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(%err, "3CX simulator stopped");
            }
        });
        Ok(Self {
            state,
            addr,
            violations: violations.clone(),
            _server: Arc::new(ServerTask { task, violations }),
        })
    }

    /// Requests and answers of this simulator that broke the official
    /// document (see [`Violations`]).
    pub fn violations(&self) -> &Violations {
        &self.violations
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash. The API lives at
    /// `{base}/xapi/v1` and the token endpoint at `{base}/connect/token`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `{base}/xapi/v1`.
    pub fn api_url(&self) -> String {
        format!("{}/xapi/v1", self.base_url())
    }

    /// `{base}/connect/token`.
    pub fn token_url(&self) -> String {
        format!("{}/connect/token", self.base_url())
    }

    /// Adds a user (extension); replaces an existing user with the same `id`.
    pub fn add_user(&self, user: SimUser) {
        let mut st = lock(&self.state);
        match st.users.iter_mut().find(|u| u.id == user.id) {
            Some(existing) => *existing = user,
            None => st.users.push(user),
        }
        st.generation += 1;
    }

    /// Adds one call-history row (a leg). Segment ids may repeat (a PBX
    /// restored from backup reissues ids); every row is kept and served.
    pub fn add_segment(&self, segment: SimSegment) {
        let mut st = lock(&self.state);
        st.history.push(HistoryRow::Segment(Box::new(segment)));
        st.generation += 1;
    }

    /// Adds a row served as-is by `CallHistoryView` (for malformed-row tests).
    /// Filters never match it on fields it lacks, and it sorts last on them.
    pub fn add_raw_call_history_row(&self, row: serde_json::Value) {
        let mut st = lock(&self.state);
        st.history.push(HistoryRow::Raw(row));
        st.generation += 1;
    }

    /// Adds a recording; replaces an existing recording with the same `id`.
    pub fn add_recording(&self, rec: SimRecording) {
        lock(&self.state).put_recording(rec, None);
    }

    /// Adds a recording (replacing one with the same `id`) that `ListRecording`
    /// serves at once with `EndTime: null` (still being written) until `delay`
    /// has passed since this call, and from then on with `EndTime` =
    /// `rec.end`, or `rec.start` if that is `None`. Evaluated when a request
    /// reads recordings: no timer runs. The audio is downloadable throughout.
    pub fn add_recording_finalising_after(&self, mut rec: SimRecording, delay: Duration) {
        let end = rec.end.take().unwrap_or(rec.start);
        let pending = PendingEnd {
            at: Instant::now().checked_add(delay),
            end,
        };
        lock(&self.state).put_recording(rec, Some(pending));
    }

    /// From now on 3CX transcribes recording `id` as `plan` says (delay,
    /// failure or never). Unknown ids are ignored.
    pub fn set_transcription(&self, id: i32, plan: SimTranscription) {
        let mut st = lock(&self.state);
        if let Some(rec) = st.recordings.iter_mut().find(|r| r.meta.id == id) {
            rec.transcription = Some((Instant::now(), plan));
        }
    }

    /// Sets `EndTime` of a recording, marking it final (and cancelling a
    /// pending finalisation). Unknown ids are ignored.
    pub fn finalise_recording(&self, id: i32, end_time: DateTime<Utc>) {
        let mut st = lock(&self.state);
        if let Some(rec) = st.recordings.iter_mut().find(|r| r.meta.id == id) {
            rec.meta.end = Some(end_time);
            rec.pending_end = None;
        }
    }

    /// From now on `DownloadRecording(recId=id)` serves exactly `len` bytes
    /// of generated audio instead of the recording's own bytes: the
    /// [`synthetic_wav`] of `len`, streamed in 64 KiB chunks and never held
    /// whole in memory (a 100 MB download costs the simulator kilobytes).
    /// `Content-Length` is `len`, `Content-Type` `audio/x-wav`. The recording
    /// must still exist (see [`add_recording`](Self::add_recording)):
    /// otherwise the download is a 404.
    pub fn set_synthetic_audio(&self, id: i32, len: u64) {
        lock(&self.state).synthetic_audio.insert(id, len);
    }

    /// Makes the next `count` downloads of recording `id` that would succeed
    /// send the status line, the headers (with the full `Content-Length`)
    /// and `after_bytes` bytes of the body, then abort the response: the
    /// client sees a truncated, broken body, not a clean end. `after_bytes`
    /// should be less than the body's length (otherwise that download ends
    /// normally and still uses the failure up). Queued after failures
    /// injected earlier for the same id; independent of
    /// [`inject_failures`](Self::inject_failures).
    pub fn fail_downloads(&self, id: i32, after_bytes: u64, count: usize) {
        lock(&self.state)
            .download_failures
            .entry(id)
            .or_default()
            .extend(std::iter::repeat_n(after_bytes, count));
    }

    /// How many `DownloadRecording` requests for recording `id` arrived,
    /// whatever their outcome (rejected, faulted, broken off or served).
    pub fn download_count(&self, id: i32) -> usize {
        lock(&self.state)
            .request_log
            .iter()
            .filter(|path| download::requested_rec_id(path) == Some(id))
            .count()
    }

    /// Adds a call to `ActiveCalls`; replaces one with the same `id`.
    pub fn add_active_call(&self, call: SimActiveCall) {
        let mut st = lock(&self.state);
        st.active_calls.retain(|c| c.id != call.id);
        st.active_calls.push(call);
    }

    /// Removes a call from `ActiveCalls` (the call ended).
    pub fn remove_active_call(&self, id: i32) {
        lock(&self.state).active_calls.retain(|c| c.id != id);
    }

    /// A call begins, as the live PBX shows one: it is listed in
    /// `ActiveCalls` from now on, and its history rows are written only as
    /// its segments end (NOTES §8: "rows appear when the call ends").
    /// `segments` are the call's segments in order; `writes` says whether
    /// 3CX writes them all when the call ends, or each one as it ends
    /// (whether the live system does the latter is not documented, so the
    /// simulator plays both). Under [`SegmentWrites::OneByOne`] every
    /// segment but the last is written at once (they have ended: the call
    /// is on its last one); [`end_call`](Self::end_call) writes the rest.
    pub fn begin_call(
        &self,
        active: SimActiveCall,
        segments: Vec<SimSegment>,
        writes: SegmentWrites,
    ) {
        let mut st = lock(&self.state);
        let mut pending = segments;
        if writes == SegmentWrites::OneByOne && pending.len() > 1 {
            let last = pending.split_off(pending.len() - 1);
            for segment in pending {
                st.history.push(HistoryRow::Segment(Box::new(segment)));
            }
            st.generation += 1;
            pending = last;
        }
        st.in_progress.insert(active.id, pending);
        st.active_calls.retain(|c| c.id != active.id);
        st.active_calls.push(active);
    }

    /// The call `id` begun with [`begin_call`](Self::begin_call) hangs up
    /// now: in one step it leaves `ActiveCalls` and its unwritten segments
    /// are written, the last one ending now (its `SegmentEndTime`, and its
    /// talk time, run to the hang-up). With `rows_written` false it only
    /// leaves `ActiveCalls`: the rows follow when
    /// [`write_ended_call`](Self::write_ended_call) is called, as when the
    /// PBX writes its history a moment after the call is gone.
    pub fn end_call(&self, id: i32, rows_written: bool) {
        let mut st = lock(&self.state);
        st.active_calls.retain(|c| c.id != id);
        let now = st.now();
        if let Some(last) = st.in_progress.get_mut(&id).and_then(|s| s.last_mut()) {
            last.end = last.end.max(now);
        }
        if rows_written {
            write_segments(&mut st, id);
        }
    }

    /// Writes the rows of call `id` that [`end_call`](Self::end_call) left
    /// unwritten.
    pub fn write_ended_call(&self, id: i32) {
        write_segments(&mut lock(&self.state), id);
    }

    /// Every segment 3CX has written to its call history so far, in the
    /// order written.
    pub fn written_segments(&self) -> Vec<SimSegment> {
        lock(&self.state).segments().cloned().collect()
    }

    /// Sets the PBX's clock (its `ServerNow`, and the hang-up time
    /// [`end_call`](Self::end_call) writes) to read `at_ms` now and run on
    /// from there: a test resuming a run recorded earlier keeps the PBX on
    /// that run's time, as the host's clock is.
    pub fn set_clock(&self, at_ms: i64) {
        lock(&self.state).clock_ahead_ms = at_ms - Utc::now().timestamp_millis();
    }

    /// Rotates the API key. Tokens already issued stay valid until they
    /// expire, are replaced or [`expire_tokens`](Self::expire_tokens) is called.
    pub fn set_client_secret(&self, secret: &str) {
        lock(&self.state).config.client_secret = secret.to_owned();
    }

    /// Invalidates every issued token: API calls answer 401 until a new token
    /// is requested.
    pub fn expire_tokens(&self) {
        let mut st = lock(&self.state);
        st.token = None;
        st.coexisting.clear();
    }

    /// Moves the active token's expiry to `left` from now, as if it had
    /// been issued that much earlier (the simulator's clock for tokens).
    pub fn age_active_token(&self, left: std::time::Duration) {
        if let Some(token) = lock(&self.state).token.as_mut() {
            token.expires_at = std::time::Instant::now() + left;
        }
    }

    /// Changes what a token request does while a token is active.
    pub fn set_token_issue(&self, issue: TokenIssue) {
        lock(&self.state).config.token_issue = issue;
    }

    /// Tokens issued so far (a token answered again counts once).
    pub fn tokens_issued(&self) -> usize {
        lock(&self.state).tokens_issued
    }

    /// Makes the next `count` API requests (under `/xapi/`, not the token
    /// endpoint) fail with `fault`. Queued after faults injected earlier.
    pub fn inject_failures(&self, fault: Fault, count: usize) {
        let mut st = lock(&self.state);
        st.faults.extend(std::iter::repeat_n(fault, count));
    }

    /// Models an API role below System Owner: `CallHistoryView`,
    /// `GetCallLogData`, `Recordings` and `DownloadRecording` answer 403.
    pub fn set_forbidden(&self, forbidden: bool) {
        lock(&self.state).forbidden = forbidden;
    }

    /// Models an API role that may read call history but not recordings:
    /// only `Recordings` and `DownloadRecording` answer 403.
    pub fn forbid_recordings(&self, forbidden: bool) {
        lock(&self.state).recordings_forbidden = forbidden;
    }

    /// Whether `ListRecording` lists recording `id` (default: yes). Models
    /// a PBX that lists a recording only a while after the call's history
    /// rows appear; `DownloadRecording` is unaffected.
    pub fn set_recording_listed(&self, id: i32, listed: bool) {
        let mut state = lock(&self.state);
        if listed {
            state.unlisted_recordings.remove(&id);
        } else {
            state.unlisted_recordings.insert(id);
        }
    }

    /// Sets `IsEnterprise` of `GetLicenseParameters` (default `true`).
    pub fn set_enterprise(&self, enterprise: bool) {
        lock(&self.state).enterprise = enterprise;
    }

    /// How many requests so far had a path starting with `path_prefix`
    /// (the raw, percent-encoded path, e.g. `"/xapi/v1/CallHistoryView"`).
    pub fn request_count(&self, path_prefix: &str) -> usize {
        let st = lock(&self.state);
        st.request_log
            .iter()
            .filter(|p| p.starts_with(path_prefix))
            .count()
    }

    /// How many requests reached `/connect/token`, successful or not.
    pub fn token_requests(&self) -> usize {
        self.request_count("/connect/token")
    }
}
