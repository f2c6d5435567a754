//! How calls and stage errors are named and worded for people: log lines,
//! the call log, park reasons and the status page. A leaf module: the
//! capabilities (call log, credentials) and the pipeline all use it, and
//! it uses only the WIT types and `guest_support`'s shared wording.

use crate::bindings::types::{CallFate, ContactRef, Direction, MatchRule, StageError};
use guest_support::outcomes::CallOutcome;

/// Readable text of a stage error, worded as the components word it
/// (`guest_support::api::describe`).
pub fn describe(error: &StageError) -> String {
    guest_support::api::describe(&error.into())
}

/// Prefix of the park reason of a call whose number several contacts
/// share and no tie-breaker settled; the status page lists these calls
/// for an operator to assign (`connectzero::web`). Shared with the Spin app
/// (`guest_support::review`).
pub use guest_support::review::NEEDS_REVIEW;

/// The park reason of a call the post stage left for review, e.g. "needs
/// review: 2 contacts share this number (contacts a1, b2); …": the text
/// of `guest_support::review::needs_review_reason`, pointing at the status
/// page (the status page shows the names from the post stage's review
/// entry; the reason, which is logged, has ids only).
pub fn needs_review_reason(candidates: &[ContactRef]) -> String {
    guest_support::review::needs_review_reason(
        candidates.iter().map(|c| c.id.as_str()),
        guest_support::review::ReviewPlace::StatusPage,
    )
}

/// A call's fate in words, as the call log stores it and the CLI prints
/// it: the outcome's word ("posted", "skipped", "parked",
/// `guest_support::outcomes`), "retrying", "done" (settled before) or
/// "in-flight"; and its detail: the message id, the reason, the error, or
/// the ledger's text of the earlier outcome.
pub fn fate_words(fate: &CallFate) -> (&'static str, String) {
    match fate {
        CallFate::Settled(outcome) => {
            let outcome = CallOutcome::from(outcome);
            (outcome.kind(), outcome.detail().to_string())
        }
        CallFate::Retrying(error) => ("retrying", describe(error)),
        CallFate::DoneBefore(outcome) => ("done", CallOutcome::from(outcome).ledger_text()),
        CallFate::InFlight => ("in-flight", "another worker holds the call".to_string()),
    }
}

/// "inbound", "outbound" or "internal".
pub fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
        Direction::Internal => "internal",
    }
}

/// "caller-number", "called-number" or "extension-owner".
pub fn rule_name(rule: MatchRule) -> &'static str {
    match rule {
        MatchRule::CallerNumber => "caller-number",
        MatchRule::CalledNumber => "called-number",
        MatchRule::ExtensionOwner => "extension-owner",
    }
}
