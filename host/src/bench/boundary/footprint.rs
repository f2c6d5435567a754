//! What one idle warm matcher costs in resident memory.

use super::sides::{call, match_store};
use crate::engine::Runtime;
use crate::pipeline::Tenant;
use crate::testbed::World;
/// Tenants whose warm matchers the footprint is measured over.
const FOOTPRINT_TENANTS: usize = 8;

/// Resident memory one idle warm matcher holds: RSS before and after
/// warming the matchers of [`FOOTPRINT_TENANTS`] more tenants (one call
/// each), divided by their number. Rough (allocator noise), but it is what
/// bounds [`crate::engine::WARM_MATCHERS`].
pub(super) async fn warm_footprint(
    runtime: &Runtime,
    world: &World,
    figures: &crate::bench::figures::Figures,
) -> anyhow::Result<()> {
    let http = crate::upstream::client(std::time::Duration::from_secs(30))?;
    let tenants: Vec<Tenant> = (0..FOOTPRINT_TENANTS)
        .map(|i| {
            let mut config = world.config().clone();
            config.id = format!("footprint-{i}");
            let mut tenant = crate::connect::tenant(config, http.clone());
            tenant.credentials = world.tenant.credentials.clone();
            tenant
        })
        .collect();
    let calls = [call(0, 0)];
    let before = crate::bench::status_kb("VmRSS:");
    for tenant in &tenants {
        runtime
            .match_calls(
                tenant.id(),
                &tenant.directory,
                || match_store(runtime, world, tenant),
                &tenant.settings,
                &calls,
            )
            .await?;
    }
    if let (Some(before), Some(after)) = (before, crate::bench::status_kb("VmRSS:")) {
        figures.record(
            "memory.warm-matcher",
            "memory per warm matcher",
            "MB",
            after.saturating_sub(before) as f64 / 1024.0 / FOOTPRINT_TENANTS as f64,
            None,
        );
        println!(
            "  warm matcher footprint: RSS +{} for {FOOTPRINT_TENANTS} more idle warm instances ({:.1} MB each; at most {} kept: {:.0} MB)",
            crate::bench::mb(after.saturating_sub(before)),
            after.saturating_sub(before) as f64 / 1024.0 / FOOTPRINT_TENANTS as f64,
            runtime.warm_limits().idle,
            after.saturating_sub(before) as f64 / 1024.0 / FOOTPRINT_TENANTS as f64
                * runtime.warm_limits().idle as f64,
        );
    }
    Ok(())
}
