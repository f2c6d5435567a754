//! Which tenant a request is for, and the admin API that manages the
//! tenants kept in the app's store.
//!
//! One app serves the tenant its Spin variables configure (the
//! single-tenant set-up: `crm_location_id` set), any number kept in the
//! store (`components/tenancy`), or both. Routes under `/t/{tenant}/`
//! select the tenant before anything else runs, so every key and setting
//! the components touch is that tenant's.
//!
//! Admin API (header `authorization: Bearer <admin_secret>`; off while
//! `admin_secret` is unset):
//!
//! - `GET /admin/tenants`: `{"tenants": [ids]}`.
//! - `GET /admin/tenants/{id}`: `{"id", "settings": {name: value}}`,
//!   secrets shown as `(set)`.
//! - `PUT /admin/tenants/{id}` with `{"settings": {name: value}}`: creates
//!   the tenant or changes the given settings (`""` unsets one). Settings
//!   are checked as a tick would read them before anything is stored.
//! - `DELETE /admin/tenants/{id}`: the tenant and all its keys.

use crate::connectzero::pipeline::tenancy::{self, Scope};
use crate::settings::AppSettings;
use guest_support::serve::Incoming;
use guest_support::tenancy as rules;
use guest_support::{StageError, config, webhook};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Largest number of settings one `PUT` may carry (there are fewer
/// tenant settings than this; anything larger is not ours).
const MAX_PUT_SETTINGS: usize = 64;

/// The id of the tenant the app's variables configure, if they configure
/// one (`crm_location_id` set). Selects the app's scope.
pub fn own_tenant() -> Result<Option<String>, StageError> {
    tenancy::select(&Scope::App)?;
    Ok(match config::get("crm_location_id")? {
        Some(_) => Some(config::get("tenant_id")?.unwrap_or_else(|| "default".into())),
        None => None,
    })
}

/// Select the tenant of a `/t/{id}/...` route: the app's own tenant at its
/// id; a tenant kept in the store; else, for the single-tenant set-up's
/// links made before tenants were kept in the store, the app's own. 404
/// when there is no such tenant.
pub fn select_for_route(id: &str) -> Result<(), (u16, String)> {
    let internal = |e: StageError| (500, crate::describe(&e));
    let own = own_tenant().map_err(internal)?;
    if own.as_deref() == Some(id) {
        return Ok(());
    }
    if rules::check_id(id).is_ok() && tenancy::describe(id).map_err(internal)?.is_some() {
        return tenancy::select(&Scope::Tenant(id.to_string())).map_err(internal);
    }
    if own.is_some() {
        // Still selected: the app's own tenant.
        return Ok(());
    }
    Err((
        404,
        format!("there is no tenant {id:?} in this app: create it with PUT /admin/tenants/{{id}}"),
    ))
}

/// Route an `/admin/...` request.
pub fn admin(request: &Incoming) -> (u16, Value) {
    match admin_route(request) {
        Ok(answer) => answer,
        Err((status, message)) => (status, json!({"error": message})),
    }
}

fn admin_route(request: &Incoming) -> Result<(u16, Value), (u16, String)> {
    let internal = |e: StageError| (500, crate::describe(&e));
    tenancy::select(&Scope::App).map_err(internal)?;
    let Some(secret) = config::get("admin_secret").map_err(internal)? else {
        return Err((
            403,
            "the admin API is off: set the admin_secret variable (a long random value) to use it"
                .into(),
        ));
    };
    let refused = || {
        (
            401,
            "send the header `authorization: Bearer <admin_secret>` with the app's admin_secret"
                .to_string(),
        )
    };
    // The scheme's name is case-insensitive (RFC 9110 §11.1).
    let presented = request
        .header("authorization")
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(refused)?;
    // The shared constant-time comparison; its wording is for HighLevel's
    // calls, so the refusal is worded here.
    webhook::check_secret("authorization", Some(presented), Some(&secret))
        .map_err(|_| refused())?;
    let path = request.path();
    let id = path
        .strip_prefix("/admin/tenants/")
        .filter(|s| !s.is_empty());
    let bad_id = |id: &str| rules::check_id(id).map_err(|e| (400, e.to_string()));
    match (request.method.as_str(), path, id) {
        ("GET", "/admin/tenants", None) => {
            let ids = tenancy::tenants().map_err(internal)?;
            Ok((200, json!({"tenants": ids})))
        }
        ("GET", _, Some(id)) => {
            bad_id(id)?;
            match tenancy::describe(id).map_err(internal)? {
                Some(settings) => Ok((200, json!({"id": id, "settings": to_object(settings)}))),
                None => Err((404, format!("there is no tenant {id:?}"))),
            }
        }
        ("PUT", _, Some(id)) => {
            bad_id(id)?;
            if own_tenant().map_err(internal)?.as_deref() == Some(id) {
                return Err((
                    409,
                    format!("{id:?} is the app's own tenant (its variables): choose another id"),
                ));
            }
            let settings = put_body(request)?;
            check(id, &settings)?;
            let created = tenancy::describe(id).map_err(internal)?.is_none();
            tenancy::put(id, &settings).map_err(|e| match e {
                StageError::InvalidSettings(m) => (400, m),
                e => internal(e),
            })?;
            Ok((
                if created { 201 } else { 200 },
                json!({"id": id, "created": created}),
            ))
        }
        ("DELETE", _, Some(id)) => {
            bad_id(id)?;
            let removed = tenancy::remove(id).map_err(internal)?;
            Ok((200, json!({"id": id, "removed": removed})))
        }
        (method, _, _) => Err((
            404,
            format!(
                "no admin route {method} {path}: use GET /admin/tenants or GET/PUT/DELETE /admin/tenants/<id>"
            ),
        )),
    }
}

fn to_object(settings: Vec<(String, String)>) -> Value {
    Value::Object(
        settings
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect::<Map<_, _>>(),
    )
}

/// The `{"settings": {name: value}}` of a `PUT`, names checked.
fn put_body(request: &Incoming) -> Result<Vec<(String, String)>, (u16, String)> {
    let body = request.body.as_ref().map_err(|e| (400, e.clone()))?;
    let usage = "the body must be JSON {\"settings\": {\"<name>\": \"<value>\", ...}} (string values; \"\" unsets one)";
    let value: Value = serde_json::from_slice(body).map_err(|e| (400, format!("{usage}: {e}")))?;
    let Some(map) = value.get("settings").and_then(Value::as_object) else {
        return Err((400, usage.into()));
    };
    if map.len() > MAX_PUT_SETTINGS {
        return Err((
            400,
            format!("at most {MAX_PUT_SETTINGS} settings per request"),
        ));
    }
    let mut settings = Vec::new();
    for (name, value) in map {
        rules::check_setting(name).map_err(|e| (400, e.to_string()))?;
        let Some(text) = value.as_str() else {
            return Err((400, format!("setting {name:?}: {usage}")));
        };
        settings.push((name.clone(), text.trim().to_string()));
    }
    Ok(settings)
}

/// Check the tenant as it would be after `changes`, the way a tick reads
/// its settings, before anything is stored: a tenant still lacking what
/// it needs to be ticked (say, its 3CX client not set yet) is accepted, a
/// bad value never.
fn check(id: &str, changes: &[(String, String)]) -> Result<(), (u16, String)> {
    let internal = |e: StageError| (500, crate::describe(&e));
    let mut merged: BTreeMap<String, String> = tenancy::describe(id)
        .map_err(internal)?
        .unwrap_or_default()
        .into_iter()
        .collect();
    for (name, value) in changes {
        if value.is_empty() {
            merged.remove(name);
        } else {
            merged.insert(name.clone(), value.clone());
        }
    }
    // What the tenant still lacks is filled with stand-ins for the check
    // only, so every value it does have is checked as a tick reads it.
    for name in rules::REQUIRED_SETTINGS {
        merged
            .entry(name.to_string())
            .or_insert_with(|| match name {
                "pbx_base_url" => "https://pbx.invalid".into(),
                _ => "not-set-yet".into(),
            });
    }
    let lookup = |key: &str| -> Result<Option<String>, StageError> {
        if key == "tenant_id" {
            return Ok(Some(id.to_string()));
        }
        if rules::check_setting(key).is_ok() {
            return Ok(merged.get(key).cloned());
        }
        config::get(key)
    };
    AppSettings::load_from(&lookup).map_err(|e| (422, crate::describe(&e)))?;
    Ok(())
}
