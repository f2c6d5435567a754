//! Secrets at rest: sealed with AES-256-GCM in the database, never there
//! in clear; key rotation; wrong keys; rotated refresh tokens surviving a
//! restart.

use crate::common;
use anyhow::Context;

use common::*;
use connectzero::credentials::names;
use connectzero::demo::{Placer, numbers};
use connectzero::secrets::{
    self, MasterKey, SecretStore, SecretsError, default_key_file, old_key_file, open_store,
};
use connectzero::storage::{Storage, TenantAuth};
use connectzero::testbed::TENANT;
use connectzero_simulators::threecx::ThreeCxConfig;

/// The database file and its WAL and shared-memory files, as bytes.
fn raw_database(db: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_os_string();
        name.push(suffix);
        if let Ok(content) = std::fs::read(&name) {
            bytes.extend(content);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_database_files_hold_no_secret_in_clear() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (world, _contacts, store) = world_with_secrets(dir.path(), defaults()).await?;
    let configured_refresh = world.config().crm.refresh_token.expose().to_string();
    let configured_access = world
        .config()
        .crm
        .access_token
        .clone()
        .context("the configuration has an access token")?;
    // Expired access tokens make the first post refresh, so a rotated
    // refresh token and a new access token are stored too.
    world.crm.expire_access_tokens();
    place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 60),
    );
    tick_until(&world, 5, |w| w.crm.messages().len() == 1).await?;

    let refresh = store
        .get(TENANT, names::CRM_REFRESH_TOKEN)?
        .context("the rotated refresh token is stored")?;
    assert_ne!(refresh.expose(), configured_refresh);
    let access = store
        .get(TENANT, names::CRM_ACCESS_TOKEN)?
        .context("the new access token is stored")?;
    let access = access
        .expose()
        .split_once(' ')
        .context("the stored access token is \"<type> <token>\"")?
        .1
        .to_string();
    let pbx_secret = ThreeCxConfig::default().client_secret;
    assert_eq!(
        store
            .get(TENANT, names::PBX_CLIENT_SECRET)?
            .context("the secret is stored")?
            .expose(),
        pbx_secret
    );
    let crm_secret = world.crm.config().client_secret.clone();

    let raw = raw_database(&dir.path().join("cz.db"));
    // The files do hold the sealed form: this reads the right bytes.
    let sealed = store
        .storage()
        .secret_get(TENANT, names::CRM_REFRESH_TOKEN)?
        .context("the secret is stored")?;
    assert!(contains(&raw, &sealed.ciphertext));
    for (what, secret) in [
        ("3CX client secret", pbx_secret.as_str()),
        ("HighLevel client secret", crm_secret.as_str()),
        ("refresh token", refresh.expose()),
        ("configured refresh token", configured_refresh.as_str()),
        ("access token", access.as_str()),
        ("configured access token", configured_access.expose()),
    ] {
        assert!(
            !contains(&raw, secret.as_bytes()),
            "the {what} is in the database files in clear"
        );
    }
    Ok(())
}

#[test]
fn rotation_re_encrypts_every_secret_and_keeps_it_readable() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("cz.db");
    let storage = Storage::open(&db)?;
    let store = open_store(&storage, &db, None)?;
    let values = [
        ("t1", "pbx.client_secret", "first-secret-value"),
        ("t1", "crm.refresh_token", "second-secret-value"),
        ("t2", "crm.refresh_token", "third-secret-value"),
    ];
    for (tenant, name, value) in values {
        store.put(tenant, &[(name, &connectzero::config::Secret::new(value))])?;
    }
    let before = storage.secrets_all()?;

    let key_file = default_key_file(&db);
    let rotation = secrets::rotate(&storage, &db, &key_file)?;
    assert_eq!(rotation.secrets, 3);
    assert_eq!(rotation.old_key_id, store.key_id());
    assert_ne!(rotation.new_key_id, rotation.old_key_id);

    let after = storage.secrets_all()?;
    assert_eq!(after.len(), before.len());
    for (old, new) in before.iter().zip(&after) {
        assert_eq!((&old.tenant, &old.name), (&new.tenant, &new.name));
        assert_eq!(new.key_id, rotation.new_key_id);
        assert_ne!(new.nonce, old.nonce);
        assert_ne!(new.ciphertext, old.ciphertext);
    }
    // The new key file is in place; the old one is kept beside it.
    let reopened = open_store(&storage, &db, None)?;
    assert_eq!(reopened.key_id(), rotation.new_key_id);
    for (tenant, name, value) in values {
        assert_eq!(
            reopened
                .get(tenant, name)?
                .context("the secret is stored")?
                .expose(),
            value
        );
    }
    assert_eq!(rotation.old_key_file, old_key_file(&key_file));
    let old_key = MasterKey::load_file(&rotation.old_key_file)?;
    assert_eq!(old_key.id(), rotation.old_key_id);
    assert!(matches!(
        SecretStore::new(storage.clone(), old_key).get("t1", "crm.refresh_token"),
        Err(SecretsError::WrongKey { .. })
    ));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    Ok(())
}

#[test]
fn a_wrong_key_is_a_clear_error_that_never_shows_the_secret() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("cz.db");
    let storage = Storage::open(&db)?;
    let store = open_store(&storage, &db, None)?;
    let secret = "refresh-token-nobody-may-see";
    store.put(
        TENANT,
        &[(
            names::CRM_REFRESH_TOKEN,
            &connectzero::config::Secret::new(secret),
        )],
    )?;

    let other_key = dir.path().join("other.key");
    let error = open_store(&storage, &db, Some(&other_key))
        .unwrap_err()
        .to_string();
    assert!(error.contains("encrypted with key"), "{error}");
    assert!(error.contains(store.key_id()), "{error}");
    assert!(error.contains("other.key"), "{error}");
    assert!(!error.contains(secret), "{error}");

    // A lost key file is not silently replaced by a new key.
    let key_file = default_key_file(&db);
    std::fs::rename(&key_file, dir.path().join("elsewhere"))?;
    let error = open_store(&storage, &db, None).unwrap_err().to_string();
    assert!(error.contains("does not exist: restore it"), "{error}");
    assert!(!key_file.exists());

    let wrong = SecretStore::new(storage.clone(), MasterKey::load_file(&other_key)?);
    let error = wrong
        .get(TENANT, names::CRM_REFRESH_TOKEN)
        .unwrap_err()
        .to_string();
    assert!(error.contains("crm.refresh_token"), "{error}");
    assert!(!error.contains(secret), "{error}");
    Ok(())
}

#[tokio::test]
async fn after_a_restart_the_stored_refresh_token_wins_over_the_configs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (world, _contacts, _store) = world_with_secrets(dir.path(), defaults()).await?;
    let mut placer = Placer::default();
    world.crm.expire_access_tokens();
    place(
        &world,
        &mut placer,
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 60),
    );
    tick_until(&world, 5, |w| w.crm.messages().len() == 1).await?;

    // A restart: the same config file (whose refresh token is now spent),
    // database and key file.
    let db = dir.path().join("cz.db");
    let storage = Storage::open(&db)?;
    let restarted = connectzero::connect::tenant(world.config().clone(), reqwest::Client::new());
    connectzero::credentials::of(&restarted).use_store(open_store(&storage, &db, None)?)?;
    world.crm.expire_access_tokens();
    place(
        &world,
        &mut placer,
        &one_leg(2, outside(numbers::ELI), ext("102"), true, 30),
    );
    for _ in 0..5 {
        world.pipeline.tick(&restarted).await?;
        if world.crm.messages().len() == 2 {
            break;
        }
    }
    assert_eq!(world.crm.messages().len(), 2);
    assert_eq!(storage.tenant_auth_status(TENANT)?, TenantAuth::Authorised);
    Ok(())
}

#[tokio::test]
async fn a_new_refresh_token_in_the_config_file_replaces_a_revoked_grant() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (world, _contacts, store) = world_with_secrets(dir.path(), defaults()).await?;
    let mut placer = Placer::default();
    world.crm.revoke_grant();
    place(
        &world,
        &mut placer,
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 60),
    );
    world.tick().await?;
    assert_ne!(
        store.storage().tenant_auth_status(TENANT)?,
        TenantAuth::Authorised
    );

    // The operator installs the app elsewhere and puts its refresh token
    // in the config file, then restarts.
    let installed = world.crm.install();
    let mut config = world.config().clone();
    config.crm.refresh_token = connectzero::config::Secret::new(installed.refresh_token);
    config.crm.access_token = None;
    let restarted = connectzero::connect::tenant(config, reqwest::Client::new());
    connectzero::credentials::of(&restarted).use_store(store.clone())?;
    assert_eq!(
        store.storage().tenant_auth_status(TENANT)?,
        TenantAuth::Authorised
    );
    for _ in 0..5 {
        world.pipeline.tick(&restarted).await?;
        if world.crm.messages().len() == 1 {
            break;
        }
    }
    assert_eq!(world.crm.messages().len(), 1);
    Ok(())
}

#[test]
fn keys_rotate_on_the_command_line_re_encrypts_and_refuses_an_open_key_file() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("cz.db");
    let config = dir.path().join("connectzero.toml");
    std::fs::write(
        &config,
        format!(
            r#"
database = "{}"
[[tenants]]
id = "acme"
[tenants.pbx]
base_url = "https://pbx.example.com"
client_id = "connectzero"
client_secret = "cli-test-pbx-secret"
[tenants.crm]
location_id = "loc"
conversation_provider_id = "provider"
client_id = "app"
client_secret = "cli-test-crm-secret"
"#,
            db.display()
        ),
    )?;
    let storage = Storage::open(&db)?;
    let store = open_store(&storage, &db, None)?;
    store.put(
        "acme",
        &[(
            names::PBX_CLIENT_SECRET,
            &connectzero::config::Secret::new("cli-test-pbx-secret"),
        )],
    )?;
    let rotate = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_connectzero"))
            .args(["keys", "rotate", "--config"])
            .arg(&config)
            .env_remove(secrets::KEY_ENV)
            .output()
            .unwrap()
    };

    let output = rotate();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("re-encrypted 1 secrets"), "{stdout}");
    let key_file = default_key_file(&db);
    assert!(old_key_file(&key_file).exists());
    let reopened = open_store(&storage, &db, None)?;
    assert_ne!(reopened.key_id(), store.key_id());
    assert_eq!(
        reopened
            .get("acme", names::PBX_CLIENT_SECRET)?
            .context("the secret is stored")?
            .expose(),
        "cli-test-pbx-secret"
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o640))?;
        let output = rotate();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(stderr.contains("chmod 600"), "{stderr}");
        assert!(!stderr.contains("cli-test-pbx-secret"), "{stderr}");
    }
    Ok(())
}
