//! One function per stage invocation: a fresh store with the stage's
//! grants, instantiate the pre-instantiated component, call its export.

use super::{Pipeline, Tenant, describe};
use crate::bindings::attach::exports::connectzero::pipeline::attach::{AttachJob, AttachReport};
use crate::bindings::dedup::exports::connectzero::pipeline::dedup::{Claim, Completion};
use crate::bindings::matcher::exports::connectzero::pipeline::matcher::MatchOutcome;
use crate::bindings::poll::exports::connectzero::pipeline::poll::{ActiveCall, PollBatch};
use crate::bindings::post::exports::connectzero::pipeline::post::{PostJob, PostOutcome};
use crate::bindings::trigger::exports::connectzero::pipeline::trigger::{
    CallEvent, DeliveryReport, Subscription, SubscriptionChange,
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
            Stage::Poll => (
                OutboundPolicy::allow_urls([s.pbx_base_url.as_str()]),
                self.io_grants(tenant),
            ),
            Stage::Post | Stage::Trigger => (
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
            Stage::Attach => (
                OutboundPolicy::allow_urls([s.pbx_base_url.as_str(), s.crm_base_url.as_str()]),
                self.io_grants(tenant),
            ),
            Stage::Match => (
                OutboundPolicy::deny_all(),
                Grants {
                    directory: Some(tenant.directory.clone()),
                    ..Grants::default()
                },
            ),
            Stage::Dedup => (OutboundPolicy::deny_all(), Grants::default()),
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

    pub(super) async fn fetch(
        &self,
        tenant: &Tenant,
    ) -> anyhow::Result<Result<PollBatch, StageError>> {
        let _timer = crate::metrics::stage_timer(Stage::Poll, "fetch");
        let mut store = self.store(Stage::Poll, tenant);
        let poll = self
            .runtime
            .stages
            .poll
            .instantiate_async(&mut store)
            .await?;
        Ok(poll
            .connectzero_pipeline_poll()
            .call_fetch(&mut store, &tenant.settings)
            .await?)
    }

    /// `poll.fetch-window`: the calls that started in [`start`, `end`),
    /// without touching the cursor (backfill and replay, `backfill.rs`).
    pub(super) async fn fetch_window(
        &self,
        tenant: &Tenant,
        start: i64,
        end: i64,
    ) -> anyhow::Result<Result<PollBatch, StageError>> {
        let _timer = crate::metrics::stage_timer(Stage::Poll, "fetch-window");
        let mut store = self.store(Stage::Poll, tenant);
        let poll = self
            .runtime
            .stages
            .poll
            .instantiate_async(&mut store)
            .await?;
        Ok(poll
            .connectzero_pipeline_poll()
            .call_fetch_window(&mut store, &tenant.settings, start, end)
            .await?)
    }

    pub(super) async fn commit(&self, tenant: &Tenant, cursor: i64) -> anyhow::Result<()> {
        let _timer = crate::metrics::stage_timer(Stage::Poll, "commit");
        let mut store = self.store(Stage::Poll, tenant);
        let poll = self
            .runtime
            .stages
            .poll
            .instantiate_async(&mut store)
            .await?;
        if let Err(error) = poll
            .connectzero_pipeline_poll()
            .call_commit(&mut store, &tenant.settings, cursor)
            .await?
        {
            tracing::warn!(tenant = tenant.id(), error = %describe(&error), "could not move the cursor; the calls will be re-read");
        }
        Ok(())
    }

    pub(super) async fn claim(
        &self,
        tenant: &Tenant,
        calls: &[Call],
    ) -> anyhow::Result<Result<Vec<Claim>, StageError>> {
        let _timer = crate::metrics::stage_timer(Stage::Dedup, "claim-calls");
        let mut store = self.store(Stage::Dedup, tenant);
        let dedup = self
            .runtime
            .stages
            .dedup
            .instantiate_async(&mut store)
            .await?;
        let lease = u64::from(tenant.config.settings.claim_lease_secs) * 1000;
        Ok(dedup
            .connectzero_pipeline_dedup()
            .call_claim_calls(&mut store, calls, &self.worker, lease)
            .await?)
    }

    /// Record final outcomes and release the calls to retry. A storage
    /// failure here is not fatal to the calls: unfinished claims expire and
    /// the calls are processed again.
    pub(super) async fn finish(
        &self,
        tenant: &Tenant,
        completions: &[Completion],
        released: &[Call],
    ) -> anyhow::Result<()> {
        let _timer = crate::metrics::stage_timer(Stage::Dedup, "complete");
        let mut store = self.store(Stage::Dedup, tenant);
        let dedup = self
            .runtime
            .stages
            .dedup
            .instantiate_async(&mut store)
            .await?;
        let ledger = dedup.connectzero_pipeline_dedup();
        if !completions.is_empty()
            && let Err(error) = ledger.call_complete(&mut store, completions).await?
        {
            tracing::error!(tenant = tenant.id(), error = %describe(&error), "could not record outcomes in the ledger");
        }
        if !released.is_empty()
            && let Err(error) = ledger
                .call_release(&mut store, released, &self.worker)
                .await?
        {
            tracing::warn!(tenant = tenant.id(), error = %describe(&error), "could not release calls; they retry when the lease expires");
        }
        Ok(())
    }

    /// Unlike the other stages, the matcher runs on the tenant's warm
    /// instance when it has one (kept by the runtime, never shared between
    /// tenants; see `engine/warm.rs`): a fresh instance rebuilds the phone
    /// number tables, 120–230 ms, on every tick.
    pub(super) async fn match_calls(
        &self,
        tenant: &Tenant,
        calls: &[Call],
    ) -> anyhow::Result<Vec<Result<MatchOutcome, StageError>>> {
        let _timer = crate::metrics::stage_timer(Stage::Match, "match-calls");
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

    pub(super) async fn post(
        &self,
        tenant: &Tenant,
        jobs: Vec<PostJob>,
    ) -> anyhow::Result<Vec<Result<PostOutcome, StageError>>> {
        let _timer = crate::metrics::stage_timer(Stage::Post, "post-calls");
        let mut store = self.store(Stage::Post, tenant);
        let post = self
            .runtime
            .stages
            .post
            .instantiate_async(&mut store)
            .await?;
        let results = post
            .connectzero_pipeline_post()
            .call_post_calls(&mut store, &tenant.settings, &jobs)
            .await?;
        ensure_one_per_input("post", jobs.len(), results)
    }

    pub(super) async fn active_calls(
        &self,
        tenant: &Tenant,
    ) -> anyhow::Result<Result<Vec<ActiveCall>, StageError>> {
        let _timer = crate::metrics::stage_timer(Stage::Poll, "active-calls");
        let mut store = self.store(Stage::Poll, tenant);
        let poll = self
            .runtime
            .stages
            .poll
            .instantiate_async(&mut store)
            .await?;
        Ok(poll
            .connectzero_pipeline_poll()
            .call_active_calls(&mut store, &tenant.settings)
            .await?)
    }

    pub(super) async fn attach_enqueue(
        &self,
        tenant: &Tenant,
        jobs: &[AttachJob],
    ) -> anyhow::Result<Result<(), StageError>> {
        let _timer = crate::metrics::stage_timer(Stage::Attach, "enqueue");
        let mut store = self.store(Stage::Attach, tenant);
        let attach = self
            .runtime
            .stages
            .attach
            .instantiate_async(&mut store)
            .await?;
        Ok(attach
            .connectzero_pipeline_attach()
            .call_enqueue(&mut store, &tenant.settings, jobs)
            .await?)
    }

    pub(super) async fn attach_process_due(
        &self,
        tenant: &Tenant,
        max: u32,
    ) -> anyhow::Result<Result<Vec<AttachReport>, StageError>> {
        let _timer = crate::metrics::stage_timer(Stage::Attach, "process-due");
        let mut store = self.store(Stage::Attach, tenant);
        let attach = self
            .runtime
            .stages
            .attach
            .instantiate_async(&mut store)
            .await?;
        Ok(attach
            .connectzero_pipeline_attach()
            .call_process_due(&mut store, &tenant.settings, max)
            .await?)
    }

    pub(super) async fn trigger_enqueue(
        &self,
        tenant: &Tenant,
        events: &[CallEvent],
    ) -> anyhow::Result<Result<(), StageError>> {
        let _timer = crate::metrics::stage_timer(Stage::Trigger, "enqueue");
        let mut store = self.store(Stage::Trigger, tenant);
        let trigger = self
            .runtime
            .stages
            .trigger
            .instantiate_async(&mut store)
            .await?;
        Ok(trigger
            .connectzero_pipeline_trigger()
            .call_enqueue(&mut store, &tenant.settings, events)
            .await?)
    }

    pub(super) async fn trigger_deliver_due(
        &self,
        tenant: &Tenant,
        max: u32,
    ) -> anyhow::Result<Result<Vec<DeliveryReport>, StageError>> {
        let _timer = crate::metrics::stage_timer(Stage::Trigger, "deliver-due");
        let mut store = self.store(Stage::Trigger, tenant);
        let trigger = self
            .runtime
            .stages
            .trigger
            .instantiate_async(&mut store)
            .await?;
        Ok(trigger
            .connectzero_pipeline_trigger()
            .call_deliver_due(&mut store, &tenant.settings, max)
            .await?)
    }

    /// Apply a workflow trigger registration from HighLevel.
    pub async fn subscribe_trigger(
        &self,
        tenant: &Tenant,
        change: SubscriptionChange,
        subscription: Subscription,
    ) -> anyhow::Result<Result<(), StageError>> {
        let mut store = self.store(Stage::Trigger, tenant);
        let trigger = self
            .runtime
            .stages
            .trigger
            .instantiate_async(&mut store)
            .await?;
        Ok(trigger
            .connectzero_pipeline_trigger()
            .call_subscribe(&mut store, &tenant.settings, change, &subscription)
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
