//! Applying a validated [`Policy`] to one call: the number filters, the
//! kind's action, the minimum duration and the business hours.

use super::{Action, CallFacts, CallKind, Decision, Policy, PolicyConfig, canonical_e164};

impl Policy {
    /// The settings this policy was built from.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// Whether a logged call of this kind gets no 3CX insights
    /// (`skip_insights`).
    pub fn skips_insights(&self, kind: super::CallKind) -> bool {
        self.config.skip_insights.contains(&kind)
    }

    /// The action configured for a kind of call.
    pub fn action(&self, kind: CallKind) -> Action {
        let c = &self.config;
        match kind {
            CallKind::AnsweredInbound => c.answered_inbound,
            CallKind::AnsweredOutbound => c.answered_outbound,
            CallKind::Missed => c.missed,
            CallKind::Voicemail => c.voicemail.unwrap_or(c.missed),
            CallKind::OutboundNoAnswer => c.outbound_no_answer,
            CallKind::Internal => c.internal,
        }
    }

    /// Decide what happens to one call. The number filters come first
    /// (they never log, whatever else is configured), then the kind's
    /// action, the minimum duration and the business hours.
    pub fn decide(&self, call: &CallFacts) -> Decision {
        if let Some(number) = call.outside_e164.as_deref().and_then(canonical_e164) {
            if self.own.contains(&number) {
                return Decision::Ignore("PBX's own number".into());
            }
            if self.blocked.contains(&number) {
                return Decision::Ignore("blocked number".into());
            }
        }
        let kind = call.kind();
        let mut action = self.action(kind);
        if action == Action::Ignore {
            return Decision::Ignore(format!("policy: {} ignored", kind.name()));
        }
        let min = self.config.min_duration_secs;
        if call.answered && kind != CallKind::Internal && call.duration_secs < min {
            return Decision::Ignore(format!("shorter than {min} s"));
        }
        if let Some(hours) = &self.hours
            && !hours.is_open(call.start_ms)
        {
            action = self.config.outside_hours;
            if kind == CallKind::Internal && action == Action::LogAndCreateContact {
                action = Action::Log;
            }
            if action == Action::Ignore {
                return Decision::Ignore("outside business hours".into());
            }
        }
        match action {
            Action::Log => Decision::Log,
            Action::LogAndCreateContact => Decision::LogAndCreateContact,
            Action::Ignore => Decision::Ignore(format!("policy: {} ignored", kind.name())),
        }
    }
}
