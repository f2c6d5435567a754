//! The version of a tenant's key-value layout: which keys hold what.
//!
//! The layout is the components' contract with their own past: a key
//! renamed or a value reshaped between releases would make the new
//! release read nothing where the old one left a claim, a send marker or a
//! queued job, and post or fire again (as renaming `app/started` to
//! `tick/started` once could). So each tenant namespace carries a stamp,
//! [`STAMP_KEY`], and every tick checks it before touching anything
//! ([`check`]), on both runtimes:
//!
//! - no stamp: the namespace is new, or was written by a release before
//!   the stamp (commit 8fe53d6 and earlier, whose layout is version 1);
//!   it is migrated from version 1 (a new namespace has nothing to move);
//! - an older stamp: the [`STEPS`] after it run, in order, under a lease
//!   kept in the store (compare-and-swap, so replicas never run one
//!   twice), then the stamp moves; a tick that finds the lease held waits
//!   for the next tick;
//! - a newer stamp: a later release migrated the layout. This release
//!   goes on only when that release said its layout is still readable by
//!   this one (`readable_by`), as it is during a rolling upgrade where a
//!   step only added keys; otherwise it stops with a message saying to
//!   upgrade.
//!
//! Rules for a step (`docs/OPERATIONS.md`, "Upgrades"): idempotent (a
//! crash re-runs it), additive where it can be (write the new key, keep
//! reading the old one for a release, delete it a release later), and
//! [`READABLE_BY`] raised only when a step makes the old layout unreadable.

use crate::StageError;
use crate::kv::{self, Store};
use serde::{Deserialize, Serialize};

/// This release's layout version.
pub const LAYOUT_VERSION: u32 = 2;

/// The oldest layout version whose code can still work on this release's
/// layout (what this release writes in the stamp's `readable_by`): 2,
/// since version 1's code reads only a queue's single index.
pub const READABLE_BY: u32 = 2;

// A layout cannot be readable only by code newer than itself.
const _: () = assert!(READABLE_BY <= LAYOUT_VERSION);

/// Where the stamp lives in each tenant namespace.
pub const STAMP_KEY: &str = "layout/version";

/// The lease of a migration in progress.
pub const LEASE_KEY: &str = "layout/migrating";

/// How long a migration's lease lasts: longer than any step takes.
const LEASE_MS: i64 = 5 * 60 * 1000;

/// One migration step.
pub struct Step {
    /// The layout version it leads to.
    pub version: u32,
    /// What it does.
    pub name: &'static str,
    /// The change; idempotent.
    pub run: fn(&dyn Store) -> Result<(), StageError>,
}

/// Every step, in order (`docs/OPERATIONS.md` lists them).
pub const STEPS: &[Step] = &[Step {
    version: 2,
    name: "the attach and trigger queues list their jobs on pages (`<queue>/index/<n>`) instead of one `<queue>/index`",
    // Nothing to do here: each queue moves the ids of its old index onto
    // pages as it reads them, and keeps reading the old index, which a
    // version-1 worker still running during the upgrade may add to
    // (`crate::queue`, `migrate_legacy`). The stamp records that version
    // 1's code can no longer see the queued jobs.
    run: |_| Ok(()),
}];

/// A namespace's stamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// The layout the namespace is in.
    pub version: u32,
    /// The oldest code version that can still work on it.
    pub readable_by: u32,
}

#[derive(Serialize, Deserialize)]
struct Lease {
    until_ms: i64,
}

/// Make sure the namespace's layout is one this release can work on,
/// migrating it when it is older: see the module docs. `Err` stops the
/// tick (nothing is claimed or sent); the calls wait.
pub fn check(store: &dyn Store) -> Result<(), StageError> {
    check_with(
        store,
        STEPS,
        LAYOUT_VERSION,
        READABLE_BY,
        crate::time::now_ms(),
    )
}

fn check_with(
    store: &dyn Store,
    steps: &[Step],
    version: u32,
    readable_by: u32,
    now_ms: i64,
) -> Result<(), StageError> {
    let current_bytes = store.get(STAMP_KEY)?;
    let current = current_bytes.as_deref().map(read_stamp).transpose()?;
    let found = current.map_or(1, |s| s.version);
    if found > version {
        let stamp = current.unwrap_or(Stamp {
            version: found,
            readable_by: found,
        });
        if stamp.readable_by <= version {
            return Ok(());
        }
        return Err(StageError::InvalidSettings(format!(
            "this tenant's key-value layout is version {found}, written by a later ConnectZero release that this one ({version}) cannot read: upgrade this host or replica (docs/OPERATIONS.md, \"Upgrades\")"
        )));
    }
    if current.is_some() && found == version {
        return Ok(());
    }
    let pending: Vec<&Step> = steps.iter().filter(|s| s.version > found).collect();
    let new = kv::encode(
        STAMP_KEY,
        &Stamp {
            version,
            readable_by,
        },
    )?;
    if pending.is_empty() {
        // Only the stamp to write; another worker writing it first is fine.
        store.swap(STAMP_KEY, current_bytes.as_deref(), &new)?;
        return Ok(());
    }
    let lease = take_lease(store, now_ms)?;
    // Another worker may have finished the steps between our read and our
    // lease: they are not run twice.
    if store.get(STAMP_KEY)? != current_bytes {
        release(store, &lease)?;
        return Ok(());
    }
    for step in pending {
        if let Err(e) = (step.run)(store) {
            release(store, &lease)?;
            return Err(StageError::Storage(format!(
                "migrating the key-value layout to version {} ({}) failed: {}; it is tried again next tick",
                step.version,
                step.name,
                crate::api::describe(&e)
            )));
        }
    }
    let stamped = store.swap(STAMP_KEY, current_bytes.as_deref(), &new)?;
    release(store, &lease)?;
    if stamped {
        Ok(())
    } else {
        Err(StageError::Storage(
            "the key-value layout's stamp changed while it was being migrated; the tick waits for the next".into(),
        ))
    }
}

/// A stamp, read leniently (a later release may add fields; only
/// `version` is needed, `readable_by` defaults to it), or an error saying
/// how to recover.
fn read_stamp(bytes: &[u8]) -> Result<Stamp, StageError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    let field = |name: &str| {
        value
            .get(name)
            .and_then(serde_json::Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    };
    let version = field("version").ok_or_else(|| {
        StageError::Storage(format!(
            "this tenant's key-value layout stamp ({STAMP_KEY}) cannot be read; delete that key and the next tick writes it again (docs/OPERATIONS.md, \"Upgrades\")"
        ))
    })?;
    Ok(Stamp {
        version,
        readable_by: field("readable_by").unwrap_or(version),
    })
}

/// Give the migration lease back, if it is still the one we took (an
/// expired lease may have been taken over).
fn release(store: &dyn Store, lease: &[u8]) -> Result<(), StageError> {
    if store.get(LEASE_KEY)?.as_deref() == Some(lease) {
        store.delete(LEASE_KEY)?;
    }
    Ok(())
}

/// The migration lease (its stored value), or an error saying another
/// worker holds it.
fn take_lease(store: &dyn Store, now_ms: i64) -> Result<Vec<u8>, StageError> {
    let held = store.get(LEASE_KEY)?;
    if let Some(bytes) = &held
        && kv::decode::<Lease>(LEASE_KEY, bytes).is_ok_and(|l| l.until_ms > now_ms)
    {
        return Err(StageError::Storage(
            "another worker is migrating this tenant's key-value layout; the tick waits for it"
                .into(),
        ));
    }
    let lease = kv::encode(
        LEASE_KEY,
        &Lease {
            until_ms: now_ms + LEASE_MS,
        },
    )?;
    if store.swap(LEASE_KEY, held.as_deref(), &lease)? {
        Ok(lease)
    } else {
        Err(StageError::Storage(
            "another worker took the key-value layout migration; the tick waits for it".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::tests::Memory;

    fn stamp(store: &Memory) -> Option<Stamp> {
        kv::get_json(store, STAMP_KEY).unwrap()
    }

    #[test]
    fn a_namespace_without_a_stamp_is_stamped_and_then_left_alone() {
        let store = Memory::default();
        store.set("ledger/3cx:1@1", b"{}").unwrap();
        check_with(&store, &[], 1, 1, 0).unwrap();
        assert_eq!(
            stamp(&store),
            Some(Stamp {
                version: 1,
                readable_by: 1
            })
        );
        check_with(&store, &[], 1, 1, 0).unwrap();
        assert_eq!(
            store.get("ledger/3cx:1@1").unwrap().as_deref(),
            Some(&b"{}"[..])
        );
    }

    fn copy_a_to_b(store: &dyn Store) -> Result<(), StageError> {
        if let Some(value) = store.get("a")? {
            store.set("b", &value)?;
        }
        Ok(())
    }

    const COPY: &[Step] = &[Step {
        version: 2,
        name: "a is copied to b",
        run: copy_a_to_b,
    }];

    #[test]
    fn an_older_layout_is_migrated_once_under_the_lease() {
        let store = Memory::default();
        store.set("a", b"1").unwrap();
        // Version 1, as the previous release left it (no stamp).
        check_with(&store, COPY, 2, 1, 0).unwrap();
        assert_eq!(store.get("b").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(stamp(&store).unwrap().version, 2);
        assert_eq!(store.get(LEASE_KEY).unwrap(), None);
        // Done: a later change to `a` is not copied again.
        store.set("a", b"2").unwrap();
        check_with(&store, COPY, 2, 1, 0).unwrap();
        assert_eq!(store.get("b").unwrap().as_deref(), Some(&b"1"[..]));
    }

    #[test]
    fn a_held_lease_makes_the_tick_wait_and_an_expired_one_is_taken_over() {
        let store = Memory::default();
        store.set("a", b"1").unwrap();
        kv::set_json(&store, LEASE_KEY, &Lease { until_ms: 1_000 }).unwrap();
        let error = check_with(&store, COPY, 2, 1, 500).unwrap_err();
        assert!(
            crate::api::describe(&error).contains("migrating"),
            "{error:?}"
        );
        assert_eq!(store.get("b").unwrap(), None);
        check_with(&store, COPY, 2, 1, 2_000).unwrap();
        assert_eq!(store.get("b").unwrap().as_deref(), Some(&b"1"[..]));
    }

    #[test]
    fn a_newer_layout_is_worked_on_only_when_it_says_this_release_can_read_it() {
        let store = Memory::default();
        kv::set_json(
            &store,
            STAMP_KEY,
            &Stamp {
                version: 3,
                readable_by: 1,
            },
        )
        .unwrap();
        check_with(&store, &[], 1, 1, 0).unwrap();
        kv::set_json(
            &store,
            STAMP_KEY,
            &Stamp {
                version: 3,
                readable_by: 3,
            },
        )
        .unwrap();
        let error = check_with(&store, &[], 1, 1, 0).unwrap_err();
        assert!(
            crate::api::describe(&error).contains("upgrade this host"),
            "{error:?}"
        );
        // And nothing was changed.
        assert_eq!(stamp(&store).unwrap().version, 3);
    }

    /// A store whose first read of the stamp finds none, as a worker that
    /// read it just before another stamped it would.
    struct StampUnseenOnce<'a> {
        inner: &'a Memory,
        hidden: std::cell::Cell<bool>,
    }

    impl Store for StampUnseenOnce<'_> {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StageError> {
            if key == STAMP_KEY && !self.hidden.replace(true) {
                return Ok(None);
            }
            self.inner.get(key)
        }
        fn set(&self, key: &str, value: &[u8]) -> Result<(), StageError> {
            self.inner.set(key, value)
        }
        fn delete(&self, key: &str) -> Result<(), StageError> {
            self.inner.delete(key)
        }
        fn swap(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> Result<bool, StageError> {
            self.inner.swap(key, expected, new)
        }
        fn list(&self, cursor: Option<&str>) -> Result<(Vec<String>, Option<String>), StageError> {
            self.inner.list(cursor)
        }
    }

    fn fails(_: &dyn Store) -> Result<(), StageError> {
        Err(StageError::Storage("disk full".into()))
    }

    #[test]
    fn a_failed_step_gives_the_lease_back_and_changes_no_stamp() {
        let store = Memory::default();
        let failing = [Step {
            version: 2,
            name: "fails",
            run: fails,
        }];
        let error = check_with(&store, &failing, 2, 1, 0).unwrap_err();
        assert!(crate::api::describe(&error).contains("disk full"));
        assert_eq!(store.get(LEASE_KEY).unwrap(), None);
        assert_eq!(stamp(&store), None);
        // The next tick tries again at once.
        check_with(&store, COPY, 2, 1, 0).unwrap();
        assert_eq!(stamp(&store).unwrap().version, 2);
    }

    #[test]
    fn steps_another_worker_finished_meanwhile_are_not_run_again() {
        let store = Memory::default();
        store.set("a", b"1").unwrap();
        // This worker read "no stamp"; another finished version 2 (and
        // changed `a`) before this one took the lease.
        kv::set_json(
            &store,
            STAMP_KEY,
            &Stamp {
                version: 2,
                readable_by: 1,
            },
        )
        .unwrap();
        store.set("a", b"2").unwrap();
        let racing = StampUnseenOnce {
            inner: &store,
            hidden: std::cell::Cell::new(false),
        };
        check_with(&racing, COPY, 2, 1, 0).unwrap();
        assert_eq!(store.get("b").unwrap(), None, "step 2 ran twice");
        assert_eq!(store.get(LEASE_KEY).unwrap(), None);
    }

    #[test]
    fn an_unreadable_stamp_says_how_to_recover_and_extra_fields_are_fine() {
        let store = Memory::default();
        store.set(STAMP_KEY, b"garbage").unwrap();
        let error = check_with(&store, &[], 1, 1, 0).unwrap_err();
        assert!(
            crate::api::describe(&error).contains("delete that key"),
            "{error:?}"
        );
        store
            .set(
                STAMP_KEY,
                br#"{"version":1,"readable_by":1,"note":"later"}"#,
            )
            .unwrap();
        check_with(&store, &[], 1, 1, 0).unwrap();
    }

    #[test]
    fn the_steps_lead_in_order_to_this_releases_layout() {
        // Bump LAYOUT_VERSION with the step that needs it.
        assert_eq!(STEPS.last().map_or(1, |s| s.version), LAYOUT_VERSION);
        for (i, step) in STEPS.iter().enumerate() {
            assert_eq!(step.version as usize, i + 2, "{}", step.name);
        }
    }

    #[test]
    fn a_namespace_of_the_previous_release_is_stamped_with_this_layout() {
        let store = Memory::default();
        store.set("attach/index", b"[\"a\"]").unwrap();
        check(&store).unwrap();
        assert_eq!(
            stamp(&store),
            Some(Stamp {
                version: LAYOUT_VERSION,
                readable_by: READABLE_BY
            })
        );
        // The old index is the queue's to move, not the stamp's.
        assert!(store.get("attach/index").unwrap().is_some());
    }
}
