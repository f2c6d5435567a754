//! `wasi:keyvalue` (0.2.0-draft2: `store` and `atomics`) over [`Storage`].
//!
//! Components open the bucket named `default`; the host maps it to the
//! namespace of the tenant the invocation runs for, so a component cannot
//! name, let alone read, another tenant's keys.

use crate::allowance::Allowance;
use crate::bindings::host_provided::wasi::keyvalue::{atomics, store};
pub use crate::bindings::kv_handles::{BucketHandle, CasHandle};
use crate::storage::{LIST_PAGE, Storage};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

/// The only bucket name components may open.
pub const BUCKET: &str = "default";

/// Largest value a component may store. Ledger entries and caches are
/// tiny; this stops a runaway guest from filling the disk.
const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// Per-store key-value context: the tenant namespace and the database.
#[derive(Clone)]
pub struct KvCtx {
    /// Namespace (tenant id) every bucket of this store maps to.
    pub namespace: String,
    /// The database.
    pub storage: Storage,
}

fn other(e: impl std::fmt::Display) -> store::Error {
    store::Error::Other(e.to_string())
}

type KvResult<T> = wasmtime::Result<Result<T, store::Error>>;

/// What the key-value functions work with during one call: the store's
/// namespace and database, its resource table, the invocation's allowance.
pub struct KvView<'a> {
    /// The tenant's namespace and the database.
    pub ctx: &'a KvCtx,
    /// The store's resources (open buckets, compare-and-swap handles).
    pub table: &'a mut ResourceTable,
    /// Database time is credited to it.
    pub allowance: &'a Allowance,
}

/// The key-value interfaces' [`HasData`]: their functions get a [`KvView`].
pub struct Kv;

impl HasData for Kv {
    type Data<'a> = KvView<'a>;
}

/// Link `wasi:keyvalue/store`, with `view` picking the key-value parts
/// out of the store's data.
pub fn add_store_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> KvView<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, Kv>(linker, view)
}

/// Link `wasi:keyvalue/atomics` (compare-and-swap), as
/// [`add_store_to_linker`].
pub fn add_atomics_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> KvView<'_>,
) -> wasmtime::Result<()> {
    atomics::add_to_linker::<T, Kv>(linker, view)
}

impl KvView<'_> {
    fn kv(&self) -> &KvCtx {
        self.ctx
    }

    fn namespace_of(&self, bucket: &Resource<BucketHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(bucket)?.namespace.clone())
    }
}

impl store::Host for KvView<'_> {
    fn open(&mut self, identifier: String) -> KvResult<Resource<BucketHandle>> {
        if identifier != BUCKET {
            return Ok(Err(store::Error::NoSuchStore));
        }
        let handle = BucketHandle {
            namespace: self.kv().namespace.clone(),
        };
        Ok(Ok(self.table.push(handle)?))
    }
}

impl store::HostBucket for KvView<'_> {
    fn get(&mut self, bucket: Resource<BucketHandle>, key: String) -> KvResult<Option<Vec<u8>>> {
        // Database time is the host's, not the component's.
        let _work = self.allowance.credited();
        let ns = self.namespace_of(&bucket)?;
        Ok(self.kv().storage.kv_get(&ns, &key).map_err(other))
    }

    fn set(&mut self, bucket: Resource<BucketHandle>, key: String, value: Vec<u8>) -> KvResult<()> {
        let _work = self.allowance.credited();
        // guest-controlled size, so it is capped.
        if value.len() > MAX_VALUE_BYTES {
            return Ok(Err(store::Error::Other(format!(
                "value of {} bytes is larger than the {MAX_VALUE_BYTES}-byte limit",
                value.len()
            ))));
        }
        let ns = self.namespace_of(&bucket)?;
        Ok(self.kv().storage.kv_set(&ns, &key, &value).map_err(other))
    }

    fn delete(&mut self, bucket: Resource<BucketHandle>, key: String) -> KvResult<()> {
        let _work = self.allowance.credited();
        let ns = self.namespace_of(&bucket)?;
        Ok(self.kv().storage.kv_delete(&ns, &key).map_err(other))
    }

    fn exists(&mut self, bucket: Resource<BucketHandle>, key: String) -> KvResult<bool> {
        let _work = self.allowance.credited();
        let ns = self.namespace_of(&bucket)?;
        Ok(self
            .kv()
            .storage
            .kv_get(&ns, &key)
            .map(|v| v.is_some())
            .map_err(other))
    }

    fn list_keys(
        &mut self,
        bucket: Resource<BucketHandle>,
        cursor: Option<String>,
    ) -> KvResult<store::KeyResponse> {
        let _work = self.allowance.credited();
        let ns = self.namespace_of(&bucket)?;
        Ok(self
            .kv()
            .storage
            .kv_list(&ns, cursor.as_deref())
            .map_err(other)
            .map(|keys| {
                // A full page may have more after it: hand back its last key.
                let cursor = (keys.len() == LIST_PAGE)
                    .then(|| keys.last().cloned())
                    .flatten();
                store::KeyResponse { keys, cursor }
            }))
    }

    fn drop(&mut self, bucket: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KvView<'_> {
    fn increment(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        delta: i64,
    ) -> KvResult<i64> {
        let _work = self.allowance.credited();
        let ns = self.namespace_of(&bucket)?;
        Ok(self
            .kv()
            .storage
            .kv_increment(&ns, &key, delta)
            .map_err(store::Error::Other))
    }

    fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let _work = self.allowance.credited();
        if value.len() > MAX_VALUE_BYTES {
            self.table.delete(cas)?;
            return Ok(Err(atomics::CasError::StoreError(store::Error::Other(
                format!(
                    "value of {} bytes is larger than the {MAX_VALUE_BYTES}-byte limit",
                    value.len()
                ),
            ))));
        }
        let handle = self.table.get(&cas)?;
        let swapped = self.kv().storage.kv_compare_and_swap(
            &handle.namespace,
            &handle.key,
            handle.expected.as_deref(),
            &value,
        );
        match swapped {
            Ok(true) => {
                self.table.delete(cas)?;
                Ok(Ok(()))
            }
            // The guest gets its handle back, as the interface specifies.
            Ok(false) => Ok(Err(atomics::CasError::CasFailed(cas))),
            Err(e) => {
                self.table.delete(cas)?;
                Ok(Err(atomics::CasError::StoreError(other(e))))
            }
        }
    }
}

impl atomics::HostCas for KvView<'_> {
    fn new(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> KvResult<Resource<CasHandle>> {
        let _work = self.allowance.credited();
        let namespace = self.namespace_of(&bucket)?;
        let expected = match self.kv().storage.kv_get(&namespace, &key) {
            Ok(value) => value,
            Err(e) => return Ok(Err(other(e))),
        };
        Ok(Ok(self.table.push(CasHandle {
            namespace,
            key,
            expected,
        })?))
    }

    fn current(&mut self, cas: Resource<CasHandle>) -> KvResult<Option<Vec<u8>>> {
        let _work = self.allowance.credited();
        Ok(Ok(self.table.get(&cas)?.expected.clone()))
    }

    fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atomics::{Host as _, HostCas as _};
    use std::time::Duration;
    use store::{Host as _, HostBucket as _};

    /// A second handle on the same bucket or cas, as the guest's borrows.
    fn again<T: 'static>(resource: &Resource<T>) -> Resource<T> {
        Resource::new_borrow(resource.rep())
    }

    struct Fixture {
        ctx: KvCtx,
        table: ResourceTable,
        allowance: Allowance,
    }

    impl Fixture {
        fn new(storage: &Storage, tenant: &str) -> Self {
            Self {
                ctx: KvCtx {
                    namespace: tenant.into(),
                    storage: storage.clone(),
                },
                table: ResourceTable::new(),
                allowance: Allowance::new(Duration::from_secs(30)),
            }
        }

        fn view(&mut self) -> KvView<'_> {
            KvView {
                ctx: &self.ctx,
                table: &mut self.table,
                allowance: &self.allowance,
            }
        }
    }

    #[test]
    fn a_component_opens_only_its_tenants_bucket() {
        let storage = Storage::in_memory().unwrap();
        let (mut acme, mut other) = (
            Fixture::new(&storage, "acme"),
            Fixture::new(&storage, "other"),
        );
        assert!(matches!(
            acme.view().open("other".into()).unwrap(),
            Err(store::Error::NoSuchStore)
        ));
        let mut view = acme.view();
        let bucket = view.open(BUCKET.into()).unwrap().unwrap();
        view.set(again(&bucket), "ledger/k".into(), b"posted".to_vec())
            .unwrap()
            .unwrap();
        assert_eq!(
            view.get(again(&bucket), "ledger/k".into())
                .unwrap()
                .unwrap(),
            Some(b"posted".to_vec())
        );
        assert!(
            view.exists(again(&bucket), "ledger/k".into())
                .unwrap()
                .unwrap()
        );
        // The same bucket name is another tenant's namespace.
        let mut theirs = other.view();
        let their_bucket = theirs.open(BUCKET.into()).unwrap().unwrap();
        assert_eq!(
            theirs
                .get(their_bucket, "ledger/k".into())
                .unwrap()
                .unwrap(),
            None
        );
        view.delete(again(&bucket), "ledger/k".into())
            .unwrap()
            .unwrap();
        assert!(!view.exists(bucket, "ledger/k".into()).unwrap().unwrap());
    }

    #[test]
    fn oversized_values_are_refused_and_not_stored() {
        let storage = Storage::in_memory().unwrap();
        let mut fixture = Fixture::new(&storage, "acme");
        let mut view = fixture.view();
        let bucket = view.open(BUCKET.into()).unwrap().unwrap();
        let big = vec![0; MAX_VALUE_BYTES + 1];
        assert!(
            view.set(again(&bucket), "k".into(), big.clone())
                .unwrap()
                .is_err()
        );
        assert_eq!(view.get(again(&bucket), "k".into()).unwrap().unwrap(), None);
        let cas = view.new(again(&bucket), "k".into()).unwrap().unwrap();
        assert!(matches!(
            view.swap(cas, big).unwrap(),
            Err(atomics::CasError::StoreError(_))
        ));
        assert_eq!(view.get(bucket, "k".into()).unwrap().unwrap(), None);
    }

    #[test]
    fn compare_and_swap_fails_after_another_write_and_hands_the_handle_back() {
        let storage = Storage::in_memory().unwrap();
        let mut fixture = Fixture::new(&storage, "acme");
        let mut view = fixture.view();
        let bucket = view.open(BUCKET.into()).unwrap().unwrap();
        let cas = view.new(again(&bucket), "lease".into()).unwrap().unwrap();
        assert_eq!(view.current(again(&cas)).unwrap().unwrap(), None);
        // Someone else takes the key between the read and the swap.
        view.set(again(&bucket), "lease".into(), b"theirs".to_vec())
            .unwrap()
            .unwrap();
        let cas = match view.swap(cas, b"mine".to_vec()).unwrap() {
            Err(atomics::CasError::CasFailed(cas)) => cas,
            other => panic!("expected a failed swap, got {:?}", other.is_ok()),
        };
        atomics::HostCas::drop(&mut view, cas).unwrap();
        assert_eq!(
            view.get(again(&bucket), "lease".into()).unwrap().unwrap(),
            Some(b"theirs".to_vec())
        );
        // A fresh handle sees the new value and swaps.
        let cas = view.new(again(&bucket), "lease".into()).unwrap().unwrap();
        view.swap(cas, b"mine".to_vec()).unwrap().unwrap();
        assert_eq!(
            view.get(again(&bucket), "lease".into()).unwrap().unwrap(),
            Some(b"mine".to_vec())
        );
        assert_eq!(
            view.increment(again(&bucket), "n".into(), 2)
                .unwrap()
                .unwrap(),
            2
        );
        assert_eq!(view.increment(bucket, "n".into(), 3).unwrap().unwrap(), 5);
    }

    #[test]
    fn keys_are_listed_a_page_at_a_time() {
        let storage = Storage::in_memory().unwrap();
        let mut fixture = Fixture::new(&storage, "acme");
        let mut view = fixture.view();
        let bucket = view.open(BUCKET.into()).unwrap().unwrap();
        for i in 0..LIST_PAGE + 3 {
            view.set(again(&bucket), format!("k{i:05}"), vec![1])
                .unwrap()
                .unwrap();
        }
        let first = view.list_keys(again(&bucket), None).unwrap().unwrap();
        assert_eq!(first.keys.len(), LIST_PAGE);
        let cursor = first.cursor.expect("a full page says where to go on");
        let rest = view.list_keys(bucket, Some(cursor)).unwrap().unwrap();
        assert_eq!(rest.keys.len(), 3);
        assert_eq!(rest.cursor, None);
    }
}
