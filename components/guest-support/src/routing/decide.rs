//! The validated [`Route`] at work: merging other tenants' claims,
//! writing it back as settings, and deciding which tenant takes a call.

use super::canonical::canonical_queue;
use super::{
    ROUTED_ELSEWHERE, Route, RouteClaims, RouteConfig, RouteDecision, RouteFacts, did_matches,
};
use crate::policy::canonical_e164;

impl Route {
    /// The same route, with more claims of other tenants (the bundled
    /// host's tenants on the same 3CX). Claims that are this tenant's own
    /// or not valid are left out: validation reports them elsewhere.
    pub fn with_elsewhere(mut self, others: &RouteClaims) -> Self {
        for did in others.dids.iter().filter_map(|d| canonical_e164(d)) {
            if !self.own.dids.contains(&did) && !self.elsewhere.dids.contains(&did) {
                self.elsewhere.dids.push(did);
            }
        }
        for queue in others
            .queues
            .iter()
            .filter_map(|q| canonical_queue("", q).ok())
        {
            if !self.own.queues.contains(&queue) && !self.elsewhere.queues.contains(&queue) {
                self.elsewhere.queues.push(queue);
            }
        }
        self
    }

    /// The route written back as settings, canonical and with every
    /// claim it holds (its own, and the other tenants' in `elsewhere`):
    /// what both runtimes hand the tick component (as the WIT `route`),
    /// which validates it again into this same route.
    pub fn to_config(&self) -> RouteConfig {
        RouteConfig {
            dids: self.own.dids.clone(),
            queues: self.own.queues.clone(),
            default: self.default,
            elsewhere: self.elsewhere.clone(),
        }
    }

    /// Whether this route takes what no other tenant claims.
    pub fn is_default(&self) -> bool {
        self.default
    }

    /// Whether this tenant or another on its 3CX routes by DID: only then
    /// are DIDs worth reading (from recordings, the only place 3CX's API
    /// shows them).
    pub fn routes_by_did(&self) -> bool {
        !self.own.dids.is_empty() || !self.elsewhere.dids.is_empty()
    }

    /// Decide whether this tenant takes the call, by the precedence every
    /// tenant on the 3CX applies, so a call has exactly one owner:
    ///
    /// 1. DID: if this tenant or another (`elsewhere`) claims the call's
    ///    DID, the DID's tenant takes it, whatever queues it went through;
    /// 2. else the first DN in leg order that a tenant lists as a queue:
    ///    that queue's tenant takes it (a call moved from queue 800 to
    ///    801 belongs to 800's tenant);
    /// 3. else the default tenant, unless the DID is unknown
    ///    ([`RouteFacts::did_unknown`]) and another tenant routes by DID.
    ///
    /// A DID or queue two tenants both list as their own is taken by both
    /// (an overlap, warned about at start).
    pub fn decide(&self, call: &RouteFacts) -> RouteDecision {
        let did = call.did.as_deref().unwrap_or("none");
        let elsewhere = |why: String| {
            RouteDecision::Elsewhere(format!("{ROUTED_ELSEWHERE}: {why} (DID {did})"))
        };
        if let Some(number) = call.did.as_deref() {
            let claimed = |set: &RouteClaims| set.dids.iter().any(|d| did_matches(number, d));
            if claimed(&self.own) {
                return RouteDecision::Take;
            }
            if claimed(&self.elsewhere) {
                return elsewhere("claimed by another tenant: its DID".into());
            }
        }
        for dn in call.dns.iter().map(|dn| dn.trim()) {
            if self.own.queues.iter().any(|q| q == dn) {
                return RouteDecision::Take;
            }
            if self.elsewhere.queues.iter().any(|q| q == dn) {
                return elsewhere(format!("claimed by another tenant: queue {dn}"));
            }
        }
        if !self.default {
            return elsewhere("not this tenant's DID or queue".into());
        }
        if call.did_unknown && !self.elsewhere.dids.is_empty() {
            return elsewhere(
                "DID unknown (3CX's active-call text names none) and another tenant routes by DID"
                    .into(),
            );
        }
        RouteDecision::Take
    }
}
