//! Invoking the composed tick: the tenant's store (warm or fresh) with its
//! grants, the tenant's options, and what the host makes of the report
//! (metrics, log lines, the backoff).

use super::{Pipeline, Tenant, TickReport, describe};
use crate::bindings::tick::TickHost;
use crate::bindings::tick::exports::connectzero::pipeline::tick::{
    self as wit, ReviewPlace, TickOptions,
};
use crate::bindings::types::CopyRequest;
use crate::kv::KvCtx;
use crate::outbound::OutboundPolicy;
use crate::state::{Grants, StoreData};
use std::time::Duration;
use wasmtime::Store;

impl Pipeline {
    /// A fresh store for the composed tick: the tenant's key-value
    /// namespace, credentials and directory, and outbound calls to its 3CX
    /// and CRM only (the CRM's through its location's rate limiter).
    fn tick_store(&self, tenant: &Tenant) -> Store<StoreData> {
        let s = &tenant.settings;
        let outbound =
            OutboundPolicy::allow_urls([s.pbx_base_url.as_str(), s.crm_base_url.as_str()])
                .with_crm_limiter(&s.crm_base_url, tenant.crm_limiter.clone());
        let kv = KvCtx {
            namespace: tenant.id().to_string(),
            storage: self.storage.clone(),
        };
        let grants = Grants {
            credentials: Some(tenant.credentials.clone()),
            directory: Some(tenant.directory.clone()),
            ..Grants::default()
        };
        self.runtime.new_tick_store(kv, outbound, grants)
    }

    /// The tick's options for `tenant`.
    pub(super) fn options(&self, tenant: &Tenant) -> TickOptions {
        TickOptions {
            settings: tenant.settings.clone(),
            worker: self.worker.clone(),
            claim_lease_ms: u64::from(tenant.config.settings.claim_lease_secs) * 1000,
            max_calls: tenant.config.settings.max_calls_per_tick,
            policy: tenant.policy.clone(),
            routing: tenant.routing.clone(),
            review_place: ReviewPlace::StatusPage,
            state_retention_days: tenant.config.settings.state_retention_days,
        }
    }

    /// The status page's requests to log posted calls on one more contact
    /// with the number, still to be carried out. A storage error leaves
    /// them for the next tick (logged), never stops the tick.
    fn copy_requests(&self, tenant: &Tenant) -> Vec<CopyRequest> {
        match self
            .storage
            .pending_copies(tenant.id(), self.runtime.clock.now_ms())
        {
            Ok(pending) => pending
                .into_iter()
                .map(|(call_key, contact_id)| CopyRequest {
                    call_key,
                    contact_id,
                })
                .collect(),
            Err(error) => {
                tracing::warn!(tenant = tenant.id(), %error, "could not read the calls to log on another contact; tried next tick");
                Vec::new()
            }
        }
    }

    /// Run `call` on `tenant`'s composed tick — its warm instance when it
    /// has one, else a new one in a fresh store — and keep the instance for
    /// the tenant's next call when `keep` says so of the answer. The call
    /// runs within its time allowance; an instance whose call trapped or
    /// was stopped is never reused.
    pub(super) async fn on_tick<R>(
        &self,
        tenant: &Tenant,
        call: impl AsyncFnOnce(&mut Store<StoreData>, &TickHost) -> wasmtime::Result<R>,
        keep: impl FnOnce(&R) -> bool,
    ) -> anyhow::Result<R> {
        let mut warm = self
            .runtime
            .tick_instance(tenant.id(), &tenant.directory, || self.tick_store(tenant))
            .await?;
        let instance = &warm.instance;
        let answer = crate::engine::within_allowance(&mut warm.store, async |store| {
            call(store, instance).await
        })
        .await;
        match answer {
            Ok(answer) => {
                let keep = keep(&answer);
                self.runtime.tick_done(warm, keep);
                Ok(answer)
            }
            Err(trap) => {
                self.runtime.tick_failed(warm);
                Err(trap.into())
            }
        }
    }

    /// One whole tick (`tick.run`).
    pub(super) async fn run_tick(&self, tenant: &Tenant) -> anyhow::Result<TickReport> {
        let options = self.options(tenant);
        let report = self
            .on_tick(
                tenant,
                async |store, tick| {
                    tick.connectzero_pipeline_tick()
                        .call_run(store, &options)
                        .await
                },
                matched_calls,
            )
            .await?;
        let mut report = self.apply(tenant, report);
        // Taken right before they run, so their leases cover the copies'
        // whole run (`crate::storage::Storage::pending_copies`).
        let copies = self.copy_requests(tenant);
        if !copies.is_empty() {
            let done = self
                .on_tick(
                    tenant,
                    async |store, tick| {
                        tick.connectzero_pipeline_tick()
                            .call_post_copies(store, &tenant.settings, &copies)
                            .await
                    },
                    |_| true,
                )
                .await?;
            let done = self.apply(tenant, done);
            report.backoff = report.backoff.max(done.backoff);
        }
        Ok(report)
    }

    /// Count, time and log what the tick reported; the host's report of it.
    /// (Each call's fate, recording and deliveries went into the call log
    /// through the `call-log` import as they happened.)
    pub(super) fn apply(&self, tenant: &Tenant, report: wit::TickReport) -> TickReport {
        let id = tenant.id();
        for _ in 0..report.attach_pending {
            crate::telemetry::sink().attach_retry(id);
        }
        for timing in &report.timings {
            crate::telemetry::sink().stage_invoked(
                &timing.stage,
                &timing.function,
                Duration::from_nanos(timing.nanos).as_secs_f64(),
            );
        }
        for warning in &report.warnings {
            tracing::warn!(tenant = id, warning = %crate::redact::text(warning), "tick");
        }
        TickReport::from(report)
    }
}

/// Whether the tick matched calls (its matcher is warm now, worth keeping).
pub(super) fn matched_calls(report: &wit::TickReport) -> bool {
    report.timings.iter().any(|t| t.stage == "match")
}

impl From<wit::TickReport> for TickReport {
    fn from(r: wit::TickReport) -> Self {
        let n = |v: u32| v as usize;
        TickReport {
            polled: n(r.polled),
            posted: n(r.posted),
            skipped: n(r.skipped),
            parked: n(r.parked),
            retrying: n(r.retrying),
            duplicates: n(r.duplicates),
            in_flight: n(r.in_flight),
            rejected_rows: n(r.rejected_rows),
            error: r.error.as_ref().map(describe),
            // A replacement component may ask for any wait: bounded.
            backoff: r.retry_after_secs.map(|s| {
                Duration::from_secs(u64::from(guest_support::waits::bounded_wait_secs(s)))
            }),
            attached: n(r.attached),
            attach_gave_up: n(r.attach_gave_up),
            insights_written: n(r.insights_written),
            insights_gave_up: n(r.insights_gave_up),
            triggers_delivered: n(r.triggers_delivered),
            calls_started: n(r.calls_started),
            deferred: n(r.deferred),
            pruned: n(r.pruned),
            quiet: r.quiet.map(|w| crate::report::QuietWindow {
                start_ms: w.start,
                segment_ids: w.segment_ids,
            }),
            probed: false,
        }
    }
}
