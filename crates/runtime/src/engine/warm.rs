//! Warm instances: a tenant's composed tick (and, for `connectzero match`,
//! its stand-alone matcher) stays instantiated between invocations.
//!
//! Why: the match component normalises numbers with the `phonenumber`
//! crate, which builds its metadata database and regular expressions on the
//! first number it parses. In a fresh instance that costs 120–230 ms, so
//! every tick with calls paid it again (`docs/BENCHMARKS.md`, boundary
//! scenario). Keeping the instance removes the cost from every tick but
//! the first. A composed tick is kept only after a tick that matched calls
//! (the pool is for tenants with calls, not for the idle ones, which would
//! only push them out).
//!
//! Why this is safe: everything a warm instance can reach is fixed in its
//! store when the store is built, and is its own tenant's: the directory,
//! the credentials, the key-value namespace, the outbound allow-list. The
//! components keep no state of their own between calls (the ledger,
//! cursors and queues are in the key-value store); whatever an instance
//! remembers (the phone tables, a partner matcher's own cache) it learnt
//! from its own tenant's calls.
//!
//! Why never across tenants: an instance's linear memory outlives the call.
//! A matcher that caches answers, or any bug that leaves data behind, would
//! answer tenant B with tenant A's contacts, and the store would still hold
//! tenant A's directory grant, so B's calls would search A's CRM. So an
//! instance belongs to one owner, the pair (tenant id, that tenant's
//! `ContactDirectory` object): the id alone is not enough, because two tenant
//! objects with the same id (a reconfigured tenant, or test worlds sharing
//! one runtime) may point at different CRMs. The warm entry holds an `Arc`
//! of the directory, so the pointer it compares cannot be freed and reused
//! by another tenant's directory while the entry exists.
//!
//! Bounds:
//! - at most [`WarmLimits::idle`] idle instances, least recently used
//!   evicted first, so 10,000 idle tenants hold at most that many (each one
//!   a pooling-allocator slot and a few MB of heap);
//! - an instance is dropped after [`WarmLimits::max_uses`] invocations, so
//!   heap growth and whatever a partner matcher accumulates stay bounded;
//! - an instance whose call trapped or failed, or whose call was cancelled
//!   midway (the future dropped), is never reused: after a trap its memory
//!   may be half-updated. It is dropped and the next call instantiates anew;
//! - each call gets the full CPU (epoch) deadline again, as a fresh store
//!   would; the memory limit stays with the store.

use crate::directory::ContactDirectory;
use crate::state::StoreData;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wasmtime::Store;

/// How many warm instances a pool may keep and for how long (the tick pool
/// and the matcher pool each keep to these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WarmLimits {
    /// Most idle instances kept across all tenants; the least recently used
    /// is dropped beyond this. 0 turns reuse off (a fresh instance per call).
    pub idle: usize,
    /// Invocations after which an instance is dropped instead of reused.
    pub max_uses: u32,
}

impl Default for WarmLimits {
    fn default() -> Self {
        Self {
            idle: super::WARM_MATCHERS,
            // High enough that the rebuild (~0.2 s) is noise against the
            // invocations in between (at 1 tick/s, one rebuild per ~17 min
            // of calls), low enough that a slow leak in a partner matcher
            // cannot grow for days.
            max_uses: 1000,
        }
    }
}

/// Counters of what a warm pool did, for tests and the benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WarmStats {
    /// Instances created.
    pub instantiations: u64,
    /// Invocations served by an instance that had served one before.
    pub reuses: u64,
    /// Instances dropped because their call trapped or failed.
    pub discarded: u64,
    /// Instances dropped after `max_uses` invocations.
    pub retired: u64,
    /// Instances dropped to keep at most `idle` of them.
    pub evicted: u64,
    /// Instances idle in the pool right now.
    pub idle: usize,
}

/// The tenant a warm instance belongs to (see the module docs).
struct Owner {
    tenant: String,
    directory: Arc<dyn ContactDirectory>,
}

impl Owner {
    fn is(&self, tenant: &str, directory: &Arc<dyn ContactDirectory>) -> bool {
        self.tenant == tenant && Arc::ptr_eq(&self.directory, directory)
    }
}

/// One instance with its store.
pub struct Warm<I> {
    owner: Owner,
    /// Its store: the owner's grants, memory limit, deadline.
    pub store: Store<StoreData>,
    /// The instance.
    pub instance: I,
    uses: u32,
}

impl<I> Warm<I> {
    /// Whether the instance served a call before this one (it was kept).
    pub fn was_kept(&self) -> bool {
        self.uses > 1
    }
}

/// Idle warm instances, least recently used first.
pub(super) struct WarmPool<I> {
    limits: WarmLimits,
    idle: Mutex<VecDeque<Warm<I>>>,
    instantiations: AtomicU64,
    reuses: AtomicU64,
    discarded: AtomicU64,
    retired: AtomicU64,
    evicted: AtomicU64,
}

impl<I> WarmPool<I> {
    pub(super) fn new(limits: WarmLimits) -> Self {
        Self {
            limits,
            idle: Mutex::new(VecDeque::new()),
            instantiations: AtomicU64::new(0),
            reuses: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
            retired: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    pub(super) fn limits(&self) -> WarmLimits {
        self.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Warm<I>>> {
        // The queue is consistent after any panic (push and remove only).
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take `tenant`'s most recently used idle instance out of the pool.
    /// Taken, it is this caller's alone: two concurrent calls for one tenant
    /// get two instances, never one store used twice at once.
    pub(super) fn take(
        &self,
        tenant: &str,
        directory: &Arc<dyn ContactDirectory>,
    ) -> Option<Warm<I>> {
        let mut idle = self.lock();
        let at = idle.iter().rposition(|w| w.owner.is(tenant, directory))?;
        let warm = idle.remove(at)?;
        self.reuses.fetch_add(1, Ordering::Relaxed);
        Some(warm)
    }

    /// Wrap a fresh instance.
    pub(super) fn fresh(
        &self,
        tenant: &str,
        directory: &Arc<dyn ContactDirectory>,
        store: Store<StoreData>,
        instance: I,
    ) -> Warm<I> {
        self.instantiations.fetch_add(1, Ordering::Relaxed);
        Warm {
            owner: Owner {
                tenant: tenant.to_string(),
                directory: directory.clone(),
            },
            store,
            instance,
            uses: 0,
        }
    }

    /// Note one more invocation of `warm`.
    pub(super) fn used(warm: &mut Warm<I>) {
        warm.uses = warm.uses.saturating_add(1);
    }

    /// Count an instance dropped because its call failed.
    pub(super) fn discard(&self, warm: Warm<I>) {
        self.discarded.fetch_add(1, Ordering::Relaxed);
        drop(warm);
    }

    /// Return an instance whose call completed. Dropped instead when it has
    /// served `max_uses` calls or reuse is off; the least recently used idle
    /// instance goes when the pool is over its size.
    pub(super) fn put_back(&self, warm: Warm<I>) {
        if warm.uses >= self.limits.max_uses {
            self.retired.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let evicted: Vec<Warm<I>> = {
            let mut idle = self.lock();
            idle.push_back(warm);
            let over = idle.len().saturating_sub(self.limits.idle);
            idle.drain(..over).collect()
        };
        self.evicted
            .fetch_add(evicted.len() as u64, Ordering::Relaxed);
        // Dropped outside the lock: freeing an instance returns its slot to
        // the pooling allocator, which need not hold up other tenants.
        drop(evicted);
    }

    pub(super) fn stats(&self) -> WarmStats {
        WarmStats {
            instantiations: self.instantiations.load(Ordering::Relaxed),
            reuses: self.reuses.load(Ordering::Relaxed),
            discarded: self.discarded.load(Ordering::Relaxed),
            retired: self.retired.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
            idle: self.lock().len(),
        }
    }
}
