//! The HighLevel OAuth install on Spin.
//!
//! - A tenant's routes: `GET /t/{tenant}/oauth/install` redirects to
//!   HighLevel's authorize page with a single-use, expiring `state`;
//!   `GET /t/{tenant}/oauth/callback` checks the state (an install started
//!   from the marketplace listing has none, HighLevel NOTES §8), has the
//!   credentials provider exchange the code (`crm-install.exchange`) and
//!   keep the grant for the tenant (`crm-install.keep`, only for the
//!   tenant's own location).
//! - The app's one redirect URL, for a marketplace listing
//!   ([`marketplace`]): `GET /oauth/callback` (and `GET /oauth/install`
//!   to start an install there) keeps the grant in the tenant of the
//!   location HighLevel granted, creating it when no tenant names it.
//!
//! [`states`] keeps the install states. The bundled host's routes
//! (`host/src/server/oauth.rs`) behave the same for the tenants it is
//! configured with; it creates none.

pub mod marketplace;
mod states;

use crate::connectzero::pipeline::crm_install::{self, Grant, Grantee};
use guest_support::serve::Incoming;
use guest_support::{StageError, config};
use serde_json::{Value, json};

/// HighLevel's authorize page (HighLevel NOTES §2.1, `/v2/` revision).
const DEFAULT_AUTHORIZE_URL: &str = "https://marketplace.gohighlevel.com/v2/oauth/chooselocation";

/// What the pipeline needs (the host's default scope list).
const DEFAULT_SCOPES: &str = "contacts.readonly contacts.write conversations.readonly conversations.write conversations/message.readonly conversations/message.write workflows.readonly users.readonly";

/// The answer of a route: status, extra headers, JSON body.
pub type Answer = (u16, Vec<(String, String)>, Value);

/// Which install: a tenant's own routes, or the app's one redirect URL.
#[derive(Clone, Copy, Debug)]
pub enum Flow<'a> {
    /// `/t/{tenant}/oauth/…`.
    Tenant(&'a str),
    /// `/oauth/…`: the tenant is the location's.
    App,
}

impl Flow<'_> {
    /// The path of the flow's install start.
    pub fn install_path(&self) -> String {
        match self {
            Flow::Tenant(id) => format!("/t/{id}/oauth/install"),
            Flow::App => "/oauth/install".into(),
        }
    }

    /// The path HighLevel sends the installer back to.
    pub fn callback_path(&self) -> String {
        match self {
            Flow::Tenant(id) => format!("/t/{id}/oauth/callback"),
            Flow::App => "/oauth/callback".into(),
        }
    }
}

fn error(status: u16, message: impl Into<String>) -> Answer {
    (status, Vec::new(), json!({"error": message.into()}))
}

fn internal(e: StageError) -> Answer {
    error(500, crate::describe(&e))
}

/// `GET …/oauth/install` of `flow` (its scope selected): 302 to the
/// authorize page.
pub fn install(request: &Incoming, flow: Flow<'_>) -> Answer {
    match start(request, flow) {
        Ok(location) => (
            302,
            vec![
                ("location".into(), location),
                // The link carries a single-use state: never cache it.
                ("cache-control".into(), "no-store".into()),
            ],
            json!({"redirect": "HighLevel authorize page"}),
        ),
        Err(answer) => answer,
    }
}

fn start(request: &Incoming, flow: Flow<'_>) -> Result<String, Answer> {
    let client_id = config::require("crm_client_id").map_err(internal)?;
    let base = config::get("oauth_authorize_url")
        .map_err(internal)?
        .unwrap_or_else(|| DEFAULT_AUTHORIZE_URL.into());
    let scopes = config::get("oauth_scopes")
        .map_err(internal)?
        .unwrap_or_else(|| DEFAULT_SCOPES.into());
    let redirect = redirect_uri(request, flow).map_err(internal)?;
    let state = states::issue(flow, client_of(request))?;
    let separator = if base.contains('?') { '&' } else { '?' };
    Ok(format!(
        "{base}{separator}response_type=code&client_id={}&redirect_uri={}&scope={}&state={}",
        urlencoding::encode(&client_id),
        urlencoding::encode(&redirect),
        urlencoding::encode(&scopes),
        urlencoding::encode(&state),
    ))
}

/// Who asked: Spin's `spin-client-addr` (its last value, should a client
/// send one of its own), read as the host reads a connection's address
/// (`guest_support::installs::client_key`).
fn client_of(request: &Incoming) -> String {
    fn values<'a>(request: &'a Incoming, name: &'a str) -> impl Iterator<Item = &'a str> {
        request
            .headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    let peer = values(request, "spin-client-addr")
        .last()
        .and_then(guest_support::installs::parse_peer);
    guest_support::installs::client_key(peer, values(request, "x-forwarded-for"))
}

/// A query parameter of `request`, decoded; `None` when absent or empty.
fn param(request: &Incoming, name: &str) -> Option<String> {
    let query = request
        .path_with_query
        .split_once('?')
        .map_or("", |(_, q)| q);
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| urlencoding::decode(v).ok())
        .map(|v| v.into_owned())
        .filter(|v| !v.is_empty())
}

/// The callback's code once its state (if any) is redeemed: a state must
/// be one `flow` issued and not used; without one (an install started
/// from the marketplace listing, NOTES §8) the grant will have to vouch
/// for itself.
fn code_of(request: &Incoming, flow: Flow<'_>) -> Result<String, Answer> {
    match param(request, "state") {
        Some(state) => states::redeem(flow, &state)?,
        None if param(request, "error").is_none() => {}
        None => {
            return Err(error(
                400,
                format!(
                    "HighLevel did not authorise the install: start it again from {}",
                    flow.install_path()
                ),
            ));
        }
    }
    param(request, "code")
        .ok_or_else(|| error(400, "missing code: HighLevel sent no authorization code"))
}

/// Exchange `code` (single-use) at the selected scope's HighLevel for the
/// grant and whom it is for: refused with 403 for an agency's grant.
fn exchange(code: &str, redirect: &str) -> Result<(Grant, String), Answer> {
    let grant = crm_install::exchange(code, redirect).map_err(|e| match e {
        StageError::Unauthorized(_) => error(400, crate::describe(&e)),
        e => error(502, crate::describe(&e)),
    })?;
    match grant.grantee() {
        Grantee::Location(location) => Ok((grant, location)),
        Grantee::Company => Err(error(
            403,
            "HighLevel issued an agency-level token with no location: install the app into the sub-account (location) itself",
        )),
    }
}

/// Keep `grant` as the selected tenant's.
fn keep(grant: Grant) -> Result<(), Answer> {
    crm_install::keep(grant).map_err(|e| match e {
        StageError::Forbidden(_) => error(403, crate::describe(&e)),
        e @ StageError::InvalidSettings(_) => error(409, crate::describe(&e)),
        e => internal(e),
    })
}

/// `GET /t/{tenant}/oauth/callback?code=…&state=…`, the tenant selected.
pub fn callback(request: &Incoming, tenant: &str) -> Answer {
    let flow = Flow::Tenant(tenant);
    let code = match code_of(request, flow) {
        Ok(code) => code,
        Err(answer) => return answer,
    };
    // The code is single-use: a tenant that could keep no grant does not
    // spend it. Its location is what a grant must be for (`keep` refuses
    // any other), so a tenant without one is never completed: the install
    // link is public.
    match config::get("crm_location_id") {
        Ok(Some(_)) => {}
        Ok(None) => {
            return error(
                409,
                format!(
                    "tenant {tenant:?} names no HighLevel location: the operator sets its crm_location_id first (or installs at the app's /oauth/callback)"
                ),
            );
        }
        Err(e) => return internal(e),
    }
    let redirect = match redirect_uri(request, flow) {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let (grant, location) = match exchange(&code, &redirect) {
        Ok(exchanged) => exchanged,
        Err(answer) => return answer,
    };
    match keep(grant) {
        Ok(()) => (
            200,
            Vec::new(),
            json!({"ok": true, "locationId": location, "message": "ConnectZero is installed for this location"}),
        ),
        Err(answer) => answer,
    }
}

/// Where HighLevel sends the installer back: `public_base_url` when set,
/// else this request's own host (plain http only for loopback).
fn redirect_uri(request: &Incoming, flow: Flow<'_>) -> Result<String, StageError> {
    let base = match config::get("public_base_url")? {
        Some(base) => base.trim_end_matches('/').to_string(),
        None => {
            let host = request
                .authority
                .as_deref()
                .or_else(|| request.header("host"))
                .unwrap_or("localhost");
            let loopback = host.starts_with("127.0.0.1")
                || host.starts_with("localhost")
                || host.starts_with("[::1]");
            format!("{}://{host}", if loopback { "http" } else { "https" })
        }
    };
    Ok(format!("{base}{}", flow.callback_path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Incoming {
        Incoming {
            method: "GET".into(),
            path_with_query: path.into(),
            authority: None,
            headers: Vec::new(),
            body: Ok(Vec::new()),
        }
    }

    #[test]
    fn each_flow_comes_back_to_its_own_callback() {
        assert_eq!(
            Flow::Tenant("north").callback_path(),
            "/t/north/oauth/callback"
        );
        assert_eq!(Flow::App.callback_path(), "/oauth/callback");
        assert_eq!(Flow::App.install_path(), "/oauth/install");
    }

    #[test]
    fn query_parameters_are_decoded_and_empty_ones_absent() {
        let request = get("/oauth/callback?code=a%2Bb&state=&x=1");
        assert_eq!(param(&request, "code").as_deref(), Some("a+b"));
        assert_eq!(param(&request, "state"), None);
        assert_eq!(param(&request, "error"), None);
    }

    #[test]
    fn a_refused_authorisation_is_told_where_to_start_again() {
        let (status, _, body) =
            code_of(&get("/oauth/callback?error=access_denied"), Flow::App).expect_err("no code");
        assert_eq!(status, 400);
        assert!(body["error"].as_str().unwrap().contains("/oauth/install"));
        let (status, _, _) = code_of(&get("/oauth/callback"), Flow::App).expect_err("no code");
        assert_eq!(status, 400);
    }
}
