//! One invocation's store and its bounds: fresh stores with their grants,
//! memory limit and time allowance, the epoch ticker that drives the
//! deadlines, and [`within_allowance`], the watchdog of one call.

use super::{Allowance, Runtime, STAGE_MEMORY_LIMIT, Stage, allowance, granted};
use crate::kv::KvCtx;
use crate::outbound::OutboundPolicy;
use crate::state::{Grants, StoreData};
use connectzero_stages::Grant;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, StoreLimitsBuilder};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;
/// How often the epoch advances. Deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

impl Runtime {
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
        // The component's writes wait for the disk only before something
        // they lead to leaves the host (`connectzero_storage`'s
        // `durability`): each outbound request first syncs them.
        let kv = KvCtx {
            storage: kv.storage.deferred(),
            ..kv
        };
        let outbound = outbound
            .crediting(allowance.clone())
            .after_writes_to(kv.storage.clone());
        let data = StoreData {
            table: ResourceTable::new(),
            // No environment, arguments, files or sockets: stages talk to the
            // world only through the interfaces they are linked with.
            wasi: WasiCtxBuilder::new().wall_clock(self.clock.clone()).build(),
            http: WasiHttpCtx::new(),
            outbound,
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

/// Advances the engine's epoch on a background thread; stops when dropped.
pub(super) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    pub(super) fn start(engine: &Engine) -> Self {
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
