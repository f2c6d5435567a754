//! The `connectzero` binary itself.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_connectzero");

#[test]
fn the_demo_handles_every_call_as_expected_and_exits_zero() {
    let output = Command::new(BIN).arg("demo").output().unwrap();
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
    assert!(
        stdout.contains("3 recordings attached (3 uploads); workflow triggers delivered: 21 call.started, 16 call.ended, 2 missed-call, 1 missed-call.recovered"),
        "{stdout}"
    );
}

#[test]
fn run_explains_a_bad_configuration() {
    let dir = tempfile::tempdir().unwrap();
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
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("pbx.base_url"), "{stderr}");
    assert!(stderr.contains("use https://"), "{stderr}");
    assert!(!stderr.contains("do-not-print-me"), "{stderr}");
}

/// A smoke run of `connectzero bench`: it runs and prints what each figure
/// is. Figures are not checked: they depend on the machine.
#[test]
fn bench_prints_the_boundary_figures() {
    let output = Command::new(BIN)
        .args(["bench", "--quick", "--scenario", "boundary"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
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
}
