//! The `connectzero` binary itself.

use crate::binary;

use binary::{BIN, in_dir};
use std::process::Command;

#[test]
fn the_demo_handles_every_call_as_expected_and_exits_zero() -> anyhow::Result<()> {
    let output = Command::new(BIN).arg("demo").output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains(
            "21 calls: 16 posted, 5 skipped, 0 other; 16 messages in the CRM; 0 not as expected"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains('✗'), "{stdout}");
    // With the official documents beside the repository (always in CI,
    // where their absence fails the run), every request was refereed.
    let refereed = if connectzero_simulators::spec::enabled() {
        "0 violations of the official API documents"
    } else {
        "requests not checked against the official API documents"
    };
    assert!(stdout.contains(refereed), "{stdout}");
    assert!(
        stdout.contains("3 recordings attached (3 uploads); workflow triggers delivered: 21 call.started, 16 call.ended, 2 missed-call, 1 missed-call.recovered, 1 call.insights"),
        "{stdout}"
    );
    // One call gains 3CX's summary and sentiment and fires call.insights.
    assert!(
        stdout.contains(&format!(
            "3CX call insights: Dana Fox's call gained 1 summary note (\"{}\") and sentiment \"{}\" in connectzero_call_sentiment; call.insights fired with sentimentScore {}",
            connectzero::demo::DEMO_SUMMARY,
            connectzero::demo::DEMO_SENTIMENT,
            connectzero::demo::DEMO_SENTIMENT,
        )),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn run_explains_a_bad_configuration() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("connectzero.toml");
    std::fs::write(
        &config,
        r#"
[[tenants]]
id = "acme"
[tenants.pbx]
base_url = "http://pbx.example.com"
client_id = "connectzero"
client_secret = "do-not-print-me"
[tenants.crm]
location_id = "loc"
conversation_provider_id = "prov"
client_id = "app"
client_secret = "app-secret"
refresh_token = "refresh"
"#,
    )?;
    let output = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("pbx.base_url"), "{stderr}");
    assert!(stderr.contains("use https://"), "{stderr}");
    assert!(!stderr.contains("do-not-print-me"), "{stderr}");
    Ok(())
}

/// A smoke run of `connectzero bench`: it runs and prints what each figure
/// is. Figures are not checked: they depend on the machine.
#[test]
fn bench_prints_the_boundary_figures() -> anyhow::Result<()> {
    // Its figures go to a folder of the test's, not the working tree.
    let results = tempfile::tempdir()?;
    let output = Command::new(BIN)
        .args(["bench", "--quick", "--scenario", "boundary", "--results"])
        .arg(results.path())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        results.path().join("latest-quick.json").exists(),
        "the quick run's figures are saved where --results says"
    );
    for label in [
        "== boundary ==",
        "measures:",
        "empty batch",
        "distinct numbers",
        "whole pipeline:",
        "target < 1.05 on the whole pipeline:",
    ] {
        assert!(stdout.contains(label), "no {label:?} in:\n{stdout}");
    }
    Ok(())
}

/// Every subcommand that reads tenants or the database, with the least
/// arguments it needs to get as far as looking for them.
const READS_TENANTS: &[&[&str]] = &[
    &["run", "--listen", "127.0.0.1:0"],
    &["doctor"],
    &["match", "--tenant", "acme", "+14155550101"],
    &["backfill", "--tenant", "acme", "--since", "2026-01-01"],
    &["replay", "--tenant", "acme", "--call", "3cx:1@5"],
    &["keys", "rotate"],
    &[
        "tenant",
        "add",
        "acme",
        "--pbx-url",
        "https://acme.3cx.example",
        "--pbx-client-id",
        "cz",
        "--crm-location",
        "loc",
        "--crm-provider",
        "prov",
        "--crm-client-id",
        "app",
    ],
    &["tenant", "list"],
    &["tenant", "settings", "acme"],
    &["tenant", "remove", "acme"],
];

/// The subcommand's name as typed (`tenant add`), without its arguments.
fn name_of(args: &[&str]) -> String {
    let words = if matches!(args[0], "keys" | "tenant") {
        2
    } else {
        1
    };
    args[..words].join(" ")
}

/// The same two options, documented once: each subcommand's help shows
/// them under one heading with the same text and environment variables.
#[test]
fn every_subcommand_that_reads_tenants_takes_the_same_location_options() -> anyhow::Result<()> {
    let mut first: Option<(String, String)> = None;
    for args in READS_TENANTS {
        let name = name_of(args);
        let mut help_args: Vec<&str> = name.split(' ').collect();
        help_args.push("--help");
        let output = Command::new(BIN).args(&help_args).output()?;
        let help = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{name} --help: {output:?}");
        let options = help
            .split_once("Where the tenants are:")
            .unwrap_or_else(|| panic!("no location options in `{name} --help`:\n{help}"))
            .1
            // `--help` lays out long and short help differently.
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for part in [
            "--config <FILE>",
            "--db <FILE>",
            "[env: CONNECTZERO_CONFIG=]",
            "[env: CONNECTZERO_DB=]",
            "connectzero.toml",
            "connectzero.db",
        ] {
            assert!(
                options.contains(part),
                "no {part:?} in `{name} --help`:\n{help}"
            );
        }
        match &first {
            None => first = Some((name, options)),
            Some((first_name, first_options)) => assert_eq!(
                &options, first_options,
                "`{name} --help` and `{first_name} --help` describe them differently"
            ),
        }
    }
    Ok(())
}

/// Neither a configuration file nor a database: one line saying what was
/// looked for and the two ways to fix it, a non-zero exit, no backtrace.
#[test]
fn without_a_configuration_file_or_database_every_subcommand_says_what_it_looked_for()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for args in READS_TENANTS {
        let name = name_of(args);
        let output = in_dir(dir.path()).args(*args).output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "`{name}` succeeded: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "`{name}`:\n{stderr}");
        for part in [
            "connectzero.toml",
            "connectzero.db",
            &dir.path().display().to_string(),
            "--config FILE",
            "CONNECTZERO_CONFIG",
            "--db FILE",
            "CONNECTZERO_DB",
        ] {
            assert!(
                stderr.contains(part),
                "no {part:?} from `{name}`:\n{stderr}"
            );
        }
        assert!(!stderr.contains("backtrace"), "`{name}`:\n{stderr}");
    }
    // Nothing was created while looking.
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 0);
    Ok(())
}

/// `--db`, `--config` and their environment variables mean the same in
/// every subcommand: doctor (which once had no `--db`) finds a database
/// alone; the flag wins over the variable; the file's `database` is used
/// when no database is named; `connectzero.db` is found by default.
#[test]
fn the_database_and_configuration_are_found_the_same_way_by_every_subcommand() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let output = in_dir(dir.path())
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };

    let (ok, text) = run(&["doctor", "--db", "flag.db"], &[]);
    assert!(!ok);
    assert!(
        text.contains("no tenants configured in the database flag.db"),
        "{text}"
    );
    let (ok, text) = run(&["doctor"], &[("CONNECTZERO_DB", "env.db")]);
    assert!(!ok);
    assert!(
        text.contains("no tenants configured in the database env.db"),
        "{text}"
    );
    let (ok, text) = run(
        &["tenant", "list", "--db", "flag.db"],
        &[("CONNECTZERO_DB", "other.db")],
    );
    assert!(ok && text.contains("no tenants"), "{text}");
    assert!(!dir.path().join("other.db").exists());

    std::fs::write(dir.path().join("cz.toml"), "database = \"from-file.db\"\n")?;
    let (ok, text) = run(&["tenant", "list"], &[("CONNECTZERO_CONFIG", "cz.toml")]);
    assert!(ok && text.contains("no tenants"), "{text}");
    assert!(dir.path().join("from-file.db").exists());
    let (ok, text) = run(&["doctor", "--config", "cz.toml", "--tenant", "acme"], &[]);
    assert!(!ok);
    assert!(
        text.contains("cz.toml or the database from-file.db"),
        "{text}"
    );
    // An exported database that is not the one the file names is refused,
    // not quietly used (it may be empty: no ledger, calls re-posted).
    let (ok, text) = run(
        &["tenant", "list", "--config", "cz.toml"],
        &[("CONNECTZERO_DB", "exported.db")],
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("CONNECTZERO_DB (exported.db) is not the database cz.toml names"),
        "{text}"
    );
    assert!(!dir.path().join("exported.db").exists());
    // A named configuration file must exist.
    let (ok, text) = run(&["tenant", "list", "--config", "absent.toml"], &[]);
    assert!(!ok && text.contains("reading absent.toml"), "{text}");

    // connectzero.db in the current directory, with nothing named.
    let (ok, text) = run(&["tenant", "list", "--db", "connectzero.db"], &[]);
    assert!(ok, "{text}");
    let (ok, text) = run(&["doctor", "--tenant", "acme"], &[]);
    assert!(!ok);
    assert!(
        text.contains("no tenant \"acme\" in the database connectzero.db"),
        "{text}"
    );
    Ok(())
}
