//! Builders for the set-up the tests write again and again: a tenant's
//! options and the calls placed in the 3CX simulator. Each test names
//! only what it changes from the defaults.

use connectzero::config::TenantOptions;
use connectzero::demo::{CallPlan, Expect, LegPlan};
use connectzero_simulators::threecx::SimParty;
use guest_support::policy::PolicyConfig;
use guest_support::routing::RouteConfig;

/// Tenant options, starting from [`TenantOptions::default`]: each method
/// sets one setting, [`Options::build`] hands the options over.
///
/// ```ignore
/// seeded_world(options().eager().claim_lease_secs(1).build())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Options(TenantOptions);

/// [`Options`] from the defaults.
pub fn options() -> Options {
    Options(TenantOptions::default())
}

impl Options {
    /// No waiting between retries of recordings and trigger deliveries
    /// (`retry_base_ms` 0), as tests of retries need.
    pub fn eager(self) -> Self {
        self.retry_base_ms(0)
    }

    /// First retry delay, milliseconds.
    pub fn retry_base_ms(mut self, ms: u32) -> Self {
        self.0.retry_base_ms = ms;
        self
    }

    /// How long to wait for 3CX to finalise a recording, seconds.
    pub fn recording_window_secs(mut self, secs: u32) -> Self {
        self.0.recording_window_secs = secs;
        self
    }

    /// How long a worker's claim on a call protects it, seconds.
    pub fn claim_lease_secs(mut self, secs: u32) -> Self {
        self.0.claim_lease_secs = secs;
        self
    }

    /// The scheduler's poll interval, milliseconds.
    pub fn poll_interval_ms(mut self, ms: u64) -> Self {
        self.0.poll_interval_ms = ms;
        self
    }

    /// The re-read window behind the cursor, seconds.
    pub fn overlap_window_secs(mut self, secs: u32) -> Self {
        self.0.overlap_window_secs = secs;
        self
    }

    /// Rows per 3CX page.
    pub fn page_size(mut self, rows: u32) -> Self {
        self.0.page_size = rows;
        self
    }

    /// Most new calls one tick claims and posts.
    pub fn max_calls_per_tick(mut self, calls: u32) -> Self {
        self.0.max_calls_per_tick = calls;
        self
    }

    /// How long after a missed call a callback recovers it, seconds (0:
    /// never).
    pub fn missed_call_recovery_window_secs(mut self, secs: u32) -> Self {
        self.0.missed_call_recovery_window_secs = secs;
        self
    }

    /// Whether a multi-segment call's message lists its segments.
    pub fn call_timeline(mut self, on: bool) -> Self {
        self.0.call_timeline = on;
        self
    }

    /// What a call from an unknown number does: "skip" or
    /// "create-contact".
    pub fn no_match_policy(mut self, policy: &str) -> Self {
        self.0.no_match_policy = policy.into();
        self
    }

    /// How a shared number is settled, in order (none: every shared
    /// number goes to review).
    pub fn tie_breakers(mut self, tie_breakers: &[&str]) -> Self {
        self.0.tie_breakers = tie_breakers.iter().map(|t| t.to_string()).collect();
        self
    }

    /// Log extension `extension`'s calls for the HighLevel user `user`.
    pub fn crm_user_override(mut self, extension: &str, user: &str) -> Self {
        self.0
            .crm_user_overrides
            .insert(extension.into(), user.into());
        self
    }

    /// Which of 3CX's call insights are brought across, and the window.
    pub fn insights(mut self, insights: guest_support::insights::InsightsConfig) -> Self {
        self.0.insights = insights;
        self
    }

    /// The logging policy.
    pub fn policy(mut self, policy: PolicyConfig) -> Self {
        self.0.policy = Some(policy);
        self
    }

    /// The agency route (`None`: this tenant takes every call).
    pub fn route(mut self, route: Option<RouteConfig>) -> Self {
        self.0.route = route;
        self
    }

    /// Where the periodic self-diagnostics send their alerts.
    pub fn diagnostics_alert(mut self, alert: &str) -> Self {
        self.0.diagnostics.alert = alert.into();
        self
    }

    /// The options.
    pub fn build(self) -> TenantOptions {
        self.0
    }
}

/// A leg of a call: `src` calls `dst`, answered or not, `secs` long.
pub fn leg(src: SimParty, dst: SimParty, answered: bool, secs: i64) -> LegPlan {
    LegPlan {
        src,
        dst,
        answered,
        secs,
    }
}

/// Call `call_id`, its `legs` in order, without a recording. `label`
/// names it in the demo's table only; the tests check what happened
/// themselves, so the plan expects nothing.
pub fn call(label: &'static str, call_id: i32, legs: Vec<LegPlan>) -> CallPlan {
    CallPlan {
        label,
        call_id,
        first_segment_id: None,
        legs,
        expect: Expect::Skipped("unused"),
        recording: None,
    }
}
