//! A tenant as the runtime runs it, built from its configuration with the
//! host's own connectors: the 3CX and HighLevel token source
//! ([`crate::credentials`]), the HighLevel contact search
//! ([`crate::directory`]) and the location's shared request budget
//! ([`crate::ratelimit`]).

use crate::config::TenantConfig;
use crate::credentials::Credentials;
use crate::directory::Directory;
use crate::pipeline::Tenant;
use std::sync::Arc;

/// The runtime's tenant for `config`, its requests sent with `http`.
pub fn tenant(config: TenantConfig, http: reqwest::Client) -> Tenant {
    let credentials = Arc::new(Credentials::new(http.clone(), &config));
    let crm_limiter = crate::ratelimit::for_location(&config.crm);
    let directory = Directory::new(
        http,
        &config.crm.base_url,
        &config.crm.location_id,
        credentials.clone(),
    )
    .with_limiter(crm_limiter.clone());
    Tenant::new(config, credentials, Arc::new(directory), crm_limiter)
}
