//! The wasmtime engine, the composed tick and the stand-alone components.
//!
//! The pipeline runs as one composed component: the tick with every stage
//! plugged in, wired at start-up by the same graph the Spin app is built
//! from (`connectzero_compose::Deployable::Tick`), with any replacement
//! stage from `--components DIR` in its place. The graph refuses a stage
//! that imports more than its stage world grants (a matcher gets no
//! `wasi:http`, no key-value store and no credentials), so composition
//! hands no stage an import it was not granted. The matcher (for
//! `connectzero match`), the trigger stage (workflow subscriptions) and
//! the write-back action are also loaded on their own, each with a linker
//! holding only its grants. Every invocation gets a fresh `Store` with a
//! memory limit and a time allowance (wall-clock time less upstream waits,
//! [`allowance`]), so a stuck, sleeping or greedy component cannot hold
//! the host. The exception: a tenant's composed tick, and its
//! stand-alone matcher, are kept warm between that tenant's invocations
//! ([`Runtime::tick_instance`], [`Runtime::match_calls`]; why, how it is
//! bounded and why never across tenants: [`warm`]).

mod load;
#[cfg(test)]
mod preinit_tests;
mod store;
mod warm;

pub use crate::allowance::{self, Allowance};
pub use store::within_allowance;
pub use warm::{Warm, WarmLimits, WarmStats};

use crate::bindings::matcher::exports::connectzero::matcher::matcher::MatchOutcome;
use crate::bindings::types::{Call, StageError, TenantSettings};
use crate::bindings::{matcher, tick, trigger};
use crate::directory::ContactDirectory;
use crate::state::StoreData;
use anyhow::Context;
use connectzero_stages::Grant;
use load::{Bundled, component_bytes, linker_for, load_component, new_engine, tick_linker};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use store::EpochTicker;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
/// Time an invocation may take, not counting its waits for 3CX's and
/// HighLevel's answers and for the rate limiter ([`allowance`]), before it
/// is stopped. Generous: a tick of thousands of calls runs in well under a
/// second of wasm and key-value work; only a runaway loop, or a component
/// sleeping on its own account, reaches it.
pub const STAGE_ALLOWANCE: Duration = Duration::from_secs(30);

/// Linear memory a stage instance may grow to.
const STAGE_MEMORY_LIMIT: usize = 64 << 20;

/// Instances the pooling allocator keeps slots for invocations; bounds how
/// many invocations may run at once across all tenants. The pool has
/// [`WARM_MATCHERS`] more slots for each warm pool (ticks and matchers), so
/// keeping them never takes a slot a running tick needs.
pub const POOL_INSTANCES: u32 = 64;

/// Most idle warm instances kept across all tenants, per pool (see
/// [`warm`]). Half the invocation slots: enough for the tenants that have
/// calls at any one time on a 2-core host, small enough that 10,000 idle
/// tenants cost at most this many instances (a few MB of heap each: a
/// composed tick ~4.3 MB, a matcher ~3.8 MB).
pub const WARM_MATCHERS: usize = 32;

/// Most warm instances any [`WarmLimits`] may ask for, per pool: each is a
/// pool slot reserved up front.
const MAX_WARM_MATCHERS: usize = 1024;

/// The replaceable stages, declared once with their worlds and grants
/// (`connectzero_stages`).
pub use connectzero_stages::Stage;

/// Where the build script left the components it built and composed
/// (`target/components/wasm32-wasip2/component`): the bundled files, the
/// Spin deployables and the test fixtures.
pub const COMPONENTS_DIR: &str = env!("CONNECTZERO_COMPONENTS_DIR");

/// The bundled component of `stage` (built by `crates/runtime/build.rs` from the same
/// table; `include_bytes!` needs one literal per file).
pub fn bundled(stage: Stage) -> &'static [u8] {
    match stage {
        Stage::Poll => include_bytes!(env!("CONNECTZERO_COMPONENT_POLL")),
        Stage::Dedup => include_bytes!(env!("CONNECTZERO_COMPONENT_DEDUP")),
        Stage::Match => include_bytes!(env!("CONNECTZERO_COMPONENT_MATCH")),
        Stage::Post => include_bytes!(env!("CONNECTZERO_COMPONENT_POST")),
        Stage::Attach => include_bytes!(env!("CONNECTZERO_COMPONENT_ATTACH")),
        Stage::Trigger => include_bytes!(env!("CONNECTZERO_COMPONENT_TRIGGER")),
        Stage::WriteBack => include_bytes!(env!("CONNECTZERO_COMPONENT_WRITE_BACK")),
    }
}

/// Whether `stage`'s world grants `grant`.
fn granted(stage: Stage, grant: Grant) -> bool {
    stage.component().has(grant)
}

/// The pre-instantiated components.
pub struct Stages {
    /// The composed tick: the whole pipeline.
    pub tick: tick::TickHostPre<StoreData>,
    /// Match on its own (`connectzero match`, warm instances).
    pub matcher: matcher::MatchStagePre<StoreData>,
    /// Trigger on its own (workflow subscriptions).
    pub trigger: trigger::TriggerStagePre<StoreData>,
    /// Write-back: an HTTP component (`wasi:http/incoming-handler`).
    pub write_back: wasmtime_wasi_http::p2::bindings::ProxyPre<StoreData>,
}

/// Engine plus stages: what every invocation needs. Cheap to share.
pub struct Runtime {
    engine: Engine,
    /// The stages.
    pub stages: Stages,
    warm: warm::WarmPool<matcher::MatchStage>,
    warm_ticks: warm::WarmPool<tick::TickHost>,
    /// The time allowance per invocation ([`allowance`]).
    allowance: Duration,
    /// The time components and the host's retention see.
    pub clock: crate::clock::Clock,
    _ticker: EpochTicker,
}

impl Runtime {
    /// Compile and pre-instantiate every stage. Components come from the
    /// binary, or from `replacements` where it holds a file of the same name.
    pub fn new(replacements: Option<&Path>) -> anyhow::Result<Arc<Self>> {
        Self::with_warm_limits(replacements, WarmLimits::default())
    }

    /// As [`Runtime::new`], keeping warm instances within `limits` (tests
    /// and the benchmark use small or zero limits to show their effect).
    pub fn with_warm_limits(
        replacements: Option<&Path>,
        limits: WarmLimits,
    ) -> anyhow::Result<Arc<Self>> {
        Self::with_limits(replacements, limits, STAGE_ALLOWANCE)
    }

    /// As [`Runtime::with_warm_limits`], allowing each invocation
    /// `allowance` instead of [`STAGE_ALLOWANCE`] (tests show with a short
    /// one what counts against it and what does not).
    pub fn with_limits(
        replacements: Option<&Path>,
        limits: WarmLimits,
        allowance: Duration,
    ) -> anyhow::Result<Arc<Self>> {
        let limits = WarmLimits {
            idle: limits.idle.min(MAX_WARM_MATCHERS),
            ..limits
        };
        let engine = new_engine(limits.idle)?;
        // The matcher, pre-initialised once here, is the one composed into
        // the tick and the one run on its own.
        let (matcher, matcher_path) = component_bytes(Stage::Match, replacements)?;
        // Only the bundled one: a replacement's initialiser would run at
        // start-up, unbounded, before any tenant's allowance applies.
        let matcher = match matcher_path {
            None => connectzero_preinit::matcher(&engine, matcher),
            Some(_) => matcher,
        };
        let load = |stage: Stage| -> anyhow::Result<(Linker<StoreData>, Component)> {
            let component = if stage == Stage::Match {
                load_component(&engine, stage, &matcher, matcher_path.as_deref())?
            } else {
                let (bytes, path) = component_bytes(stage, replacements)?;
                load_component(&engine, stage, &bytes, path.as_deref())?
            };
            Ok((linker_for(&engine, stage)?, component))
        };
        let pre = |stage: Stage| -> anyhow::Result<wasmtime::component::InstancePre<StoreData>> {
            let (linker, component) = load(stage)?;
            linker.instantiate_pre(&component).map_err(anyhow::Error::from).with_context(|| {
                format!("the {stage:?} component imports something the {stage:?} stage is not granted")
            })
        };
        let composed = connectzero_compose::compose_from(
            connectzero_compose::Deployable::Tick,
            &Bundled {
                replacements,
                matcher: &matcher,
            },
        )
        .map_err(anyhow::Error::from)
        .context("composing the pipeline (the tick and its stages)")?;
        let tick_component = Component::new(&engine, &composed)
            .map_err(anyhow::Error::from)
            .context("compiling the composed tick")?;
        let tick = tick::TickHostPre::new(
            tick_linker(&engine)?
                .instantiate_pre(&tick_component)
                .map_err(anyhow::Error::from)
                .context("the composed tick imports something the host does not provide")?,
        )
        .map_err(anyhow::Error::from)
        .context("composed tick exports")?;
        let stages = Stages {
            tick,
            matcher: matcher::MatchStagePre::new(pre(Stage::Match)?)
                .map_err(anyhow::Error::from)
                .context("match component exports")?,
            trigger: trigger::TriggerStagePre::new(pre(Stage::Trigger)?)
                .map_err(anyhow::Error::from)
                .context("trigger component exports")?,
            write_back: wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre(Stage::WriteBack)?)
                .map_err(anyhow::Error::from)
                .context("write-back component exports")?,
        };
        let ticker = EpochTicker::start(&engine);
        Ok(Arc::new(Self {
            engine,
            stages,
            warm: warm::WarmPool::new(limits),
            warm_ticks: warm::WarmPool::new(limits),
            allowance,
            clock: crate::clock::Clock::default(),
            _ticker: ticker,
        }))
    }

    /// Run `match-calls` for `tenant` on its warm match instance, or on a
    /// new one in a store from `new_store` (which must grant `directory`,
    /// the tenant's own). The instance goes back to the tenant's warm pool
    /// only when the call completed; one that trapped is dropped, so the
    /// next call instantiates afresh.
    pub async fn match_calls(
        &self,
        tenant: &str,
        directory: &Arc<dyn ContactDirectory>,
        new_store: impl FnOnce() -> Store<StoreData>,
        settings: &TenantSettings,
        calls: &[Call],
    ) -> anyhow::Result<Vec<Result<MatchOutcome, StageError>>> {
        let pre = &self.stages.matcher;
        let mut warm = warm_or_fresh(&self.warm, tenant, directory, new_store, async |store| {
            pre.instantiate_async(store).await
        })
        .await?;
        let matcher = warm.instance.connectzero_matcher_matcher();
        let result = within_allowance(&mut warm.store, async |store| {
            matcher
                .call_match_calls(store, &settings.into(), calls)
                .await
        })
        .await;
        match result {
            Ok(results) => {
                self.warm.put_back(warm);
                Ok(results)
            }
            Err(trap) => {
                self.warm.discard(warm);
                Err(trap.into())
            }
        }
    }

    /// What the warm matcher pool has done so far.
    pub fn matcher_stats(&self) -> WarmStats {
        self.warm.stats()
    }

    /// What the warm tick pool has done so far.
    pub fn tick_stats(&self) -> WarmStats {
        self.warm_ticks.stats()
    }

    /// `tenant`'s composed tick: its warm instance, or a new one in a store
    /// from `new_store` (which must grant `tenant`'s own directory; the
    /// pool is keyed by it). Give it back with [`Runtime::tick_done`] or
    /// [`Runtime::tick_failed`]; dropped, it is simply not kept.
    pub async fn tick_instance(
        &self,
        tenant: &str,
        directory: &Arc<dyn ContactDirectory>,
        new_store: impl FnOnce() -> Store<StoreData>,
    ) -> anyhow::Result<Warm<tick::TickHost>> {
        let pre = &self.stages.tick;
        warm_or_fresh(
            &self.warm_ticks,
            tenant,
            directory,
            new_store,
            async |store| pre.instantiate_async(store).await,
        )
        .await
    }

    /// A tick instance whose call completed: kept for its tenant's next
    /// tick when `keep` (it matched calls, so its matcher is warm) or when
    /// it was kept before (a tenant with calls now and then stays warm
    /// through its quiet ticks), else dropped.
    pub fn tick_done(&self, warm: Warm<tick::TickHost>, keep: bool) {
        if keep || warm.was_kept() {
            self.warm_ticks.put_back(warm);
        }
    }

    /// A tick instance whose call trapped: never reused.
    pub fn tick_failed(&self, warm: Warm<tick::TickHost>) {
        self.warm_ticks.discard(warm);
    }

    /// The limits the warm matcher pool keeps to.
    pub fn warm_limits(&self) -> WarmLimits {
        self.warm.limits()
    }
}
/// `tenant`'s idle instance from `pool`, or a new one `instantiate` makes in
/// a store from `new_store`, counted as used. (The call ahead gets its
/// whole allowance from [`within_allowance`].)
async fn warm_or_fresh<I>(
    pool: &warm::WarmPool<I>,
    tenant: &str,
    directory: &Arc<dyn ContactDirectory>,
    new_store: impl FnOnce() -> Store<StoreData>,
    instantiate: impl AsyncFnOnce(&mut Store<StoreData>) -> wasmtime::Result<I>,
) -> anyhow::Result<Warm<I>> {
    let mut warm = match pool.take(tenant, directory) {
        Some(warm) => warm,
        None => {
            let mut store = new_store();
            // The pool is keyed by this directory: a store granting another
            // would file one tenant's instance under another.
            anyhow::ensure!(
                store
                    .data()
                    .tenant
                    .directory
                    .as_ref()
                    .is_some_and(|d| Arc::ptr_eq(d, directory)),
                "the store must grant tenant {tenant}'s own directory"
            );
            // A component's start functions run here: bounded as its calls.
            let instance = within_allowance(&mut store, instantiate).await?;
            pool.fresh(tenant, directory, store, instance)
        }
    };
    warm::WarmPool::used(&mut warm);
    Ok(warm)
}
