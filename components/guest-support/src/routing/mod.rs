//! Agency routing: which of the tenants sharing one 3CX system takes a call.
//!
//! One 3CX system can feed several CRM sub-accounts: each tenant on it
//! polls the same call history and keeps its own ledger, and its route
//! filter decides which calls it posts. A call the filter does not take is
//! recorded in that tenant's ledger as skipped with a reason starting
//! `routed-elsewhere`, so every tenant accounts for every call and nothing
//! disappears silently.
//!
//! Plain Rust types only (no WIT types), like [`crate::policy`], so the
//! bundled host (natively) and the Spin app (as a component) run this one
//! implementation: each runtime turns its call into [`RouteFacts`] (the DID
//! through [`did_of`], the one place that reads it) and asks
//! [`Route::decide`]. The decision is made before the match stage, so a
//! call routed elsewhere costs no directory lookup and no CRM request.
//!
//! Without a route (the default) a tenant takes every call, as before.
//! With one, every tenant on the 3CX applies the same precedence, so each
//! call has exactly one owner (see [`Route::decide`]):
//!
//! 1. the DID: when any tenant claims the call's DID (its own `dids` or
//!    the `elsewhere` list), the tenant whose DID it is takes the call;
//! 2. else the first claimed queue in leg order: the tenant of the first
//!    DN the call passed through that any tenant lists in `queues`;
//! 3. else the tenant with `default = true`.
//!
//! So every tenant must know the others' claims (`elsewhere`): on the
//! bundled host the other tenants on the same 3CX are added automatically;
//! on Spin, where one app serves one tenant, list them in every tenant's
//! route.
//!
//! This module holds the route's settings and verdict types; its parts,
//! one job each: `facts` (what routing reads of a call, the DID
//! included), `canonical` (the canonical form of listed DIDs and queues),
//! `validate` (checking the settings into a [`Route`]) and `decide` (the
//! precedence that picks a call's tenant).

mod canonical;
mod decide;
mod facts;
mod validate;

pub use facts::{RouteFacts, did_matches, did_of};
pub use validate::parse_json;

use serde::{Deserialize, Serialize};
use std::fmt;

/// DIDs and queues, as written in the settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteClaims {
    /// Dialled numbers (DIDs) in E.164, e.g. "+442079460000".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dids: Vec<String>,
    /// Queue (or ring group, IVR) extension numbers, e.g. "800".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<String>,
}

impl RouteClaims {
    /// Whether no DID and no queue is listed.
    pub fn is_empty(&self) -> bool {
        self.dids.is_empty() && self.queues.is_empty()
    }

    /// Add another set (duplicates kept out).
    pub fn extend(&mut self, other: &RouteClaims) {
        for d in &other.dids {
            if !self.dids.contains(d) {
                self.dids.push(d.clone());
            }
        }
        for q in &other.queues {
            if !self.queues.contains(q) {
                self.queues.push(q.clone());
            }
        }
    }
}

/// The route filter as written in the settings (`[tenants.settings.route]`
/// in the host's TOML, the `route_json` variable on Spin). Turn it into a
/// [`Route`] with [`RouteConfig::validate`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteConfig {
    /// Take inbound calls to these DIDs (E.164).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dids: Vec<String>,
    /// Take calls that passed through these queue extensions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<String>,
    /// Also take every call that no other tenant on the same 3CX claims
    /// (outbound and internal calls, unlisted DIDs and queues).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    /// What the other tenants on the same 3CX claim, for the precedence
    /// every route applies (a DID wins over a queue, the first queue over
    /// later ones) and for `default`. The bundled host adds its own
    /// tenants on the same `pbx.base_url` to this; list here only tenants
    /// served elsewhere (on Spin: all).
    #[serde(skip_serializing_if = "RouteClaims::is_empty")]
    pub elsewhere: RouteClaims,
}

impl RouteConfig {
    /// This tenant's own DIDs and queues, as written.
    pub fn claims(&self) -> RouteClaims {
        RouteClaims {
            dids: self.dids.clone(),
            queues: self.queues.clone(),
        }
    }
}

/// A route setting that cannot be used, with what to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("route.{field}: {problem}")]
pub struct RouteError {
    /// The setting at fault, e.g. "dids".
    pub field: String,
    /// What is wrong and what it takes.
    pub problem: String,
}

impl RouteError {
    fn new(field: &str, problem: impl fmt::Display) -> Self {
        Self {
            field: field.to_string(),
            problem: problem.to_string(),
        }
    }
}

/// A validated route filter; [`Route::decide`] applies it to one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// This tenant's DIDs and queues, canonical.
    own: RouteClaims,
    /// Takes what nobody else claims.
    default: bool,
    /// What the other tenants claim, canonical.
    elsewhere: RouteClaims,
}

/// What the route says about one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteDecision {
    /// This tenant takes the call (match, policy, post as usual).
    Take,
    /// Another tenant takes it; the string is the skip reason recorded,
    /// starting with [`ROUTED_ELSEWHERE`].
    Elsewhere(String),
}

/// The start of every skip reason of a call routed to another tenant.
pub const ROUTED_ELSEWHERE: &str = "routed-elsewhere";

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(did: Option<&str>, dns: &[&str]) -> RouteFacts {
        RouteFacts {
            did: did.map(str::to_string),
            dns: dns.iter().map(|d| d.to_string()).collect(),
            ..Default::default()
        }
    }

    fn route(dids: &[&str], queues: &[&str], default: bool) -> Route {
        RouteConfig {
            dids: dids.iter().map(|d| d.to_string()).collect(),
            queues: queues.iter().map(|q| q.to_string()).collect(),
            default,
            elsewhere: RouteClaims::default(),
        }
        .validate()
        .unwrap()
    }

    #[test]
    fn a_route_takes_its_dids_and_queues_and_nothing_else() {
        let sales = route(&["+44 161 555 0100"], &["800"], false);
        assert_eq!(
            sales.decide(&facts(Some("+441615550100"), &["101"])),
            RouteDecision::Take
        );
        assert_eq!(
            sales.decide(&facts(None, &["800", "101"])),
            RouteDecision::Take
        );
        let RouteDecision::Elsewhere(reason) =
            sales.decide(&facts(Some("+441615550199"), &["801"]))
        else {
            panic!("taken");
        };
        assert!(reason.starts_with(ROUTED_ELSEWHERE), "{reason}");
        assert!(reason.contains("+441615550199"), "{reason}");
        assert!(matches!(
            sales.decide(&facts(None, &[])),
            RouteDecision::Elsewhere(_)
        ));
    }

    #[test]
    fn national_dids_match_their_e164_form() {
        assert!(did_matches("01615550100", "+441615550100"));
        assert!(did_matches("1615550100", "+441615550100"));
        assert!(did_matches("00441615550100", "+441615550100"));
        assert!(did_matches("4155550100", "+14155550100"));
        assert!(did_matches("14155550100", "+14155550100"));
        assert!(did_matches("+1 415 555 0100", "+14155550100"));
        // Italy keeps the leading 0 in the national number.
        assert!(did_matches("0612345678", "+390612345678"));
        assert!(!did_matches("+14155550100", "+441615550100"));
        assert!(
            !did_matches("0100", "+441615550100"),
            "too few digits to tell"
        );
    }

    #[test]
    fn a_national_did_does_not_match_another_number_with_the_same_last_digits() {
        // "5550100" ends both Manchester's and Macclesfield's number.
        assert!(!did_matches("5550100", "+441615550100"));
        assert!(!did_matches("5550100", "+441625550100"));
        assert!(!did_matches("01625550100", "+441615550100"));
        assert!(!did_matches("615550100", "+441615550100"));
        let manchester = route(&["+441615550100"], &[], false).with_elsewhere(&RouteClaims {
            dids: vec!["+441625550100".into()],
            queues: vec![],
        });
        assert!(matches!(
            manchester.decide(&facts(Some("5550100"), &["101"])),
            RouteDecision::Elsewhere(_)
        ));
        assert_eq!(
            manchester.decide(&facts(Some("01615550100"), &["101"])),
            RouteDecision::Take
        );
    }

    /// Tenant a: DID +441615550100 and queue 800, the default; tenant b:
    /// DID +441615550200 and queue 801. Each decides with the other's
    /// claims as `elsewhere`, as the host links them.
    fn two_tenants() -> (Route, Route) {
        let a = route(&["+441615550100"], &["800"], true);
        let b = route(&["+441615550200"], &["801"], false);
        let a_claims = RouteClaims {
            dids: vec!["+441615550100".into()],
            queues: vec!["800".into()],
        };
        let b_claims = RouteClaims {
            dids: vec!["+441615550200".into()],
            queues: vec!["801".into()],
        };
        (a.with_elsewhere(&b_claims), b.with_elsewhere(&a_claims))
    }

    /// Which of the two tenants take `call`.
    fn owners(call: &RouteFacts) -> Vec<&'static str> {
        let (a, b) = two_tenants();
        [("a", a), ("b", b)]
            .into_iter()
            .filter(|(_, r)| r.decide(call) == RouteDecision::Take)
            .map(|(name, _)| name)
            .collect()
    }

    #[test]
    fn the_did_wins_over_any_queue() {
        // A call to a's DID that a sends into b's queue is a's only.
        assert_eq!(
            owners(&facts(Some("+441615550100"), &["801", "102"])),
            ["a"]
        );
        assert_eq!(owners(&facts(Some("01615550200"), &["800", "101"])), ["b"]);
        let (_, b) = two_tenants();
        let RouteDecision::Elsewhere(why) = b.decide(&facts(Some("+441615550100"), &["801"]))
        else {
            panic!("b took a's DID");
        };
        assert!(why.contains("its DID"), "{why}");
    }

    #[test]
    fn the_first_claimed_queue_in_leg_order_wins() {
        // Moved from a's queue 800 to b's 801: a's; the other way: b's.
        assert_eq!(owners(&facts(None, &["800", "101", "801", "102"])), ["a"]);
        assert_eq!(owners(&facts(None, &["801", "102", "800"])), ["b"]);
        // An unclaimed DID does not stop the queue from deciding.
        assert_eq!(
            owners(&facts(Some("+441615550999"), &["700", "801"])),
            ["b"]
        );
        let (a, _) = two_tenants();
        let RouteDecision::Elsewhere(why) = a.decide(&facts(None, &["801", "800"])) else {
            panic!("a took b's call");
        };
        assert!(why.contains("queue 801"), "{why}");
    }

    #[test]
    fn what_nobody_claims_goes_to_the_default_tenant_only() {
        assert_eq!(owners(&facts(None, &["103"])), ["a"], "outbound");
        assert_eq!(owners(&facts(Some("+441615550999"), &["700"])), ["a"]);
    }

    #[test]
    fn an_active_call_without_its_did_starts_nothing_in_the_default_tenant_when_others_route_by_did()
     {
        // Callee "101 Alice": inbound, the DID is not in 3CX's text.
        let unknown = RouteFacts::of_active_call(true, "101", Some("101"), [None, Some("101")]);
        assert!(unknown.did_unknown && unknown.did.is_none());
        assert!(owners(&unknown).is_empty());
        // Only the default tenant's own DIDs: the call is its either way.
        let alone = route(&["+441615550100"], &[], true).with_elsewhere(&RouteClaims {
            dids: vec![],
            queues: vec!["801".into()],
        });
        assert_eq!(alone.decide(&unknown), RouteDecision::Take);
        // What is known still decides: the DID in the text, or a queue.
        let named = RouteFacts::of_active_call(true, "+441615550200", None, [None, None]);
        assert!(!named.did_unknown);
        assert_eq!(owners(&named), ["b"]);
        let queued = RouteFacts::of_active_call(true, "801", Some("801"), [None, Some("801")]);
        assert_eq!(owners(&queued), ["b"]);
        // Outbound calls have no DID to know: the default takes them.
        let outbound =
            RouteFacts::of_active_call(false, "+441615550999", None, [Some("103"), None]);
        assert!(!outbound.did_unknown);
        assert_eq!(owners(&outbound), ["a"]);
        // Call history is read as before: no DID there is no DID.
        let history = RouteFacts::of_call(true, "101", Some("101"), [None, Some("101")]);
        assert!(!history.did_unknown);
        assert_eq!(owners(&history), ["a"]);
    }

    #[test]
    fn call_facts_list_each_dn_once_in_leg_order() {
        let f = RouteFacts::of_call(
            true,
            "+441615550100",
            Some("800"),
            [
                None,
                Some("800"),
                None,
                Some("101"),
                Some("101"),
                Some("801"),
            ],
        );
        assert_eq!(f.dns, ["800", "101", "801"]);
        assert_eq!(f.did.as_deref(), Some("+441615550100"));
    }

    #[test]
    fn the_default_route_takes_what_no_other_tenant_claims() {
        let default = route(&[], &[], true).with_elsewhere(&RouteClaims {
            dids: vec!["+441615550100".into()],
            queues: vec!["800".into()],
        });
        assert_eq!(
            default.decide(&facts(None, &["102"])),
            RouteDecision::Take,
            "outbound"
        );
        assert_eq!(
            default.decide(&facts(Some("+441615550111"), &["801"])),
            RouteDecision::Take
        );
        assert!(
            matches!(default.decide(&facts(Some("+441615550100"), &[])), RouteDecision::Elsewhere(r) if r.contains("claimed by another tenant"))
        );
        assert!(matches!(
            default.decide(&facts(None, &["800"])),
            RouteDecision::Elsewhere(_)
        ));
        // A default tenant's own claims win over another's.
        let both = route(&[], &["800"], true).with_elsewhere(&RouteClaims {
            dids: vec![],
            queues: vec!["800".into()],
        });
        assert_eq!(both.decide(&facts(None, &["800"])), RouteDecision::Take);
    }

    #[test]
    fn the_did_is_the_first_inbound_segments_dialled_number_not_its_dn() {
        assert_eq!(
            did_of(true, "+441615550100", Some("800")).as_deref(),
            Some("+441615550100")
        );
        assert_eq!(did_of(true, "800", Some("800")), None);
        assert_eq!(
            did_of(true, "101", None),
            None,
            "an extension number is no DID"
        );
        assert_eq!(
            did_of(false, "+441615550100", None),
            None,
            "outbound calls have no DID"
        );
    }

    #[test]
    fn bad_routes_are_refused_with_what_to_fix() {
        let bad = |c: RouteConfig| c.validate().unwrap_err().to_string();
        let e = bad(RouteConfig {
            dids: vec!["01615550100".into()],
            ..Default::default()
        });
        assert!(e.starts_with("route.dids") && e.contains("E.164"), "{e}");
        let e = bad(RouteConfig {
            queues: vec!["sales".into()],
            ..Default::default()
        });
        assert!(e.starts_with("route.queues") && e.contains("digits"), "{e}");
        let e = bad(RouteConfig::default());
        assert!(e.contains("takes no call"), "{e}");
        let e = bad(RouteConfig {
            queues: vec!["800".into(), " 800".into()],
            ..Default::default()
        });
        assert!(e.contains("twice"), "{e}");
        let e = bad(RouteConfig {
            queues: vec!["800".into()],
            elsewhere: RouteClaims {
                dids: vec![],
                queues: vec!["800".into()],
            },
            ..Default::default()
        });
        assert!(e.contains("own queue too"), "{e}");
        // Any route may list the others' claims, for the precedence.
        assert!(
            RouteConfig {
                queues: vec!["800".into()],
                elsewhere: RouteClaims {
                    dids: vec!["+441615550100".into()],
                    queues: vec!["801".into()],
                },
                ..Default::default()
            }
            .validate()
            .is_ok()
        );
        assert_eq!(parse_json("  ").unwrap(), None);
        assert!(parse_json(r#"{"queues":["800"],"colour":"red"}"#).is_err());
        assert!(
            parse_json(r#"{"default":true,"elsewhere":{"queues":["800"]}}"#)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_route_written_back_as_settings_validates_into_itself() {
        let route = RouteConfig {
            dids: vec!["+44 20 7946 0000".into()],
            queues: vec!["800".into()],
            default: true,
            elsewhere: RouteClaims::default(),
        }
        .validate()
        .unwrap()
        .with_elsewhere(&RouteClaims {
            dids: vec!["+442079460001".into()],
            queues: vec!["801".into()],
        });
        let json = serde_json::to_string(&route.to_config()).unwrap();
        assert_eq!(parse_json(&json).unwrap(), Some(route));
    }
}
