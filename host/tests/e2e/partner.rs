//! The partner kit through the real binary: `components verify`, the
//! example partner matcher (`examples/partner-matcher`) loaded with
//! `--components DIR`, and the `match` dry run.

use crate::common;
use anyhow::Context;

use connectzero::config::HostConfig;
use connectzero::demo::numbers::{DANA, ELI, IVY};
use connectzero::engine::Stage;
use connectzero::testbed::World;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_connectzero");

/// Where the host's build put the bundled components.
const BUILT: &str = connectzero::engine::COMPONENTS_DIR;

/// `examples/partner-matcher`, built for wasm32-wasip2 the way a partner
/// would, once per test binary.
fn partner_matcher() -> &'static Path {
    static BUILT_PARTNER: OnceLock<PathBuf> = OnceLock::new();
    BUILT_PARTNER.get_or_init(|| {
        common::build_component("connectzero-partner-matcher", "connectzero_partner_matcher")
            .expect("the partner matcher builds")
    })
}

fn run(args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(BIN).args(args).output()?)
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn verify(file: &Path, stage: Option<&str>) -> anyhow::Result<Output> {
    let mut args = vec![
        "components",
        "verify",
        file.to_str().context("the path is UTF-8")?,
    ];
    if let Some(stage) = stage {
        args.extend(["--stage", stage]);
    }
    run(&args)
}

fn built(stage: Stage) -> PathBuf {
    Path::new(BUILT).join(stage.file_name())
}

#[test]
fn verify_accepts_the_bundled_matcher_and_the_partner_matcher() -> anyhow::Result<()> {
    for (file, stage) in [
        (built(Stage::Match), None),
        (partner_matcher().to_path_buf(), Some("match")),
    ] {
        let output = verify(&file, stage)?;
        let (stdout, stderr) = text(&output);
        assert!(
            output.status.success(),
            "{}:\n{stdout}\n{stderr}",
            file.display()
        );
        assert!(
            stdout.contains(
                "ok: implements the match-stage world (stage match): exports connectzero:matcher/matcher with match-calls"
            ),
            "{stdout}"
        );
        assert!(
            stdout.contains("connectzero:matcher/directory@0.1.0"),
            "{stdout}"
        );
        assert!(!stdout.contains("wasi:http"), "{stdout}");
    }
    Ok(())
}

#[test]
fn verify_rejects_a_matcher_that_imports_wasi_http() -> anyhow::Result<()> {
    // The post component as a matcher: it wants the network and secrets.
    let output = verify(&built(Stage::Post), Some("match"))?;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("does not implement the match-stage world"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "it imports wasi:http/outgoing-handler@0.2.4, which the match-stage world does not grant"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("it imports connectzero:pipeline/credentials@0.1.0"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "the match-stage world grants only connectzero:matcher/directory, WASI cli, clocks, io, random and filesystem"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "it does not export connectzero:matcher/matcher (it exports connectzero:pipeline/post@0.1.0)"
        ),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn verify_rejects_a_component_of_another_world_and_a_file_that_is_no_component()
-> anyhow::Result<()> {
    let output = verify(&built(Stage::Dedup), Some("poll"))?;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("does not implement the poll-stage world"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "it does not export connectzero:pipeline/poll (it exports connectzero:pipeline/dedup@0.1.0); build it for the poll-stage world"
        ),
        "{stderr}"
    );
    // Without --stage the stage is read from the exports: dedup fits dedup.
    let output = verify(&built(Stage::Dedup), None)?;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("dedup-stage world"), "{stdout}");

    let dir = tempfile::tempdir()?;
    let junk = dir.path().join("matcher.wasm");
    std::fs::write(&junk, b"not wasm")?;
    let output = verify(&junk, Some("match"))?;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a WASI 0.2 component"), "{stderr}");
    let output = verify(&junk, Some("nonsense"))?;
    let (_, stderr) = text(&output);
    assert!(!output.status.success());
    assert!(
        stderr.contains("unknown stage \"nonsense\": one of poll, dedup, match"),
        "{stderr}"
    );
    Ok(())
}

/// Simulators with the demo's contacts, and a configuration file that
/// points the real binary at them.
async fn simulated_tenant(
    dir: &Path,
) -> anyhow::Result<(
    World,
    std::collections::HashMap<&'static str, String>,
    PathBuf,
)> {
    let (world, contacts) = common::seeded_world(common::defaults()).await?;
    let config = HostConfig {
        database: dir.join("connectzero.db").display().to_string(),
        tenants: vec![world.config().clone()],
    };
    let path = dir.join("connectzero.toml");
    std::fs::write(&path, toml::to_string(&config)?)?;
    Ok((world, contacts, path))
}

/// `connectzero [--components DIR] match --config FILE --tenant demo ARGS…`,
/// run off the async runtime (the simulators live on it).
async fn dry_run(
    components: Option<&Path>,
    config: &Path,
    args: &[&str],
) -> anyhow::Result<(bool, String, String)> {
    let mut command = Command::new(BIN);
    if let Some(dir) = components {
        command.arg("--components").arg(dir);
    }
    command
        .args(["match", "--config"])
        .arg(config)
        .args(["--tenant", "demo"])
        .args(args);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await?;
    let (stdout, stderr) = text(&output);
    Ok((output.status.success(), stdout, stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_match_dry_run_shows_the_contact_the_rule_and_any_ambiguity() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (world, contacts, config) = simulated_tenant(dir.path()).await?;

    let (ok, stdout, stderr) = dry_run(None, &config, &[DANA]).await?;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "match: Dana Fox (contact {})",
            contacts["Dana Fox"]
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("rule: caller-number (on {DANA})")),
        "{stdout}"
    );
    assert!(stdout.contains("ambiguity: none"), "{stdout}");

    let (ok, stdout, stderr) = dry_run(None, &config, &["--direction", "outbound", ELI]).await?;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("outbound call to"), "{stdout}");
    assert!(stdout.contains("match: Eli Grant"), "{stdout}");
    assert!(stdout.contains("rule: called-number"), "{stdout}");

    let (ok, stdout, _) = dry_run(None, &config, &[IVY]).await?;
    assert!(ok, "{stdout}");
    assert!(stdout.contains("match: Gus Ivy"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "ambiguity: 1 other contact(s) match too: Hal Ivy (contact {}); the matcher's first choice is Gus Ivy",
            contacts["Hal Ivy"]
        )),
        "{stdout}"
    );

    // A national number is normalised by the matcher before the lookup.
    let (ok, stdout, _) = dry_run(None, &config, &["(415) 555-0199"]).await?;
    assert!(ok, "{stdout}");
    assert!(
        stdout.contains("match: none (no contact has +14155550199)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("no-match policy: skip: the call would not be posted"),
        "{stdout}"
    );

    // A replacement matcher answers the dry run too: the partner's rule
    // picks the newest contact of the shared number.
    let components = tempfile::tempdir()?;
    std::fs::copy(
        partner_matcher(),
        components.path().join(Stage::Match.file_name()),
    )?;
    let (ok, stdout, stderr) = dry_run(Some(components.path()), &config, &[IVY]).await?;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("match: Hal Ivy"), "{stdout}");
    assert!(stdout.contains("Gus Ivy (contact"), "{stdout}");

    // Nothing was posted, claimed or created.
    assert!(world.crm.messages().is_empty());
    assert_eq!(world.crm.contacts().len(), contacts.len());
    Ok(())
}

use crate::binary::Running;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_binary_runs_the_partner_matcher_from_a_components_directory() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let (world, contacts, config) = simulated_tenant(dir.path()).await?;
    let components = tempfile::tempdir()?;
    std::fs::copy(
        partner_matcher(),
        components.path().join(Stage::Match.file_name()),
    )?;

    let host = Running(
        Command::new(BIN)
            .arg("--components")
            .arg(components.path())
            .args(["run", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    // A call from the number Gus Ivy (older) and Hal Ivy (newer) share.
    common::place(
        &world,
        &mut connectzero::demo::Placer::default(),
        &common::one_leg(1, common::outside(IVY), common::ext("102"), true, 35),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while world.crm.messages().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(host);
    let messages = world.crm.messages();
    assert_eq!(messages.len(), 1, "the host posted {messages:?}");
    // The bundled matcher would pick Gus Ivy (the oldest); the partner's
    // rule picks the newest.
    assert_eq!(messages[0].contact_id, contacts["Hal Ivy"]);
    Ok(())
}
