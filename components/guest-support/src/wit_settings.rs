//! The one mapping between the settings' plain types
//! ([`PolicyConfig`](crate::policy::PolicyConfig),
//! [`RouteConfig`](crate::routing::RouteConfig), the tie-breakers and the
//! no-match policy of [`crate::settings`], the triggers of
//! [`crate::triggers`], the recording states of [`crate::recordings`],
//! the call outcomes of [`crate::outcomes`]) and their WIT types
//! (`logging-policy`, `route`, `call-action`, `tie-breaker`,
//! `no-match-policy`, `event-kind`, `recording-state`, `call-outcome`),
//! for every Rust binding of
//! the WIT: the guests' (wit-bindgen, [`crate::bindings`]) and the host's
//! (wasmtime). Each binding is a distinct Rust type, so the conversions
//! are a macro invoked once per binding; the field lists live only here.

/// `From` conversions both ways between the plain settings types and the
/// WIT `types` interface at `$($types)::+` (a module path of a binding).
#[macro_export]
macro_rules! settings_conversions {
    ($($types:ident)::+) => {
        const _: () = {
            use $($types)::+ as wit;
            use $crate::policy::{Action, BusinessHoursConfig, PolicyConfig};
            use $crate::routing::{RouteClaims, RouteConfig};
            use $crate::settings::{NoMatchPolicy, TieBreaker};
            use $crate::outcomes::CallOutcome;
            use $crate::recordings::RecordingState;
            use $crate::triggers::TriggerKind;
            use $crate::insights::InsightsState;
            use $crate::policy::CallKind;

            impl From<InsightsState> for wit::InsightsState {
                fn from(state: InsightsState) -> Self {
                    match state {
                        InsightsState::None => Self::None,
                        InsightsState::Pending => Self::Pending,
                        InsightsState::Written => Self::Written,
                        InsightsState::GaveUp(why) => Self::GaveUp(why),
                    }
                }
            }

            impl From<wit::InsightsState> for InsightsState {
                fn from(state: wit::InsightsState) -> Self {
                    match state {
                        wit::InsightsState::None => Self::None,
                        wit::InsightsState::Pending => Self::Pending,
                        wit::InsightsState::Written => Self::Written,
                        wit::InsightsState::GaveUp(why) => Self::GaveUp(why),
                    }
                }
            }

            impl From<CallKind> for wit::CallKind {
                fn from(kind: CallKind) -> Self {
                    match kind {
                        CallKind::AnsweredInbound => Self::AnsweredInbound,
                        CallKind::AnsweredOutbound => Self::AnsweredOutbound,
                        CallKind::Missed => Self::Missed,
                        CallKind::Voicemail => Self::Voicemail,
                        CallKind::OutboundNoAnswer => Self::OutboundNoAnswer,
                        CallKind::Internal => Self::Internal,
                    }
                }
            }

            impl From<wit::CallKind> for CallKind {
                fn from(kind: wit::CallKind) -> Self {
                    match kind {
                        wit::CallKind::AnsweredInbound => Self::AnsweredInbound,
                        wit::CallKind::AnsweredOutbound => Self::AnsweredOutbound,
                        wit::CallKind::Missed => Self::Missed,
                        wit::CallKind::Voicemail => Self::Voicemail,
                        wit::CallKind::OutboundNoAnswer => Self::OutboundNoAnswer,
                        wit::CallKind::Internal => Self::Internal,
                    }
                }
            }

            impl From<CallOutcome> for wit::CallOutcome {
                fn from(outcome: CallOutcome) -> Self {
                    match outcome {
                        CallOutcome::Posted(id) => Self::Posted(id),
                        CallOutcome::Skipped(reason) => Self::Skipped(reason),
                        CallOutcome::Parked(reason) => Self::Parked(reason),
                    }
                }
            }

            impl From<&wit::CallOutcome> for CallOutcome {
                fn from(outcome: &wit::CallOutcome) -> Self {
                    match outcome {
                        wit::CallOutcome::Posted(id) => Self::Posted(id.clone()),
                        wit::CallOutcome::Skipped(reason) => Self::Skipped(reason.clone()),
                        wit::CallOutcome::Parked(reason) => Self::Parked(reason.clone()),
                    }
                }
            }

            impl From<RecordingState> for wit::RecordingState {
                fn from(state: RecordingState) -> Self {
                    match state {
                        RecordingState::None => Self::None,
                        RecordingState::Pending => Self::Pending,
                        RecordingState::Attached => Self::Attached,
                        RecordingState::GaveUp(why) => Self::GaveUp(why),
                    }
                }
            }

            impl From<wit::RecordingState> for RecordingState {
                fn from(state: wit::RecordingState) -> Self {
                    match state {
                        wit::RecordingState::None => Self::None,
                        wit::RecordingState::Pending => Self::Pending,
                        wit::RecordingState::Attached => Self::Attached,
                        wit::RecordingState::GaveUp(why) => Self::GaveUp(why),
                    }
                }
            }

            impl From<TriggerKind> for wit::EventKind {
                fn from(kind: TriggerKind) -> Self {
                    match kind {
                        TriggerKind::CallStarted => Self::CallStarted,
                        TriggerKind::CallEnded => Self::CallEnded,
                        TriggerKind::MissedCall => Self::MissedCall,
                        TriggerKind::MissedCallRecovered => Self::MissedCallRecovered,
                        TriggerKind::CallInsights => Self::CallInsights,
                    }
                }
            }

            impl From<wit::EventKind> for TriggerKind {
                fn from(kind: wit::EventKind) -> Self {
                    match kind {
                        wit::EventKind::CallStarted => Self::CallStarted,
                        wit::EventKind::CallEnded => Self::CallEnded,
                        wit::EventKind::MissedCall => Self::MissedCall,
                        wit::EventKind::MissedCallRecovered => Self::MissedCallRecovered,
                        wit::EventKind::CallInsights => Self::CallInsights,
                    }
                }
            }

            impl From<TieBreaker> for wit::TieBreaker {
                fn from(breaker: TieBreaker) -> Self {
                    match breaker {
                        TieBreaker::AssignedUser => Self::AssignedUser,
                        TieBreaker::RecentConversation => Self::RecentConversation,
                        TieBreaker::FirstContact => Self::FirstContact,
                    }
                }
            }

            impl From<NoMatchPolicy> for wit::NoMatchPolicy {
                fn from(policy: NoMatchPolicy) -> Self {
                    match policy {
                        NoMatchPolicy::Skip => Self::Skip,
                        NoMatchPolicy::CreateContact => Self::CreateContact,
                    }
                }
            }

            impl From<Action> for wit::CallAction {
                fn from(action: Action) -> Self {
                    match action {
                        Action::Log => Self::Log,
                        Action::LogAndCreateContact => Self::LogAndCreateContact,
                        Action::Ignore => Self::Ignore,
                    }
                }
            }

            impl From<wit::CallAction> for Action {
                fn from(action: wit::CallAction) -> Self {
                    match action {
                        wit::CallAction::Log => Self::Log,
                        wit::CallAction::LogAndCreateContact => Self::LogAndCreateContact,
                        wit::CallAction::Ignore => Self::Ignore,
                    }
                }
            }

            impl From<&PolicyConfig> for wit::LoggingPolicy {
                fn from(p: &PolicyConfig) -> Self {
                    Self {
                        answered_inbound: p.answered_inbound.into(),
                        answered_outbound: p.answered_outbound.into(),
                        missed: p.missed.into(),
                        voicemail: p.voicemail.map(Into::into),
                        outbound_no_answer: p.outbound_no_answer.into(),
                        internal: p.internal.into(),
                        min_duration_secs: p.min_duration_secs,
                        business_hours: p.business_hours.as_ref().map(|h| wit::BusinessHours {
                            days: h.days.clone(),
                            start: h.start.clone(),
                            end: h.end.clone(),
                            utc_offset: h.utc_offset.clone(),
                            time_zone: h.time_zone.clone(),
                        }),
                        outside_hours: p.outside_hours.into(),
                        own_numbers: p.own_numbers.clone(),
                        blocked_numbers: p.blocked_numbers.clone(),
                        skip_insights: p.skip_insights.iter().map(|k| (*k).into()).collect(),
                    }
                }
            }

            impl From<wit::LoggingPolicy> for PolicyConfig {
                fn from(p: wit::LoggingPolicy) -> Self {
                    Self {
                        answered_inbound: p.answered_inbound.into(),
                        answered_outbound: p.answered_outbound.into(),
                        missed: p.missed.into(),
                        voicemail: p.voicemail.map(Into::into),
                        outbound_no_answer: p.outbound_no_answer.into(),
                        internal: p.internal.into(),
                        min_duration_secs: p.min_duration_secs,
                        business_hours: p.business_hours.map(|h| BusinessHoursConfig {
                            days: h.days,
                            start: h.start,
                            end: h.end,
                            utc_offset: h.utc_offset,
                            time_zone: h.time_zone,
                        }),
                        outside_hours: p.outside_hours.into(),
                        own_numbers: p.own_numbers,
                        blocked_numbers: p.blocked_numbers,
                        skip_insights: p.skip_insights.into_iter().map(Into::into).collect(),
                    }
                }
            }

            impl From<&RouteClaims> for wit::RouteClaims {
                fn from(c: &RouteClaims) -> Self {
                    Self {
                        dids: c.dids.clone(),
                        queues: c.queues.clone(),
                    }
                }
            }

            impl From<wit::RouteClaims> for RouteClaims {
                fn from(c: wit::RouteClaims) -> Self {
                    Self {
                        dids: c.dids,
                        queues: c.queues,
                    }
                }
            }

            impl From<&RouteConfig> for wit::Route {
                fn from(r: &RouteConfig) -> Self {
                    Self {
                        claims: wit::RouteClaims {
                            dids: r.dids.clone(),
                            queues: r.queues.clone(),
                        },
                        take_unclaimed: r.default,
                        elsewhere: (&r.elsewhere).into(),
                    }
                }
            }

            impl From<wit::Route> for RouteConfig {
                fn from(r: wit::Route) -> Self {
                    Self {
                        dids: r.claims.dids,
                        queues: r.claims.queues,
                        default: r.take_unclaimed,
                        elsewhere: r.elsewhere.into(),
                    }
                }
            }
        };
    };
}

settings_conversions!(crate::bindings::connectzero::pipeline::types);

/// `From<&TenantSettings>` for the matcher contract's `matcher-settings`
/// (the part of a tenant's settings a matcher reads), for a binding whose
/// WIT `types` interface is at `$types` and whose `matcher` interface is at
/// `$matcher`: the tick's (which calls the matcher) and the host's (which
/// calls it for dry runs and the bench).
#[macro_export]
macro_rules! matcher_settings_conversion {
    ($($types:ident)::+ ; $($matcher:ident)::+) => {
        impl From<&$($types)::+::TenantSettings> for $($matcher)::+::MatcherSettings {
            fn from(settings: &$($types)::+::TenantSettings) -> Self {
                Self {
                    default_country: settings.default_country.clone(),
                    log_internal_calls: settings.log_internal_calls,
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use crate::bindings::connectzero::pipeline::types as wit;
    use crate::policy::{Action, BusinessHoursConfig, PolicyConfig};
    use crate::routing::{RouteClaims, RouteConfig};

    #[test]
    fn a_policy_crosses_the_wit_record_and_back_unchanged() {
        let policy = PolicyConfig {
            answered_inbound: Action::LogAndCreateContact,
            answered_outbound: Action::Ignore,
            missed: Action::Log,
            voicemail: Some(Action::Ignore),
            outbound_no_answer: Action::Ignore,
            internal: Action::Log,
            min_duration_secs: 7,
            business_hours: Some(BusinessHoursConfig {
                days: vec!["mon".into(), "fri".into()],
                start: "09:00".into(),
                end: "17:30".into(),
                utc_offset: None,
                time_zone: Some("Europe/London".into()),
            }),
            outside_hours: Action::LogAndCreateContact,
            own_numbers: vec!["+442079460000".into()],
            blocked_numbers: vec!["+15550100".into()],
            skip_insights: vec![crate::policy::CallKind::Internal],
        };
        let record = wit::LoggingPolicy::from(&policy);
        assert_eq!(record.voicemail, Some(wit::CallAction::Ignore));
        assert_eq!(PolicyConfig::from(record), policy);
    }

    #[test]
    fn a_route_crosses_the_wit_record_and_back_unchanged() {
        let route = RouteConfig {
            dids: vec!["+442079460000".into()],
            queues: vec!["800".into()],
            default: true,
            elsewhere: RouteClaims {
                dids: vec!["+442079460001".into()],
                queues: vec!["801".into()],
            },
        };
        let record = wit::Route::from(&route);
        assert!(record.take_unclaimed);
        assert_eq!(record.claims.queues, ["800"]);
        assert_eq!(RouteConfig::from(record), route);
    }
}
