//! `wasi:config/store` (0.2.0-draft-2024-09-27, the version Spin provides):
//! read-only configuration values granted to one invocation.

use crate::bindings::host_provided::wasi::config::store;
use crate::state::StoreData;

impl store::Host for StoreData {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, store::Error>> {
        Ok(Ok(self
            .tenant
            .config
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())))
    }

    fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, store::Error>> {
        Ok(Ok(self.tenant.config.clone()))
    }
}
