//! Turning the route as written into a [`Route`]: every claim made
//! canonical and the settings checked, with an error that names the
//! setting and says what it takes.

use super::canonical::canonical_claims;
use super::{Route, RouteClaims, RouteConfig, RouteError};

impl RouteConfig {
    /// Check every setting and build the [`Route`]; the error names the
    /// setting and says what it takes.
    pub fn validate(&self) -> Result<Route, RouteError> {
        let own = canonical_claims(
            "",
            &RouteClaims {
                dids: self.dids.clone(),
                queues: self.queues.clone(),
            },
        )?;
        let elsewhere = canonical_claims("elsewhere.", &self.elsewhere)?;
        if own.is_empty() && !self.default {
            return Err(RouteError::new(
                "dids",
                "this route takes no call: list the tenant's `dids` or `queues`, set `default = true`, or remove the route to take every call",
            ));
        }
        if let Some(d) = own.dids.iter().find(|d| elsewhere.dids.contains(d)) {
            return Err(RouteError::new(
                "elsewhere.dids",
                format!("{d} is this tenant's own DID too: list it in one place only"),
            ));
        }
        if let Some(q) = own.queues.iter().find(|q| elsewhere.queues.contains(q)) {
            return Err(RouteError::new(
                "elsewhere.queues",
                format!("{q} is this tenant's own queue too: list it in one place only"),
            ));
        }
        Ok(Route {
            own,
            default: self.default,
            elsewhere,
        })
    }
}

/// Parse the route from JSON (the Spin `route_json` variable). An empty or
/// blank string means no route (`Ok(None)`): the tenant takes every call.
pub fn parse_json(text: &str) -> Result<Option<Route>, RouteError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let config: RouteConfig =
        serde_json::from_str(text).map_err(|e| RouteError::new("(json)", e))?;
    config.validate().map(Some)
}
