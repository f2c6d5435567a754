//! 3CX's own call insights (its transcript, summary and sentiment score of
//! a recording, `Pbx.Recording` 20.0.10): which of them a tenant brings
//! into the CRM, how long it waits for them, where a call's insights stand
//! (the call log's column) and the bounds on every text carried. Plain
//! Rust for both runtimes and the host; the WIT `insights-state` maps onto
//! [`InsightsState`] through [`crate::settings_conversions!`].

use serde::{Deserialize, Serialize};

/// The contact custom field the sentiment score goes to unless the
/// tenant names another: the one Update Call Record writes by default.
pub const DEFAULT_SENTIMENT_FIELD_KEY: &str = "connectzero_call_sentiment";

/// Default insights window: 3CX transcribes after the recording is final,
/// usually within minutes; half an hour leaves room for a busy PBX.
pub const DEFAULT_WINDOW_SECS: u32 = 1800;

/// Most characters of a summary carried (note and `call.insights`).
pub const SUMMARY_MAX_CHARS: usize = 2_000;

/// Most characters of the transcript excerpt in `call.insights`.
pub const EXCERPT_MAX_CHARS: usize = 500;

/// Most characters of a transcript read from 3CX (what is beyond is cut,
/// and the note or file says so): a long call's transcript is a hostile
/// answer's easiest way to make a component hold megabytes.
pub const TRANSCRIPT_MAX_CHARS: usize = 200_000;

/// Longest note body written. [ASSUMED]: HighLevel documents no limit
/// for `NotesDTO.body`; 5,000 characters is what the Update Call Record
/// action keeps by default (`max-notes-chars`). A transcript longer than
/// this goes into a text file linked from its note.
pub const NOTE_MAX_CHARS: usize = 5_000;

/// Which insights a tenant brings across (`[tenants.settings.insights]`
/// on the host; `insights_*` variables on Spin).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct InsightsConfig {
    /// 3CX's summary as a contact note next to the call. Default on.
    pub summary: bool,
    /// 3CX's sentiment score in the contact custom field Update Call
    /// Record writes. Default on.
    pub sentiment: bool,
    /// 3CX's transcript as a contact note (a linked text file when long).
    /// Default off: transcripts can be sensitive.
    pub transcript: bool,
    /// Seconds to keep checking for the transcription after the call was
    /// posted. Default 1800.
    pub window_secs: u32,
}

impl Default for InsightsConfig {
    fn default() -> Self {
        Self {
            summary: true,
            sentiment: true,
            transcript: false,
            window_secs: DEFAULT_WINDOW_SECS,
        }
    }
}

impl InsightsConfig {
    /// Whether any insight is brought across at all (else no job is queued).
    pub fn any(&self) -> bool {
        self.summary || self.sentiment || self.transcript
    }
}

/// Where a call's insights stand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InsightsState {
    /// None expected.
    None,
    /// Waiting for 3CX's transcription.
    Pending,
    /// Written to the CRM, `call.insights` queued.
    Written,
    /// Given up, and why; the call stays posted.
    GaveUp(String),
}

impl InsightsState {
    /// The call log's column: "none", "pending", "written" or
    /// "gave-up: <why>".
    pub fn log_text(&self) -> String {
        match self {
            Self::None => "none".into(),
            Self::Pending => "pending".into(),
            Self::Written => "written".into(),
            Self::GaveUp(why) => format!("gave-up: {why}"),
        }
    }
}

/// At most `max` characters of `text` (whole characters, never a split
/// UTF-8 sequence), and whether anything was cut.
pub fn bounded(text: &str, max: usize) -> (&str, bool) {
    match text.char_indices().nth(max) {
        Some((at, _)) => (&text[..at], true),
        None => (text, false),
    }
}

/// The first [`EXCERPT_MAX_CHARS`] characters of a transcript, with "…"
/// when it goes on.
pub fn excerpt(transcript: &str) -> String {
    let (head, cut) = bounded(transcript.trim(), EXCERPT_MAX_CHARS);
    if cut {
        format!("{head}…")
    } else {
        head.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_summary_and_sentiment_without_the_transcript() {
        let c = InsightsConfig::default();
        assert!(c.summary && c.sentiment && !c.transcript);
        assert_eq!(c.window_secs, 1800);
        assert!(c.any());
        let off = InsightsConfig {
            summary: false,
            sentiment: false,
            ..InsightsConfig::default()
        };
        assert!(!off.any());
        let parsed: InsightsConfig = serde_json::from_str(r#"{"transcript": true}"#).unwrap();
        assert!(parsed.transcript && parsed.summary);
        assert!(serde_json::from_str::<InsightsConfig>(r#"{"transcripts": true}"#).is_err());
    }

    #[test]
    fn texts_are_cut_on_character_boundaries() {
        assert_eq!(bounded("héllo", 2), ("hé", true));
        assert_eq!(bounded("hé", 2), ("hé", false));
        let long = "é".repeat(EXCERPT_MAX_CHARS + 3);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), EXCERPT_MAX_CHARS + 1);
        assert!(e.ends_with('…'));
        assert_eq!(excerpt("  short  "), "short");
    }

    #[test]
    fn states_read_as_the_call_log_writes_them() {
        assert_eq!(InsightsState::Written.log_text(), "written");
        assert_eq!(
            InsightsState::GaveUp("3CX failed".into()).log_text(),
            "gave-up: 3CX failed"
        );
    }
}
