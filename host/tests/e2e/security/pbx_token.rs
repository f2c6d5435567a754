//! Hosts on one database share one 3CX token per tenant.
//!
//! 3CX keeps one active access token per API client (3CX NOTES §1, §8);
//! whether a second request logs the first out (NOTES §1 assumes so), gets
//! the active token again, is refused while one is active, or gets a
//! second valid one is not documented, so each test runs under every
//! reading the simulator plays. Before, each host fetched and kept its own
//! token in memory: two hosts asking at once sent two token requests, and
//! under the first reading logged each other out until they fetched again.

use crate::common::*;
use anyhow::Context;
use connectzero::bindings::types::Service;
use connectzero::config::Secret;
use connectzero::credentials::{Credentials, names};
use connectzero::secrets::SecretStore;
use connectzero::testbed::World;
use connectzero_simulators::threecx::TokenIssue;
use std::time::Duration;

const READINGS: [TokenIssue; 4] = [
    TokenIssue::Replace,
    TokenIssue::ReturnActive,
    TokenIssue::RefuseWhileActive,
    TokenIssue::Coexist,
];

/// Another host on the same database: its own token source over the
/// shared store.
fn host(world: &World, store: &SecretStore) -> anyhow::Result<Credentials> {
    let http = connectzero::upstream::client(Duration::from_secs(30))?;
    let credentials = Credentials::new(http, world.config());
    credentials.use_store(store.clone())?;
    Ok(credentials)
}

/// Whether 3CX takes `token` now.
async fn works(world: &World, token: &str) -> anyhow::Result<bool> {
    let answer = reqwest::Client::new()
        .get(format!("{}/Users", world.pbx.api_url()))
        .bearer_auth(token)
        .send()
        .await?;
    Ok(answer.status().is_success())
}

/// A world on a database file under every reading, nothing stored or
/// issued yet.
async fn world(dir: &std::path::Path, reading: TokenIssue) -> anyhow::Result<(World, SecretStore)> {
    let (world, _, store) = world_with_secrets(dir, defaults()).await?;
    world.pbx.set_token_issue(reading);
    world.pbx.expire_tokens();
    store.delete("demo", names::PBX_ACCESS_TOKEN)?;
    Ok((world, store))
}

#[tokio::test]
async fn two_hosts_asking_at_once_send_one_token_request_and_a_later_host_reuses_it()
-> anyhow::Result<()> {
    for reading in READINGS {
        let dir = tempfile::tempdir()?;
        let (world, store) = world(dir.path(), reading).await?;
        let (a, b) = (host(&world, &store)?, host(&world, &store)?);
        let before = world.pbx.token_requests();
        let (token_a, token_b) =
            tokio::join!(a.access_token(Service::Pbx), b.access_token(Service::Pbx));
        let (token_a, token_b) = (token_a?, token_b?);
        assert_eq!(
            token_a, token_b,
            "{reading:?}: the second host took the first's token"
        );
        assert_eq!(
            world.pbx.token_requests(),
            before + 1,
            "{reading:?}: one token request"
        );
        // A host started later reuses the stored token.
        let c = host(&world, &store)?;
        assert_eq!(c.access_token(Service::Pbx).await?, token_a, "{reading:?}");
        assert_eq!(world.pbx.token_requests(), before + 1, "{reading:?}");
        for token in [&token_a, &token_b] {
            assert!(works(&world, token).await?, "{reading:?}");
        }
        // Sealed at rest: the token is nowhere in the database's files.
        for file in ["cz.db", "cz.db-wal"] {
            let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
            let found = bytes
                .windows(token_a.len())
                .any(|w| w == token_a.as_bytes());
            assert!(!found, "{reading:?}: the 3CX token is in {file} in clear");
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_host_whose_token_was_replaced_by_another_hosts_takes_the_new_one_from_the_store()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (world, store) = world(dir.path(), TokenIssue::Replace).await?;
    let (a, b) = (host(&world, &store)?, host(&world, &store)?);
    let first = a.access_token(Service::Pbx).await?;
    assert_eq!(b.access_token(Service::Pbx).await?, first);
    // 3CX refused the token to host a (say, someone else fetched one): a
    // fetches a new one, which logs the first out everywhere.
    a.token_rejected(Service::Pbx, &first);
    let requests = world.pbx.token_requests();
    let second = a.access_token(Service::Pbx).await?;
    assert_ne!(second, first);
    assert_eq!(world.pbx.token_requests(), requests + 1);
    assert!(
        !works(&world, &first).await?,
        "a new token replaces the old"
    );
    // Host b's next request is refused; it finds a's token in the store
    // instead of fetching one that would log a out.
    b.token_rejected(Service::Pbx, &first);
    assert_eq!(b.access_token(Service::Pbx).await?, second);
    assert_eq!(world.pbx.token_requests(), requests + 1, "no third token");
    assert!(works(&world, &second).await?);
    Ok(())
}

#[tokio::test]
async fn a_token_due_for_renewal_is_replaced_or_kept_under_every_reading() -> anyhow::Result<()> {
    for reading in READINGS {
        let dir = tempfile::tempdir()?;
        let (world, store) = world(dir.path(), reading).await?;
        let a = host(&world, &store)?;
        let first = a.access_token(Service::Pbx).await?;
        // The stored token has 30 s left: inside the renewal margin, so
        // the next host to need it asks 3CX, which has it active still.
        let expires_at = chrono::Utc::now().timestamp_millis() + 30_000;
        let due = Secret::new(format!("{expires_at} {first}"));
        store.put("demo", &[(names::PBX_ACCESS_TOKEN, &due)])?;
        let b = host(&world, &store)?;
        let requests = world.pbx.token_requests();
        let renewed = b.access_token(Service::Pbx).await?;
        assert_eq!(world.pbx.token_requests(), requests + 1, "{reading:?}");
        // Refused while active: the current one is used while it lasts.
        if reading == TokenIssue::RefuseWhileActive {
            assert_eq!(renewed, first, "{reading:?}");
        }
        assert!(
            works(&world, &renewed).await?,
            "{reading:?}: {renewed} is refused"
        );
        // And the next call does not ask 3CX again at once.
        assert_eq!(b.access_token(Service::Pbx).await?, renewed, "{reading:?}");
        assert_eq!(world.pbx.token_requests(), requests + 1, "{reading:?}");
    }
    Ok(())
}

/// Where 3CX answers a renewal with the token already active, its
/// `expires_in` is what that token has left: the host keeps the expiry it
/// knows instead of reading a few seconds as as many minutes (before, a
/// token with 30 s left was stored as lasting 30 minutes, and every host
/// used it for half an hour of 401s and retries).
#[tokio::test]
async fn an_active_token_answered_again_keeps_its_real_expiry() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (world, store) = world(dir.path(), TokenIssue::ReturnActive).await?;
    let a = host(&world, &store)?;
    let first = a.access_token(Service::Pbx).await?;
    // The active token has 30 s left at 3CX, and the store knows it.
    world.pbx.age_active_token(Duration::from_secs(30));
    let expires_at = chrono::Utc::now().timestamp_millis() + 30_000;
    let due = Secret::new(format!("{expires_at} {first}"));
    store.put("demo", &[(names::PBX_ACCESS_TOKEN, &due)])?;
    let b = host(&world, &store)?;
    assert_eq!(b.access_token(Service::Pbx).await?, first);
    let stored = store
        .get("demo", names::PBX_ACCESS_TOKEN)?
        .context("the token is stored")?;
    let stored_until: i64 = stored
        .expose()
        .split_once(' ')
        .and_then(|(ms, _)| ms.parse().ok())
        .context("an expiry in front of the token")?;
    assert!(
        stored_until <= expires_at + 1_000,
        "stored as lasting {} s more than 3CX keeps it",
        (stored_until - expires_at) / 1000
    );
    Ok(())
}
