//! What became of a call for good (WIT `call-outcome`), as plain Rust: its
//! words and the ledger's text of it, written once for the dedup stage,
//! the tick, the Spin call log and the host's call log and storage.

/// A call's final outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// Posted to the CRM as this message id.
    Posted(String),
    /// Deliberately not posted, with the reason.
    Skipped(String),
    /// Left for an operator, with the reason.
    Parked(String),
}

impl CallOutcome {
    /// The outcome's word, as the call log stores it and the status page,
    /// the CLI and the metrics show it: "posted", "skipped" or "parked".
    pub fn kind(&self) -> &'static str {
        match self {
            CallOutcome::Posted(_) => "posted",
            CallOutcome::Skipped(_) => "skipped",
            CallOutcome::Parked(_) => "parked",
        }
    }

    /// The message id or the reason.
    pub fn detail(&self) -> &str {
        match self {
            CallOutcome::Posted(s) | CallOutcome::Skipped(s) | CallOutcome::Parked(s) => s,
        }
    }

    /// The ledger's text of it: `posted:<message id>`, `skipped:<reason>`
    /// or `parked:<reason>` (unchanged since the first release, so no
    /// ledger is migrated).
    pub fn ledger_text(&self) -> String {
        format!("{}:{}", self.kind(), self.detail())
    }

    /// Read the ledger's text. A text with none of the three prefixes was
    /// written by no release; it reads as skipped with the whole text as
    /// the reason, so the call stays done and the text stays visible.
    pub fn from_ledger_text(text: &str) -> Self {
        match text.split_once(':') {
            Some(("posted", id)) => CallOutcome::Posted(id.to_string()),
            Some(("skipped", reason)) => CallOutcome::Skipped(reason.to_string()),
            Some(("parked", reason)) => CallOutcome::Parked(reason.to_string()),
            _ => CallOutcome::Skipped(text.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_text_reads_back_as_written() {
        for outcome in [
            CallOutcome::Posted("msg-1".into()),
            CallOutcome::Skipped("policy: missed ignored".into()),
            CallOutcome::Parked("needs review: a, b".into()),
            CallOutcome::Skipped(String::new()),
        ] {
            assert_eq!(
                CallOutcome::from_ledger_text(&outcome.ledger_text()),
                outcome
            );
        }
        // A reason holding a colon keeps it.
        assert_eq!(
            CallOutcome::from_ledger_text("parked:HighLevel answered 422: bad"),
            CallOutcome::Parked("HighLevel answered 422: bad".into())
        );
        // Texts the ledger has always held.
        assert_eq!(CallOutcome::from_ledger_text("posted:m1").kind(), "posted");
        assert_eq!(
            CallOutcome::from_ledger_text("garbage"),
            CallOutcome::Skipped("garbage".into())
        );
    }
}
