//! Hostile values in upstream answers.

use crate::common::*;
use anyhow::Context;
use connectzero::demo::{Placer, numbers};
use connectzero_simulators::highlevel::Fault as CrmFault;

/// A workflow's trigger URL is whatever the subscription named: its 401
/// says nothing about the tenant's HighLevel token. Before, each refused
/// delivery dropped the token and made the host refresh the grant (one
/// refresh-token rotation per delivery attempt).
#[tokio::test]
async fn a_trigger_target_answering_401_does_not_churn_the_crm_token() -> anyhow::Result<()> {
    let (world, _) = seeded_world(eager()).await?;
    subscribe(&world, "call.ended", "sub-ended").await?;
    world.crm.inject_failures_on(
        "/workflows-marketplace/triggers/execute",
        CrmFault::Unauthorized,
        3,
    );
    let refreshes = world.crm.request_count("POST", "/oauth/token");
    place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 30),
    );
    tick_until(&world, 10, |w| w.crm.trigger_executions().len() == 1).await?;
    assert_eq!(
        world
            .crm
            .request_count("POST", "/workflows-marketplace/triggers/execute"),
        4,
        "three refusals, then the delivery"
    );
    assert_eq!(
        world.crm.request_count("POST", "/oauth/token"),
        refreshes,
        "the grant was not refreshed for a trigger target's 401"
    );
    Ok(())
}

/// `Retry-After: 4294967295` from HighLevel (or a proxy in its place)
/// pauses the location at most an hour, and nothing panics.
#[tokio::test]
async fn a_retry_after_of_years_pauses_the_location_an_hour_at_most() -> anyhow::Result<()> {
    let (world, _) = seeded_world(eager()).await?;
    world.crm.inject_failures_on(
        "/conversations/messages/inbound",
        CrmFault::TooManyRequests {
            retry_after_secs: Some(u64::from(u32::MAX)),
        },
        1,
    );
    place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 30),
    );
    let report = world.tick().await?;
    assert_eq!(report.posted, 0, "{report:?}");
    let backoff = report.backoff.context("the tick reports the wait")?;
    assert!(
        backoff <= std::time::Duration::from_secs(3600),
        "{backoff:?}"
    );
    Ok(())
}
