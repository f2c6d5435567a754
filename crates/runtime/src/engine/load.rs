//! Building the engine and the components: the pooling engine, the tick's
//! component files (bundled or replaced), stand-alone components and the
//! linkers holding exactly each one's grants.

use super::{MAX_WARM_MATCHERS, POOL_INSTANCES, STAGE_MEMORY_LIMIT, Stage, bundled};
use crate::state::StoreData;
use anyhow::Context;
use connectzero_stages::Grant;
use std::path::Path;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
/// The tick's component files: the bundled ones, or an operator's
/// replacement of the same name in `--components DIR`.
pub(super) struct Bundled<'a> {
    pub(super) replacements: Option<&'a Path>,
    /// The matcher, bundled or replaced, as pre-initialised at start-up
    /// ([`super::preinit`]).
    pub(super) matcher: &'a [u8],
}

impl connectzero_compose::Source for Bundled<'_> {
    fn read(&self, file: &str) -> Result<Vec<u8>, String> {
        if file == Stage::Match.file_name() {
            return Ok(self.matcher.to_vec());
        }
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

/// The engine, with pool slots for [`POOL_INSTANCES`] running invocations
/// plus `warm` idle instances for each warm pool.
pub(super) fn new_engine(warm: usize) -> anyhow::Result<Engine> {
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

/// `stage`'s component file: the replacement in `replacements` when there
/// is one, else the bundled one.
pub(super) fn component_bytes(
    stage: Stage,
    replacements: Option<&Path>,
) -> anyhow::Result<(Vec<u8>, Option<std::path::PathBuf>)> {
    if let Some(path) = replacements
        .map(|dir| dir.join(stage.file_name()))
        .filter(|p| p.exists())
    {
        tracing::info!(stage = ?stage, path = %path.display(), "loading replacement component");
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        return Ok((bytes, Some(path)));
    }
    Ok((bundled(stage).to_vec(), None))
}

/// Compile `stage`'s component from `bytes` (read from `path`, when
/// replaced).
pub(super) fn load_component(
    engine: &Engine,
    stage: Stage,
    bytes: &[u8],
    path: Option<&Path>,
) -> anyhow::Result<Component> {
    Component::new(engine, bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| match path {
            Some(path) => format!("{} is not a valid WASI 0.2 component", path.display()),
            None => format!("compiling the bundled {stage:?} component"),
        })
}

/// A linker with exactly the imports `stage`'s world grants
/// (`connectzero_stages`), besides WASI.
pub(super) fn linker_for(engine: &Engine, stage: Stage) -> anyhow::Result<Linker<StoreData>> {
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
            Grant::Config => {
                crate::config_store::add_to_linker(&mut linker, StoreData::config_view)?
            }
            Grant::Directory => {
                crate::directory::add_to_linker(&mut linker, StoreData::directory_view)?
            }
            // The tick's and the Spin app's grants: no stage has them.
            Grant::CallLog
            | Grant::Stages
            | Grant::TickAndTrigger
            | Grant::CrmInstall
            | Grant::Tenancy => {
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
pub(super) fn tick_linker(engine: &Engine) -> anyhow::Result<Linker<StoreData>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    crate::credentials::add_to_linker(&mut linker, StoreData::credentials_view)?;
    crate::directory::add_to_linker(&mut linker, StoreData::directory_view)?;
    crate::kv::add_store_to_linker(&mut linker, StoreData::kv_view)?;
    crate::kv::add_atomics_to_linker(&mut linker, StoreData::kv_view)?;
    crate::call_log::add_to_linker(&mut linker, StoreData::call_log_view)?;
    Ok(linker)
}
