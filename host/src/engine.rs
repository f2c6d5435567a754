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

mod warm;

pub use crate::allowance::{self, Allowance};
pub use warm::{Warm, WarmLimits, WarmStats};

use crate::bindings::matcher::exports::connectzero::pipeline::matcher::MatchOutcome;
use crate::bindings::types::{Call, StageError, TenantSettings};
use crate::bindings::{host_provided, matcher, tick, trigger};
use crate::directory::Directory;
use crate::kv::KvCtx;
use crate::outbound::OutboundPolicy;
use crate::state::{Grants, StoreData};
use anyhow::Context;
use connectzero_stages::Grant;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimitsBuilder,
};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;

/// How often the epoch advances. Deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

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

/// The bundled component of `stage` (built by `host/build.rs` from the same
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

/// The tick's component files: the bundled ones, or an operator's
/// replacement of the same name in `--components DIR`.
struct Bundled<'a> {
    replacements: Option<&'a Path>,
}

impl connectzero_compose::Source for Bundled<'_> {
    fn read(&self, file: &str) -> Result<Vec<u8>, String> {
        if let Some(path) = self
            .replacements
            .map(|dir| dir.join(file))
            .filter(|p| p.exists())
        {
            tracing::info!(path = %path.display(), "composing a replacement component into the tick");
            return std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()));
        }
        if file == connectzero_stages::tick().file {
            return Ok(include_bytes!(env!("CONNECTZERO_COMPONENT_TICK")).to_vec());
        }
        Stage::ALL
            .into_iter()
            .find(|s| s.file_name() == file)
            .map(|s| bundled(s).to_vec())
            .ok_or_else(|| format!("no bundled component {file}"))
    }
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
        let load = |stage: Stage| -> anyhow::Result<(Linker<StoreData>, Component)> {
            let component = load_component(&engine, stage, replacements)?;
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
            &Bundled { replacements },
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
        directory: &Arc<Directory>,
        new_store: impl FnOnce() -> Store<StoreData>,
        settings: &TenantSettings,
        calls: &[Call],
    ) -> anyhow::Result<Vec<Result<MatchOutcome, StageError>>> {
        let pre = &self.stages.matcher;
        let mut warm = warm_or_fresh(&self.warm, tenant, directory, new_store, async |store| {
            pre.instantiate_async(store).await
        })
        .await?;
        let matcher = warm.instance.connectzero_pipeline_matcher();
        let result = within_allowance(&mut warm.store, async |store| {
            matcher.call_match_calls(store, settings, calls).await
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
        directory: &Arc<Directory>,
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

    /// A fresh store for one invocation of `stage`.
    pub fn new_store(
        &self,
        stage: Stage,
        kv: KvCtx,
        outbound: OutboundPolicy,
        grants: Grants,
    ) -> Store<StoreData> {
        let outbound = if granted(stage, Grant::Http) {
            outbound
        } else {
            OutboundPolicy::deny_all()
        };
        self.store_with(kv, outbound, grants, 16)
    }

    /// A fresh store for one invocation of the composed tick: the union of
    /// its stages' grants (the graph decided which stage sees which).
    pub fn new_tick_store(
        &self,
        kv: KvCtx,
        outbound: OutboundPolicy,
        grants: Grants,
    ) -> Store<StoreData> {
        // A dozen components, each a few core instances.
        self.store_with(kv, outbound, grants, 128)
    }

    fn store_with(
        &self,
        kv: KvCtx,
        outbound: OutboundPolicy,
        grants: Grants,
        instances: usize,
    ) -> Store<StoreData> {
        let allowance = Allowance::new(self.allowance);
        let data = StoreData {
            table: ResourceTable::new(),
            // No environment, arguments, files or sockets: stages talk to the
            // world only through the interfaces they are linked with.
            wasi: WasiCtxBuilder::new().wall_clock(self.clock.clone()).build(),
            http: WasiHttpCtx::new(),
            outbound: outbound.crediting(allowance.clone()),
            limits: StoreLimitsBuilder::new()
                .memory_size(STAGE_MEMORY_LIMIT)
                .instances(instances)
                .build(),
            kv,
            tenant: grants,
            allowance: allowance.clone(),
        };
        // The allowance's account needs to know when the component waits
        // in a host call (credited only while an upstream exchange is
        // open), and running wasm checks it at every epoch deadline: it
        // goes on, yielding to the executor so other tenants run, while
        // the allowance lasts, and traps once it is spent. The watchdog
        // for components parked in a host call is `within_allowance`.
        let mut store = Store::new(&self.engine, data);
        store.limiter(|data| &mut data.limits);
        store.set_epoch_deadline(epoch_ticks(allowance::YIELD_EVERY));
        let hook = allowance.clone();
        store.call_hook(move |_, call| {
            match call {
                wasmtime::CallHook::CallingHost => hook.entering_host(),
                wasmtime::CallHook::ReturningFromHost => hook.leaving_host(),
                wasmtime::CallHook::CallingWasm => hook.entering_wasm(),
                wasmtime::CallHook::ReturningFromWasm => hook.leaving_wasm(),
            }
            Ok(())
        });
        store.epoch_deadline_callback(move |_| {
            let remaining = allowance.remaining();
            if remaining.is_zero() {
                Err(wasmtime::Trap::Interrupt.into())
            } else {
                Ok(wasmtime::UpdateDeadline::YieldCustom(
                    epoch_ticks(remaining.min(allowance::YIELD_EVERY)),
                    Box::pin(tokio::task::yield_now()),
                ))
            }
        });
        store
    }
}

/// Epoch ticks in `duration`, at least one.
fn epoch_ticks(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis() / EPOCH_TICK.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// `tenant`'s idle instance from `pool`, or a new one `instantiate` makes in
/// a store from `new_store`, counted as used. (The call ahead gets its
/// whole allowance from [`within_allowance`].)
async fn warm_or_fresh<I>(
    pool: &warm::WarmPool<I>,
    tenant: &str,
    directory: &Arc<Directory>,
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

/// The engine, with pool slots for [`POOL_INSTANCES`] running invocations
/// plus `warm` idle instances for each warm pool.
fn new_engine(warm: usize) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    // Compiled components are cached on disk (~/.cache/wasmtime), so only
    // the first start after a build pays for compilation.
    match wasmtime::Cache::from_file(None) {
        Ok(cache) => {
            config.cache(Some(cache));
        }
        Err(e) => tracing::debug!("compilation cache unavailable: {e}"),
    }
    // Two warm pools (ticks and matchers), each up to `warm` idle instances.
    let slots = POOL_INSTANCES + 2 * u32::try_from(warm.min(MAX_WARM_MATCHERS)).unwrap_or(0);
    let mut pool = PoolingAllocationConfig::default();
    // A composed tick is one component instance holding a dozen inner
    // components (a memory and a few core instances each).
    pool.total_component_instances(slots)
        .max_core_instances_per_component(128)
        .max_memories_per_component(16)
        .max_tables_per_component(64)
        .total_core_instances(slots * 48)
        .total_memories(slots * 12)
        .total_tables(slots * 48)
        // Stacks are taken only while wasm runs; idle warm instances hold
        // none, so running invocations bound them.
        .total_stacks(POOL_INSTANCES)
        .max_memory_size(STAGE_MEMORY_LIMIT);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    match Engine::new(&config) {
        Ok(engine) => Ok(engine),
        Err(e) => {
            // Some sandboxes cap virtual memory below what the pool reserves.
            tracing::warn!("pooling allocator unavailable ({e:#}); using on-demand allocation");
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Ok(Engine::new(&config)?)
        }
    }
}

fn load_component(
    engine: &Engine,
    stage: Stage,
    replacements: Option<&Path>,
) -> anyhow::Result<Component> {
    if let Some(path) = replacements
        .map(|dir| dir.join(stage.file_name()))
        .filter(|p| p.exists())
    {
        tracing::info!(stage = ?stage, path = %path.display(), "loading replacement component");
        return Component::from_file(engine, &path)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{} is not a valid WASI 0.2 component", path.display()));
    }
    Component::new(engine, bundled(stage))
        .map_err(anyhow::Error::from)
        .with_context(|| format!("compiling the bundled {stage:?} component"))
}

/// A linker with exactly the imports `stage`'s world grants
/// (`connectzero_stages`), besides WASI.
fn linker_for(engine: &Engine, stage: Stage) -> anyhow::Result<Linker<StoreData>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    for grant in stage.component().grants {
        match grant {
            Grant::Http => wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?,
            Grant::Credentials => {
                crate::credentials::add_to_linker(&mut linker, StoreData::credentials_view)?
            }
            Grant::KvStore => crate::kv::add_store_to_linker(&mut linker, StoreData::kv_view)?,
            Grant::KvAtomics => crate::kv::add_atomics_to_linker(&mut linker, StoreData::kv_view)?,
            Grant::Config => host_provided::wasi::config::store::add_to_linker::<
                _,
                HasSelf<StoreData>,
            >(&mut linker, |s| s)?,
            Grant::Directory => {
                crate::directory::add_to_linker(&mut linker, StoreData::directory_view)?
            }
            // The tick's and the Spin app's grants: no stage has them.
            Grant::CallLog | Grant::Stages | Grant::TickAndTrigger | Grant::CrmInstall => {
                anyhow::bail!(
                    "{stage:?} is granted {grant:?}, which a stand-alone stage's linker cannot provide"
                )
            }
        }
    }
    Ok(linker)
}

/// The composed tick's linker: what the host provides natively
/// (`credentials`, `directory`, `call-log`), the key-value store and
/// `wasi:http`.
fn tick_linker(engine: &Engine) -> anyhow::Result<Linker<StoreData>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    crate::credentials::add_to_linker(&mut linker, StoreData::credentials_view)?;
    crate::directory::add_to_linker(&mut linker, StoreData::directory_view)?;
    crate::kv::add_store_to_linker(&mut linker, StoreData::kv_view)?;
    crate::kv::add_atomics_to_linker(&mut linker, StoreData::kv_view)?;
    tick::connectzero::pipeline::call_log::add_to_linker::<_, HasSelf<StoreData>>(
        &mut linker,
        |s| s,
    )?;
    Ok(linker)
}

/// Advances the engine's epoch on a background thread; stops when dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .ok();
        Self { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Run one invocation on `store` within its allowance: the account
/// restarts, and the invocation is cancelled (its future dropped) when it
/// sits in a host call past its allowance. The caller must not reuse the
/// instance after an error: a cancelled or trapped instance may be
/// half-way through its work.
pub async fn within_allowance<R>(
    store: &mut wasmtime::Store<crate::state::StoreData>,
    call: impl AsyncFnOnce(&mut wasmtime::Store<crate::state::StoreData>) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    let allowance = store.data().allowance.clone();
    allowance.restart();
    store.set_epoch_deadline(epoch_ticks(allowance::YIELD_EVERY));
    tokio::select! {
        // A call that completed is its answer, even if the allowance ran
        // out meanwhile.
        biased;
        result = call(store) => result.map_err(|error| {
            // The epoch callback's interrupt: say why.
            if allowance.is_spent() {
                error.context(allowance.spent())
            } else {
                error
            }
        }),
        () = allowance.spent_wait() => {
            tracing::warn!(used = ?allowance.used(), "invocation cancelled: its time allowance is spent");
            Err(wasmtime::Error::from(allowance.spent()))
        }
    }
}
