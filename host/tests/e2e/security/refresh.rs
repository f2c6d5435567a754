//! Two hosts on one database refreshing one tenant's HighLevel grant.

use crate::common::*;
use connectzero::bindings::types::Service;
use connectzero::credentials::{Credentials, names};
use connectzero::storage::TenantAuth;
use std::time::Duration;

/// Before, both hosts sent the refresh token; HighLevel rotates it on
/// use, so the second was refused as spent, and that host could mark a
/// valid grant "needs re-authorisation".
#[tokio::test]
async fn two_hosts_refreshing_at_once_send_one_refresh_and_keep_the_grant() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (world, _, store) = world_with_secrets(dir.path(), defaults()).await?;
    // Nothing cached or stored: both must refresh.
    store.delete("demo", names::CRM_ACCESS_TOKEN)?;
    let mut config = world.config().clone();
    config.crm.access_token = None;
    let host = || {
        let http = connectzero::upstream::client(Duration::from_secs(30)).unwrap();
        let credentials = Credentials::new(http, &config);
        credentials.use_store(store.clone()).unwrap();
        credentials
    };
    let (a, b) = (host(), host());
    let refreshes = world.crm.request_count("POST", "/oauth/token");
    let (token_a, token_b) =
        tokio::join!(a.access_token(Service::Crm), b.access_token(Service::Crm));
    let (token_a, token_b) = (token_a?, token_b?);
    assert_eq!(token_a, token_b, "the second host took the first's token");
    assert_eq!(
        world.crm.request_count("POST", "/oauth/token"),
        refreshes + 1,
        "one refresh"
    );
    assert_eq!(
        store.storage().tenant_auth_status("demo")?,
        TenantAuth::Authorised
    );
    Ok(())
}
