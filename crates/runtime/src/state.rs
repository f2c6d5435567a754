//! The data each component invocation's `Store` carries.
//!
//! A store is built fresh for every invocation and holds only what its
//! stage was granted: the tenant's key-value namespace, an outbound
//! allow-list, and optional credentials and directory access.

use crate::credentials::{CredentialsView, TokenSource};
use crate::directory::{ContactDirectory, DirectoryView};
use crate::kv::{KvCtx, KvView};
use crate::outbound::OutboundPolicy;
use std::sync::Arc;
use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// What a stage may use besides WASI itself.
#[derive(Clone, Default)]
pub struct Grants {
    /// Token source, for stages that call 3CX or the CRM.
    pub credentials: Option<Arc<dyn TokenSource>>,
    /// Contact directory, for the matcher.
    pub directory: Option<Arc<dyn ContactDirectory>>,
    /// Values the component reads through `wasi:config/store`.
    pub config: Vec<(String, String)>,
}

/// `T` of every `Store<T>`.
pub struct StoreData {
    /// Resources handed to the guest.
    pub table: ResourceTable,
    /// WASI context: no environment, no files, no sockets.
    pub wasi: WasiCtx,
    /// wasi:http context.
    pub http: WasiHttpCtx,
    /// Which hosts this component may call.
    pub outbound: OutboundPolicy,
    /// Memory and instance limits.
    pub limits: StoreLimits,
    /// The tenant's key-value namespace.
    pub kv: KvCtx,
    /// Credentials and directory grants.
    pub tenant: Grants,
    /// The invocation's time allowance (`crate::allowance`):
    /// host calls that wait on 3CX or HighLevel open an upstream wait on
    /// it.
    pub allowance: crate::allowance::Allowance,
}

impl StoreData {
    /// The key-value functions' part of the store.
    pub fn kv_view(&mut self) -> KvView<'_> {
        KvView {
            ctx: &self.kv,
            table: &mut self.table,
            allowance: &self.allowance,
        }
    }

    /// The `credentials` functions' part of the store.
    pub fn credentials_view(&mut self) -> CredentialsView<'_> {
        CredentialsView {
            credentials: self.tenant.credentials.as_ref(),
            allowance: &self.allowance,
        }
    }

    /// The `wasi:config/store` functions' part of the store.
    pub fn config_view(&mut self) -> crate::config_store::ConfigView<'_> {
        crate::config_store::ConfigView {
            values: &self.tenant.config,
        }
    }

    /// The `call-log` functions' part of the store.
    pub fn call_log_view(&mut self) -> crate::call_log::CallLogView<'_> {
        crate::call_log::CallLogView {
            kv: &self.kv,
            allowance: &self.allowance,
        }
    }

    /// The `directory` functions' part of the store.
    pub fn directory_view(&mut self) -> DirectoryView<'_> {
        DirectoryView {
            directory: self.tenant.directory.as_ref(),
            allowance: &self.allowance,
        }
    }
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreData {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}
