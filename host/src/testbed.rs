//! A complete ConnectZero set-up against the loopback simulators: both
//! simulators, one tenant pointing at them, embedded storage and the
//! pipeline. The demo and the end-to-end tests run on it; production never
//! does (it only starts servers on 127.0.0.1).

use crate::config::{CrmConfig, PbxConfig, Secret, TenantConfig, TenantOptions};
use crate::engine::Runtime;
use crate::pipeline::{Pipeline, Tenant, TickReport};
use crate::storage::Storage;
use connectzero_simulators::highlevel::{HighLevelConfig, HighLevelSim};
use connectzero_simulators::threecx::{ThreeCxConfig, ThreeCxSim};
use std::sync::Arc;

/// Tenant id used by the testbed.
pub const TENANT: &str = "demo";

/// The testbed's action/subscription secret (a test value, not a real one).
pub const ACTION_SECRET: &str = "testbed-action-secret";

/// Both simulators, a tenant wired to them and a pipeline.
pub struct World {
    /// The 3CX simulator.
    pub pbx: ThreeCxSim,
    /// The HighLevel simulator.
    pub crm: HighLevelSim,
    /// The database.
    pub storage: Storage,
    /// The pipeline.
    pub pipeline: Arc<Pipeline>,
    /// The tenant as the pipeline runs it.
    pub tenant: Arc<Tenant>,
    config: TenantConfig,
    http: reqwest::Client,
}

impl World {
    /// Start both simulators and a tenant with `options`, storing state in
    /// `storage`. The CRM simulator enforces HighLevel's rate limit when
    /// `rate_limited` is set.
    pub async fn start(
        runtime: Arc<Runtime>,
        storage: Storage,
        options: TenantOptions,
        rate_limited: bool,
    ) -> anyhow::Result<Self> {
        let mut crm_config = HighLevelConfig::default();
        if !rate_limited {
            crm_config.rate_limit = None;
        }
        Self::start_with_crm(runtime, storage, options, crm_config).await
    }

    /// [`World::start`] with the CRM simulator configured by `crm_config`;
    /// the tenant's rate limiter keeps to the simulator's limit (none when
    /// it has none).
    pub async fn start_with_crm(
        runtime: Arc<Runtime>,
        storage: Storage,
        options: TenantOptions,
        crm_config: HighLevelConfig,
    ) -> anyhow::Result<Self> {
        // Tests read the metrics the world's runtime reports.
        crate::metrics::install();
        let pbx = ThreeCxSim::start(ThreeCxConfig::default()).await?;
        let rate_limit = match crm_config.rate_limit {
            Some(limit) => crate::config::CrmRateLimit {
                burst: limit.max,
                interval_ms: limit.interval.as_millis() as u64,
                daily: crate::config::CrmRateLimit::HIGHLEVEL.daily,
            },
            None => crate::config::CrmRateLimit::OFF,
        };
        let crm = HighLevelSim::start(crm_config).await?;
        let tokens = crm.install();
        let pbx_defaults = ThreeCxConfig::default();
        let crm_settings = crm.config().clone();
        let config = TenantConfig {
            id: TENANT.into(),
            pbx: PbxConfig {
                base_url: pbx.base_url(),
                client_id: pbx_defaults.client_id,
                client_secret: Secret::new(pbx_defaults.client_secret),
            },
            crm: CrmConfig {
                base_url: crm.base_url(),
                location_id: crm_settings.location_id,
                conversation_provider_id: crm_settings.conversation_provider_id,
                client_id: crm_settings.client_id,
                client_secret: Secret::new(crm_settings.client_secret),
                access_token: Some(Secret::new(tokens.access_token)),
                refresh_token: Secret::new(tokens.refresh_token),
                // The limiter keeps to the simulator's limit, or to none
                // when the simulator has none (benchmarks, most tests).
                rate_limit,
            },
            settings: options,
            actions: crate::config::ActionsConfig {
                secret: Some(Secret::new(ACTION_SECRET)),
                ..Default::default()
            },
        };
        config.validate()?;
        // The production client: the tests see what `run` does.
        let http = crate::upstream::client(std::time::Duration::from_secs(30))?;
        let tenant = Arc::new(crate::connect::tenant(config.clone(), http.clone()));
        let pipeline = Arc::new(Pipeline::new(runtime, storage.clone()));
        Ok(Self {
            pbx,
            crm,
            storage,
            pipeline,
            tenant,
            config,
            http,
        })
    }

    /// The tenant's configuration.
    pub fn config(&self) -> &TenantConfig {
        &self.config
    }

    /// Replace the tenant's configuration (settings or credentials). Tokens
    /// already fetched are kept only if the credentials are unchanged.
    pub fn reconfigure(&mut self, change: impl FnOnce(&mut TenantConfig)) -> anyhow::Result<()> {
        let mut config = self.config.clone();
        change(&mut config);
        config.validate()?;
        self.tenant = Arc::new(crate::connect::tenant(config.clone(), self.http.clone()));
        self.config = config;
        Ok(())
    }

    /// Run one tick.
    pub async fn tick(&self) -> anyhow::Result<TickReport> {
        self.pipeline.tick(&self.tenant).await
    }
}
