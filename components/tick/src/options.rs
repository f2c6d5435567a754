//! The tick's settings: the WIT record, with the logging policy and the
//! route validated by `guest_support` (the same checks the host's
//! configuration and the Spin variables go through; a runtime that skipped
//! them cannot make the tick take calls it should not).

use crate::exports::connectzero::pipeline::tick::{ReviewPlace, TickOptions};
use guest_support::bindings::connectzero::pipeline::types::{Routing, StageError, TenantSettings};
use guest_support::policy::{Policy, PolicyConfig};
use guest_support::routing::{Route, RouteConfig};

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
        let policy = options.policy.and_then(|p| {
            PolicyConfig::from(p)
                .validate()
                .map_err(|e| {
                    unusable = Some(StageError::InvalidSettings(format!("logging policy: {e}")));
                })
                .ok()
        });
        let route = match options.routing {
            Routing::EveryCall => None,
            Routing::NoCall(why) => {
                unusable = Some(StageError::InvalidSettings(why));
                None
            }
            Routing::ByRoute(route) => RouteConfig::from(route)
                .validate()
                .map_err(|e| {
                    unusable = Some(StageError::InvalidSettings(format!("route: {e}")));
                })
                .ok(),
        };
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
    use guest_support::bindings::connectzero::pipeline::types::{
        InsightsSettings, LoggingPolicy, NoMatchPolicy, Route, RouteClaims,
    };

    fn options(policy: Option<LoggingPolicy>, routing: Routing) -> TickOptions {
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
                insights: InsightsSettings {
                    summary: true,
                    sentiment: true,
                    transcript: false,
                    window_secs: 1800,
                    sentiment_field_key: "connectzero_call_sentiment".into(),
                },
            },
            worker: "w".into(),
            claim_lease_ms: 1000,
            max_calls: 0,
            policy,
            routing,
            review_place: ReviewPlace::StatusPage,
            state_retention_days: 30,
        }
    }

    fn route(dids: &[&str], take_unclaimed: bool) -> Routing {
        Routing::ByRoute(Route {
            claims: RouteClaims {
                dids: dids.iter().map(|d| d.to_string()).collect(),
                queues: Vec::new(),
            },
            take_unclaimed,
            elsewhere: RouteClaims {
                dids: Vec::new(),
                queues: Vec::new(),
            },
        })
    }

    fn policy() -> LoggingPolicy {
        (&PolicyConfig::default()).into()
    }

    #[test]
    fn no_policy_and_every_call_log_and_take_every_call() {
        let parsed = Options::parse(options(None, Routing::EveryCall));
        assert!(parsed.usable().is_ok());
        assert!(parsed.policy.is_none());
        assert!(parsed.route.is_none());
        // A bound of zero would claim nothing, ever: at least one.
        assert_eq!(parsed.max_calls, 1);
    }

    #[test]
    fn no_call_stops_the_tick_with_the_runtimes_reason() {
        let error = Options::parse(options(None, Routing::NoCall("route.dids: bad".into())))
            .usable()
            .err()
            .unwrap();
        assert!(
            matches!(&error, StageError::InvalidSettings(m) if m == "route.dids: bad"),
            "{error:?}"
        );
    }

    #[test]
    fn a_route_that_takes_nothing_stops_the_tick_instead_of_taking_everything() {
        let error = Options::parse(options(None, route(&[], false)))
            .usable()
            .err()
            .unwrap();
        assert!(
            matches!(&error, StageError::InvalidSettings(m) if m.starts_with("route:")),
            "{error:?}"
        );
    }

    #[test]
    fn a_bad_policy_is_named() {
        let mut bad = policy();
        bad.own_numbers = vec!["not a number".into()];
        let error = Options::parse(options(Some(bad), Routing::EveryCall))
            .usable()
            .err()
            .unwrap();
        assert!(
            matches!(&error, StageError::InvalidSettings(m) if m.starts_with("logging policy:")),
            "{error:?}"
        );
    }

    #[test]
    fn a_valid_policy_and_route_are_kept() {
        let parsed = Options::parse(options(Some(policy()), route(&["+14155550100"], true)));
        assert!(parsed.usable().is_ok());
        assert!(parsed.policy.is_some());
        assert!(parsed.route.is_some());
    }
}
