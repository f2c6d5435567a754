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
}

impl Options {
    /// Parse `options`; a policy or route that does not validate is an
    /// `invalid-settings` error naming it, and the tick does not run (the
    /// host validates both before it starts; a bad route must never mean
    /// "take every call", which would post other sub-accounts' calls).
    pub fn parse(options: TickOptions) -> Result<Self, StageError> {
        let policy = guest_support::policy::parse_json(&options.policy_json)
            .map_err(|e| StageError::InvalidSettings(format!("logging policy: {e}")))?;
        let route = guest_support::routing::parse_json(&options.route_json)
            .map_err(|e| StageError::InvalidSettings(format!("route: {e}")))?;
        Ok(Self {
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
        })
    }
}
