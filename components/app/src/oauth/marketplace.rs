//! The app's one redirect URL: `GET /oauth/callback`, what a marketplace
//! listing registers (it has one; installs started from it arrive with a
//! `code` and no `state`, HighLevel NOTES §8), and `GET /oauth/install`,
//! an install link that comes back there.
//!
//! The code is exchanged once, in the app's scope (the app's
//! `crm_client_id`, `crm_client_secret` and `crm_base_url`: tenants have
//! no OAuth client of their own), and the grant is kept by the tenant of
//! the location HighLevel granted:
//!
//! - the tenant that names the location (the app's own, configured by its
//!   variables, or one kept in the store): the install completes it;
//! - none: a tenant is created for the location
//!   (`tenancy.create-for-location`), with only `crm_location_id` set, so
//!   the tick driver reports it "waiting for settings" until the operator
//!   sets them with the admin API. The listing is public, so at most
//!   `max_waiting_tenants` such tenants may wait at once; no install ever
//!   changes another tenant's location or settings.
//!
//! Refused: agency tokens (403), a location several tenants name (409:
//! install from the tenant's own link), a location whose derived id
//! another tenant has (409), the cap reached (503).

use super::{Answer, Flow, code_of, error, exchange, internal, keep, redirect_uri};
use crate::connectzero::pipeline::tenancy::{self, LocationCreated, Scope};
use crate::tenants;
use guest_support::config;
use guest_support::install_tenants::{DEFAULT_MAX_WAITING, MAX_WAITING_VARIABLE};
use guest_support::serve::Incoming;
use serde_json::json;

/// `GET /oauth/install`: 302 to the authorize page, coming back to
/// `GET /oauth/callback`.
pub fn install(request: &Incoming) -> Answer {
    if let Err(e) = tenants::own_tenant() {
        return internal(e);
    }
    super::install(request, Flow::App)
}

/// `GET /oauth/callback?code=…[&state=…]`.
pub fn callback(request: &Incoming) -> Answer {
    match complete(request) {
        Ok((tenant, created)) => {
            let message = if created {
                "ConnectZero is installed for this sub-account; calls are logged once the operator has set up its 3CX connection"
            } else {
                "ConnectZero is installed for this sub-account"
            };
            (
                200,
                Vec::new(),
                json!({"ok": true, "tenant": tenant, "created": created, "message": message}),
            )
        }
        Err(answer) => answer,
    }
}

/// The tenant that kept the grant, and whether the install created it.
fn complete(request: &Incoming) -> Result<(String, bool), Answer> {
    // The app's scope: its variables, its HighLevel.
    let own = tenants::own_tenant().map_err(internal)?;
    let flow = Flow::App;
    let code = code_of(request, flow)?;
    // Read before the code is spent: a bad value fails first.
    let max_waiting: u32 =
        config::parse_or(MAX_WAITING_VARIABLE, DEFAULT_MAX_WAITING).map_err(internal)?;
    let own_location = config::get("crm_location_id").map_err(internal)?;
    let redirect = redirect_uri(request, flow).map_err(internal)?;
    let (grant, location) = exchange(&code, &redirect)?;
    // The app's own tenant (its variables) is a candidate in its scope,
    // the stored ones in theirs.
    let mut serving: Vec<(String, Scope)> = tenancy::find_by_location(&location)
        .map_err(internal)?
        .into_iter()
        .map(|id| (id.clone(), Scope::Tenant(id)))
        .collect();
    if let Some(own) = own.filter(|_| own_location.as_deref() == Some(location.as_str())) {
        serving.insert(0, (own, Scope::App));
    }
    let (tenant, created) = match serving.as_slice() {
        [(only, _)] => (only.clone(), false),
        [] => match tenancy::create_for_location(&location, max_waiting).map_err(internal)? {
            LocationCreated::Created(id) => {
                eprintln!(
                    "connectzero: an install created tenant {id} for HighLevel location {location}; it waits for its settings (PUT /admin/tenants/{id})"
                );
                (id, true)
            }
            LocationCreated::Exists(id) => (id, false),
            LocationCreated::IdTaken(id) => {
                eprintln!(
                    "connectzero: refused an install for HighLevel location {location}: tenant {id} names another location"
                );
                return Err(error(
                    409,
                    "the tenant id this sub-account would get is another tenant's: the operator creates the tenant for it (PUT /admin/tenants/<id> with its crm_location_id), then install again",
                ));
            }
            LocationCreated::TooManyWaiting => {
                eprintln!(
                    "connectzero: refused an install for HighLevel location {location}: {max_waiting} tenants created by installs wait for their settings ({MAX_WAITING_VARIABLE})"
                );
                return Err(error(503, too_many_waiting(max_waiting)));
            }
        },
        _ => {
            return Err(error(
                409,
                "several tenants of this app serve the sub-account the app was installed in: install from /t/<tenant>/oauth/install for the one it is for",
            ));
        }
    };
    let own_scope = matches!(serving.as_slice(), [(_, Scope::App)]);
    if !own_scope {
        tenancy::select(&Scope::Tenant(tenant.clone())).map_err(internal)?;
    }
    keep(grant)?;
    Ok((tenant, created))
}

/// Why an install created no tenant, naming the variable that decides.
fn too_many_waiting(max: u32) -> String {
    if max == 0 {
        format!(
            "this app creates no tenants from installs ({MAX_WAITING_VARIABLE} is 0): the operator adds the tenant for this sub-account first, then install again"
        )
    } else {
        format!(
            "{max} tenants created by installs already wait for their settings, the most {MAX_WAITING_VARIABLE} allows: the operator sets them up or removes them (PUT or DELETE /admin/tenants/<id>), or raises {MAX_WAITING_VARIABLE}; then install again"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cap_names_its_variable() {
        for max in [0, 20] {
            let text = too_many_waiting(max);
            assert!(text.contains(MAX_WAITING_VARIABLE), "{text}");
        }
        assert!(too_many_waiting(20).contains("20 tenants"));
    }
}
