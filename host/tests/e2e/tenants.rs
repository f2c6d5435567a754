//! `connectzero tenant add | list | remove | settings` and `run` serving
//! the configuration file's tenants and the database's together, through
//! the real binary against the simulators. No secret may appear in any
//! output, nor in clear in the database files.

use crate::common;
use anyhow::Context;

use common::*;
use connectzero::demo::{Placer, numbers};
use connectzero::testbed::World;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_connectzero");
const ACTION: &str = "shop-action-secret-7f3a";
const FILE_PBX_SECRET: &str = "file-tenant-pbx-secret-91c2";
const FILE_CRM_SECRET: &str = "file-tenant-crm-secret-44d0";

/// Everything the binary printed, to check for secrets at the end.
#[derive(Default)]
struct Printed(Vec<String>);

impl Printed {
    fn assert_no_secret(&self, secrets: &[&str]) {
        for text in &self.0 {
            for secret in secrets {
                assert!(!text.contains(secret), "a secret was printed:\n{text}");
            }
        }
    }
}

/// Run the binary with `args` (stdin from `input`, the tenant secrets in
/// `env`): success, stdout + stderr.
fn cz(
    printed: &mut Printed,
    args: &[&str],
    env: &[(&str, &str)],
    input: Option<&str>,
) -> anyhow::Result<(bool, String)> {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("CONNECTZERO_KEY")
        .env_remove("CONNECTZERO_PBX_CLIENT_SECRET")
        .env_remove("CONNECTZERO_CRM_CLIENT_SECRET")
        .env_remove("CONNECTZERO_ACTION_SECRET")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().context("stdin is piped")?;
        if let Some(text) = input {
            stdin.write_all(text.as_bytes())?;
        }
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    printed.0.push(text.clone());
    Ok((status.success(), text))
}

/// `tenant add shop` for `world`'s simulators into `db`, secrets from the
/// environment.
fn add_shop(
    printed: &mut Printed,
    world: &World,
    db: &Path,
    extra: &[&str],
) -> anyhow::Result<(bool, String)> {
    let c = world.config();
    let db = db.display().to_string();
    let mut args = vec![
        "tenant",
        "add",
        "shop",
        "--db",
        &db,
        "--pbx-url",
        &c.pbx.base_url,
        "--pbx-client-id",
        &c.pbx.client_id,
        "--crm-url",
        &c.crm.base_url,
        "--crm-location",
        &c.crm.location_id,
        "--crm-provider",
        &c.crm.conversation_provider_id,
        "--crm-client-id",
        &c.crm.client_id,
    ];
    args.extend_from_slice(extra);
    cz(
        printed,
        &args,
        &[
            (
                "CONNECTZERO_PBX_CLIENT_SECRET",
                c.pbx.client_secret.expose(),
            ),
            (
                "CONNECTZERO_CRM_CLIENT_SECRET",
                c.crm.client_secret.expose(),
            ),
            ("CONNECTZERO_ACTION_SECRET", ACTION),
        ],
        None,
    )
}

fn secrets_of(world: &World) -> Vec<String> {
    let c = world.config();
    vec![
        c.pbx.client_secret.expose().to_string(),
        c.crm.client_secret.expose().to_string(),
        ACTION.to_string(),
        FILE_PBX_SECRET.to_string(),
        FILE_CRM_SECRET.to_string(),
    ]
}

/// The database file and its WAL, as bytes.
fn raw_database(db: &Path) -> anyhow::Result<Vec<u8>> {
    let mut bytes = std::fs::read(db)?;
    let mut wal = PathBuf::from(db).into_os_string();
    wal.push("-wal");
    if let Ok(more) = std::fs::read(wal) {
        bytes.extend(more);
    }
    Ok(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_added_listed_changed_and_removed_without_printing_a_secret()
-> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("cz.db");
    let dbs = db.display().to_string();
    let mut out = Printed::default();

    let (ok, text) = cz(&mut out, &["tenant", "add", "--help"], &[], None)?;
    assert!(ok, "{text}");
    assert!(
        text.contains("ps") && text.contains("CONNECTZERO_PBX_CLIENT_SECRET"),
        "{text}"
    );

    // Without the secrets nothing is added, and the message says how.
    let c = world.config();
    let (ok, text) = cz(
        &mut out,
        &[
            "tenant",
            "add",
            "shop",
            "--db",
            &dbs,
            "--pbx-url",
            &c.pbx.base_url,
            "--pbx-client-id",
            "x",
            "--crm-location",
            "l",
            "--crm-provider",
            "p",
            "--crm-client-id",
            "a",
        ],
        &[],
        None,
    )?;
    assert!(!ok);
    assert!(
        text.contains("CONNECTZERO_PBX_CLIENT_SECRET") && text.contains("--secrets-stdin"),
        "{text}"
    );

    let (ok, text) = add_shop(&mut out, &world, &db, &["--set", "default_country=GB"])?;
    assert!(ok, "{text}");
    let (ok, text) = add_shop(&mut out, &world, &db, &[])?;
    assert!(!ok);
    assert!(text.contains("already exists"), "{text}");

    // A second tenant, secrets on stdin.
    let stdin = format!(
        "pbx.client_secret={}\ncrm.client_secret={}\n",
        FILE_PBX_SECRET, FILE_CRM_SECRET
    );
    let (ok, text) = cz(
        &mut out,
        &[
            "tenant",
            "add",
            "cafe",
            "--db",
            &dbs,
            "--secrets-stdin",
            "--pbx-url",
            "https://cafe.3cx.example",
            "--pbx-client-id",
            "cz",
            "--crm-location",
            "loc-cafe",
            "--crm-provider",
            "prov",
            "--crm-client-id",
            "app",
        ],
        &[],
        Some(&stdin),
    )?;
    assert!(ok, "{text}");
    // Data of cafe's that `remove` must take with it.
    let storage = connectzero::storage::Storage::open(&db)?;
    storage.kv_set("cafe", "poll/cursor", b"123")?;

    let (ok, text) = cz(&mut out, &["tenant", "list", "--db", &dbs], &[], None)?;
    assert!(ok, "{text}");
    assert!(text.contains("shop") && text.contains("cafe"), "{text}");
    assert!(
        text.contains(&c.crm.location_id) && text.contains("loc-cafe"),
        "{text}"
    );
    assert!(text.contains("not installed yet"), "{text}");

    // Settings: shown, refused with what to fix, changed.
    let (ok, text) = cz(
        &mut out,
        &["tenant", "settings", "shop", "--db", &dbs],
        &[],
        None,
    )?;
    assert!(ok, "{text}");
    assert!(text.contains("default_country = GB"), "{text}");
    assert!(text.contains("log_internal_calls = false"), "{text}");
    for (set, says) in [
        ("default_country=USA", "two-letter"),
        ("log_internal_calls=maybe", "true or false"),
        ("no_match_policy=guess", "create-contact"),
        ("poll_interval_ms=5", "between 100 and 60000"),
        ("poll_interval_ms=600000", "between 100 and 60000"),
        ("colour=blue", "recording_window_secs"),
        ("oops", "key=value"),
    ] {
        let (ok, text) = cz(
            &mut out,
            &["tenant", "settings", "shop", "--db", &dbs, "--set", set],
            &[],
            None,
        )?;
        assert!(!ok, "{set} was accepted");
        assert!(text.contains(says), "{set}: {text}");
    }
    let (ok, text) = cz(
        &mut out,
        &[
            "tenant",
            "settings",
            "shop",
            "--db",
            &dbs,
            "--set",
            "log_internal_calls=true",
            "--set",
            "recording_window_secs=900",
            "--set",
            "no_match_policy=create-contact",
        ],
        &[],
        None,
    )?;
    assert!(ok, "{text}");
    let (_, text) = cz(
        &mut out,
        &["tenant", "settings", "shop", "--db", &dbs],
        &[],
        None,
    )?;
    for line in [
        "log_internal_calls = true",
        "recording_window_secs = 900",
        "no_match_policy = create-contact",
        "default_country = GB",
    ] {
        assert!(text.contains(line), "no {line:?} in {text}");
    }

    // Remove asks for --yes, then takes the secrets and the namespace.
    let (ok, text) = cz(
        &mut out,
        &["tenant", "remove", "cafe", "--db", &dbs],
        &[],
        None,
    )?;
    assert!(!ok);
    assert!(text.contains("--yes"), "{text}");
    assert!(storage.secrets_all()?.iter().any(|s| s.tenant == "cafe"));
    let (ok, text) = cz(
        &mut out,
        &["tenant", "remove", "cafe", "--db", &dbs, "--yes"],
        &[],
        None,
    )?;
    assert!(ok, "{text}");
    assert!(!storage.secrets_all()?.iter().any(|s| s.tenant == "cafe"));
    assert_eq!(storage.kv_get("cafe", "poll/cursor")?, None);
    assert!(storage.secrets_all()?.iter().any(|s| s.tenant == "shop"));
    let (_, text) = cz(&mut out, &["tenant", "list", "--db", &dbs], &[], None)?;
    assert!(text.contains("shop") && !text.contains("cafe"), "{text}");
    let (ok, text) = cz(
        &mut out,
        &["tenant", "remove", "cafe", "--db", &dbs, "--yes"],
        &[],
        None,
    )?;
    assert!(!ok);
    assert!(
        text.contains("no tenant \"cafe\"") && text.contains("shop"),
        "{text}"
    );

    let secrets = secrets_of(&world);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    out.assert_no_secret(&secrets);
    let raw = raw_database(&db)?;
    for secret in &secrets {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret:?} is in the database in clear"
        );
    }
    Ok(())
}

/// A config file with tenant `filed` (pointing at nothing that answers).
fn write_config(dir: &Path, db: &Path, id: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
database = "{db}"
[[tenants]]
id = "{id}"
[tenants.pbx]
base_url = "http://127.0.0.1:9"
client_id = "cz"
client_secret = "{FILE_PBX_SECRET}"
[tenants.crm]
base_url = "http://127.0.0.1:9"
location_id = "loc-filed"
conversation_provider_id = "prov"
client_id = "app"
client_secret = "{FILE_CRM_SECRET}"
"#,
            db = db.display()
        ),
    )?;
    Ok(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_the_files_and_the_databases_tenants_and_refuses_a_duplicate_id()
-> anyhow::Result<()> {
    let (world, contacts) = seeded_world(defaults()).await?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("cz.db");
    let dbs = db.display().to_string();
    let mut out = Printed::default();
    let (ok, text) = add_shop(&mut out, &world, &db, &["--set", "poll_interval_ms=200"])?;
    assert!(ok, "{text}");

    // The same id in the file and the database: a clear error, no start.
    let clash = write_config(dir.path(), &db, "shop")?;
    let (ok, text) = cz(
        &mut out,
        &[
            "run",
            "--config",
            clash.to_str().context("the path is UTF-8")?,
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
        None,
    )?;
    assert!(!ok);
    assert!(
        text.contains("\"shop\" is both in") && text.contains("tenant remove shop"),
        "{text}"
    );

    let config = write_config(dir.path(), &db, "filed")?;
    // Killed when dropped, also if the test fails before stopping it.
    let mut host = crate::binary::Running(
        Command::new(BIN)
            .args([
                "--log-format",
                "json",
                "run",
                "--listen",
                "127.0.0.1:0",
                "--config",
            ])
            .arg(&config)
            .env_remove("CONNECTZERO_KEY")
            .env("RUST_LOG", "warn,connectzero=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?,
    );
    // Every stderr line goes to `lines`; the server's address comes first.
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = host.0.stderr.take().context("stderr is piped")?;
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let addr = loop {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("the host did not start serving:\n{}", log.join("\n")));
        log.push(line.clone());
        let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(addr) = json["fields"]["addr"].as_str()
            && json["fields"]["message"] == "serving the action and trigger endpoints"
        {
            break addr.to_string();
        }
    };
    let base = format!("http://{addr}");
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    // Both tenants are served; an unknown one is not.
    for (tenant, status) in [("filed", 302), ("shop", 302), ("nobody", 404)] {
        let answer = browser
            .get(format!("{base}/t/{tenant}/oauth/install"))
            .send()
            .await?;
        assert_eq!(answer.status(), status, "{tenant}");
    }
    // Install HighLevel for the database tenant, then its calls post.
    let install = browser
        .get(format!("{base}/t/shop/oauth/install"))
        .send()
        .await?;
    let location = install.headers()["location"].to_str()?.to_string();
    let state = location
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("state="))
        .map(|s| urlencoding::decode(s).unwrap().into_owned())
        .context("the install URL carries a state")?;
    let done = browser
        .get(format!("{base}/t/shop/oauth/callback"))
        .query(&[("code", world.crm.authorization_code()), ("state", state)])
        .send()
        .await?;
    assert_eq!(done.status(), 200, "{}", done.text().await?);

    Placer::default().place(
        &world,
        &one_leg(42, outside(numbers::DANA), ext("101"), true, 30),
        chrono::Utc::now(),
    );
    // Bounded wait for the separate process to post it (its poll interval
    // is 200 ms).
    let mut waited = 0;
    while world.crm.messages().is_empty() {
        assert!(waited < 600, "the database tenant's call was not posted");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    let messages = world.crm.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].contact_id, contacts["Dana Fox"]);

    let (ok, text) = cz(
        &mut out,
        &[
            "tenant",
            "list",
            "--db",
            &dbs,
            "--config",
            config.to_str().context("the path is UTF-8")?,
        ],
        &[],
        None,
    )?;
    assert!(ok, "{text}");
    assert!(
        text.contains("filed") && text.contains("shop  [database]"),
        "{text}"
    );
    assert!(text.contains("HighLevel: authorised"), "{text}");

    // doctor checks the database tenant like a file tenant.
    let (ok, text) = cz(
        &mut out,
        &[
            "doctor",
            "--config",
            config.to_str().context("the path is UTF-8")?,
            "--tenant",
            "shop",
        ],
        &[],
        None,
    )?;
    assert!(ok, "{text}");
    assert!(
        text.contains("shop") && text.contains("HighLevel scopes"),
        "{text}"
    );

    host.0.kill()?;
    host.0.wait()?;
    reader.join().unwrap();
    out.0.extend(log);
    out.0.extend(lines.try_iter());
    let secrets = secrets_of(&world);
    out.assert_no_secret(&secrets.iter().map(String::as_str).collect::<Vec<_>>());
    Ok(())
}
