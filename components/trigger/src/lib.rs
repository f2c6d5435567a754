//! # Stage 8a: trigger — CRM workflow triggers (placeholder)
//!
//! Builds, is wired into the host and answers every event with
//! `not-enabled`. Subscriptions and delivery of `call.started`, `call.ended`
//! and `missed-call` come with issue 4.

use guest_support::StageError;
use guest_support::bindings::connectzero::pipeline::types::TenantSettings;

guest_support::stage_bindings!(http_kv "trigger-stage");

use exports::connectzero::pipeline::trigger::{CallEvent, Delivery, Guest};

struct Trigger;

impl Guest for Trigger {
    fn fire(
        _settings: TenantSettings,
        events: Vec<CallEvent>,
    ) -> Vec<Result<Delivery, StageError>> {
        events.iter().map(|_| Ok(Delivery::NotEnabled)).collect()
    }
}

// Exported only when building the component: a native build (unit tests)
// would otherwise put WIT export names into the host linker's symbol list.
#[cfg(target_arch = "wasm32")]
export!(Trigger);
