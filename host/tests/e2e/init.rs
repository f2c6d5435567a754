//! `connectzero init` as a terminal program: answers piped to the real
//! binary, against the loopback 3CX and HighLevel simulators.

use crate::doctor::assert_mark;
use connectzero::credentials::names;
use connectzero_simulators::highlevel::{HighLevelConfig, HighLevelSim};
use connectzero_simulators::threecx::{ThreeCxConfig, ThreeCxSim};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_connectzero");

/// Run `connectzero init --config <config>` with `answers` piped, one a
/// line: success and everything printed.
async fn init(config: &Path, crm_url: &str, answers: &[&str]) -> anyhow::Result<(bool, String)> {
    let mut command = Command::new(BIN);
    command
        .args(["init", "--crm-url", crm_url, "--config"])
        .arg(config)
        .env_remove("CONNECTZERO_KEY")
        .env_remove("CONNECTZERO_DB")
        .env_remove("CONNECTZERO_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let input = answers.join("\n") + "\n";
    // The simulators run on this test's runtime: wait off it.
    let output = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await?;
    let printed = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.success(), printed))
}

#[tokio::test]
async fn init_writes_the_file_seals_the_secrets_checks_and_keeps_everything_on_a_second_run()
-> anyhow::Result<()> {
    let pbx = ThreeCxSim::start(ThreeCxConfig::default()).await?;
    let crm = HighLevelSim::start(HighLevelConfig::default()).await?;
    let c = crm.config();
    let pbx_secret = ThreeCxConfig::default().client_secret;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("connectzero.toml");
    let pbx_url = pbx.base_url();

    let (ok, printed) = init(
        &config,
        &crm.base_url(),
        &[
            "acme",
            &pbx_url,
            "connectzero",
            &pbx_secret,
            &c.client_id,
            &c.client_secret,
            &c.location_id,
            &c.conversation_provider_id,
            "", // the public URL offered
        ],
    )
    .await?;
    assert!(ok, "{printed}");
    for secret in [pbx_secret.as_str(), c.client_secret.as_str()] {
        assert!(
            !printed.contains(secret),
            "a secret was printed:\n{printed}"
        );
    }
    // Doctor ran with the sealed secrets: 3CX accepts the API client.
    assert_mark(&printed, "3CX API credentials", '✓');
    assert!(
        printed.contains("http://127.0.0.1:8787/t/acme/oauth/install"),
        "{printed}"
    );
    assert!(
        printed.contains("http://127.0.0.1:8787/oauth/callback"),
        "{printed}"
    );

    let text = std::fs::read_to_string(&config)?;
    let written: connectzero::config::HostConfig = toml::from_str(&text)?;
    written.validate()?;
    let acme = &written.tenants[0];
    assert_eq!(acme.id, "acme");
    assert_eq!(acme.pbx.base_url, pbx_url);
    assert_eq!(acme.crm.location_id, c.location_id);
    assert_eq!(acme.crm.base_url, crm.base_url());
    for secret in [pbx_secret.as_str(), c.client_secret.as_str()] {
        assert!(!text.contains(secret), "a secret in the file:\n{text}");
    }
    let database = Path::new(&written.database).to_path_buf();
    let raw = std::fs::read(&database)?;
    for secret in [pbx_secret.as_str(), c.client_secret.as_str()] {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a secret in clear in the database"
        );
    }
    let sealed = |name: &str| -> anyhow::Result<Option<String>> {
        let storage = connectzero::storage::Storage::open(&database)?;
        let store = connectzero::secrets::open_store(&storage, &database, None)?;
        Ok(store.get("acme", name)?.map(|s| s.expose().to_string()))
    };
    assert_eq!(
        sealed(names::PBX_CLIENT_SECRET)?.as_deref(),
        Some(pbx_secret.as_str())
    );
    assert_eq!(
        sealed(names::CRM_CLIENT_SECRET)?.as_deref(),
        Some(c.client_secret.as_str())
    );

    // The operator adds a setting and a second tenant by hand…
    let edited = text.replacen(
        "[tenants.settings.oauth]",
        "[tenants.settings]\ndefault_country = \"GB\"\n\n[tenants.settings.oauth]",
        1,
    ) + "\n[[tenants]]\nid = \"other\"\n[tenants.pbx]\nbase_url = \"https://other.example.com\"\nclient_id = \"o\"\n[tenants.crm]\nlocation_id = \"L2\"\nconversation_provider_id = \"P2\"\nclient_id = \"C2\"\n";
    std::fs::write(&config, &edited)?;
    toml::from_str::<connectzero::config::HostConfig>(&edited)?.validate()?;
    // …and runs init again, pressing Enter at every question.
    let (ok, printed) = init(&config, &crm.base_url(), &[""; 9]).await?;
    assert!(ok, "{printed}");
    assert!(
        printed.contains(&format!("[{pbx_url}]")),
        "current values offered:\n{printed}"
    );
    assert!(printed.contains("Enter keeps the stored one"), "{printed}");
    assert_mark(&printed, "3CX API credentials", '✓');
    let again: connectzero::config::HostConfig =
        toml::from_str(&std::fs::read_to_string(&config)?)?;
    assert_eq!(again.tenants.len(), 2);
    assert_eq!(again.tenants[0].pbx.base_url, pbx_url);
    assert_eq!(again.tenants[0].crm.client_id, c.client_id);
    assert_eq!(again.tenants[0].settings.default_country, "GB");
    assert_eq!(again.tenants[1].id, "other");
    assert_eq!(again.tenants[1].pbx.base_url, "https://other.example.com");
    assert_eq!(
        sealed(names::PBX_CLIENT_SECRET)?.as_deref(),
        Some(pbx_secret.as_str())
    );
    assert_eq!(
        sealed(names::CRM_CLIENT_SECRET)?.as_deref(),
        Some(c.client_secret.as_str())
    );

    // The operator puts a new HighLevel client secret in the file by hand
    // and runs init again, pressing Enter: the file's secret replaces the
    // stored one (as `run` would take it), never dropped for the old one.
    let text = std::fs::read_to_string(&config)?;
    let rotated = "rotated-crm-client-secret";
    std::fs::write(
        &config,
        text.replacen(
            &format!("client_id = \"{}\"", c.client_id),
            &format!(
                "client_id = \"{}\"\nclient_secret = \"{rotated}\"",
                c.client_id
            ),
            1,
        ),
    )?;
    assert!(std::fs::read_to_string(&config)?.contains(rotated));
    let (_, printed) = init(&config, &crm.base_url(), &[""; 9]).await?;
    assert!(
        printed.contains("replacing the stored one"),
        "the prompt says the file's secret wins:\n{printed}"
    );
    assert_eq!(sealed(names::CRM_CLIENT_SECRET)?.as_deref(), Some(rotated));
    assert!(!std::fs::read_to_string(&config)?.contains(rotated));

    // An id the database keeps (`tenant add`) is refused: `run` would
    // refuse the pair.
    let added = Command::new(BIN)
        .args(["tenant", "add", "kept", "--db"])
        .arg(&database)
        .args([
            "--pbx-url",
            "https://kept.example.com",
            "--pbx-client-id",
            "k",
            "--crm-location",
            "L3",
            "--crm-provider",
            "P3",
            "--crm-client-id",
            "C3",
            "--secrets-stdin",
        ])
        .env_remove("CONNECTZERO_KEY")
        .env_remove("CONNECTZERO_CONFIG")
        .env_remove("CONNECTZERO_DB")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"pbx.client_secret=k-secret\ncrm.client_secret=c-secret\n")?;
            child.wait_with_output()
        })?;
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let before = std::fs::read_to_string(&config)?;
    let (ok, printed) = init(&config, &crm.base_url(), &["kept"]).await?;
    assert!(!ok, "{printed}");
    assert!(printed.contains("kept in the database"), "{printed}");
    assert_eq!(std::fs::read_to_string(&config)?, before);

    // A bad answer is refused with nothing written.
    let before = std::fs::read_to_string(&config)?;
    let (ok, printed) = init(
        &config,
        &crm.base_url(),
        &["acme", "http://pbx.example.com"],
    )
    .await?;
    assert!(!ok, "{printed}");
    assert_eq!(std::fs::read_to_string(&config)?, before);
    Ok(())
}

/// A file written by hand with every secret in clear, mode 0600, and
/// `CONNECTZERO_DB` set as the container and the systemd unit set it:
/// init seals the secrets into that database (the one `run` will open),
/// names it in the file, keeps the file 0600, keeps the previous file
/// without its secrets, and names the redirect URL the install uses.
#[tokio::test]
async fn init_seals_every_secret_into_the_database_run_uses_and_leaves_none_in_clear()
-> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("connectzero.toml");
    std::fs::create_dir(dir.path().join("data"))?;
    let db = dir.path().join("data").join("cz.db");
    std::fs::write(
        &config,
        r#"# written by hand
[[tenants]]
id = "acme"
[tenants.pbx]
base_url = "https://pbx.example.com"
client_id = "cz"
client_secret = "clear-pbx"
[tenants.crm]
location_id = "L"
conversation_provider_id = "P"
client_id = "C"
client_secret = "clear-crm"
refresh_token = "clear-refresh"
access_token = "clear-access"
[tenants.actions]
secret = "clear-actions"
[tenants.settings.oauth]
public_url = "https://cz.example.com"
per_tenant_redirect = true
"#,
    )?;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600))?;
    let mut command = Command::new(BIN);
    command
        .args(["init", "--no-check", "--config"])
        .arg(&config)
        .env("CONNECTZERO_DB", &db)
        .env_remove("CONNECTZERO_KEY")
        .env_remove("CONNECTZERO_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    // Enter at every question: the file's values and secrets are kept.
    child.stdin.take().unwrap().write_all(&[b'\n'; 9])?;
    let output = child.wait_with_output()?;
    let printed = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{printed}");

    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(mode(&config)?, 0o600, "the file stays its owner's");
    let backup = dir.path().join("connectzero.toml.bak");
    assert_eq!(mode(&backup)?, 0o600);
    let kept = std::fs::read_to_string(&backup)?;
    let text = std::fs::read_to_string(&config)?;
    for secret in ["clear-pbx", "clear-crm", "clear-refresh", "clear-access"] {
        assert!(!text.contains(secret), "{secret} in the file:\n{text}");
        assert!(!kept.contains(secret), "{secret} in the backup:\n{kept}");
        assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
    }
    assert!(!kept.contains("clear-actions"), "{kept}");

    let written: connectzero::config::HostConfig = toml::from_str(&text)?;
    assert_eq!(
        Path::new(&written.database),
        db,
        "the file names run's database"
    );
    let storage = connectzero::storage::Storage::open(&db)?;
    let store = connectzero::secrets::open_store(&storage, &db, None)?;
    let sealed = |name: &str| -> anyhow::Result<Option<String>> {
        Ok(store.get("acme", name)?.map(|s| s.expose().to_string()))
    };
    assert_eq!(
        sealed(names::PBX_CLIENT_SECRET)?.as_deref(),
        Some("clear-pbx")
    );
    assert_eq!(
        sealed(names::CRM_CLIENT_SECRET)?.as_deref(),
        Some("clear-crm")
    );
    assert_eq!(
        sealed(names::CRM_REFRESH_TOKEN)?.as_deref(),
        Some("clear-refresh")
    );
    let access = sealed(names::CRM_ACCESS_TOKEN)?.unwrap_or_default();
    assert!(
        access.ends_with(" clear-access"),
        "stored as `<expiry> <token>`"
    );

    // The redirect URL this tenant's install names: its own.
    assert!(
        printed.contains("redirect URL https://cz.example.com/t/acme/oauth/callback"),
        "{printed}"
    );
    Ok(())
}
