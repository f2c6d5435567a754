//! Pre-initialising the bundled matcher: its phone metadata loaded once,
//! at start-up, and copied into every instance.
//!
//! The phone library parses and checks every region's patterns the first
//! time a number is normalised: about 100 ms of a fresh matcher's first
//! call (docs/BENCHMARKS.md, "fresh matcher"), paid by every fresh
//! composed tick that matches calls. The bundled matcher exports
//! `wizer-initialize` (`bundled-match-stage` in `wit/worlds.wit`), which
//! does just that; wasmtime's pre-initialiser (Wizer) runs it in a
//! throw-away instance, snapshots the memory and globals it left, and
//! writes a component whose data segments already hold them. The host
//! composes and compiles that one instead.
//!
//! Only the bundled matcher is pre-initialised; a replacement is used as it
//! is. A failure here (the function trapping, reaching an import other
//! than WASI's random, leaving a WASI resource open, or a snapshot that
//! does not compile) is logged and the plain matcher used: pre-initialising
//! only saves time, it never changes what the matcher answers (the
//! snapshot is taken before any call).

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Instance, Lift, Linker, ResourceTable, WasmList};
use wasmtime::{Engine, Store};
use wasmtime_wasi::random::Deterministic;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wizer::ComponentInstanceState;

/// The export the bundled matcher offers the pre-initialiser.
const INIT_EXPORT: &str = "wizer-initialize";

/// The random bytes the throw-away instance gets (and its insecure seed,
/// 0, from which Rust's standard library takes its hash-map keys). Fixed,
/// so the snapshot, and the composed tick built from it, are the same
/// bytes on every start and wasmtime's compilation cache finds them; with
/// real randomness the whole pipeline would be compiled again at each
/// start. The hash-map keys are then known: the only maps keyed by callers'
/// numbers are one batch's lookup caches, where every new key costs a
/// HighLevel request, so colliding keys cost nothing that matters.
const SEED: [u8; 32] = *b"connectzero matcher preinit seed";

/// What the throw-away instance's store holds: WASI with nothing in it
/// (no environment, files or sockets; fixed random bytes, [`SEED`]).
struct Scratch {
    table: ResourceTable,
    wasi: WasiCtx,
}

impl WasiView for Scratch {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// `wasm` pre-initialised when it exports [`INIT_EXPORT`], else `wasm`
/// itself; on any failure (logged) `wasm` itself.
pub fn matcher(engine: &Engine, wasm: Vec<u8>) -> Vec<u8> {
    if !offers_init(&wasm) {
        return wasm;
    }
    // Wizer is async and this runs inside or outside a tokio runtime
    // (`Runtime::new` is called from both): a thread of its own with its
    // own small runtime serves both.
    let result = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(anyhow::Error::from)?
                    .block_on(run(engine, &wasm))
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the pre-initialiser panicked")))
    });
    match result {
        Ok(Some(initialised)) => initialised,
        Ok(None) => wasm,
        Err(error) => {
            tracing::warn!(
                "could not pre-initialise the matcher ({error:#}); its first call in each instance loads the phone metadata"
            );
            wasm
        }
    }
}

/// Whether the component exports [`INIT_EXPORT`] (a partner's matcher
/// usually does not: it is then used as it is, without a word).
pub fn offers_init(wasm: &[u8]) -> bool {
    wasmparser::Parser::new(0)
        .parse_all(wasm)
        .filter_map(Result::ok)
        .any(|payload| match payload {
            wasmparser::Payload::ComponentExportSection(exports) => exports
                .into_iter()
                .filter_map(Result::ok)
                .any(|export| export.name.name == INIT_EXPORT),
            _ => false,
        })
}

/// The pre-initialised component, or `None` when it has no [`INIT_EXPORT`].
async fn run(engine: &Engine, wasm: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    let mut wizer = wasmtime_wizer::Wizer::new();
    // The core export stays: the component's own export of the function
    // lifts it, and Wizer cannot drop the one without the other. Calling
    // it again would only load what is already loaded.
    wizer.keep_init_func(true);
    let (context, instrumented) = wizer
        .instrument_component(wasm)
        .map_err(anyhow::Error::from)?;
    let component = Component::new(engine, &instrumented).map_err(anyhow::Error::from)?;
    if component.get_export_index(None, INIT_EXPORT).is_none() {
        return Ok(None);
    }
    let mut store = Store::new(
        engine,
        Scratch {
            table: ResourceTable::new(),
            wasi: WasiCtx::builder()
                .secure_random(Deterministic::new(SEED.to_vec()))
                .insecure_random(Deterministic::new(SEED.to_vec()))
                .insecure_random_seed(0)
                .build(),
        },
    );
    // The engine interrupts on epochs; this instance runs once, briefly.
    store.set_epoch_deadline(u64::MAX / 2);
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    // The directory (and any other import but WASI) traps: the function
    // must not reach it, and a snapshot of a call that did would be wrong.
    // (wasmtime's `define_unknown_imports_as_traps` would also shadow the
    // WASI interfaces the component names with a newer patch version.)
    trap_non_wasi_imports(&mut linker, &component, engine)?;
    let instance = linker.instantiate_async(&mut store, &component).await?;
    instance
        .get_typed_func::<(), ()>(&mut store, INIT_EXPORT)?
        .call_async(&mut store, ())
        .await?;
    // A handle (a stream, a pollable) the function left open would be baked
    // into every instance's memory and name nothing there.
    anyhow::ensure!(
        store.data().table.is_empty(),
        "the initialiser left WASI resources open"
    );
    let initialised = wizer
        .snapshot_component(
            &context,
            &mut Snapshot {
                store: &mut store,
                instance,
            },
        )
        .await
        .map_err(anyhow::Error::from)?;
    // What Wizer wrote must compile, or the host would not start: checked
    // here, where a failure still falls back to the plain matcher.
    Component::new(engine, &initialised)
        .map_err(anyhow::Error::from)
        .map_err(|e| e.context("the pre-initialised matcher does not compile"))?;
    Ok(Some(initialised))
}

/// Define every function of every non-WASI instance `component` imports
/// as a trap.
fn trap_non_wasi_imports(
    linker: &mut Linker<Scratch>,
    component: &Component,
    engine: &Engine,
) -> anyhow::Result<()> {
    for (name, item) in component.component_type().imports(engine) {
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            continue;
        };
        if name.starts_with("wasi:") {
            continue;
        }
        let mut stubs = linker.instance(name)?;
        for (function, _) in instance.exports(engine) {
            let called = format!("{name}#{function}");
            stubs.func_new(function, move |_, _, _, _| {
                Err(wasmtime::format_err!(
                    "the matcher's initialiser called {called}: nothing it does may reach an import"
                ))
            })?;
        }
    }
    Ok(())
}

/// The initialised instance, read by Wizer through the accessors its
/// instrumentation exported (`ComponentInstanceState`).
struct Snapshot<'a> {
    store: &'a mut Store<Scratch>,
    instance: Instance,
}

impl Snapshot<'_> {
    /// Call `instance#func`, a function of no arguments, and hand its one
    /// result to `read`. The accessors exist because Wizer added them, so
    /// one missing or failing is a bug of the instrumentation: it panics
    /// (in the pre-initialiser's thread, reported as a failure).
    async fn call<R: Lift + Send + Sync + 'static, O>(
        &mut self,
        instance: &str,
        func: &str,
        read: impl FnOnce(&Store<Scratch>, R) -> O,
    ) -> O {
        let exported = self
            .instance
            .get_export_index(&mut *self.store, None, instance)
            .unwrap_or_else(|| panic!("the instrumented matcher exports no {instance}"));
        let func = self
            .instance
            .get_export_index(&mut *self.store, Some(&exported), func)
            .unwrap_or_else(|| panic!("{instance} has no {func}"));
        let func = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, func)
            .expect("a Wizer accessor has the type it declares");
        let (value,) = func
            .call_async(&mut *self.store, ())
            .await
            .expect("a Wizer accessor does not trap");
        read(self.store, value)
    }
}

impl ComponentInstanceState for Snapshot<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        self.call(instance, func, |store, list: WasmList<u8>| {
            contents(list.as_le_slice(store))
        })
        .await
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func, |_, value| value).await
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func, |_, value| value).await
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call(instance, func, |_, value: f32| value.to_bits())
            .await
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call(instance, func, |_, value: f64| value.to_bits())
            .await
    }
}
