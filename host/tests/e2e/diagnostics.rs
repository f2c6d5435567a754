//! Periodic self-diagnostics (`connectzero::diagnostics`) through the real
//! host against the simulators: a check that starts failing opens one
//! incident and raises one CRM task; it stays one while failing, across
//! runs and restarts; fixing it closes the incident and completes the task.
//! Runs are made with `run_once` (no sleeps: the periodic loop is a thin
//! wrapper around it).

use crate::common;
use anyhow::Context;

use connectzero::config::{TenantConfig, TenantOptions};
use connectzero::diagnostics::{Diagnostics, RunReport};
use connectzero::doctor;
use connectzero::pipeline::Tenant;
use connectzero::storage::Storage;
use connectzero::testbed::World;
use connectzero_simulators::highlevel::{SimContact, Task};
use std::path::Path;

const TOKEN: &str = "test-admin-token-0123456789";

/// A world on a database file (so a "restart" can open it again), with
/// the CRM simulator's rate limit (and its headers) on.
async fn world_on(db: &Path, options: TenantOptions) -> anyhow::Result<World> {
    World::start(common::runtime(), Storage::open(db)?, options, true).await
}

async fn run(diagnostics: &Diagnostics, tenant: &Tenant) -> anyhow::Result<RunReport> {
    diagnostics.run_once(tenant).await
}

/// The checklist of a run, for assertion messages.
fn shown(run: &RunReport) -> String {
    doctor::render(std::slice::from_ref(&run.report))
}

async fn get(url: &str) -> anyhow::Result<String> {
    common::admin_page(&reqwest::Client::new(), url, TOKEN).await
}

/// The Health section of the tenant page (up to the next section).
async fn health(base: &str) -> anyhow::Result<String> {
    let page = get(&format!("{base}/admin/t/demo")).await?;
    let start = page.find("<h2>Health</h2>").context("a Health section")?;
    let rest = &page[start..];
    let end = rest.find("<h2>Status</h2>").unwrap_or(rest.len());
    Ok(rest[..end].to_string())
}

async fn open_incidents_metric(base: &str) -> anyhow::Result<String> {
    let text = get(&format!("{base}/metrics")).await?;
    Ok(text
        .lines()
        .find(|l| l.starts_with("connectzero_diagnostics_open_incidents{tenant=\"demo\"}"))
        .unwrap_or_else(|| panic!("no open incidents metric in:\n{text}"))
        .to_string())
}

fn open_tasks(tasks: &[Task]) -> usize {
    tasks.iter().filter(|t| !t.completed).count()
}

#[tokio::test]
async fn a_lost_recordings_role_raises_one_task_until_fixed_and_survives_restarts()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("connectzero.db");
    let world = world_on(&db, TenantOptions::default()).await?;
    let base = common::serve_admin(&world, TOKEN).await?;
    let http = reqwest::Client::new();
    let diagnostics = Diagnostics::new(world.storage.clone(), http.clone());

    // Healthy: every check passes, rate budget included; nothing raised.
    let healthy = run(&diagnostics, &world.tenant).await?;
    assert!(healthy.report.passed(), "{}", shown(&healthy));
    let budget = healthy
        .report
        .checks
        .iter()
        .find(|c| c.name == doctor::RATE_BUDGET)
        .context("a rate budget line")?;
    assert!(budget.detail.contains("daily requests left"), "{budget:?}");
    assert!(world.crm.tasks().is_empty());
    assert!(health(&base).await?.contains("health-ok"));

    // The API client's role loses the recordings.
    world.pbx.forbid_recordings(true);
    let broken = run(&diagnostics, &world.tenant).await?;
    assert_eq!(broken.opened, [doctor::RECORDINGS], "{}", shown(&broken));
    assert_eq!(broken.alerts_raised, 1, "{:?}", broken.alert_errors);
    let tasks = world.crm.tasks();
    assert_eq!(tasks.len(), 1);
    let task = &tasks[0];
    assert!(!task.completed);
    assert!(task.title.contains("3CX recordings access"), "{task:?}");
    let body = task.body.as_deref().unwrap_or_default();
    assert!(
        body.contains("Fix:") && body.contains("System Owner"),
        "{body}"
    );
    // On ConnectZero's own alerts contact, made once.
    let contact = world
        .crm
        .contacts()
        .into_iter()
        .find(|c| c.id == task.contact_id)
        .context("the task's contact exists")?;
    assert_eq!(contact.name, "ConnectZero Alerts");
    assert!(contact.tags.iter().any(|t| t == "connectzero-alerts"));
    // On the status page with the doctor's fix, and in the metrics.
    let section = health(&base).await?;
    assert!(section.contains("3CX recordings access"), "{section}");
    assert!(section.contains("System Owner"), "{section}");
    assert!(
        section.contains(&format!("CRM task {} created", task.id)),
        "{section}"
    );
    assert!(open_incidents_metric(&base).await?.ends_with(" 1"));

    // Still broken for several runs: still one task.
    for _ in 0..3 {
        let again = run(&diagnostics, &world.tenant).await?;
        assert!(
            again.opened.is_empty() && again.alerts_raised == 0,
            "{again:?}"
        );
    }
    assert_eq!(world.crm.tasks().len(), 1);

    // Fixed: the incident closes and the task is completed.
    world.pbx.forbid_recordings(false);
    let fixed = run(&diagnostics, &world.tenant).await?;
    assert_eq!(fixed.closed, [doctor::RECORDINGS], "{}", shown(&fixed));
    assert_eq!(fixed.tasks_completed, 1, "{:?}", fixed.alert_errors);
    assert!(world.crm.tasks()[0].completed);
    assert!(health(&base).await?.contains("health-ok"));
    assert!(open_incidents_metric(&base).await?.ends_with(" 0"));
    let quiet = run(&diagnostics, &world.tenant).await?;
    assert_eq!((quiet.tasks_completed, quiet.alerts_raised), (0, 0));

    // Broken again: a new incident, a new task on the same contact.
    world.pbx.forbid_recordings(true);
    let again = run(&diagnostics, &world.tenant).await?;
    assert_eq!(again.opened, [doctor::RECORDINGS]);
    let tasks = world.crm.tasks();
    assert_eq!((tasks.len(), open_tasks(&tasks)), (2, 1));
    assert_eq!(tasks[1].contact_id, task.contact_id);

    // A restart while it fails: a new host (tenant, runner, database
    // handle) on the same file raises nothing more.
    let restarted = connectzero::connect::tenant(world.config().clone(), reqwest::Client::new());
    let after_restart = Diagnostics::new(Storage::open(&db)?, http);
    let run_after = run(&after_restart, &restarted).await?;
    assert!(
        run_after.opened.is_empty() && run_after.alerts_raised == 0,
        "{run_after:?}"
    );
    assert_eq!(world.crm.tasks().len(), 2);
    let alerts_contacts = world
        .crm
        .contacts()
        .iter()
        .filter(|c| c.name == "ConnectZero Alerts")
        .count();
    assert_eq!(alerts_contacts, 1);
    Ok(())
}

#[tokio::test]
async fn wrong_3cx_credentials_alert_on_the_configured_contact_and_clear_when_fixed()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let world = world_on(&dir.path().join("connectzero.db"), TenantOptions::default()).await?;
    // The operator chose the contact the alerts go on.
    let admin = world.crm.add_contact(SimContact::new("Agency", "Admin"));
    let mut config: TenantConfig = world.config().clone();
    config.settings.diagnostics.alert_contact_id = Some(admin.clone());
    config.validate()?;
    let tenant = connectzero::connect::tenant(config, reqwest::Client::new());
    let diagnostics = Diagnostics::new(world.storage.clone(), reqwest::Client::new());

    // The API key was regenerated in 3CX and the old token is gone.
    let original = connectzero_simulators::threecx::ThreeCxConfig::default().client_secret;
    world.pbx.set_client_secret("regenerated-in-3cx");
    world.pbx.expire_tokens();
    let broken = run(&diagnostics, &tenant).await?;
    assert_eq!(broken.opened, [doctor::CREDENTIALS], "{}", shown(&broken));
    let tasks = world.crm.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].contact_id, admin);
    assert!(
        tasks[0].title.contains("3CX API credentials"),
        "{:?}",
        tasks[0]
    );
    let body = tasks[0].body.clone().unwrap_or_default();
    assert!(body.contains("Admin > Integrations > API"), "{body}");
    assert!(!body.contains("regenerated-in-3cx") && !body.contains(&original));
    // No contact of ConnectZero's own was needed.
    assert!(
        world
            .crm
            .contacts()
            .iter()
            .all(|c| c.name != "ConnectZero Alerts")
    );

    let still = run(&diagnostics, &tenant).await?;
    assert_eq!(still.alerts_raised, 0);
    world.pbx.set_client_secret(&original);
    let fixed = run(&diagnostics, &tenant).await?;
    assert!(fixed.report.passed(), "{}", shown(&fixed));
    assert_eq!(fixed.closed, [doctor::CREDENTIALS]);
    let tasks = world.crm.tasks();
    assert_eq!(tasks.len(), 1);
    assert!(tasks[0].completed);
    Ok(())
}

#[tokio::test]
async fn when_the_crm_itself_fails_the_incident_shows_and_the_alerts_wait_for_it()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let world = world_on(&dir.path().join("connectzero.db"), TenantOptions::default()).await?;
    let base = common::serve_admin(&world, TOKEN).await?;
    let diagnostics = Diagnostics::new(world.storage.clone(), reqwest::Client::new());

    // The grant is revoked and, meanwhile, 3CX's recordings role is gone.
    world.crm.revoke_grant();
    world.pbx.forbid_recordings(true);
    let broken = run(&diagnostics, &world.tenant).await?;
    let mut opened = broken.opened.clone();
    opened.sort();
    assert_eq!(
        opened,
        [doctor::RECORDINGS, doctor::TOKEN],
        "{}",
        shown(&broken)
    );
    assert_eq!(broken.alerts_raised, 0);
    assert_eq!(broken.alert_errors.len(), 2, "{:?}", broken.alert_errors);
    assert!(world.crm.tasks().is_empty());
    let section = health(&base).await?;
    assert!(section.contains("HighLevel token"), "{section}");
    assert!(section.contains("not in the CRM"), "{section}");
    assert!(section.contains("/t/demo/oauth/install"), "{section}");
    assert!(open_incidents_metric(&base).await?.ends_with(" 2"));

    // The app is installed again: the CRM incident closes, and the 3CX
    // one, still open, gets its one task now.
    let tokens = world.crm.install();
    let mut config = world.config().clone();
    config.crm.refresh_token = connectzero::config::Secret::new(tokens.refresh_token);
    config.crm.access_token = Some(connectzero::config::Secret::new(tokens.access_token));
    let reinstalled = connectzero::connect::tenant(config, reqwest::Client::new());
    let recovered = run(&diagnostics, &reinstalled).await?;
    assert_eq!(recovered.closed, [doctor::TOKEN], "{}", shown(&recovered));
    assert_eq!(recovered.alerts_raised, 1, "{:?}", recovered.alert_errors);
    let tasks = world.crm.tasks();
    assert_eq!(tasks.len(), 1);
    assert!(tasks[0].title.contains("3CX recordings access"));
    let again = run(&diagnostics, &reinstalled).await?;
    assert_eq!(again.alerts_raised, 0);
    assert_eq!(world.crm.tasks().len(), 1);
    Ok(())
}

#[tokio::test]
async fn status_page_alerts_raise_no_task() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let options = common::options().diagnostics_alert("status-page").build();
    let world = world_on(&dir.path().join("connectzero.db"), options).await?;
    let base = common::serve_admin(&world, TOKEN).await?;
    let diagnostics = Diagnostics::new(world.storage.clone(), reqwest::Client::new());
    world.pbx.set_enterprise(false);
    let broken = run(&diagnostics, &world.tenant).await?;
    assert_eq!(broken.opened, [doctor::LICENCE], "{}", shown(&broken));
    assert!(world.crm.tasks().is_empty());
    assert!(
        world
            .crm
            .contacts()
            .iter()
            .all(|c| c.name != "ConnectZero Alerts")
    );
    let section = health(&base).await?;
    assert!(
        section.contains("3CX licence") && section.contains("status page only"),
        "{section}"
    );
    Ok(())
}

#[test]
fn diagnostics_settings_are_validated_with_their_fix() -> anyhow::Result<()> {
    let mut options = TenantOptions::default();
    assert_eq!(options.diagnostics.interval_mins, 15);
    assert!(options.diagnostics.validate().is_ok());
    options.diagnostics.interval_mins = 0;
    assert!(options.diagnostics.validate().is_ok(), "0 turns them off");
    options.diagnostics.interval_mins = 10_000;
    let error = options.diagnostics.validate().unwrap_err().to_string();
    assert!(error.contains("interval_mins"), "{error}");
    options.diagnostics.interval_mins = 15;
    options.diagnostics.alert = "email".into();
    let error = options.diagnostics.validate().unwrap_err().to_string();
    assert!(error.contains("crm-task"), "{error}");
    options.diagnostics.alert = "crm-task".into();
    options.diagnostics.alert_contact_id = Some("not an id!".into());
    let error = options.diagnostics.validate().unwrap_err().to_string();
    assert!(error.contains("alert_contact_id"), "{error}");
    // From a configuration file's [tenants.settings.diagnostics].
    let parsed: TenantOptions =
        toml::from_str("[diagnostics]\ninterval_mins = 5\nalert = \"status-page\"\n")?;
    assert_eq!(parsed.diagnostics.interval_mins, 5);
    assert!(!parsed.diagnostics.alerts_in_crm());
    Ok(())
}
