//! What the tenants of one host know of each other: which 3CX system and
//! CRM location each feeds ([`pbx_identity`]), the route claims of the
//! others on the same 3CX ([`link_tenants`]) and warnings about how they
//! split its calls ([`routing_warnings`]).

use super::TenantConfig;
/// What a tenant's routing and call references depend on in the other
/// tenants this host serves, computed by [`link_tenants`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peers {
    /// The DIDs and queues other tenants on the same 3CX take; every
    /// routed tenant needs them for the routing precedence (and the
    /// `route.default` tenant leaves these calls to them).
    pub route_elsewhere: guest_support::routing::RouteClaims,
    /// Another 3CX system feeds this tenant's CRM location.
    pub location_shared_with_other_pbx: bool,
}

/// The 3CX system a base URL names: its host and port, lower case
/// ("pbx.example.com", "127.0.0.1:5001"). Tenants with the same identity
/// share one 3CX.
pub fn pbx_identity(base_url: &str) -> String {
    crate::authority::authority_of_url(base_url)
        .map(|a| a.strip_suffix(":443").map(str::to_string).unwrap_or(a))
        .unwrap_or_else(|| base_url.trim_end_matches('/').to_string())
        .to_ascii_lowercase()
}

/// Tell every tenant what it needs to know of the others this host
/// serves (`Peers`): the DIDs and queues the other tenants on its 3CX
/// take (for its route's precedence), and whether another 3CX feeds its
/// CRM location (for its call references). `run`, `backfill` and `replay`
/// call this on every tenant they know before building any.
pub fn link_tenants(tenants: &mut [TenantConfig]) {
    let snapshot: Vec<(
        String,
        String,
        String,
        Option<guest_support::routing::RouteClaims>,
    )> = tenants
        .iter()
        .map(|t| {
            (
                t.id.clone(),
                pbx_identity(&t.pbx.base_url),
                location_identity(t),
                t.settings.route.as_ref().map(|r| r.claims()),
            )
        })
        .collect();
    for tenant in tenants.iter_mut() {
        let pbx = pbx_identity(&tenant.pbx.base_url);
        let location = location_identity(tenant);
        let mut peers = Peers::default();
        for (id, other_pbx, other_location, claims) in &snapshot {
            if *id == tenant.id {
                continue;
            }
            if *other_pbx == pbx
                && let Some(claims) = claims
            {
                peers.route_elsewhere.extend(claims);
            }
            if *other_location == location && *other_pbx != pbx {
                peers.location_shared_with_other_pbx = true;
            }
        }
        tenant.settings.peers = peers;
    }
}

fn location_identity(tenant: &TenantConfig) -> String {
    format!(
        "{}|{}",
        tenant
            .crm
            .base_url
            .trim_end_matches('/')
            .to_ascii_lowercase(),
        tenant.crm.location_id
    )
}

/// Warnings about how tenants sharing one 3CX split its calls: a call two
/// tenants take (an overlap), calls no tenant takes (a gap: recorded as
/// `routed-elsewhere` by all), a tenant without a route next to routed
/// ones (it takes every call, the others' too). Each says what to change.
/// `run` logs them at start and `connectzero doctor` shows them.
pub fn routing_warnings(tenants: &[TenantConfig]) -> Vec<String> {
    use std::collections::BTreeMap;
    let mut by_pbx: BTreeMap<String, Vec<&TenantConfig>> = BTreeMap::new();
    for t in tenants {
        by_pbx
            .entry(pbx_identity(&t.pbx.base_url))
            .or_default()
            .push(t);
    }
    let mut warnings = Vec::new();
    for (pbx, group) in by_pbx {
        if group.len() < 2 || group.iter().all(|t| t.settings.route.is_none()) {
            continue;
        }
        let ids = |f: &dyn Fn(&TenantConfig) -> bool| -> Vec<String> {
            group
                .iter()
                .filter(|t| f(t))
                .map(|t| t.id.clone())
                .collect()
        };
        let unrouted = ids(&|t| t.settings.route.is_none());
        for id in &unrouted {
            warnings.push(format!(
                "3CX {pbx}: tenant {id} has no route and takes every call, including those routed to the other tenants on this 3CX: give it a [settings.route] (e.g. `default = true` to take only the calls nobody else claims)"
            ));
        }
        let defaults = ids(&|t| t.settings.route.as_ref().is_some_and(|r| r.default));
        if defaults.len() > 1 {
            warnings.push(format!(
                "3CX {pbx}: tenants {} all have route.default = true and all take the calls no other tenant claims: keep it on one",
                defaults.join(", ")
            ));
        }
        if unrouted.is_empty() && defaults.is_empty() {
            warnings.push(format!(
                "3CX {pbx}: no tenant has route.default = true, so calls matching no tenant's dids or queues (outbound and internal calls, new DIDs) are posted nowhere, only recorded as routed-elsewhere: set `default = true` on one tenant's route"
            ));
        }
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for t in &group {
            let Some(route) = &t.settings.route else {
                continue;
            };
            let dids = route.dids.iter().filter_map(|d| {
                guest_support::policy::canonical_e164(d).map(|d| format!("DID {d}"))
            });
            let queues = route.queues.iter().map(|q| format!("queue {}", q.trim()));
            for claim in dids.chain(queues) {
                if let Some(first) = seen.get(&claim) {
                    warnings.push(format!(
                        "3CX {pbx}: {claim} is routed to both {first} and {}, so both post those calls: list it in one tenant's route",
                        t.id
                    ));
                } else {
                    seen.insert(claim, t.id.clone());
                }
            }
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    /// A tenant from TOML: `id` on 3CX `pbx`, with `extra` settings.
    fn routed(id: &str, pbx: &str, extra: &str) -> anyhow::Result<TenantConfig> {
        let tenant: TenantConfig = toml::from_str(&format!(
            "id = \"{id}\"\n[pbx]\nbase_url = \"{pbx}\"\nclient_id = \"c\"\n[crm]\nlocation_id = \"L-{id}\"\nconversation_provider_id = \"p\"\nclient_id = \"c\"\n[settings]\n{extra}"
        ))?;
        tenant.validate()?;
        Ok(tenant)
    }

    #[test]
    fn a_bad_route_is_refused_saying_what_to_fix() {
        let e = routed(
            "a",
            "https://pbx.example.com",
            "[settings.route]\ndids = [\"01615550100\"]",
        )
        .unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("route.dids") && e.contains("E.164"), "{e}");
        let e = routed(
            "a",
            "https://pbx.example.com",
            "[settings.route]\nqueues = [\"sales\"]",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("extension number"), "{e:#}");
        let e = routed(
            "a",
            "https://pbx.example.com",
            "[settings.route]\ncolour = 1",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("colour"), "{e:#}");
        // No route: the tenant takes every call, as before.
        assert!(
            routed("a", "https://pbx.example.com", "")
                .unwrap()
                .route()
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn routing_warnings_name_overlaps_gaps_and_unrouted_tenants_per_3cx() {
        let pbx = "https://pbx.example.com";
        let sales = routed(
            "sales",
            pbx,
            "[settings.route]\ndids = [\"+14155550900\"]\nqueues = [\"800\"]",
        )
        .unwrap();
        let support = routed("support", pbx, "[settings.route]\nqueues = [\"800\"]").unwrap();
        let all = routed("all", pbx, "").unwrap();
        let elsewhere = routed("other", "https://other.example.com", "").unwrap();
        let w = routing_warnings(&[sales.clone(), support.clone(), elsewhere.clone()]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w.iter()
                .any(|w| w.contains("queue 800 is routed to both sales and support")),
            "{w:?}"
        );
        assert!(
            w.iter().any(|w| w.contains("no tenant has route.default")),
            "{w:?}"
        );
        let w = routing_warnings(&[sales.clone(), all]);
        assert!(
            w.iter().any(|w| w.contains("tenant all has no route")),
            "{w:?}"
        );
        // Tenants alone on their 3CX, or none routed: nothing to say.
        assert!(routing_warnings(&[sales, elsewhere]).is_empty());

        // The default tenant leaves the others' claims to them.
        let default = routed("default", pbx, "[settings.route]\ndefault = true").unwrap();
        let mut linked = vec![default, support];
        link_tenants(&mut linked);
        assert_eq!(linked[0].settings.peers.route_elsewhere.queues, ["800"]);
        assert!(linked[1].settings.peers.route_elsewhere.is_empty());
        assert!(routing_warnings(&linked).is_empty());
    }
}
