//! Whom the key-value and configuration calls are for.
//!
//! A Spin component instance serves one request at a time, and the app
//! entry point selects a scope before it runs anything for a tenant, so
//! the choice lives in the instance's memory. A bucket remembers the scope
//! it was opened in: one opened for tenant A keeps reading A's keys even if
//! the app selects B later.

use guest_support::StageError;
use guest_support::tenancy::{self, TenantRecord};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// The selected scope.
#[derive(Debug, Default)]
pub struct Selected {
    /// Prefix of its keys ("" for the app's own tenant).
    pub prefix: String,
    /// The tenant kept in the store; `None` for the app's own tenant.
    pub tenant: Option<Tenant>,
}

impl Selected {
    /// The tick lease that covers this scope: the tenant's id, or the app's
    /// own tenant's `_app`.
    pub fn lease_id(&self) -> String {
        self.tenant
            .as_ref()
            .map_or(tenancy::APP_LEASE_ID, |t| t.id.as_str())
            .to_string()
    }
}

/// A tenant kept in the store, ready to answer configuration.
#[derive(Debug)]
pub struct Tenant {
    /// Its id.
    pub id: String,
    /// Its settings, secrets opened.
    pub values: BTreeMap<String, String>,
}

thread_local! {
    static SELECTED: RefCell<Rc<Selected>> = RefCell::new(Rc::new(Selected::default()));
}

/// The scope in force.
pub fn current() -> Rc<Selected> {
    SELECTED.with(|s| s.borrow().clone())
}

/// Select the app's own tenant.
pub fn select_app() {
    SELECTED.with(|s| *s.borrow_mut() = Rc::new(Selected::default()));
}

/// Select tenant `id`, whose record (secrets opened) is `values`.
pub fn select_tenant(id: &str, values: BTreeMap<String, String>) {
    let selected = Selected {
        prefix: tenancy::namespace(id),
        tenant: Some(Tenant {
            id: id.to_string(),
            values,
        }),
    };
    SELECTED.with(|s| *s.borrow_mut() = Rc::new(selected));
}

/// The settings of `record` with its secrets opened by `open`.
pub fn opened_values(
    record: &TenantRecord,
    mut open: impl FnMut(&str, &str) -> Result<String, StageError>,
) -> Result<BTreeMap<String, String>, StageError> {
    let mut values = record.settings.clone();
    for (name, sealed) in &record.sealed {
        values.insert(name.clone(), open(name, sealed)?);
    }
    Ok(values)
}
