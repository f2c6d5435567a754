//! Three hosts on one database driving one HighLevel location keep its
//! limit together: the location's budget is kept in the database
//! (`connectzero::connect::DatabaseBudgets`), not in each process.
//!
//! Each "host" is a limiter of its own over its own connection to one
//! database file, as three processes would have, sending requests as fast
//! as its limiter lets it to the HighLevel simulator, whose token bucket
//! plays HighLevel's limit. The figure compared is the simulator's 429s.

use connectzero::config::CrmRateLimit;
use connectzero::connect::DatabaseBudgets;
use connectzero::ratelimit::{Admission, LocationLimiter, parse_retry_after};
use connectzero::storage::Storage;
use connectzero_simulators::highlevel::{HighLevelConfig, HighLevelSim, RateLimit};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The simulator's limit, small so the test is short: 20 per second.
const LIMIT: RateLimit = RateLimit {
    max: 20,
    interval: Duration::from_secs(1),
};

/// How long the hosts drive the location.
const DRIVE: Duration = Duration::from_secs(4);

/// What the hosts sent, and what HighLevel answered 429.
#[derive(Debug)]
struct Outcome {
    sent: usize,
    refused_by_highlevel: usize,
}

/// `hosts` hosts driving one location for [`DRIVE`], their budgets in
/// the database at `db` when `shared`, else each in its own memory.
async fn drive(hosts: usize, shared: bool, db: &Path) -> anyhow::Result<Outcome> {
    let crm = HighLevelSim::start(HighLevelConfig {
        rate_limit: Some(LIMIT),
        ..HighLevelConfig::default()
    })
    .await?;
    let token = crm.install().access_token;
    let location = crm.config().location_id.clone();
    let url = format!("{}/users/?locationId={location}", crm.base_url());
    let limit = CrmRateLimit {
        burst: LIMIT.max,
        interval_ms: LIMIT.interval.as_millis() as u64,
        daily: 0,
    };
    let http = connectzero::upstream::client(Duration::from_secs(10))?;
    let until = Instant::now() + DRIVE;
    let mut tasks = Vec::new();
    for _ in 0..hosts {
        let limiter = Arc::new(LocationLimiter::new(&location, limit));
        if shared {
            // Its own connection, as another process would have.
            let storage = Storage::open(db)?;
            let key = format!("{} app {location}", crm.base_url());
            limiter.share_through(Arc::new(DatabaseBudgets(storage)), key);
        }
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut sent = 0;
            while Instant::now() < until {
                match limiter.acquire().await {
                    Admission::Go(_) => {
                        let answer = http
                            .get(&url)
                            .bearer_auth(&token)
                            .header("Version", "2021-07-28")
                            .send()
                            .await?;
                        sent += 1;
                        if answer.status() == 429 {
                            let retry = answer
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok());
                            limiter.note_429(parse_retry_after(retry));
                        } else {
                            anyhow::ensure!(answer.status().is_success(), "{}", answer.status());
                        }
                    }
                    Admission::Refused(wait) => {
                        tokio::time::sleep(wait.min(until - Instant::now().min(until))).await;
                    }
                }
            }
            anyhow::Ok(sent)
        }));
    }
    let mut sent = 0;
    for task in tasks {
        sent += task.await??;
    }
    Ok(Outcome {
        sent,
        refused_by_highlevel: crm.rate_limited_count(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hosts_on_one_database_get_no_more_429s_than_one_host_alone() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("cz.db");
    drop(Storage::open(&db)?);
    let alone = drive(1, false, &db).await?;
    let shared = drive(3, true, &db).await?;
    let apart = drive(3, false, &db).await?;
    eprintln!(
        "one host: {alone:?}; three sharing the database: {shared:?}; three apart: {apart:?}"
    );
    assert!(
        shared.refused_by_highlevel <= alone.refused_by_highlevel,
        "three hosts sharing the budget got more 429s than one: {shared:?} vs {alone:?}"
    );
    // Together they used the budget (18 a second), not a third of it each.
    let seconds = DRIVE.as_secs() as usize;
    assert!(
        shared.sent >= 18 * (seconds - 1),
        "the hosts sent too little: {shared:?}"
    );
    // Each keeping its own window, they send three times the limit: the
    // test would fail without the shared budget.
    assert!(
        apart.refused_by_highlevel > alone.refused_by_highlevel,
        "three hosts apart should overrun the limit: {apart:?} vs {alone:?}"
    );
    Ok(())
}

/// What `run` and `backfill` do with a tenant on a database
/// (`connect::on_database`) shares its location's budget through it; the
/// test above builds its limiters by hand, so this checks the wiring.
#[tokio::test]
async fn a_tenant_run_on_a_database_shares_its_locations_budget() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (world, _, store) =
        crate::common::world_with_secrets(dir.path(), crate::common::defaults()).await?;
    let http = connectzero::upstream::client(Duration::from_secs(30))?;
    // HighLevel's own limit (the test worlds lift it).
    let mut config = world.config().clone();
    config.crm.rate_limit = CrmRateLimit::HIGHLEVEL;
    let tenant = connectzero::connect::tenant(config, http);
    let limiter = tenant
        .crm_limiter
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the tenant has no HighLevel limiter"))?;
    assert!(!limiter.is_shared(), "shared before it is on a database");
    connectzero::connect::on_database(&tenant, store)?;
    assert!(
        limiter.is_shared(),
        "on a database, the budget is not shared"
    );
    Ok(())
}
