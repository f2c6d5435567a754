//! Where a call's recording stands, and how it is written down: the call
//! log's column and the workflow payload's `recordingStatus`. Plain Rust
//! for both runtimes; the WIT `recording-state` maps onto
//! [`RecordingState`] through [`crate::settings_conversions!`].

/// Most recordings one call carries into the CRM: HighLevel allows at
/// most five attachments on a message, and the insights job reads the
/// same recordings the attach stage uploads.
pub const MAX_PER_CALL: usize = 5;

/// The recordings of `call`'s legs, in leg order, without repeats, at
/// most [`MAX_PER_CALL`]: what the attach stage uploads and the insights
/// job reads, from one rule.
pub fn of_call(call: &crate::bindings::connectzero::pipeline::types::Call) -> Vec<i32> {
    let mut ids: Vec<i32> = Vec::new();
    for id in call
        .legs
        .iter()
        .filter_map(|l| l.recording.as_ref().map(|r| r.id))
    {
        if !ids.contains(&id) && ids.len() < MAX_PER_CALL {
            ids.push(id);
        }
    }
    ids
}

/// Where a call's recording stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordingState {
    /// No recording (or the call was not posted).
    None,
    /// Not final in 3CX yet; the attach stage keeps trying.
    Pending,
    /// Attached to the CRM message.
    Attached,
    /// Not attached within the recording window, and why.
    GaveUp(String),
}

impl RecordingState {
    /// The state a call starts in once handled: pending when it was
    /// posted and has a recording (the attach stage takes over), else none.
    pub fn initial(posted: bool, has_recording: bool) -> Self {
        if posted && has_recording {
            Self::Pending
        } else {
            Self::None
        }
    }

    /// The call log's column: "none", "pending", "attached" or
    /// "gave-up: <why>".
    pub fn log_text(&self) -> String {
        match self {
            Self::GaveUp(why) => format!("gave-up: {why}"),
            other => other.workflow_text().to_string(),
        }
    }

    /// The workflow payload's `recordingStatus`: "none", "pending",
    /// "attached" or "gave-up" (the reason stays in the call log).
    pub fn workflow_text(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Pending => "pending",
            Self::Attached => "attached",
            Self::GaveUp(_) => "gave-up",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_as_the_call_log_and_workflows_always_did() {
        assert_eq!(RecordingState::initial(true, true), RecordingState::Pending);
        assert_eq!(RecordingState::initial(true, false), RecordingState::None);
        assert_eq!(RecordingState::initial(false, true), RecordingState::None);
        let gave_up = RecordingState::GaveUp("not final after 600 s".into());
        assert_eq!(gave_up.log_text(), "gave-up: not final after 600 s");
        assert_eq!(gave_up.workflow_text(), "gave-up");
        assert_eq!(RecordingState::Attached.log_text(), "attached");
    }
}
