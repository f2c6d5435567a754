//! The tick's settings: the WIT record, with the logging policy and the
//! route parsed and validated by `guest_support` (the same parsers the
//! host's configuration and the Spin variables go through).

use crate::exports::connectzero::pipeline::tick::{ReviewPlace, TickOptions};
use guest_support::bindings::connectzero::pipeline::types::{StageError, TenantSettings};
use guest_support::policy::Policy;
use guest_support::routing::Route;

/// Everything one tick needs besides the stages.
pub struct Options {
    /// The settings record the stages take.
    pub settings: TenantSettings,
    /// Name calls are claimed under.
    pub worker: String,
    /// A claim older than this may be taken over, in ms.
    pub claim_lease_ms: u64,
    /// Most new calls claimed per tick (at least one).
    pub max_calls: usize,
    /// The logging policy; `None` logs every call.
    pub policy: Option<Policy>,
    /// The route on a shared 3CX; `None` takes every call.
    pub route: Option<Route>,
    /// Where calls needing review wait.
    pub review_place: guest_support::review::ReviewPlace,
    /// Days per-call state is kept (0: forever), checked.
    pub state_retention_days: u32,
    /// Why the policy or the route could not be used, when it could not:
    /// then no call may be taken (not even under "log everything"), but
    /// the queues of calls already posted still run.
    pub unusable: Option<StageError>,
}

impl Options {
    /// Parse `options`. A policy or route that does not validate is kept
    /// in [`Options::unusable`] as an `invalid-settings` error naming it,
    /// and no call is taken (the host validates both before it starts; a
    /// bad route must never mean "take every call", which would post other
    /// sub-accounts' calls).
    pub fn parse(options: TickOptions) -> Self {
        let mut unusable = None;
        let policy = guest_support::policy::parse_json(&options.policy_json).unwrap_or_else(|e| {
            unusable = Some(StageError::InvalidSettings(format!("logging policy: {e}")));
            None
        });
        let route = guest_support::routing::parse_json(&options.route_json).unwrap_or_else(|e| {
            unusable = Some(StageError::InvalidSettings(format!("route: {e}")));
            None
        });
        // A horizon too short to be safe keeps everything rather than
        // forgetting calls a backlog may still need (both runtimes refuse
        // it at start-up; this guards a runtime that did not).
        let state_retention_days =
            guest_support::retention::check_days(options.state_retention_days).unwrap_or(0);
        Self {
            settings: options.settings,
            worker: options.worker,
            claim_lease_ms: options.claim_lease_ms,
            max_calls: (options.max_calls as usize).max(1),
            policy,
            route,
            review_place: match options.review_place {
                ReviewPlace::StatusPage => guest_support::review::ReviewPlace::StatusPage,
                ReviewPlace::KeyValueStore => guest_support::review::ReviewPlace::KeyValueStore,
            },
            state_retention_days,
            unusable,
        }
    }

    /// `Ok` when calls may be taken, else why not.
    pub fn usable(&self) -> Result<(), StageError> {
        match &self.unusable {
            None => Ok(()),
            Some(error) => Err(error.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_support::bindings::connectzero::pipeline::types::NoMatchPolicy;

    fn options(policy_json: &str, route_json: &str) -> TickOptions {
        TickOptions {
            settings: TenantSettings {
                tenant_id: "t".into(),
                pbx_base_url: "https://pbx.example".into(),
                crm_base_url: "https://crm.example".into(),
                crm_location_id: "loc".into(),
                crm_conversation_provider_id: "prov".into(),
                default_country: "US".into(),
                log_internal_calls: false,
                no_match_policy: NoMatchPolicy::Skip,
                overlap_window_secs: 300,
                page_size: 100,
                recording_window_secs: 600,
                retry_base_ms: 2000,
                missed_call_recovery_window_secs: 86_400,
                call_timeline: true,
                crm_user_overrides: Vec::new(),
                tie_breakers: Vec::new(),
                call_reference_prefix: String::new(),
            },
            worker: "w".into(),
            claim_lease_ms: 1000,
            max_calls: 0,
            policy_json: policy_json.into(),
            route_json: route_json.into(),
            review_place: ReviewPlace::StatusPage,
            state_retention_days: 30,
        }
    }

    #[test]
    fn empty_policy_and_route_log_and_take_every_call() {
        let parsed = Options::parse(options("", ""));
        assert!(parsed.usable().is_ok());
        assert!(parsed.policy.is_none());
        assert!(parsed.route.is_none());
        // A bound of zero would claim nothing, ever: at least one.
        assert_eq!(parsed.max_calls, 1);
    }

    #[test]
    fn a_route_that_takes_nothing_stops_the_tick_instead_of_taking_everything() {
        // What the host sends for a route it could not use (`{}`).
        let error = Options::parse(options("", "{}")).usable().err().unwrap();
        assert!(
            matches!(&error, StageError::InvalidSettings(m) if m.starts_with("route:")),
            "{error:?}"
        );
    }

    #[test]
    fn a_bad_policy_is_named() {
        let error = Options::parse(options(r#"{"colour":"red"}"#, ""))
            .usable()
            .err()
            .unwrap();
        assert!(
            matches!(&error, StageError::InvalidSettings(m) if m.starts_with("logging policy:")),
            "{error:?}"
        );
    }

    #[test]
    fn a_valid_route_is_kept() {
        let parsed = Options::parse(options("", r#"{"dids":["+14155550100"]}"#));
        assert!(parsed.usable().is_ok());
        assert!(parsed.route.is_some());
    }
}
