//! The simulator's shared, mutable state.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use rand::Rng;

use super::types::{Fault, SimActiveCall, SimRecording, SimSegment, SimUser};
use super::{ThreeCxConfig, TokenIssue};

/// State shared by the handle and the request handlers.
pub(crate) type Shared = Arc<Mutex<State>>;

/// Locks the state, recovering from a poisoned lock (a panicking test thread
/// must not take the server down with it).
pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One row of `CallHistoryView`, in insertion order.
#[derive(Debug)]
pub(crate) enum HistoryRow {
    /// A scripted segment, rendered as a full `Pbx.CallHistoryView`.
    Segment(Box<SimSegment>),
    /// A row served verbatim.
    Raw(serde_json::Value),
}

/// A recording with its audio held as shared bytes (cloned per download
/// without copying).
#[derive(Debug)]
pub(crate) struct StoredRecording {
    /// Everything but the audio (`meta.audio` is empty).
    pub meta: SimRecording,
    /// The WAV body.
    pub audio: Bytes,
    /// Set by `add_recording_finalising_after`: `EndTime` stays null until
    /// the instant (never, if `None`), then becomes the given time.
    pub pending_end: Option<PendingEnd>,
    /// How 3CX transcribes it, and since when (`set_transcription`).
    pub transcription: Option<(Instant, super::transcription::SimTranscription)>,
}

/// A recording that finalises by itself once an instant has passed.
#[derive(Debug)]
pub(crate) struct PendingEnd {
    /// When `EndTime` appears; `None` if the delay overflowed (never).
    pub at: Option<Instant>,
    /// The `EndTime` it gets.
    pub end: DateTime<Utc>,
}

/// The one access token currently valid for the client.
#[derive(Debug)]
pub(crate) struct IssuedToken {
    pub value: String,
    pub expires_at: Instant,
}

/// Everything the simulated PBX knows.
#[derive(Debug)]
pub(crate) struct State {
    pub config: ThreeCxConfig,
    /// `http://127.0.0.1:PORT`, used in `@odata.context`.
    pub base_url: String,
    pub users: Vec<SimUser>,
    pub history: Vec<HistoryRow>,
    pub recordings: Vec<StoredRecording>,
    pub active_calls: Vec<SimActiveCall>,
    /// Calls begun with `begin_call` and not ended: the segments 3CX has
    /// not written yet, by `ActiveCall.Id`.
    pub in_progress: HashMap<i32, Vec<SimSegment>>,
    /// Bumped whenever `history` or `users` change: the cached rows of
    /// `CallHistoryView` are rebuilt when it moves.
    pub generation: u64,
    /// `CallHistoryView` rows as served, with the `generation` they were
    /// built at (converting tens of thousands of rows per page request
    /// would make backlog tests slow, not the client).
    pub history_rows: Option<(u64, std::sync::Arc<Vec<serde_json::Value>>)>,
    /// The newest token issued (see `TokenIssue` for what a new request
    /// does while it is active).
    pub token: Option<IssuedToken>,
    /// Earlier tokens still valid (`TokenIssue::Coexist` only).
    pub coexisting: Vec<IssuedToken>,
    /// Tokens issued so far.
    pub tokens_issued: usize,
    pub faults: VecDeque<Fault>,
    pub forbidden: bool,
    /// `forbid_recordings`: only `Recordings` and `DownloadRecording` answer 403.
    pub recordings_forbidden: bool,
    /// Recordings `ListRecording` leaves out for now (see
    /// `ThreeCxSim::set_recording_listed`).
    pub unlisted_recordings: std::collections::HashSet<i32>,
    pub enterprise: bool,
    /// Raw path of every request received, in order.
    pub request_log: Vec<String>,
    /// `set_synthetic_audio`: recording id → generated body length.
    pub synthetic_audio: HashMap<i32, u64>,
    /// `fail_downloads`: recording id → `after_bytes` of each coming failure.
    pub download_failures: HashMap<i32, VecDeque<u64>>,
    /// How far the PBX's clock is ahead of the wall clock, ms (negative:
    /// behind); see `ThreeCxSim::set_clock`.
    pub clock_ahead_ms: i64,
}

impl State {
    pub fn new(config: ThreeCxConfig, base_url: String) -> Self {
        Self {
            config,
            base_url,
            users: Vec::new(),
            history: Vec::new(),
            recordings: Vec::new(),
            active_calls: Vec::new(),
            in_progress: HashMap::new(),
            generation: 0,
            history_rows: None,
            token: None,
            coexisting: Vec::new(),
            tokens_issued: 0,
            faults: VecDeque::new(),
            forbidden: false,
            recordings_forbidden: false,
            unlisted_recordings: std::collections::HashSet::new(),
            enterprise: true,
            request_log: Vec::new(),
            synthetic_audio: HashMap::new(),
            download_failures: HashMap::new(),
            clock_ahead_ms: 0,
        }
    }

    /// Now, on the PBX's clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + chrono::TimeDelta::milliseconds(self.clock_ahead_ms)
    }

    /// Adds or replaces (same `id`) a recording, moving its audio into `Bytes`.
    pub fn put_recording(&mut self, mut rec: SimRecording, pending_end: Option<PendingEnd>) {
        let audio = Bytes::from(std::mem::take(&mut rec.audio));
        let stored = StoredRecording {
            meta: rec,
            audio,
            pending_end,
            transcription: None,
        };
        match self
            .recordings
            .iter_mut()
            .find(|r| r.meta.id == stored.meta.id)
        {
            Some(existing) => *existing = stored,
            None => self.recordings.push(stored),
        }
    }

    /// Gives `EndTime` to every pending recording whose instant has passed
    /// (evaluated lazily, when a request reads recordings).
    pub fn settle_recordings(&mut self, now: Instant) {
        for rec in &mut self.recordings {
            let due = rec
                .pending_end
                .as_ref()
                .is_some_and(|p| p.at.is_some_and(|at| now >= at));
            if due && let Some(pending) = rec.pending_end.take() {
                rec.meta.end = Some(pending.end);
            }
        }
    }

    /// The `after_bytes` of the next injected failure of recording `id`'s
    /// download, consuming it.
    pub fn take_download_failure(&mut self, id: i32) -> Option<u64> {
        let queue = self.download_failures.get_mut(&id)?;
        let after = queue.pop_front();
        if queue.is_empty() {
            self.download_failures.remove(&id);
        }
        after
    }

    /// Answers a token request: a token and the seconds it has left, or
    /// `None` when refused because one is active
    /// (`TokenIssue::RefuseWhileActive`).
    pub fn issue_token(&mut self) -> Option<(String, u64)> {
        let now = Instant::now();
        let active = self.token.take().filter(|t| now < t.expires_at);
        match (self.config.token_issue, active) {
            (TokenIssue::ReturnActive, Some(active)) => {
                let left = active.expires_at.saturating_duration_since(now).as_secs();
                let value = active.value.clone();
                self.token = Some(active);
                return Some((value, left));
            }
            (TokenIssue::RefuseWhileActive, Some(active)) => {
                self.token = Some(active);
                return None;
            }
            (TokenIssue::Coexist, Some(active)) => {
                self.coexisting.retain(|t| now < t.expires_at);
                self.coexisting.push(active);
            }
            // Replace: the active token, if any, is dropped.
            _ => {}
        }
        let value = format!("sim3cx.{:032x}", rand::rng().random::<u128>());
        let lifetime = self.config.token_lifetime_secs;
        self.token = Some(IssuedToken {
            value: value.clone(),
            expires_at: now + Duration::from_secs(lifetime),
        });
        self.tokens_issued += 1;
        Some((value, lifetime))
    }

    /// Whether `presented` is a valid, unexpired token.
    pub fn token_is_valid(&self, presented: &str) -> bool {
        let now = Instant::now();
        self.token
            .iter()
            .chain(&self.coexisting)
            .any(|t| t.value == presented && now < t.expires_at)
    }

    /// The scripted segments (raw rows excluded).
    pub fn segments(&self) -> impl Iterator<Item = &SimSegment> {
        self.history.iter().filter_map(|row| match row {
            HistoryRow::Segment(s) => Some(s.as_ref()),
            HistoryRow::Raw(_) => None,
        })
    }
}
