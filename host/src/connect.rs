//! A tenant as the runtime runs it, built from its configuration with the
//! host's own connectors: the 3CX and HighLevel token source
//! ([`crate::credentials`]), the HighLevel contact search
//! ([`crate::directory`]) and the location's shared request budget
//! ([`crate::ratelimit`]); and, on a database, the tenant's tokens and
//! budget kept there for every host sharing it ([`on_database`]).

use crate::config::TenantConfig;
use crate::credentials::Credentials;
use crate::directory::Directory;
use crate::pipeline::Tenant;
use crate::ratelimit::{BudgetStore, BudgetStoreError, SharedBudget};
use crate::secrets::{SecretStore, SecretsError};
use crate::storage::Storage;
use std::sync::Arc;

/// The runtime's tenant for `config`, its requests sent with `http`.
pub fn tenant(config: TenantConfig, http: reqwest::Client) -> Tenant {
    let credentials = Arc::new(Credentials::new(http.clone(), &config));
    let crm_limiter = crate::ratelimit::for_location(&config.crm);
    let directory = Directory::new(
        http.clone(),
        &config.crm.base_url,
        &config.crm.location_id,
        credentials.clone(),
    )
    .with_limiter(crm_limiter.clone());
    let probe = crate::probe::PbxProbe::new(http, &config.pbx.base_url);
    let mut tenant = Tenant::new(config, credentials, Arc::new(directory), crm_limiter);
    tenant.probe = Some(Arc::new(probe));
    tenant
}

/// Run `tenant` on the database behind `secrets`, as every host on it
/// does: its secrets and tokens in the encrypted store
/// ([`Credentials::use_store`]: the HighLevel grant and the 3CX token,
/// each fetched by one host at a time) and its location's request budget
/// in the database, so the hosts together keep HighLevel's limit.
pub fn on_database(tenant: &Tenant, secrets: SecretStore) -> Result<(), SecretsError> {
    let storage = secrets.storage().clone();
    crate::credentials::of(tenant).use_store(secrets)?;
    if let Some(limiter) = &tenant.crm_limiter {
        let key = crate::ratelimit::limiter_key(&tenant.config.crm);
        limiter.share_through(Arc::new(DatabaseBudgets(storage)), key);
    }
    Ok(())
}

/// The host's database as the store of request budgets shared by every
/// process on it (table `rate_budgets`).
pub struct DatabaseBudgets(pub Storage);

impl std::fmt::Debug for DatabaseBudgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseBudgets")
    }
}

impl BudgetStore for DatabaseBudgets {
    fn update(
        &self,
        key: &str,
        change: &mut dyn FnMut(&mut SharedBudget),
    ) -> Result<(), BudgetStoreError> {
        self.0
            .budget_update(key, |row| {
                let mut budget = SharedBudget {
                    window: std::mem::take(&mut row.window),
                    blocked_until_ms: row.blocked_until_ms,
                    hours: std::mem::take(&mut row.hours),
                };
                change(&mut budget);
                row.window = budget.window;
                row.blocked_until_ms = budget.blocked_until_ms;
                row.hours = budget.hours;
            })
            .map_err(|e| BudgetStoreError(e.to_string()))
    }
}
