//! The stand-alone components the host invokes outside the tick: the
//! matcher (`connectzero match`), the trigger stage (workflow
//! subscriptions) and the write-back action. Each gets a fresh store with
//! only its stage's grants.

use super::{Pipeline, Tenant};
use crate::bindings::matcher::exports::connectzero::matcher::matcher::MatchOutcome;
use crate::bindings::trigger::exports::connectzero::pipeline::trigger::{
    Subscription, SubscriptionChange,
};
use crate::bindings::types::{Call, StageError};
use crate::engine::Stage;
use crate::kv::KvCtx;
use crate::outbound::OutboundPolicy;
use crate::state::{Grants, StoreData};

impl Pipeline {
    fn store(&self, stage: Stage, tenant: &Tenant) -> wasmtime::Store<StoreData> {
        let s = &tenant.settings;
        let (outbound, grants) = match stage {
            Stage::Trigger => (
                OutboundPolicy::allow_urls([s.crm_base_url.as_str()]),
                self.io_grants(tenant),
            ),
            Stage::WriteBack => (
                OutboundPolicy::allow_urls([s.crm_base_url.as_str()]),
                Grants {
                    config: write_back_config(tenant),
                    ..self.io_grants(tenant)
                },
            ),
            Stage::Match => (
                OutboundPolicy::deny_all(),
                Grants {
                    directory: Some(tenant.directory.clone()),
                    ..Grants::default()
                },
            ),
            // The other stages run inside the composed tick (`run.rs`).
            Stage::Poll | Stage::Dedup | Stage::Post | Stage::Attach => {
                (OutboundPolicy::deny_all(), Grants::default())
            }
        };
        // The CRM's requests pass its location's rate limiter.
        let outbound = outbound.with_crm_limiter(&s.crm_base_url, tenant.crm_limiter.clone());
        let kv = KvCtx {
            namespace: tenant.id().to_string(),
            storage: self.storage.clone(),
        };
        self.runtime.new_store(stage, kv, outbound, grants)
    }

    fn io_grants(&self, tenant: &Tenant) -> Grants {
        Grants {
            credentials: Some(tenant.credentials.clone()),
            ..Grants::default()
        }
    }

    /// The matcher on its own (`connectzero match`), on the tenant's warm
    /// instance when it has one (kept by the runtime, never shared between
    /// tenants; see `engine/warm.rs`): a fresh instance rebuilds the phone
    /// number tables, 120–230 ms.
    pub(super) async fn match_calls(
        &self,
        tenant: &Tenant,
        calls: &[Call],
    ) -> anyhow::Result<Vec<Result<MatchOutcome, StageError>>> {
        let _timer = crate::telemetry::stage_timer(Stage::Match, "match-calls");
        let results = self
            .runtime
            .match_calls(
                tenant.id(),
                &tenant.directory,
                || self.store(Stage::Match, tenant),
                &tenant.settings,
                calls,
            )
            .await?;
        ensure_one_per_input("match", calls.len(), results)
    }

    /// Apply a workflow trigger registration from HighLevel.
    pub async fn subscribe_trigger(
        &self,
        tenant: &Tenant,
        change: SubscriptionChange,
        subscription: Subscription,
    ) -> anyhow::Result<Result<(), StageError>> {
        let mut store = self.store(Stage::Trigger, tenant);
        let pre = &self.runtime.stages.trigger;
        let trigger = crate::engine::within_allowance(&mut store, async |store| {
            pre.instantiate_async(store).await
        })
        .await?;
        let trigger = trigger.connectzero_pipeline_trigger();
        Ok(crate::engine::within_allowance(&mut store, async |store| {
            trigger
                .call_subscribe(store, &tenant.settings, change, &subscription)
                .await
        })
        .await?)
    }

    /// A fresh store for the write-back (Update Call Record) component:
    /// the tenant's credentials, key-value namespace and CRM allow-list, and
    /// its configuration through `wasi:config/store`.
    pub fn write_back_store(&self, tenant: &Tenant) -> wasmtime::Store<StoreData> {
        self.store(Stage::WriteBack, tenant)
    }

    /// The pre-instantiated write-back component, for serving one request
    /// in a store from [`Self::write_back_store`] (see `server.rs`).
    pub fn write_back_component(&self) -> &wasmtime_wasi_http::p2::bindings::ProxyPre<StoreData> {
        &self.runtime.stages.write_back
    }
}

/// A batch stage must answer once per input; a replacement component that
/// does not is broken, and guessing which answer belongs to which call
/// could post a call to the wrong contact.
fn ensure_one_per_input<T>(stage: &str, inputs: usize, results: Vec<T>) -> anyhow::Result<Vec<T>> {
    anyhow::ensure!(
        results.len() == inputs,
        "the {stage} component answered {} results for {inputs} inputs",
        results.len()
    );
    Ok(results)
}

/// What the write-back component reads through `wasi:config/store`
/// (keys documented in `components/write-back/README.md`).
fn write_back_config(tenant: &Tenant) -> Vec<(String, String)> {
    let actions = &tenant.config.actions;
    let mut config = vec![
        (
            "crm-base-url".to_string(),
            tenant.settings.crm_base_url.clone(),
        ),
        (
            "crm-location-id".to_string(),
            tenant.settings.crm_location_id.clone(),
        ),
        (
            "secret-header".to_string(),
            actions.header_name().to_string(),
        ),
    ];
    if let Some(secret) = &actions.secret {
        config.push(("secret".to_string(), secret.expose().to_string()));
    }
    if let Some(key) = &actions.signature_public_key {
        config.push(("signature-public-key".to_string(), key.clone()));
    }
    if let Some(key) = &actions.sentiment_field_key {
        config.push(("sentiment-field-key".to_string(), key.clone()));
    }
    config
}
