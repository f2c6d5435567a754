//! What a component invocation may reach: its own outbound hosts and its
//! own tenant's keys, nothing else.

use crate::common;
use anyhow::Context;

use connectzero::bindings::types::StageError;
use connectzero::kv::KvCtx;
use connectzero::outbound::OutboundPolicy;
use connectzero::state::Grants;
use connectzero::storage::Storage;

#[tokio::test]
async fn a_stage_cannot_reach_a_host_outside_its_allow_list() -> anyhow::Result<()> {
    let (world, _) = common::seeded_world(common::defaults()).await?;
    let runtime = common::runtime();
    let kv = KvCtx {
        namespace: "demo".into(),
        storage: Storage::in_memory()?,
    };
    let grants = Grants {
        credentials: Some(world.tenant.credentials.clone()),
        ..Grants::default()
    };

    // Allowed only the CRM, the composed tick's poll stage tries 3CX.
    let now = chrono::Utc::now().timestamp_millis();
    let only_crm = OutboundPolicy::allow_urls([world.crm.base_url().as_str()]);
    let mut store = runtime.new_tick_store(kv.clone(), only_crm, grants.clone());
    let tick = runtime.stages.tick.instantiate_async(&mut store).await?;
    let refused = tick
        .connectzero_pipeline_tick()
        .call_fetch_window(&mut store, &world.tenant.settings, 0, now)
        .await?;
    match refused {
        Err(StageError::Network(message)) => {
            assert!(message.contains("HttpRequestDenied"), "{message}")
        }
        other => panic!("expected a refused request, got {other:?}"),
    }
    assert_eq!(
        world.pbx.request_count("/xapi/v1"),
        0,
        "nothing reached 3CX"
    );

    // With 3CX on its list the same call goes through.
    let with_pbx = OutboundPolicy::allow_urls([world.pbx.base_url().as_str()]);
    let mut store = runtime.new_tick_store(kv, with_pbx, grants);
    let tick = runtime.stages.tick.instantiate_async(&mut store).await?;
    let window = tick
        .connectzero_pipeline_tick()
        .call_fetch_window(&mut store, &world.tenant.settings, 0, now)
        .await?;
    assert!(window.is_ok(), "{window:?}");
    Ok(())
}

#[tokio::test]
async fn each_tenant_sees_only_its_own_keys() -> anyhow::Result<()> {
    let (world, _) = common::seeded_world(common::defaults()).await?;
    let storage = world.storage.clone();
    // Another tenant has a cursor far in the future; ours must not see it.
    storage.kv_set("other-tenant", "poll/cursor", b"99999999999999")?;
    common::place_dana_call(&world, 1);
    common::tick_until(&world, 5, |w| w.crm.messages().len() == 1).await?;
    assert!(storage.kv_get("demo", "poll/cursor")?.is_some());
    assert_eq!(
        storage.kv_get("other-tenant", "poll/cursor")?.as_deref(),
        Some(&b"99999999999999"[..])
    );
    assert!(
        storage
            .kv_list("other-tenant", None)?
            .iter()
            .all(|k| !k.starts_with("ledger/"))
    );
    Ok(())
}

/// The running-wasm allowance counts running wasm, not waiting: a tick
/// whose 3CX takes longer to answer than the whole allowance still
/// finishes (the call hook credits the wait), where an epoch deadline on
/// the wall clock would interrupt it when the answer comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_slow_3cx_does_not_count_against_the_wasm_allowance() -> anyhow::Result<()> {
    let allowance = std::time::Duration::from_secs(3);
    let runtime = connectzero::engine::Runtime::with_limits(
        None,
        connectzero::engine::WarmLimits::default(),
        allowance,
    )?;
    let world = connectzero::testbed::World::start(
        runtime,
        Storage::in_memory()?,
        common::defaults(),
        false,
    )
    .await?;
    connectzero::demo::seed_directory(&world);
    common::place_dana_call(&world, 1);
    // The tick's first 3CX request waits longer than the whole allowance.
    world.pbx.inject_failures(
        connectzero_simulators::threecx::Fault::Slow(allowance + std::time::Duration::from_secs(1)),
        1,
    );
    let report = world.tick().await.context("the tick ran to its end")?;
    assert_eq!(report.posted, 1, "{report:?}");
    assert_eq!(world.crm.messages().len(), 1);
    Ok(())
}
