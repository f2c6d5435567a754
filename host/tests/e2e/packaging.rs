//! What ships: the production build (`--no-default-features`, docs/DEPLOY.md)
//! links none of the dev kit's simulators; the default build, which runs
//! the demo, does.

use anyhow::Context;
use std::path::Path;
use std::process::Command;

/// `cargo tree -i connectzero-simulators` for the host with `features`:
/// whether the simulators are in its normal (linked) dependencies.
fn links_simulators(features: &[&str]) -> anyhow::Result<bool> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .args(["tree", "--offline", "-p", "connectzero", "-e", "normal"])
        .args(features)
        .args(["-i", "connectzero-simulators"])
        .output()
        .context("cargo runs")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        return Ok(true);
    }
    // Any other failure is not an answer.
    assert!(
        stderr.contains("did not match any packages"),
        "cargo tree failed: {stderr}"
    );
    Ok(false)
}

#[test]
fn the_production_build_links_no_simulator_and_the_dev_kit_does() -> anyhow::Result<()> {
    assert!(!links_simulators(&["--no-default-features"])?);
    assert!(links_simulators(&[])?);
    Ok(())
}
