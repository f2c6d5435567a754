//! `connectzero doctor`: the real binary against the simulators, one
//! failure at a time.

use anyhow::Context;
use connectzero_simulators::highlevel::{HighLevelConfig, HighLevelSim};
use connectzero_simulators::threecx::{ThreeCxConfig, ThreeCxSim};
use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_connectzero");

/// Every line of a passing tenant, in order.
const CHECKS: [&str; 11] = [
    "configuration",
    "3CX reachable over HTTPS",
    "3CX API credentials",
    "3CX licence",
    "3CX call history access",
    "3CX recordings access",
    "3CX extensions and active calls",
    "HighLevel token",
    "HighLevel scopes",
    "HighLevel rate budget",
    "call attribution to CRM users",
];

/// Both simulators and a configuration file pointing at them.
struct Setup {
    pbx: ThreeCxSim,
    crm: HighLevelSim,
    config: PathBuf,
    /// Every secret in the configuration, none of which may be printed.
    secrets: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn start() -> anyhow::Result<Self> {
        let pbx = ThreeCxSim::start(ThreeCxConfig::default()).await?;
        let crm = HighLevelSim::start(HighLevelConfig::default()).await?;
        let tokens = crm.install();
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("connectzero.toml");
        let c = crm.config();
        let text = format!(
            r#"
database = "{db}"

[[tenants]]
id = "acme"
[tenants.pbx]
base_url = "{pbx}"
client_id = "connectzero"
client_secret = "sim-3cx-secret"
[tenants.crm]
base_url = "{crm}"
location_id = "{location}"
conversation_provider_id = "{provider}"
client_id = "{client_id}"
client_secret = "{client_secret}"
refresh_token = "{refresh}"
"#,
            db = dir.path().join("connectzero.db").display(),
            pbx = pbx.base_url(),
            crm = crm.base_url(),
            location = c.location_id,
            provider = c.conversation_provider_id,
            client_id = c.client_id,
            client_secret = c.client_secret,
            refresh = tokens.refresh_token,
        );
        std::fs::write(&config, text)?;
        let secrets = vec![
            "sim-3cx-secret".to_string(),
            c.client_secret.clone(),
            tokens.refresh_token,
        ];
        Ok(Self {
            pbx,
            crm,
            config,
            secrets,
            _dir: dir,
        })
    }

    /// Run `connectzero doctor` (extra `args` appended): success, stdout.
    async fn doctor(&self, args: &[&str]) -> anyhow::Result<(bool, String)> {
        let mut command = Command::new(BIN);
        command
            .args(["doctor", "--config"])
            .arg(&self.config)
            .args(args)
            .env_remove("CONNECTZERO_KEY")
            .env_remove("RUST_LOG");
        // The simulators run on this test's runtime: wait off it.
        let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        for secret in &self.secrets {
            assert!(
                !stdout.contains(secret.as_str()) && !stderr.contains(secret.as_str()),
                "a secret was printed:\n{stdout}\n{stderr}"
            );
        }
        Ok((output.status.success(), format!("{stdout}\n{stderr}")))
    }
}

/// The checklist line of `name` and the `fix:` line under it, if any.
pub(crate) fn line<'a>(output: &'a str, name: &str) -> (&'a str, Option<&'a str>) {
    let lines: Vec<&str> = output.lines().collect();
    let at = lines
        .iter()
        .position(|l| {
            let l = l.trim_start();
            let mut chars = l.chars();
            chars.next().is_some_and(|c| "✓✗–".contains(c))
                && chars.as_str().trim_start().starts_with(name)
        })
        .unwrap_or_else(|| panic!("no line {name:?} in:\n{output}"));
    let hint = lines
        .get(at + 1)
        .map(|l| l.trim_start())
        .filter(|l| l.starts_with("fix:"));
    (lines[at].trim_start(), hint)
}

pub(crate) fn assert_mark(output: &str, name: &str, mark: char) {
    let (text, _) = line(output, name);
    assert!(text.starts_with(mark), "{name} is not {mark}:\n{output}");
}

#[tokio::test]
async fn a_healthy_tenant_passes_every_check_and_keeps_passing() -> anyhow::Result<()> {
    let setup = Setup::start().await?;
    let (ok, output) = setup.doctor(&[]).await?;
    assert!(ok, "{output}");
    for name in CHECKS {
        assert_mark(&output, name, '✓');
    }
    assert!(
        !output.contains('✗') && !output.contains("fix:"),
        "{output}"
    );
    assert!(output.contains("all 11 checks passed"), "{output}");
    // The refresh spent the configured refresh token; its successor was
    // stored, so a second run (and `connectzero run`) still works.
    let (again, output) = setup.doctor(&["--tenant", "acme"]).await?;
    assert!(again, "{output}");
    assert_mark(&output, "HighLevel token", '✓');
    Ok(())
}

#[tokio::test]
async fn an_unqualified_edition_fails_the_licence_line_with_its_fix() -> anyhow::Result<()> {
    let setup = Setup::start().await?;
    setup.pbx.set_enterprise(false);
    let (ok, output) = setup.doctor(&[]).await?;
    assert!(!ok, "{output}");
    let (text, hint) = line(&output, "3CX licence");
    assert!(
        text.starts_with('✗') && text.contains("Professional"),
        "{output}"
    );
    assert!(
        hint.context("the check gives a hint")?
            .contains("Enterprise licence"),
        "{output}"
    );
    assert_mark(&output, "3CX API credentials", '✓');
    assert_mark(&output, "3CX call history access", '✓');
    assert!(output.contains("1 of 11 checks failed"), "{output}");
    Ok(())
}

#[tokio::test]
async fn a_wrong_3cx_secret_fails_the_credentials_line_without_printing_it() -> anyhow::Result<()> {
    let setup = Setup::start().await?;
    // The API key was regenerated in 3CX; the file still has the old one.
    setup.pbx.set_client_secret("regenerated-in-3cx");
    let (ok, output) = setup.doctor(&[]).await?;
    assert!(!ok, "{output}");
    assert_mark(&output, "3CX reachable over HTTPS", '✓');
    let (text, hint) = line(&output, "3CX API credentials");
    assert!(
        text.starts_with('✗') && text.contains("\"connectzero\""),
        "{output}"
    );
    let hint = hint.context("the check gives a hint")?;
    assert!(hint.contains("Admin > Integrations > API"), "{output}");
    assert!(hint.contains("tenants.pbx.client_secret"), "{output}");
    assert!(!output.contains("regenerated-in-3cx"), "{output}");
    assert_mark(&output, "3CX licence", '–');
    // The HighLevel side is checked all the same.
    assert_mark(&output, "HighLevel token", '✓');
    Ok(())
}

#[tokio::test]
async fn a_revoked_crm_grant_fails_the_token_line_with_its_fix() -> anyhow::Result<()> {
    let setup = Setup::start().await?;
    setup.crm.revoke_grant();
    let (ok, output) = setup.doctor(&[]).await?;
    assert!(!ok, "{output}");
    let (text, hint) = line(&output, "HighLevel token");
    assert!(
        text.starts_with('✗') && text.contains("refresh token"),
        "{output}"
    );
    let hint = hint.context("the check gives a hint")?;
    assert!(hint.contains("re-install the app"), "{output}");
    assert!(hint.contains("/t/acme/oauth/install"), "{output}");
    assert_mark(&output, "HighLevel scopes", '–');
    assert_mark(&output, "3CX licence", '✓');
    Ok(())
}

/// 3CX shows a call's DID only on its recording (NOTES.md §8): a route
/// that lists DIDs says so, and fails when recordings cannot be read.
#[tokio::test]
async fn a_route_listing_dids_says_they_come_from_recordings_and_fails_without_them()
-> anyhow::Result<()> {
    let setup = Setup::start().await?;
    let mut text = std::fs::read_to_string(&setup.config)?;
    text.push_str("[tenants.settings.route]\ndids = [\"+14155550900\"]\ndefault = true\n");
    std::fs::write(&setup.config, text)?;
    let (ok, output) = setup.doctor(&[]).await?;
    assert!(ok, "{output}");
    let (text, _) = line(&output, "DID routes");
    assert!(
        text.starts_with('✓') && text.contains("recordings") && text.contains("queues"),
        "{output}"
    );
    setup.pbx.forbid_recordings(true);
    let (ok, output) = setup.doctor(&[]).await?;
    assert!(!ok, "{output}");
    let (text, hint) = line(&output, "DID routes");
    assert!(
        text.starts_with('✗') && text.contains("never be read"),
        "{output}"
    );
    assert!(
        hint.context("the check gives a hint")?.contains("queues"),
        "{output}"
    );
    Ok(())
}

#[tokio::test]
async fn a_role_without_recordings_fails_only_that_line() -> anyhow::Result<()> {
    let setup = Setup::start().await?;
    setup.pbx.forbid_recordings(true);
    let (ok, output) = setup.doctor(&[]).await?;
    assert!(!ok, "{output}");
    let (text, hint) = line(&output, "3CX recordings access");
    assert!(text.starts_with('✗') && text.contains("403"), "{output}");
    assert!(
        hint.context("the check gives a hint")?
            .contains("System Owner"),
        "{output}"
    );
    assert_mark(&output, "3CX call history access", '✓');
    assert!(output.contains("1 of 11 checks failed"), "{output}");
    Ok(())
}

#[tokio::test]
async fn a_role_without_call_history_fails_the_history_line() -> anyhow::Result<()> {
    let setup = Setup::start().await?;
    setup.pbx.set_forbidden(true);
    let (ok, output) = setup.doctor(&[]).await?;
    assert!(!ok, "{output}");
    assert_mark(&output, "3CX call history access", '✗');
    assert_mark(&output, "3CX extensions and active calls", '✓');
    Ok(())
}

#[tokio::test]
async fn a_grant_without_a_needed_scope_fails_the_scopes_line() -> anyhow::Result<()> {
    let setup = Setup::start().await?;
    setup.crm.set_granted_scopes(
        "contacts.readonly contacts.write conversations.readonly conversations.write conversations/message.readonly conversations/message.write",
    );
    let (ok, output) = setup.doctor(&[]).await?;
    assert!(!ok, "{output}");
    assert_mark(&output, "HighLevel token", '✓');
    let (text, hint) = line(&output, "HighLevel scopes");
    assert!(
        text.starts_with('✗') && text.contains("workflows.readonly"),
        "{output}"
    );
    assert!(
        hint.context("the check gives a hint")?
            .contains("re-install the app"),
        "{output}"
    );
    Ok(())
}

#[tokio::test]
async fn a_rate_limited_location_fails_the_budget_line_not_the_token() -> anyhow::Result<()> {
    let setup = Setup::start().await?;
    setup.crm.inject_failures_on(
        "/contacts/search/duplicate",
        connectzero_simulators::highlevel::Fault::TooManyRequests {
            retry_after_secs: Some(30),
        },
        1,
    );
    let (ok, output) = setup.doctor(&[]).await?;
    assert!(!ok, "{output}");
    assert_mark(&output, "HighLevel token", '–');
    let (text, hint) = line(&output, "HighLevel rate budget");
    assert!(text.starts_with('✗') && text.contains("30 s"), "{output}");
    assert!(
        hint.context("the check gives a hint")?
            .contains("tenants.crm.rate_limit"),
        "{output}"
    );
    assert_mark(&output, "HighLevel scopes", '✓');
    Ok(())
}

#[tokio::test]
async fn an_unknown_tenant_is_named_with_the_known_ones() -> anyhow::Result<()> {
    let setup = Setup::start().await?;
    let (ok, output) = setup.doctor(&["--tenant", "nope"]).await?;
    assert!(!ok);
    assert!(
        output.contains("no tenant \"nope\"") && output.contains("acme"),
        "{output}"
    );
    Ok(())
}

#[tokio::test]
async fn secrets_kept_in_the_database_are_used_when_the_file_omits_them() -> anyhow::Result<()> {
    let setup = Setup::start().await?;
    // As after `connectzero run` stored them: the API key only in the
    // database (encrypted), no longer in the file.
    let text = std::fs::read_to_string(&setup.config)?;
    let database = setup.config.with_file_name("connectzero.db");
    let storage = connectzero::storage::Storage::open(&database)?;
    let store = connectzero::secrets::open_store(&storage, &database, None)?;
    let key = connectzero::config::Secret::new("sim-3cx-secret");
    store.put(
        "acme",
        &[(connectzero::credentials::names::PBX_CLIENT_SECRET, &key)],
    )?;
    drop(store);
    drop(storage);
    let without = text.replace("client_secret = \"sim-3cx-secret\"", "");
    assert!(!without.contains("sim-3cx-secret"));
    std::fs::write(&setup.config, without)?;
    let (ok, output) = setup.doctor(&[]).await?;
    assert!(ok, "{output}");
    assert_mark(&output, "3CX API credentials", '✓');
    Ok(())
}

#[tokio::test]
async fn a_tenant_marked_for_re_authorisation_is_reported_without_a_refresh() -> anyhow::Result<()>
{
    let setup = Setup::start().await?;
    // `run` marked it when HighLevel refused the grant; it refreshes no
    // more until an install, and neither may doctor.
    let database = setup.config.with_file_name("connectzero.db");
    connectzero::storage::Storage::open(&database)?.set_needs_reauthorisation(
        "acme",
        "HighLevel refused the refresh token",
        1,
    )?;
    let (ok, output) = setup.doctor(&[]).await?;
    assert!(!ok, "{output}");
    let (text, hint) = line(&output, "HighLevel token");
    assert!(
        text.starts_with('✗') && text.contains("needs re-authorisation"),
        "{output}"
    );
    assert!(
        hint.context("the check gives a hint")?
            .contains("/t/acme/oauth/install"),
        "{output}"
    );
    assert_eq!(setup.crm.request_count("POST", "/oauth/token"), 0);
    Ok(())
}
