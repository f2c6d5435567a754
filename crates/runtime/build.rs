//! Builds the stage components for `wasm32-wasip2` and hands their paths to
//! the runtime crate, so a plain `cargo build` produces a host with every
//! component bundled: no manual pre-step.
//!
//! The components are built by a nested `cargo build` into their own target
//! directory (`target/components`), because the outer cargo holds the lock
//! on the normal one.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use connectzero_stages::{COMPONENTS, TARGET};

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("crates/runtime sits in the workspace")
        .to_path_buf();
    for watched in [
        "components",
        "wit",
        "tools/compose",
        "tools/stages",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    println!(
        "cargo:rerun-if-env-changed={}",
        connectzero_stages::LINT_COMPONENTS
    );

    ensure_wasm_target();

    let target_dir = root.join("target").join("components");
    let mut build = connectzero_stages::wasm_build(&root, &target_dir);
    // Every component of the one table: the stages and the tick (bundled),
    // the Spin providers and the app (composed into the Spin deployables);
    // when CI lints them, the test fixtures too.
    let lint = env::var_os(connectzero_stages::LINT_COMPONENTS).is_some();
    for package in connectzero_stages::wasm_packages(lint) {
        build.args(["-p", package]);
    }
    let status = build
        .status()
        .expect("could not run cargo to build the components");
    assert!(
        status.success(),
        "building the wasm32-wasip2 components failed (see the errors above)"
    );

    let out_dir = target_dir
        .join(TARGET)
        .join(connectzero_stages::COMPONENT_PROFILE);
    for component in COMPONENTS.iter().filter(|c| c.bundled()) {
        let path = out_dir.join(component.file);
        assert!(
            path.exists(),
            "expected component {} after the build",
            path.display()
        );
        println!("cargo:rustc-env={}={}", component.env_var(), path.display());
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
