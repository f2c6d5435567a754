//! `POST /tick`: one tick of every tenant that is due.
//!
//! The app's own tenant (its variables) is ticked first, as it always was;
//! then the tenants kept in the store. Each under its tick lease
//! (`tenancy.take-lease`; the app's own is `_app`), so any number of
//! replicas and overlapping tick drivers split them: a tenant another request holds is left to it, and
//! one whose holder died is taken over once the lease runs out. The lease
//! only shares the work: posting each call once is the ledger's claims'
//! job, as on the bundled host.
//!
//! One request ticks at most `max_tenants_per_tick` tenants (default 10)
//! and stops starting them after `tick_budget_secs` (default 20); the rest
//! are named in `tenants_left` for the next tick or another replica. Each
//! request starts at a random place in the list, so the tenants at the
//! front are not always the ones ticked first.

use crate::connectzero::pipeline::tenancy::{self, Scope};
use crate::connectzero::pipeline::tick::{ReviewPlace, TickOptions};
use crate::settings::AppSettings;
use crate::{TICK_SECRET_HEADER, report, tenants};
use guest_support::bindings::connectzero::pipeline::types::Routing;
use guest_support::serve::Incoming;
use guest_support::tenancy::APP_LEASE_ID;
use guest_support::time::now_ms;
use guest_support::{StageError, config, webhook};
use serde_json::{Map, Value, json};

/// A tenant's tick lease when `tenant_lease_secs` is unset: how long a
/// killed replica's tenants wait before another takes them.
const DEFAULT_TENANT_LEASE_SECS: u64 = 30;

/// How long one request starts tenants when `tick_budget_secs` is unset.
const DEFAULT_BUDGET_SECS: u64 = 20;

/// Most tenants one request ticks when `max_tenants_per_tick` is unset.
/// Spin's Redis store opens a connection per compare-and-swap and keeps
/// it until the request ends (measured: a request ticking 33 tenants held
/// about 3,500, and three replicas exhausted Redis's 10,000 clients), so
/// a request's share of tenants is bounded; drivers call `/tick` often or
/// in parallel instead.
const DEFAULT_MAX_TENANTS: usize = 10;

/// `POST /tick`.
pub fn tick(request: &Incoming) -> (u16, Value) {
    let internal = |e: StageError| (500, json!({"error": crate::describe(&e)}));
    let own = match tenants::own_tenant() {
        Ok(own) => own,
        Err(e) => return internal(e),
    };
    let tick_secret = match config::get("tick_secret") {
        Ok(secret) => secret,
        Err(e) => return internal(e),
    };
    if let Err(refusal) = webhook::check_secret(
        TICK_SECRET_HEADER,
        request.header(TICK_SECRET_HEADER),
        tick_secret.as_deref(),
    ) {
        return (refusal.status, json!({"error": refusal.message}));
    }
    let limits = match Limits::load() {
        Ok(l) => l,
        Err(e) => return internal(e),
    };
    let worker = worker_id();
    let started = now_ms();
    // The app's own tenant answers at the top level, as before tenants
    // were kept in the store. A bad setting of it is reported and does not
    // stop the stored tenants; alone, it fails the request as it always did.
    let mut own_error = None;
    let mut answer = match own {
        Some(_) => match tenancy::take_lease(APP_LEASE_ID, &worker, limits.lease_ms) {
            Ok(true) => {
                let report = AppSettings::load().map(|s| run(s, &worker));
                let _ = tenancy::release_lease(APP_LEASE_ID, &worker);
                report.unwrap_or_else(|e| {
                    let map = error_map(&e);
                    own_error = Some(e);
                    map
                })
            }
            Ok(false) => Map::from_iter([(
                "skipped".to_string(),
                Value::from("another tick holds this tenant's lease"),
            )]),
            Err(e) => {
                let map = error_map(&e);
                own_error = Some(e);
                map
            }
        },
        None => Map::new(),
    };
    let ids = match tenancy::tenants() {
        Ok(ids) => ids,
        Err(e) => return internal(e),
    };
    if let (true, Some(e)) = (ids.is_empty(), own_error) {
        return internal(e);
    }
    let mut ticked = Map::new();
    let mut left = Vec::new();
    let offset = if ids.is_empty() {
        0
    } else {
        random_index(ids.len())
    };
    let mut taken = 0;
    for id in ids.iter().cycle().skip(offset).take(ids.len()) {
        if taken >= limits.max_tenants || now_ms().saturating_sub(started) >= limits.budget_ms {
            left.push(Value::String(id.clone()));
            continue;
        }
        let outcome = match tenancy::take_lease(id, &worker, limits.lease_ms) {
            Ok(true) => {
                let outcome = tick_tenant(id, &worker);
                // A lease left behind only delays the next holder.
                let _ = tenancy::release_lease(id, &worker);
                // A tenant waiting for its settings (a marketplace install
                // a stranger may have made) or paused was not worked: it
                // does not use up one of this request's tenants.
                if !outcome["skipped"].is_string() {
                    taken += 1;
                }
                outcome
            }
            Ok(false) => json!({"skipped": "another tick holds this tenant's lease"}),
            Err(e) => json!({"error": crate::describe(&e)}),
        };
        ticked.insert(id.clone(), outcome);
    }
    if !ids.is_empty() {
        answer.insert("tenants".into(), Value::Object(ticked));
        answer.insert("tenants_left".into(), Value::Array(left));
    }
    (200, Value::Object(answer))
}

/// `{"error": ...}` for a tenant that could not be ticked.
fn error_map(e: &StageError) -> Map<String, Value> {
    Map::from_iter([("error".to_string(), Value::from(crate::describe(e)))])
}

/// One tick of tenant `id`, or why it was not ticked.
fn tick_tenant(id: &str, worker: &str) -> Value {
    if let Err(e) = tenancy::select(&Scope::Tenant(id.to_string())) {
        return json!({"error": crate::describe(&e)});
    }
    if matches!(config::get("paused"), Ok(Some(v)) if v == "true") {
        return json!({"skipped": "paused"});
    }
    let missing: Vec<&str> = guest_support::tenancy::REQUIRED_SETTINGS
        .into_iter()
        .filter(|name| matches!(config::get(name), Ok(None)))
        .collect();
    if !missing.is_empty() {
        return json!({"skipped": format!("waiting for settings: {}", missing.join(", "))});
    }
    match AppSettings::load() {
        Ok(settings) => Value::Object(run(settings, worker)),
        Err(e) => json!({"error": crate::describe(&e)}),
    }
}

/// Run the composed tick with `settings` (the selected tenant's).
fn run(settings: AppSettings, worker: &str) -> Map<String, Value> {
    let options = TickOptions {
        settings: settings.tenant,
        worker: worker.to_string(),
        claim_lease_ms: settings.claim_lease_ms,
        max_calls: settings.max_calls_per_tick,
        policy: settings.policy.as_ref().map(|p| p.config().into()),
        routing: settings.route.as_ref().map_or(Routing::EveryCall, |r| {
            Routing::ByRoute((&r.to_config()).into())
        }),
        review_place: ReviewPlace::KeyValueStore,
        state_retention_days: settings.state_retention_days,
    };
    let report = crate::connectzero::pipeline::tick::run(&options);
    for warning in &report.warnings {
        // Warnings may quote a caller's number.
        eprintln!("connectzero: {}", guest_support::redact::text(warning));
    }
    match report::to_json(&report) {
        Value::Object(map) => map,
        other => Map::from_iter([("report".to_string(), other)]),
    }
}

/// The driver's app-wide limits.
struct Limits {
    lease_ms: u64,
    budget_ms: i64,
    max_tenants: usize,
}

impl Limits {
    fn load() -> Result<Self, StageError> {
        let lease_secs: u64 = config::parse_or("tenant_lease_secs", DEFAULT_TENANT_LEASE_SECS)?;
        let budget_secs: u64 = config::parse_or("tick_budget_secs", DEFAULT_BUDGET_SECS)?;
        if lease_secs == 0 {
            return Err(StageError::InvalidSettings(
                "configuration \"tenant_lease_secs\" must be at least 1".into(),
            ));
        }
        let max_tenants: usize = config::parse_or("max_tenants_per_tick", DEFAULT_MAX_TENANTS)?;
        if max_tenants == 0 {
            return Err(StageError::InvalidSettings(
                "configuration \"max_tenants_per_tick\" must be at least 1".into(),
            ));
        }
        Ok(Self {
            lease_ms: lease_secs.saturating_mul(1000),
            budget_ms: i64::try_from(budget_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            max_tenants,
        })
    }
}

/// A fresh worker name per request: the ledger's claims and the tenant
/// leases name it, so a crashed request's claims expire after the lease
/// instead of being mistaken for this one's.
fn worker_id() -> String {
    format!("spin-{:016x}", random_u64())
}

fn random_index(len: usize) -> usize {
    (random_u64() % len as u64) as usize
}

#[cfg(target_arch = "wasm32")]
fn random_u64() -> u64 {
    guest_support::wasi::random::random::get_random_u64()
}

/// Native builds are unit tests only.
#[cfg(not(target_arch = "wasm32"))]
fn random_u64() -> u64 {
    0
}
