//! `connectzero doctor`: the "check your 3CX licence" step, automated.
//!
//! For each configured tenant it checks, in order: 3CX answers over HTTPS
//! (plain http only to loopback), the API client gets a token, the licence
//! allows the XAPI (Enterprise, active), the API client's role may read call
//! history, recordings, extensions and active calls, the HighLevel refresh
//! token still works for the tenant's location, and the grant's scopes
//! cover the pipeline, and the app's HighLevel rate budget for the
//! location is not nearly spent. Each check is one line with ✓ or ✗ and,
//! on failure, what to do ([`render`]). `connectzero run` runs the same
//! checks periodically ([`check_running`], `crate::diagnostics`). No secret is ever printed: error texts come from
//! the services' messages and the request URLs, which carry none.

mod crm;
mod pbx;
mod report;

pub use crm::{RATE_BUDGET, REQUIRED_SCOPES, SCOPES, TOKEN, scopes_check};
pub use pbx::{
    CALL_HISTORY, CREDENTIALS, EXTENSIONS, LICENCE, LicenseParameters, LicenseStatus, REACHABLE,
    RECORDINGS, licence_check,
};
pub use report::{Check, Status, TenantReport, render, verdict};

use crate::config::{Secret, TenantConfig};
use crate::credentials::names::{CRM_CLIENT_SECRET, CRM_REFRESH_TOKEN, PBX_CLIENT_SECRET};
use crate::location::Location;
use crate::secrets::{SecretStore, SecretsError};
use crate::storage::{Storage, TenantAuth};
use anyhow::Context;
use std::time::Duration;

/// Longest wait for one answer: a PBX that takes longer is not reachable
/// in any useful sense.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Name of the check for the tenant's settings other than the base URLs.
pub const SETTINGS: &str = "configuration";
/// Name of the line reporting stored secrets that could not be read.
pub const SECRETS: &str = "stored secrets";
/// Name of the check of how tenants sharing one 3CX split its calls.
pub const ROUTING: &str = "call routing on a shared 3CX";
/// Name of the line saying whether HighLevel keeps calls' CRM users.
pub const ATTRIBUTION: &str = "call attribution to CRM users";
/// Name of the line about a route that lists DIDs.
pub const DID_ROUTES: &str = "DID routes";

/// Check every tenant of the configuration file and the database at
/// `location` (or only `tenant`). Errors are reserved for an unreadable
/// file, no file or database at all, or an unknown tenant; everything
/// about a tenant is a line of its report.
pub async fn check(location: &Location, tenant: Option<&str>) -> anyhow::Result<Vec<TenantReport>> {
    // Unchecked: a check that stops at the first invalid tenant would hide
    // the others, and doctor's job is to report each problem as a line
    // with its fix.
    let found = location.resolve_unchecked()?;
    let looked_in = found.describe();
    let file_label = found.file_label();
    let database = found.database.as_path();
    let storage = Storage::open(database)?;
    // The tenants `run` serves: the file's and those added with
    // `connectzero tenant add`.
    let all = crate::tenants::union(
        found.config.tenants,
        crate::tenants::stored(&storage)?,
        &file_label,
    )?;
    // Routing is judged across every tenant on a 3CX, even when only one
    // tenant is checked.
    let routing = routing_checks(&all);
    let tenants: Vec<TenantConfig> = match tenant {
        None => all,
        Some(id) => {
            let known: Vec<String> = all.iter().map(|t| t.id.clone()).collect();
            let chosen: Vec<TenantConfig> = all.into_iter().filter(|t| t.id == id).collect();
            anyhow::ensure!(
                !chosen.is_empty(),
                "no tenant {id:?} in {looked_in}; its tenants are: {}",
                known.join(", ")
            );
            chosen
        }
    };
    anyhow::ensure!(
        !tenants.is_empty(),
        "no tenants configured in {looked_in}: add a [[tenants]] section or run `connectzero tenant add`"
    );
    // The secrets as `connectzero run` sees them: the database (created on
    // first use, as `run` does) holds the encrypted ones and receives the
    // rotated HighLevel refresh token.
    // Held while checking: a rotated refresh token is stored under the
    // key `keys rotate` would replace.
    let (store, _host_lock) = crate::secrets::open_store_held(&storage, database, None)
        .with_context(|| format!("opening the secrets of {}", database.display()))?;
    // No redirects: a redirected token request could carry the API key to
    // another host.
    let http = crate::upstream::client(REQUEST_TIMEOUT)?;
    let mut reports = Vec::new();
    // One tenant at a time: the report follows the file's order and no
    // PBX or CRM location sees a burst.
    for tenant in &tenants {
        let mut report = check_tenant(&http, tenant, &store).await;
        if let Some(check) = routing.get(&tenant.id) {
            report.checks.insert(1, check.clone());
        }
        reports.push(report);
    }
    Ok(reports)
}

/// The routing line of each tenant that shares its 3CX with another: ✗
/// with `config::routing_warnings` (overlaps, gaps, unrouted tenants) for
/// its 3CX, ✓ when the routes split the calls cleanly. Tenants alone on
/// their 3CX get no line.
fn routing_checks(all: &[TenantConfig]) -> std::collections::HashMap<String, Check> {
    use crate::config::{pbx_identity, routing_warnings};
    let warnings = routing_warnings(all);
    let mut checks = std::collections::HashMap::new();
    for tenant in all {
        let pbx = pbx_identity(&tenant.pbx.base_url);
        let peers: Vec<&str> = all
            .iter()
            .filter(|t| t.id != tenant.id && pbx_identity(&t.pbx.base_url) == pbx)
            .map(|t| t.id.as_str())
            .collect();
        if peers.is_empty() {
            continue;
        }
        let prefix = format!("3CX {pbx}: ");
        let mine: Vec<&str> = warnings
            .iter()
            .filter_map(|w| w.strip_prefix(&prefix))
            .collect();
        let check = if mine.is_empty() {
            Check::pass(
                ROUTING,
                format!(
                    "shares its 3CX with {}; every call goes to one tenant",
                    peers.join(", ")
                ),
            )
        } else {
            Check::fail(
                ROUTING,
                mine.join("; "),
                "change the tenants' [settings.route] as the message says",
            )
        };
        checks.insert(tenant.id.clone(), check);
    }
    checks
}

/// Doctor's checks of a tenant the host is running (`crate::diagnostics`),
/// side by side as [`check`] runs them, but through the tenant's own token
/// source and rate limiter so the run never disturbs the pipeline: no new
/// 3CX token (3CX keeps one per API client), no refresh of the HighLevel
/// grant outside the pipeline's serialised one. The secrets line is
/// doctor's only (the running tenant's secrets are already open) and so
/// is the scopes line (HighLevel reports scopes only on a refresh).
pub async fn check_running(
    http: &reqwest::Client,
    tenant: &crate::pipeline::Tenant,
) -> TenantReport {
    let mut checks = vec![settings_check(&tenant.config)];
    let credentials = crate::credentials::of(tenant);
    let (pbx, crm) = tokio::join!(
        pbx::check_with(http, &tenant.config.pbx, Some(&credentials)),
        crm::check_live(
            http,
            tenant.id(),
            &tenant.config.crm,
            &credentials,
            tenant.crm_limiter.as_deref()
        )
    );
    checks.extend(pbx);
    checks.extend(crm);
    TenantReport {
        tenant: tenant.id().to_string(),
        checks,
    }
}

/// Every check of one tenant; the 3CX and HighLevel sides run side by side.
async fn check_tenant(
    http: &reqwest::Client,
    tenant: &TenantConfig,
    store: &SecretStore,
) -> TenantReport {
    let mut checks = vec![settings_check(tenant)];
    let secrets = store
        .storage()
        .tenant_auth_status(&tenant.id)
        .map_err(SecretsError::from)
        .and_then(|auth| Ok((auth, with_secrets(tenant, store)?)));
    match secrets {
        Ok((auth, resolved)) => {
            let marked = match &auth {
                TenantAuth::NeedsReauthorisation { reason, .. } => Some(reason.as_str()),
                TenantAuth::Authorised => None,
            };
            let save = |rotated: &Secret| -> anyhow::Result<()> {
                store.put(&tenant.id, &[(CRM_REFRESH_TOKEN, rotated)])?;
                Ok(())
            };
            let (pbx, crm) = tokio::join!(
                pbx::check(http, &resolved.pbx),
                crm::check(http, &tenant.id, &resolved.crm, marked, save)
            );
            let did_routes = did_routes_check(tenant, &pbx);
            checks.extend(pbx);
            checks.extend(crm);
            checks.extend(did_routes);
            checks.push(attribution_check(store.storage(), &tenant.id));
        }
        Err(error) => {
            checks.push(Check::fail(
                SECRETS,
                format!("{error}"),
                "do what the message says, then run connectzero doctor again",
            ));
        }
    }
    TenantReport {
        tenant: tenant.id.clone(),
        checks,
    }
}

/// `tenant` with the secrets `connectzero run` would use, by the rules of
/// `Credentials::use_store`: a client secret given in the file wins, an
/// omitted one comes from the database; a stored refresh token wins over
/// the file's, being the newest rotation. Unlike `use_store` this writes
/// nothing: a missing secret is the credentials line's failure.
fn with_secrets(tenant: &TenantConfig, store: &SecretStore) -> Result<TenantConfig, SecretsError> {
    let mut resolved = tenant.clone();
    let stored = |name: &str| store.get(&tenant.id, name);
    if resolved.pbx.client_secret.expose().is_empty() {
        resolved.pbx.client_secret = stored(PBX_CLIENT_SECRET)?.unwrap_or_default();
    }
    if resolved.crm.client_secret.expose().is_empty() {
        resolved.crm.client_secret = stored(CRM_CLIENT_SECRET)?.unwrap_or_default();
    }
    if let Some(newest) = stored(CRM_REFRESH_TOKEN)? {
        resolved.crm.refresh_token = newest;
    }
    Ok(resolved)
}

/// For a tenant whose route lists DIDs: 3CX's call history has no DID
/// (specs NOTES §8), so a DID is read from the call's recording
/// (`ToDidNumber`) and only there. When the API client may not read
/// recordings, the DIDs can never be read: ✗. Otherwise ✓, saying that
/// calls not recorded route by their queues.
fn did_routes_check(tenant: &TenantConfig, pbx: &[Check]) -> Option<Check> {
    let dids = &tenant.settings.route.as_ref()?.dids;
    if dids.is_empty() {
        return None;
    }
    let recordings = pbx.iter().find(|c| c.name == RECORDINGS);
    Some(match recordings.map(|c| c.status) {
        Some(report::Status::Pass) => Check::pass(
            DID_ROUTES,
            format!(
                "{} read from call recordings (3CX's call history has no DID): calls that are not recorded route by their queues",
                dids.join(", ")
            ),
        ),
        _ => Check::fail(
            DID_ROUTES,
            format!(
                "{} can never be read: 3CX shows a call's DID only on its recording, and recordings cannot be read",
                dids.join(", ")
            ),
            "let the API client read recordings (System Owner role) and record the calls to those DIDs, or route them by the queues they ring ([settings.route] queues)",
        ),
    })
}

/// What the post stage found out about call attribution
/// (`crate::attribution`): a fact about HighLevel to know, not a fault to
/// fix, so it never fails the report.
fn attribution_check(storage: &Storage, tenant: &str) -> Check {
    match crate::attribution::Attribution::read(storage, tenant) {
        Ok(found) => Check::pass(ATTRIBUTION, found.describe()),
        Err(error) => Check::pass(ATTRIBUTION, format!("unknown: {error}")),
    }
}

/// The tenant's settings as `connectzero run` validates them, except the
/// two base URLs: the 3CX and HighLevel lines report those with their own
/// fixes, so one mistake is one ✗.
fn settings_check(tenant: &TenantConfig) -> Check {
    let mut rest = tenant.clone();
    rest.pbx.base_url = "https://pbx.invalid".into();
    rest.crm.base_url = crate::config::HIGHLEVEL_API.into();
    match rest.validate() {
        Ok(()) => Check::pass(SETTINGS, "settings are valid"),
        Err(error) => Check::fail(
            SETTINGS,
            format!("{error:#}"),
            "correct that setting in the configuration file (its format is documented in crates/config/src/lib.rs), then run connectzero doctor again",
        ),
    }
}

/// Detail and hint for a request that got no HTTP answer from `service`
/// at `base`. reqwest's texts name the URL, never a header or form field,
/// and no URL doctor builds carries a secret.
fn transport_problem(service: &str, base: &str, error: &reqwest::Error) -> (String, String) {
    let mut causes = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        causes.push_str(": ");
        causes.push_str(&cause.to_string());
        source = cause.source();
    }
    let chain = format!("{error}{causes}");
    // Classified by the causes only: the error's own text names the URL,
    // and a host called e.g. "tls.example.com" must not read as a TLS fault.
    let lower = causes.to_ascii_lowercase();
    let authority = crate::authority::authority_of_url(base).unwrap_or_else(|| base.to_string());
    let (what, hint) = if error.is_timeout() {
        (
            format!(
                "{service} did not answer within {} s",
                REQUEST_TIMEOUT.as_secs()
            ),
            format!(
                "check {authority} is up and that this host may reach that port (firewall, port in base_url)"
            ),
        )
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        (
            format!("the TLS handshake with {authority} failed"),
            format!(
                "{service} must present a valid certificate for the name in base_url: use the FQDN its certificate is issued for (not an IP address), or renew the certificate"
            ),
        )
    } else if lower.contains("dns") || lower.contains("lookup") || lower.contains("resolve") {
        (
            format!("{authority} does not resolve"),
            format!(
                "check the host name in {service}'s base_url is spelled right and resolves from this host"
            ),
        )
    } else {
        (
            format!("could not connect to {authority}"),
            format!(
                "check the host and port in base_url, that {service} is running, and that a firewall lets this host reach it"
            ),
        )
    };
    (
        format!("{what} ({chain})"),
        format!("{hint}, then run connectzero doctor again"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CrmConfig, PbxConfig, Secret};

    fn tenant() -> TenantConfig {
        TenantConfig {
            id: "acme".into(),
            pbx: PbxConfig {
                base_url: "http://pbx.example.com".into(),
                client_id: "c".into(),
                client_secret: Secret::new("s"),
            },
            crm: CrmConfig {
                base_url: crate::config::HIGHLEVEL_API.into(),
                location_id: "l".into(),
                conversation_provider_id: "p".into(),
                client_id: "a".into(),
                client_secret: Secret::new("s"),
                access_token: None,
                refresh_token: Secret::new("r"),
                rate_limit: Default::default(),
            },
            settings: Default::default(),
            actions: Default::default(),
        }
    }

    #[test]
    fn the_settings_line_leaves_base_urls_to_their_own_lines() {
        // A plain-http PBX is the reachability line's failure, not this one.
        assert_eq!(settings_check(&tenant()).status, Status::Pass);
        let mut bad = tenant();
        bad.settings.default_country = "USA".into();
        let check = settings_check(&bad);
        assert_eq!(check.status, Status::Fail);
        assert!(check.detail.contains("default_country"), "{check:?}");
    }

    #[test]
    fn tenants_sharing_a_3cx_get_a_routing_line_that_names_a_gap() {
        use guest_support::routing::RouteConfig;
        let routed = |id: &str, queue: &str, default: bool| {
            let mut t = tenant();
            t.id = id.into();
            t.settings.route = Some(RouteConfig {
                queues: vec![queue.into()],
                default,
                ..Default::default()
            });
            t
        };
        let mut alone = tenant();
        alone.id = "alone".into();
        alone.pbx.base_url = "https://other.example.com".into();
        let checks = routing_checks(&[routed("a", "800", false), routed("b", "801", false), alone]);
        assert!(
            !checks.contains_key("alone"),
            "no line for a tenant alone on its 3CX"
        );
        let a = &checks["a"];
        assert_eq!(a.status, Status::Fail);
        assert!(a.detail.contains("route.default"), "{a:?}");
        let checks = routing_checks(&[routed("a", "800", true), routed("b", "801", false)]);
        assert_eq!(checks["b"].status, Status::Pass, "{:?}", checks["b"]);
    }

    #[tokio::test]
    async fn plain_http_to_a_public_host_is_refused_without_a_request() {
        let http = reqwest::Client::new();
        let checks = pbx::check(&http, &tenant().pbx).await;
        assert_eq!(checks[0].name, pbx::REACHABLE);
        assert_eq!(checks[0].status, Status::Fail);
        assert!(checks[0].detail.contains("use https://"), "{:?}", checks[0]);
        assert!(checks[1..].iter().all(|c| c.status == Status::Skipped));
    }

    #[tokio::test]
    async fn an_unreachable_pbx_fails_reachability_with_a_hint() {
        // A loopback port nothing listens on: bind, note the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut t = tenant();
        t.pbx.base_url = format!("http://127.0.0.1:{port}");
        let checks = pbx::check(&reqwest::Client::new(), &t.pbx).await;
        assert_eq!(checks[0].status, Status::Fail, "{:?}", checks[0]);
        assert!(
            checks[0].detail.contains("could not connect"),
            "{:?}",
            checks[0]
        );
        assert!(checks[0].hint.as_ref().unwrap().contains("firewall"));
    }
}
