//! `wasi:config/store`: a tenant's settings from its record, the app's
//! variables for the rest.
//!
//! A name in `guest_support::tenancy::TENANT_SETTINGS` is the tenant's:
//! its record's value, or unset, never the app's variable of that name (a
//! tenant without a `crm_refresh_token` must not get the app's). Every
//! other name is app-wide, and so is the default of the few in
//! `APP_DEFAULTED_SETTINGS` (`crm_base_url`). `tenant_id` is the selected
//! tenant's id.

use crate::Provider;
use crate::exports::wasi::config::store::{Error, Guest};
use crate::scope;
use crate::wasi::config::store as real;
use guest_support::tenancy;

/// Spin's error as this interface's.
fn from_real(error: real::Error) -> Error {
    match error {
        real::Error::Upstream(m) => Error::Upstream(m),
        real::Error::Io(m) => Error::Io(m),
    }
}

/// Whether `name` comes from the tenant rather than the app.
fn tenants_own(name: &str) -> bool {
    name == "tenant_id" || tenancy::check_setting(name).is_ok()
}

/// The selected scope's value of `key`, `None` when unset, empty or
/// unreadable (trimmed, as `guest_support::config::get` reads it).
pub fn value(key: &str) -> Option<String> {
    <Provider as Guest>::get(key.to_string())
        .ok()
        .flatten()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl Guest for Provider {
    fn get(key: String) -> Result<Option<String>, Error> {
        let selected = scope::current();
        match &selected.tenant {
            Some(tenant) if key == "tenant_id" => Ok(Some(tenant.id.clone())),
            Some(tenant) if tenants_own(&key) => match tenant.values.get(&key) {
                Some(value) => Ok(Some(value.clone())),
                None if tenancy::APP_DEFAULTED_SETTINGS.contains(&key.as_str()) => {
                    real::get(&key).map_err(from_real)
                }
                None => Ok(None),
            },
            _ => real::get(&key).map_err(from_real),
        }
    }

    fn get_all() -> Result<Vec<(String, String)>, Error> {
        let selected = scope::current();
        let app = real::get_all().map_err(from_real)?;
        let Some(tenant) = &selected.tenant else {
            return Ok(app);
        };
        let mut all: Vec<(String, String)> = app
            .into_iter()
            .filter(|(k, _)| {
                !tenants_own(k)
                    || (tenancy::APP_DEFAULTED_SETTINGS.contains(&k.as_str())
                        && !tenant.values.contains_key(k))
            })
            .collect();
        all.push(("tenant_id".into(), tenant.id.clone()));
        all.extend(tenant.values.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(all)
    }
}
