//! 3CX's own transcription of a recording, as the simulator plays it.

/// How 3CX's own transcription of a recording goes (`Pbx.Recording`
/// 20.0.10: `CanBeTranscribed`, `IsTranscribed`, `TranscriptionResult`,
/// `Transcription`, `Summary`, `SentimentScore`; `CallLogData.Recordings[]`
/// carries the texts too once transcribed). A recording without one is
/// served as 3CX serves one it cannot transcribe: `CanBeTranscribed`
/// false. Times run from when it was set
/// ([`ThreeCxSim::set_transcription`](super::ThreeCxSim::set_transcription)).
#[derive(Clone, Debug)]
pub enum SimTranscription {
    /// `CanBeTranscribed` true, `IsTranscribed` false and no texts until
    /// `after` has passed; then `IsTranscribed` true, `TranscriptionResult`
    /// 0 and these texts.
    Transcribed {
        /// How long 3CX takes.
        after: std::time::Duration,
        /// `Summary`.
        summary: Option<String>,
        /// `Transcription`.
        transcription: Option<String>,
        /// `SentimentScore`.
        sentiment_score: Option<i32>,
    },
    /// `CanBeTranscribed` true until `after` has passed; then
    /// `TranscriptionResult` is `result` ([ASSUMED] non-zero means failed,
    /// the client's reading) and `IsTranscribed` stays false.
    Fails {
        /// How long until 3CX gives up.
        after: std::time::Duration,
        /// `TranscriptionResult`.
        result: i32,
    },
    /// `CanBeTranscribed` true, never transcribed.
    Never,
}
