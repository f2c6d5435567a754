//! The README's "Installing a tenant" section, walked command by command
//! with the real binary against loopback simulators, so the README cannot
//! drift from the CLI again (issue 24: its `doctor` step once failed with
//! "reading connectzero.toml").
//!
//! The commands are read from the section's fenced `sh` blocks, not copied
//! here: what the README tells an operator to type is exactly what runs.
//! Only what cannot be real in a test is substituted, each from a fixed
//! table whose entries must all appear in the README: the 3CX and
//! HighLevel URLs (the simulators), the `<app client id>` placeholder and
//! the listen port (any free one). The secrets the README leaves as `…` in
//! its `export` lines are set in the commands' environment only, and no
//! output (nor a failure message) may show them. The simulators are
//! configured with the README's example ids, so those stay as written.

use crate::binary;
use anyhow::Context;

use connectzero_simulators::highlevel::{HighLevelConfig, HighLevelSim, SimContact};
use connectzero_simulators::threecx::{ThreeCxConfig, ThreeCxSim};
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const README: &str = include_str!("../../../README.md");
const SECTION: &str = "## Installing a tenant";

/// The README's example values that only the simulators can stand for.
const PBX_URL: &str = "https://acme.3cx.eu";
const CRM_URL: &str = "https://services.leadconnectorhq.com";
const APP_CLIENT_ID: &str = "<app client id>";
const LISTEN: &str = "127.0.0.1:8787";
/// The README's example tenant.
const TENANT: &str = "acme";
/// The README's example ids, given to the simulators as they are.
const PBX_CLIENT_ID: &str = "connectzero";
const LOCATION: &str = "ve9EPM428h8vShlRW1KT";
const PROVIDER: &str = "61d6d1f9cdac7612faf80753";
/// The number the README's `match` example looks up, and who has it.
const MATCH_NUMBER: &str = "+14155550101";
const CONTACT: (&str, &str) = ("Dana", "Fox");

/// Longest wait for `connectzero run` to start serving (it compiles the
/// components first; a debug build on two cores is slow).
const START_LIMIT: Duration = Duration::from_secs(300);

/// One line of a README block, as the walkthrough runs it.
#[derive(Debug)]
enum Step {
    /// `export NAME=VALUE`.
    Export { name: String, value: String },
    /// `connectzero ARGS…`, after substitution.
    Connectzero(Vec<String>),
}

/// The fenced `sh` blocks of the README's "Installing a tenant" section,
/// each as its lines (indentation, comments and `\` continuations
/// resolved), in order.
fn section_commands(readme: &str) -> Vec<String> {
    let start = readme
        .find(&format!("\n{SECTION}\n"))
        .unwrap_or_else(|| panic!("the README has no {SECTION:?} section"));
    let rest = &readme[start + 1 + SECTION.len()..];
    let section = rest.find("\n## ").map_or(rest, |end| &rest[..end]);
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in section.lines() {
        let trimmed = line.trim();
        if !in_block {
            in_block = trimmed == "```sh";
            continue;
        }
        if trimmed == "```" {
            assert!(pending.is_empty(), "a block ends in a continuation");
            in_block = false;
            continue;
        }
        // A comment runs from a `#` at the start or after a blank.
        let code = if trimmed.starts_with('#') {
            ""
        } else {
            trimmed.find(" #").map_or(trimmed, |at| &trimmed[..at])
        }
        .trim_end();
        match code.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head.trim_end());
                pending.push(' ');
            }
            None => {
                pending.push_str(code);
                let command = std::mem::take(&mut pending);
                if !command.trim().is_empty() {
                    commands.push(command.trim().to_string());
                }
            }
        }
    }
    assert!(!in_block, "an unterminated block in {SECTION:?}");
    commands
}

/// Substitute the simulator values for the README's, then split into
/// [`Step`]s. Every substituted value must occur, so a changed example in
/// the README fails here rather than running against the real services.
fn steps(commands: &[String], substitutions: &[(&str, String)]) -> Vec<Step> {
    for (from, _) in substitutions {
        assert!(
            commands.iter().any(|c| c.contains(from)),
            "the README's commands no longer contain {from:?}: update the walkthrough's substitutions"
        );
    }
    commands
        .iter()
        .map(|command| {
            let mut command = command.clone();
            for (from, to) in substitutions {
                command = command.replace(from, to);
            }
            let words: Vec<String> = command.split_whitespace().map(String::from).collect();
            match words.first().map(String::as_str) {
                Some("export") => {
                    assert_eq!(words.len(), 2, "an export of one variable: {command}");
                    let (name, value) = words[1]
                        .split_once('=')
                        .unwrap_or_else(|| panic!("export NAME=VALUE: {command}"));
                    Step::Export {
                        name: name.to_string(),
                        value: value.to_string(),
                    }
                }
                Some("connectzero") => Step::Connectzero(words[1..].to_vec()),
                _ => panic!(
                    "the walkthrough does not know how to run {command:?} from the README: teach it"
                ),
            }
        })
        .collect()
}

/// Everything the binary printed, checked for secrets at the end; failure
/// messages show it with the secrets replaced.
struct Outputs {
    secrets: Vec<String>,
    printed: Vec<String>,
}

impl Outputs {
    fn redacted(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_string(), |text, secret| {
            text.replace(secret, "<secret>")
        })
    }

    fn record(&mut self, text: String) -> String {
        self.printed.push(text.clone());
        self.redacted(&text)
    }

    fn assert_no_secret(&self) {
        for text in &self.printed {
            for secret in &self.secrets {
                assert!(
                    !text.contains(secret.as_str()),
                    "a secret was printed:\n{}",
                    self.redacted(text)
                );
            }
        }
    }
}

/// The binary in `dir` with the environment the README's exports set
/// (and nothing of the caller's that would change where it looks).
fn connectzero(dir: &Path, env: &BTreeMap<String, String>, args: &[String]) -> Command {
    let mut command = binary::in_dir(dir);
    command.args(args);
    command.envs(env);
    command
}

/// Run a command to its end off the async runtime (the simulators live on
/// it): success and stdout + stderr.
async fn finish(mut command: Command) -> anyhow::Result<(bool, String)> {
    let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.success(), text))
}

use crate::binary::Running;

/// A started `connectzero run`: the process, its address, the lines it
/// printed until it served, and the rest of its output (until it ends).
type Host = (Running, String, Vec<String>, mpsc::Receiver<String>);

/// The README's `connectzero run`: start it and wait (bounded) until it
/// serves. `Err` with what it printed when it did not (unredacted: the
/// caller redacts before showing it).
fn start_host(mut command: Command) -> Result<Host, Vec<String>> {
    let mut child = Running(
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Both streams are drained into one channel so neither pipe fills.
    let (tx, lines) = mpsc::channel::<String>();
    for stream in [
        Box::new(child.0.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.0.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    // `run` prints where its status page is once it is listening:
    // "status page: http://ADDR/admin …".
    let mut seen = Vec::new();
    let addr = loop {
        match lines.recv_timeout(START_LIMIT) {
            Ok(line) => {
                let addr = line
                    .strip_prefix("status page: http://")
                    .and_then(|rest| rest.split('/').next())
                    .map(String::from);
                seen.push(line);
                if let Some(addr) = addr {
                    break addr;
                }
            }
            Err(_) => {
                drop(child);
                seen.extend(lines.try_iter());
                return Err(seen);
            }
        }
    };
    Ok((child, addr, seen, lines))
}

/// Step 5, as the sub-account admin's browser does it: open the install
/// URL, approve at HighLevel (the simulator's code), follow the callback.
async fn authorise(base: &str, tenant: &str, crm: &HighLevelSim) -> anyhow::Result<String> {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let install = browser
        .get(format!("{base}/t/{tenant}/oauth/install"))
        .send()
        .await?;
    assert_eq!(install.status(), 302, "the install page did not redirect");
    let location = install.headers()["location"].to_str()?.to_string();
    let state = location
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("state="))
        .map(|s| urlencoding::decode(s).unwrap().into_owned())
        .context("the redirect carries a state")?;
    // HighLevel sends the browser to the redirect URL the link named (the
    // one URL of every tenant), with a code bound to it.
    let redirect_uri = location
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("redirect_uri="))
        .map(|s| urlencoding::decode(s).unwrap().into_owned())
        .context("the redirect carries a redirect_uri")?;
    assert_eq!(redirect_uri, format!("{base}/oauth/callback"));
    let code = crm.authorization_code_at(&crm.config().location_id, &redirect_uri);
    let done = browser
        .get(&redirect_uri)
        .query(&[("code", code), ("state", state)])
        .send()
        .await?;
    let status = done.status();
    let text = done.text().await?;
    assert_eq!(status, 200, "the OAuth callback answered {status}");
    Ok(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_installs_checks_and_removes_a_tenant_against_the_simulators()
-> anyhow::Result<()> {
    let pbx_secret = format!("readme-pbx-secret-{:016x}", rand::random::<u64>());
    let crm_secret = format!("readme-crm-secret-{:016x}", rand::random::<u64>());
    let action_secret = format!("readme-action-secret-{:016x}", rand::random::<u64>());
    let app_client_id = "readme-app-client";
    let pbx = ThreeCxSim::start(ThreeCxConfig {
        client_id: PBX_CLIENT_ID.into(),
        client_secret: pbx_secret.clone(),
        ..ThreeCxConfig::default()
    })
    .await?;
    let crm = HighLevelSim::start(HighLevelConfig {
        client_id: app_client_id.into(),
        client_secret: crm_secret.clone(),
        location_id: LOCATION.into(),
        conversation_provider_id: PROVIDER.into(),
        rate_limit: None,
        ..HighLevelConfig::default()
    })
    .await?;
    let contact = crm.add_contact(SimContact::new(CONTACT.0, CONTACT.1).phone(MATCH_NUMBER));
    let secrets = BTreeMap::from([
        ("CONNECTZERO_PBX_CLIENT_SECRET", pbx_secret.clone()),
        ("CONNECTZERO_CRM_CLIENT_SECRET", crm_secret.clone()),
        ("CONNECTZERO_ACTION_SECRET", action_secret.clone()),
    ]);
    let mut out = Outputs {
        secrets: secrets.values().cloned().collect(),
        printed: Vec::new(),
    };

    let steps = steps(
        &section_commands(README),
        &[
            (PBX_URL, pbx.base_url()),
            (CRM_URL, crm.base_url()),
            (APP_CLIENT_ID, app_client_id.to_string()),
            (LISTEN, "127.0.0.1:0".to_string()),
        ],
    );
    // The operator's working directory: relative paths in the README
    // (the database) land here.
    let dir = tempfile::tempdir()?;
    let mut env = BTreeMap::new();
    let mut ran = BTreeSet::new();
    for step in &steps {
        let args = match step {
            Step::Export { name, value } if value == "…" => {
                let secret = secrets.get(name.as_str()).unwrap_or_else(|| {
                    panic!("the README exports {name}=… but the walkthrough has no value for it")
                });
                env.insert(name.clone(), secret.clone());
                continue;
            }
            Step::Export { name, value } => {
                env.insert(name.clone(), value.clone());
                continue;
            }
            Step::Connectzero(args) => args,
        };
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        let shown = format!("connectzero {}", words.join(" "));
        let command = connectzero(dir.path(), &env, args);
        if words.first() == Some(&"run") {
            ran.insert("run");
            let (host, addr, mut log, rest) = start_host(command).unwrap_or_else(|log| {
                panic!(
                    "`{shown}` did not start serving:\n{}",
                    out.redacted(&log.join("\n"))
                )
            });
            let answer = authorise(&format!("http://{addr}"), TENANT, &crm).await?;
            assert!(
                answer.contains("ConnectZero is authorised"),
                "{}",
                out.redacted(&answer)
            );
            // 3CX keeps one token per API client: a host polling beside
            // doctor would take turns with it (the README's doctor works
            // while `run` runs, but one retry is all doctor allows), so
            // the walkthrough stops the host once it has served step 5.
            drop(host);
            // Ends once both pipes close with the process.
            log.extend(rest.iter());
            out.record(log.join("\n"));
            continue;
        }
        let (ok, text) = finish(command).await?;
        let text = out.record(text);
        assert!(ok, "`{shown}` failed:\n{text}");
        let has = |part: &str| assert!(text.contains(part), "no {part:?} from `{shown}`:\n{text}");
        match words.as_slice() {
            ["tenant", "add", TENANT, ..] => {
                ran.insert("tenant add");
                has(&format!("added tenant {TENANT}"));
            }
            ["tenant", "list", ..] => {
                ran.insert("tenant list");
                has(&format!("{TENANT}  [database]"));
                has(LOCATION);
                has("not installed yet");
            }
            ["tenant", "settings", TENANT, ..] => {
                ran.insert("tenant settings");
                has("default_country = GB");
                has("log_internal_calls = true");
            }
            ["doctor", ..] => {
                ran.insert("doctor");
                has("HighLevel scopes");
                assert!(!text.contains('✗'), "`{shown}` found a problem:\n{text}");
            }
            ["match", ..] => {
                ran.insert("match");
                has(&format!(
                    "match: {} {} (contact {contact})",
                    CONTACT.0, CONTACT.1
                ));
            }
            ["tenant", "remove", TENANT, ..] => {
                ran.insert("tenant remove");
                has(&format!("removed tenant {TENANT}"));
            }
            _ => panic!("the walkthrough has no check for `{shown}` from the README: add one"),
        }
    }
    let expected = BTreeSet::from([
        "tenant add",
        "tenant list",
        "tenant settings",
        "run",
        "doctor",
        "match",
        "tenant remove",
    ]);
    assert_eq!(
        ran, expected,
        "the README's walkthrough no longer has every step"
    );

    // The tenant is gone, seen the way the README finds it.
    let (ok, text) = finish(connectzero(
        dir.path(),
        &env,
        &["tenant".into(), "list".into()],
    ))
    .await?;
    let text = out.record(text);
    assert!(ok && text.contains("no tenants"), "{text}");
    out.assert_no_secret();
    Ok(())
}

/// The section parser on a small sample: indented blocks, comments,
/// continuations; prose outside blocks and other sections are ignored.
#[test]
fn section_commands_reads_the_blocks_as_a_shell_would() -> anyhow::Result<()> {
    let readme = "# T\n\n```sh\nconnectzero demo\n```\n\n## Installing a tenant\n\ntext `connectzero x`\n\n   ```sh\n   export A=1   # why\n   # a comment\n   connectzero tenant add acme \\\n       --pbx-url u\n   ```\n\n```sh\nconnectzero doctor\n```\n\n## Next\n\n```sh\nconnectzero run\n```\n";
    assert_eq!(
        section_commands(readme),
        [
            "export A=1",
            "connectzero tenant add acme --pbx-url u",
            "connectzero doctor"
        ]
    );
    Ok(())
}
