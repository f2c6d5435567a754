//! Builds the stage components for `wasm32-wasip2` and hands their paths to
//! the host crate, so a plain `cargo build` produces a host with every
//! component bundled: no manual pre-step.
//!
//! The components are built by a nested `cargo build` into their own target
//! directory (`target/components`), because the outer cargo holds the lock
//! on the normal one.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Stage crates, in pipeline order, and the name of the `.wasm` each builds.
const STAGES: [(&str, &str); 8] = [
    ("connectzero-poll", "connectzero_poll"),
    ("connectzero-dedup", "connectzero_dedup"),
    ("connectzero-match", "connectzero_match"),
    ("connectzero-post", "connectzero_post"),
    ("connectzero-attach", "connectzero_attach"),
    ("connectzero-trigger", "connectzero_trigger"),
    ("connectzero-write-back", "connectzero_write_back"),
    // The orchestration: the host composes it with the stages at start-up
    // (`connectzero_compose::Deployable::Tick`), replacements included.
    ("connectzero-tick", "connectzero_tick"),
];

/// Components only the Spin deployables use: the credentials, directory
/// and call-log providers and the app entry point.
const PROVIDERS: [&str; 4] = [
    "connectzero-credentials",
    "connectzero-directory",
    "connectzero-call-log",
    "connectzero-app",
];

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("host/ sits in the workspace")
        .to_path_buf();
    for watched in ["components", "wit", "tools/compose", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    ensure_wasm_target();

    let target_dir = root.join("target").join("components");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(&root)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    for package in STAGES
        .map(|(package, _)| package)
        .into_iter()
        .chain(PROVIDERS)
    {
        build.args(["-p", package]);
    }
    // The outer build's wrappers and flags (clippy, coverage, host RUSTFLAGS)
    // are for the host, not for the wasm components.
    for var in [
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
    ] {
        build.env_remove(var);
    }
    let status = build
        .status()
        .expect("could not run cargo to build the components");
    assert!(
        status.success(),
        "building the wasm32-wasip2 components failed (see the errors above)"
    );

    let out_dir = target_dir.join(TARGET).join("release");
    for (_, artefact) in STAGES {
        let path = out_dir.join(format!("{artefact}.wasm"));
        assert!(
            path.exists(),
            "expected component {} after the build",
            path.display()
        );
        let env_name = format!(
            "CONNECTZERO_COMPONENT_{}",
            artefact.trim_start_matches("connectzero_").to_uppercase()
        );
        println!("cargo:rustc-env={env_name}={}", path.display());
    }
    println!(
        "cargo:rustc-env=CONNECTZERO_COMPONENTS_DIR={}",
        out_dir.display()
    );

    // The deployables, from the one composition graph (the host composes
    // the tick itself at start-up, so replacements go into it; this file
    // is for inspection and the import checks).
    for deployable in connectzero_compose::Deployable::ALL {
        let bytes = connectzero_compose::compose(deployable, &out_dir)
            .unwrap_or_else(|e| panic!("composing {deployable:?} failed: {e}"));
        let path = out_dir.join(deployable.file_name());
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

/// Make sure the wasm32-wasip2 standard library is installed; add it with
/// rustup when it is missing, or stop with the command to run.
fn ensure_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let installed = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .is_some_and(|dir| has_std(&dir));
    if installed {
        return;
    }
    println!("cargo:warning=the {TARGET} target is missing; running `rustup target add {TARGET}`");
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        added,
        "the {TARGET} Rust target is not installed and `rustup target add {TARGET}` failed: run it yourself, then build again"
    );
}

fn has_std(libdir: &Path) -> bool {
    std::fs::read_dir(libdir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
        })
        .unwrap_or(false)
}
