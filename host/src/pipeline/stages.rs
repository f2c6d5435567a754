//! One function per stage invocation: a fresh store with the stage's
//! grants, instantiate the pre-instantiated component, call its export.

use super::{CLAIM_LEASE, Pipeline, Tenant, describe};
use crate::bindings::attach::exports::connectzero::pipeline::attach::{AttachJob, AttachOutcome};
use crate::bindings::dedup::exports::connectzero::pipeline::dedup::{Claim, Completion};
use crate::bindings::matcher::exports::connectzero::pipeline::matcher::MatchOutcome;
use crate::bindings::poll::exports::connectzero::pipeline::poll::PollBatch;
use crate::bindings::post::exports::connectzero::pipeline::post::{PostJob, Posted};
use crate::bindings::trigger::exports::connectzero::pipeline::trigger::{CallEvent, Delivery};
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
            Stage::Post | Stage::Trigger | Stage::WriteBack => (
                OutboundPolicy::allow_urls([s.crm_base_url.as_str()]),
                self.io_grants(tenant),
            ),
            Stage::Attach => (
                OutboundPolicy::allow_urls([s.pbx_base_url.as_str(), s.crm_base_url.as_str()]),
                self.io_grants(tenant),
            ),
            Stage::Match => (
                OutboundPolicy::deny_all(),
                Grants {
                    credentials: None,
                    directory: Some(tenant.directory.clone()),
                },
            ),
            Stage::Dedup => (OutboundPolicy::deny_all(), Grants::default()),
        };
        let kv = KvCtx {
            namespace: tenant.id().to_string(),
            storage: self.storage.clone(),
        };
        self.runtime.new_store(stage, kv, outbound, grants)
    }

    fn io_grants(&self, tenant: &Tenant) -> Grants {
        Grants {
            credentials: Some(tenant.credentials.clone()),
            directory: None,
        }
    }

    pub(super) async fn fetch(
        &self,
        tenant: &Tenant,
    ) -> anyhow::Result<Result<PollBatch, StageError>> {
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

    pub(super) async fn commit(&self, tenant: &Tenant, cursor: i64) -> anyhow::Result<()> {
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
        let mut store = self.store(Stage::Dedup, tenant);
        let dedup = self
            .runtime
            .stages
            .dedup
            .instantiate_async(&mut store)
            .await?;
        let lease = CLAIM_LEASE.as_millis() as u64;
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

    pub(super) async fn match_calls(
        &self,
        tenant: &Tenant,
        calls: &[Call],
    ) -> anyhow::Result<Vec<Result<MatchOutcome, StageError>>> {
        let mut store = self.store(Stage::Match, tenant);
        let matcher = self
            .runtime
            .stages
            .matcher
            .instantiate_async(&mut store)
            .await?;
        let results = matcher
            .connectzero_pipeline_matcher()
            .call_match_calls(&mut store, &tenant.settings, calls)
            .await?;
        ensure_one_per_input("match", calls.len(), results)
    }

    pub(super) async fn post(
        &self,
        tenant: &Tenant,
        jobs: Vec<PostJob>,
    ) -> anyhow::Result<Vec<Result<Posted, StageError>>> {
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

    pub(super) async fn attach(
        &self,
        tenant: &Tenant,
        jobs: Vec<AttachJob>,
    ) -> anyhow::Result<Vec<Result<AttachOutcome, StageError>>> {
        let mut store = self.store(Stage::Attach, tenant);
        let attach = self
            .runtime
            .stages
            .attach
            .instantiate_async(&mut store)
            .await?;
        let results = attach
            .connectzero_pipeline_attach()
            .call_attach_recordings(&mut store, &tenant.settings, &jobs)
            .await?;
        ensure_one_per_input("attach", jobs.len(), results)
    }

    pub(super) async fn fire(
        &self,
        tenant: &Tenant,
        events: Vec<CallEvent>,
    ) -> anyhow::Result<Vec<Result<Delivery, StageError>>> {
        let mut store = self.store(Stage::Trigger, tenant);
        let trigger = self
            .runtime
            .stages
            .trigger
            .instantiate_async(&mut store)
            .await?;
        let results = trigger
            .connectzero_pipeline_trigger()
            .call_fire(&mut store, &tenant.settings, &events)
            .await?;
        ensure_one_per_input("trigger", events.len(), results)
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
