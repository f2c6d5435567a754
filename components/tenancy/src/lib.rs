//! # tenancy-provider: many tenants in one Spin app
//!
//! The bundled host gives each tenant its own key-value bucket and settings
//! natively. A Spin app has one key-value store and one set of variables,
//! so on Spin this component is composed (wac) in front of every component
//! that imports `wasi:keyvalue`, `wasi:config` or `wasi:http`'s outgoing
//! handler, in place of Spin's own:
//!
//! - [`scope`]: whom the calls are for, chosen by the app entry point
//!   (`tenancy.select`) before it runs anything for a tenant.
//! - [`store`]: `wasi:keyvalue/store` and `atomics` over Spin's store, each
//!   tenant's keys under `t/<id>/`; the app's own tenant (the single-tenant
//!   set-up, Spin variables) keeps the unprefixed keys it always had and
//!   cannot reach a tenant's or the provider's keys.
//! - [`config`]: `wasi:config/store`: a tenant's own settings from its
//!   record, the app's variables for everything app-wide.
//! - [`outbound`]: `wasi:http/outgoing-handler`, each HighLevel
//!   location's request budget shared by every replica.
//! - [`registry`]: the tenants' records (secrets sealed with the app's
//!   `token_key`), their index and their tick leases.
//! - [`installed`]: the tenant a HighLevel install creates for a location
//!   no tenant names, and the cap on those waiting for settings.
//! - [`fence`]: a tick renews its tenant's lease as it writes, and a tick
//!   that lost the lease to another is refused every write.
//! - [`stamp`]: random bytes in front of every swapped value, so a swap
//!   Spin reports wrongly can be checked (two writers never write the same
//!   bytes).
//!
//! The rules (names, layout, leases) are `guest_support::tenancy`. A
//! Spin-side provider: it depends on `guest-support` and its world's
//! imports, never on the host.

pub mod config;
pub mod fence;
pub mod installed;
pub mod outbound;
pub mod registry;
pub mod scope;
pub mod stamp;
pub mod store;

wit_bindgen::generate!({
    path: "../../wit",
    world: "connectzero:pipeline/tenancy-provider",
    with: {
        "connectzero:pipeline/types@0.1.0": guest_support::bindings::connectzero::pipeline::types,
        "connectzero:matcher/types@0.1.0": guest_support::bindings::connectzero::matcher::types,
    },
    // Spin's wasi:keyvalue and wasi:config, imported and exported: this
    // crate's own bindings of both sides.
    generate_all,
});

/// The provider: one type implementing every export.
pub struct Provider;

// Exported only when building the component (see the stage crates).
#[cfg(target_arch = "wasm32")]
export!(Provider);
