//! Reading 3CX's transcription of a recording (`Pbx.Recording`, 20.0.10:
//! `CanBeTranscribed`, `IsTranscribed`, `TranscriptionResult`,
//! `Transcription`, `Summary`, `SentimentScore`) and deciding where it
//! stands. The spec documents the fields, not their meaning: what they
//! are taken to mean is in one function, [`state`].

use guest_support::insights::{SUMMARY_MAX_CHARS, TRANSCRIPT_MAX_CHARS, bounded};
use serde::Deserialize;

/// `$select` of the one read per recording.
pub const SELECT: &str = "Id,EndTime,CanBeTranscribed,IsTranscribed,TranscriptionResult,Transcription,Summary,SentimentScore";

/// The fields of a `Pbx.Recording` row the insights read.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Row {
    /// `EndTime`: null while 3CX still writes the recording.
    pub end_time: Option<String>,
    /// `CanBeTranscribed`.
    pub can_be_transcribed: Option<bool>,
    /// `IsTranscribed`.
    pub is_transcribed: Option<bool>,
    /// `TranscriptionResult` (no enum in the spec).
    pub transcription_result: Option<i32>,
    /// `Transcription`.
    pub transcription: Option<String>,
    /// `Summary`.
    pub summary: Option<String>,
    /// `SentimentScore`.
    pub sentiment_score: Option<i32>,
}

/// What 3CX's insights of one recording are, read at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Not listed yet, still being written, or not transcribed yet.
    Waiting,
    /// 3CX will not transcribe it.
    NotTranscribable,
    /// 3CX reports the transcription failed, with its result code.
    Failed(i32),
    /// Transcribed, with what 3CX gave (texts bounded).
    Done(Found),
}

/// 3CX's insights of one recording (or, merged, of a call).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// `Summary`, at most [`SUMMARY_MAX_CHARS`].
    pub summary: Option<String>,
    /// `SentimentScore`.
    pub sentiment: Option<i32>,
    /// `Transcription`, at most [`TRANSCRIPT_MAX_CHARS`].
    pub transcript: Option<String>,
    /// The transcript was longer and was cut.
    pub transcript_cut: bool,
}

/// Where a recording's transcription stands. `None` is a recording 3CX
/// does not list (not yet, or gone).
///
/// [ASSUMED] (3CX NOTES §3; the spec has no enum or description for
/// these fields): a recording still being written (`EndTime` null) may
/// not know yet whether it can be transcribed, so it is waited for;
/// a final one with `CanBeTranscribed` not true never gets insights;
/// `IsTranscribed` true means the texts are there; a
/// `TranscriptionResult` other than null or 0 before that is read as a
/// failure (0 as "no failure"), which the queue still waits on until the
/// window ends (a code that meant "in progress" must not lose the
/// insights) and names in the give-up. This is the one place to change
/// when 3CX's meaning is known.
pub fn state(row: Option<&Row>) -> State {
    let Some(row) = row else {
        return State::Waiting;
    };
    if row.end_time.is_none() {
        return State::Waiting;
    }
    if row.can_be_transcribed != Some(true) {
        return State::NotTranscribable;
    }
    if row.is_transcribed == Some(true) {
        return State::Done(found(row));
    }
    match row.transcription_result {
        Some(code) if code != 0 => State::Failed(code),
        _ => State::Waiting,
    }
}

fn found(row: &Row) -> Found {
    let text = |t: &Option<String>| {
        t.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    };
    let transcript = text(&row.transcription);
    let (transcript, transcript_cut) = match &transcript {
        Some(t) => {
            let (head, cut) = bounded(t, TRANSCRIPT_MAX_CHARS);
            (Some(head.to_string()), cut)
        }
        None => (None, false),
    };
    Found {
        summary: text(&row.summary).map(|s| bounded(&s, SUMMARY_MAX_CHARS).0.to_string()),
        sentiment: row.sentiment_score,
        transcript,
        transcript_cut,
    }
}

/// The insights of a call with several recordings: summaries and
/// transcripts in leg order, each labelled when there is more than one;
/// the sentiment score is the mean of those given, rounded.
pub fn merge(parts: &[(i32, Found)]) -> Found {
    if let [(_, one)] = parts {
        return one.clone();
    }
    let scores: Vec<i64> = parts
        .iter()
        .filter_map(|(_, f)| f.sentiment.map(i64::from))
        .collect();
    let transcript = joined(parts, |f| f.transcript.as_ref(), TRANSCRIPT_MAX_CHARS);
    Found {
        summary: joined(parts, |f| f.summary.as_ref(), SUMMARY_MAX_CHARS).map(|(s, _)| s),
        sentiment: (!scores.is_empty()).then(|| {
            let n = scores.len() as i64;
            // Rounded half away from zero.
            let sum: i64 = scores.iter().sum();
            ((2 * sum + n * sum.signum()) / (2 * n)) as i32
        }),
        transcript_cut: parts.iter().any(|(_, f)| f.transcript_cut)
            || transcript.as_ref().is_some_and(|(_, cut)| *cut),
        transcript: transcript.map(|(t, _)| t),
    }
}

/// The texts `pick` finds in `parts`, each labelled with its recording,
/// joined and bounded to `max` characters (and whether that cut them);
/// `None` when no part has one.
fn joined(
    parts: &[(i32, Found)],
    pick: fn(&Found) -> Option<&String>,
    max: usize,
) -> Option<(String, bool)> {
    let texts: Vec<String> = parts
        .iter()
        .filter_map(|(id, f)| pick(f).map(|t| format!("Recording {id}: {t}")))
        .collect();
    if texts.is_empty() {
        return None;
    }
    let all = texts.join("\n\n");
    let (head, cut) = bounded(&all, max);
    Some((head.to_string(), cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row {
        Row {
            end_time: Some("2026-12-01T10:00:00Z".into()),
            can_be_transcribed: Some(true),
            ..Row::default()
        }
    }

    #[test]
    fn a_recording_is_waited_for_until_final_and_transcribed() {
        assert_eq!(state(None), State::Waiting);
        let writing = Row {
            end_time: None,
            ..row()
        };
        assert_eq!(state(Some(&writing)), State::Waiting);
        assert_eq!(state(Some(&row())), State::Waiting);
        let zero = Row {
            transcription_result: Some(0),
            ..row()
        };
        assert_eq!(state(Some(&zero)), State::Waiting);
    }

    #[test]
    fn failures_and_untranscribable_recordings_end_the_wait() {
        let failed = Row {
            transcription_result: Some(3),
            ..row()
        };
        assert_eq!(state(Some(&failed)), State::Failed(3));
        let never = Row {
            can_be_transcribed: Some(false),
            ..row()
        };
        assert_eq!(state(Some(&never)), State::NotTranscribable);
        let unknown = Row {
            can_be_transcribed: None,
            ..row()
        };
        assert_eq!(state(Some(&unknown)), State::NotTranscribable);
    }

    #[test]
    fn transcribed_texts_are_bounded() {
        let done = Row {
            is_transcribed: Some(true),
            summary: Some("s".repeat(SUMMARY_MAX_CHARS + 10)),
            transcription: Some("t".repeat(TRANSCRIPT_MAX_CHARS + 1)),
            sentiment_score: Some(7),
            ..row()
        };
        let State::Done(found) = state(Some(&done)) else {
            panic!("transcribed");
        };
        assert_eq!(found.summary.unwrap().len(), SUMMARY_MAX_CHARS);
        assert_eq!(found.transcript.unwrap().len(), TRANSCRIPT_MAX_CHARS);
        assert!(found.transcript_cut);
        assert_eq!(found.sentiment, Some(7));
    }

    #[test]
    fn several_recordings_merge_in_order_with_the_mean_score() {
        let a = Found {
            summary: Some("first".into()),
            sentiment: Some(2),
            ..Found::default()
        };
        let b = Found {
            summary: Some("second".into()),
            sentiment: Some(5),
            ..Found::default()
        };
        let merged = merge(&[(1, a.clone()), (2, b)]);
        assert_eq!(
            merged.summary.as_deref(),
            Some("Recording 1: first\n\nRecording 2: second")
        );
        assert_eq!(merged.sentiment, Some(4), "3.5 rounds to 4");
        assert_eq!(merge(&[(1, a.clone())]), a);
        assert_eq!(merged.transcript, None);
    }
}
