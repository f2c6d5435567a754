//! Storage stops growing (issue 15): what a call leaves behind — its
//! legs' ledger entries, its send marker, its follow-ups' done markers,
//! its call-log row — is forgotten once the call is older than the
//! tenant's horizons, a bounded batch per tick; nothing younger, nothing
//! the poll may still read and no parked call goes.

use crate::common;
use anyhow::Context;

use chrono::{Duration, Utc};
use common::*;
use connectzero::storage::CallRecord;
use connectzero::testbed::World;

/// Every key of the tenant's namespace.
fn all_keys(world: &World) -> anyhow::Result<Vec<String>> {
    let tenant = world.tenant.id();
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1_000 {
        let page = world.storage.kv_list(tenant, cursor.as_deref())?;
        let Some(last) = page.last().cloned() else {
            return Ok(keys);
        };
        keys.extend(page);
        cursor = Some(last);
    }
    panic!("the key listing never ended");
}

/// The value of the first key starting with `prefix`.
fn value_under(world: &World, prefix: &str) -> anyhow::Result<Vec<u8>> {
    let key = all_keys(world)?
        .into_iter()
        .find(|k| k.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} key"));
    world
        .storage
        .kv_get(world.tenant.id(), &key)?
        .context("the key is set")
}

fn row(tenant: &str, key: &str, outcome: &str, handled_at_ms: i64) -> CallRecord {
    CallRecord {
        tenant: tenant.into(),
        call_key: key.into(),
        direction: "inbound".into(),
        caller: "+15550100".into(),
        callee: "101".into(),
        outcome: outcome.into(),
        detail: String::new(),
        rule: None,
        contact_id: None,
        ended_at_ms: handled_at_ms,
        handled_at_ms,
        recording: "none".into(),
        triggers: String::new(),
        insights: "none".into(),
    }
}

#[tokio::test]
async fn a_tick_forgets_what_old_calls_left_behind_and_keeps_the_rest() -> anyhow::Result<()> {
    let (world, _) = seeded_world(eager()).await?;
    subscribe(&world, "call.ended", "sub-ended").await?;
    let tenant = world.tenant.id().to_string();
    let fresh = place_dana_call(&world, 1);
    tick_until(&world, 5, |w| w.crm.trigger_executions().len() == 1).await?;
    let kept_before: Vec<String> = all_keys(&world)?;
    assert!(kept_before.iter().any(|k| k.starts_with("ledger/")));
    assert!(kept_before.iter().any(|k| k.starts_with("post/sending/")));
    assert!(kept_before.iter().any(|k| k.starts_with("trigger/done/")));

    // What a call 40 days ago left behind, in the shapes the stages
    // write (values copied from the fresh call's), past the default
    // 30-day horizons; and one 20 days ago, inside them.
    let now = Utc::now();
    let left_behind = |days: i64, call_id: i32, leg: i32| -> anyhow::Result<_> {
        let start = now - Duration::days(days);
        let key = format!("3cx:{call_id}@{}", start.timestamp_millis());
        let keys = [
            (
                format!("ledger/{leg}@{}", start.timestamp_millis()),
                value_under(&world, "ledger/")?,
            ),
            (
                format!("post/sending/{key}"),
                value_under(&world, "post/sending/")?,
            ),
            (
                format!("trigger/done/call.ended/{key}"),
                value_under(&world, "trigger/done/")?,
            ),
            (format!("attach/done/{key}"), b"{\"Attached\":{}}".to_vec()),
        ];
        for (k, v) in &keys {
            // Written when that call was handled, not now.
            let mut value: serde_json::Value = serde_json::from_slice(v)?;
            if value.get("at").is_some() {
                value["at"] = serde_json::json!(start.timestamp_millis());
            }
            let bytes = serde_json::to_vec(&value)?;
            world.storage.kv_set(&tenant, k, &bytes)?;
        }
        world
            .storage
            .record_call(&row(&tenant, &key, "posted", start.timestamp_millis()))?;
        Ok((key, keys.map(|(k, _)| k)))
    };
    let (old_call, old_keys) = left_behind(40, 77, 5001)?;
    let (young_call, young_keys) = left_behind(20, 78, 5002)?;
    // A call parked 40 days ago is still an operator's to settle.
    let parked = format!("3cx:79@{}", (now - Duration::days(40)).timestamp_millis());
    world.storage.record_call(&row(
        &tenant,
        &parked,
        "parked",
        (now - Duration::days(40)).timestamp_millis(),
    ))?;

    // The sweep passed the keyspace on the first tick and rests an hour,
    // and this process prunes the call log every ten minutes: the hour is
    // over, and a second process (a restart) ticks.
    world
        .storage
        .kv_delete(&tenant, guest_support::retention::POSITION_KEY)?;
    let restarted = connectzero::pipeline::Pipeline::new(runtime(), world.storage.clone());
    let report = restarted.tick(&world.tenant).await?;
    // Four keys and a call-log row of the old call.
    assert_eq!(report.pruned, 5, "{report:?}");
    let keys = all_keys(&world)?;
    for key in &old_keys {
        assert!(!keys.contains(key), "{key} kept");
    }
    for key in young_keys.iter().chain(&kept_before) {
        assert!(keys.contains(key), "{key} forgotten");
    }
    let logged: Vec<String> = world
        .storage
        .calls(&tenant)?
        .into_iter()
        .map(|r| r.call_key)
        .collect();
    assert!(!logged.contains(&old_call));
    for key in [&young_call, &parked, &fresh.key] {
        assert!(logged.contains(key), "{key} left the call log");
    }
    // And the fresh call is still handled once.
    for _ in 0..2 {
        world.tick().await?;
    }
    assert_eq!(posted_keys(&world), vec![fresh.key.clone()]);
    assert_eq!(world.crm.trigger_executions().len(), 1);
    Ok(())
}
