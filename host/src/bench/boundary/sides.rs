//! The two sides of one batch: the match component (on the tenant's warm
//! instance, or a fresh one) and the same rules compiled into the host,
//! checked to give the same answers; and the benchmark's call.

use crate::bench::{native_match, number};
use crate::bindings::matcher::exports::connectzero::matcher::matcher::MatchOutcome;
use crate::bindings::types::{Call, CallLeg, Direction, DnKind, ExtensionOwner, Party, StageError};
use crate::engine::{Runtime, Stage};
use crate::kv::KvCtx;
use crate::outbound::OutboundPolicy;
use crate::pipeline::Tenant;
use crate::state::{Grants, StoreData};
use crate::testbed::World;
use std::time::{Duration, Instant};
/// One batch through the component and through the native rules, in
/// the order given; checks both gave the same answers. Returns (component,
/// native) wall times.
pub(super) async fn compare_once(
    runtime: &Runtime,
    world: &World,
    calls: &[Call],
    native_first: bool,
) -> anyhow::Result<(Duration, Duration)> {
    let settings = &world.tenant.settings;
    let directory = &world.tenant.directory;
    let (component, c, native, n) = if native_first {
        let t = Instant::now();
        let native = native_match::match_calls(settings, calls, directory.as_ref()).await;
        let n = t.elapsed();
        let t = Instant::now();
        let component = through_component(runtime, world, calls).await?;
        (component, t.elapsed(), native, n)
    } else {
        let t = Instant::now();
        let component = through_component(runtime, world, calls).await?;
        let c = t.elapsed();
        let t = Instant::now();
        let native = native_match::match_calls(settings, calls, directory.as_ref()).await;
        (component, c, native, t.elapsed())
    };
    same_answers(&component, &native)?;
    Ok((c, n))
}

/// What `Pipeline::match_calls` does: `match-calls` on the tenant's warm
/// instance, instantiated (store with only the match grants) when it has none.
async fn through_component(
    runtime: &Runtime,
    world: &World,
    calls: &[Call],
) -> anyhow::Result<Vec<Result<MatchOutcome, StageError>>> {
    let tenant = &world.tenant;
    runtime
        .match_calls(
            tenant.id(),
            &tenant.directory,
            || match_store(runtime, world, tenant),
            &tenant.settings,
            calls,
        )
        .await
}

/// A store with only the match grants for `tenant`.
pub(super) fn match_store(
    runtime: &Runtime,
    world: &World,
    tenant: &Tenant,
) -> wasmtime::Store<StoreData> {
    let kv = KvCtx {
        namespace: tenant.id().to_string(),
        storage: world.storage.clone(),
    };
    let grants = Grants {
        directory: Some(tenant.directory.clone()),
        ..Grants::default()
    };
    runtime.new_store(Stage::Match, kv, OutboundPolicy::deny_all(), grants)
}

/// What the pipeline did before warm instances: a fresh store, instantiate,
/// call, drop.
pub(super) async fn through_fresh_instance(
    runtime: &Runtime,
    world: &World,
    calls: &[Call],
) -> anyhow::Result<Vec<Result<MatchOutcome, StageError>>> {
    let tenant = &world.tenant;
    let mut store = match_store(runtime, world, tenant);
    let matcher = runtime.stages.matcher.instantiate_async(&mut store).await?;
    Ok(matcher
        .connectzero_matcher_matcher()
        .call_match_calls(&mut store, &(&tenant.settings).into(), calls)
        .await?)
}

fn summary(outcome: &Result<MatchOutcome, StageError>) -> String {
    match outcome {
        Ok(MatchOutcome::Matched(m)) => format!(
            "matched {} {:?} {} +{}",
            m.contact.id,
            m.rule,
            m.matched_on,
            m.also_matching.len()
        ),
        Ok(MatchOutcome::Unmatched(n)) => format!("unmatched {n}"),
        Ok(MatchOutcome::Skipped(r)) => format!("skipped {r}"),
        Err(e) => format!("error {}", crate::pipeline::describe(e)),
    }
}

pub(super) fn same_answers(
    component: &[Result<MatchOutcome, StageError>],
    native: &[Result<MatchOutcome, StageError>],
) -> anyhow::Result<()> {
    anyhow::ensure!(
        component.len() == native.len(),
        "component answered {} times, native {}",
        component.len(),
        native.len()
    );
    for (c, n) in component.iter().zip(native) {
        let (c, n) = (summary(c), summary(n));
        anyhow::ensure!(c == n, "component and native rules disagree: {c} vs {n}");
        anyhow::ensure!(
            c.starts_with("matched"),
            "a benchmark call did not match: {c}"
        );
    }
    Ok(())
}

/// Call `i`, inbound from benchmark number `from` to extension 101.
pub(super) fn call(i: usize, from: usize) -> Call {
    let end = chrono::Utc::now().timestamp_millis();
    let start = end - 30_000;
    let caller = Party {
        number: number(from),
        display_name: None,
        extension: None,
        external: true,
        owner: None,
        kind: DnKind::ExternalLine,
    };
    let callee = Party {
        number: "101".into(),
        display_name: Some("Alice Smith".into()),
        extension: Some("101".into()),
        external: false,
        owner: Some(ExtensionOwner {
            extension: "101".into(),
            first_name: "Alice".into(),
            last_name: "Smith".into(),
            email: Some("alice@acme.example".into()),
        }),
        kind: DnKind::Extension,
    };
    Call {
        key: format!("3cx:{}@{start}", 500_000 + i),
        legs: vec![CallLeg {
            leg_id: 500_000 + i as i32,
            start_time: start,
            end_time: end,
            direction: Direction::Inbound,
            answered: true,
            duration_secs: 30,
            caller: caller.clone(),
            callee: callee.clone(),
            recording: None,
        }],
        direction: Direction::Inbound,
        answered: true,
        start_time: start,
        end_time: end,
        duration_secs: 30,
        caller,
        answered_by: Some(callee.clone()),
        callee,
        route: Vec::new(),
        missed_reason: None,
    }
}
