//! The simulator's shared, mutable state.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use rand::Rng;

use super::ThreeCxConfig;
use super::types::{Fault, SimActiveCall, SimRecording, SimSegment, SimUser};

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
    /// One active token per client: issuing a new one replaces it.
    pub token: Option<IssuedToken>,
    pub faults: VecDeque<Fault>,
    pub forbidden: bool,
    pub enterprise: bool,
    /// Raw path of every request received, in order.
    pub request_log: Vec<String>,
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
            token: None,
            faults: VecDeque::new(),
            forbidden: false,
            enterprise: true,
            request_log: Vec::new(),
        }
    }

    /// Adds or replaces (same `id`) a recording, moving its audio into `Bytes`.
    pub fn put_recording(&mut self, mut rec: SimRecording) {
        let audio = Bytes::from(std::mem::take(&mut rec.audio));
        let stored = StoredRecording { meta: rec, audio };
        match self
            .recordings
            .iter_mut()
            .find(|r| r.meta.id == stored.meta.id)
        {
            Some(existing) => *existing = stored,
            None => self.recordings.push(stored),
        }
    }

    /// Issues a fresh token, invalidating the previous one.
    pub fn issue_token(&mut self) -> String {
        let value = format!("sim3cx.{:032x}", rand::rng().random::<u128>());
        let lifetime = Duration::from_secs(self.config.token_lifetime_secs);
        self.token = Some(IssuedToken {
            value: value.clone(),
            expires_at: Instant::now() + lifetime,
        });
        value
    }

    /// Whether `presented` is the current, unexpired token.
    pub fn token_is_valid(&self, presented: &str) -> bool {
        self.token
            .as_ref()
            .is_some_and(|t| t.value == presented && Instant::now() < t.expires_at)
    }

    /// The scripted segments (raw rows excluded).
    pub fn segments(&self) -> impl Iterator<Item = &SimSegment> {
        self.history.iter().filter_map(|row| match row {
            HistoryRow::Segment(s) => Some(s.as_ref()),
            HistoryRow::Raw(_) => None,
        })
    }
}
