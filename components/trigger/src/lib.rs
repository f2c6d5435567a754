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
    fn fire(_settings: TenantSettings, events: Vec<CallEvent>) -> Vec<Result<Delivery, StageError>> {
        events.iter().map(|_| Ok(Delivery::NotEnabled)).collect()
    }
}

export!(Trigger);
