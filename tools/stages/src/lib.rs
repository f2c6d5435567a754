//! # connectzero-stages: the one list of the components
//!
//! Every WASI component ConnectZero builds is declared once, in
//! [`COMPONENTS`]: its cargo package, its `.wasm` file, its WIT world, the
//! interface it exports with its functions, and what it may import (its
//! [`Grant`]s). Everything that needs the list reads it from here:
//!
//! - `crates/runtime/build.rs`: which packages to build for `wasm32-wasip2` and
//!   which files to bundle into the host;
//! - `connectzero-compose`: the pipeline's order, the import check of every
//!   component it composes, which provider plugs into which stage;
//! - the host's linkers (`crates/runtime/src/engine.rs`), `components verify` and the
//!   metrics' label sets.
//!
//! The tests in `tests/` hold the table to the WIT worlds in `wit/`, and
//! `spin.toml`, `.ci/run` and the workspace to the table, so adding a stage
//! is one row here plus its crate and its world.
//!
//! This crate depends on nothing (the runtime's build script links it) and
//! knows nothing of wasmtime, wac or Spin: facts only.

#![deny(missing_docs)]

mod table;

pub use table::COMPONENTS;

/// The target every component is built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The WIT package of the pipeline (`wit/*.wit`).
pub const PIPELINE_PACKAGE: &str = "connectzero:pipeline";

/// The WIT package of the matcher contract (`wit/matcher/matcher.wit`),
/// which a partner's matcher is built from alone.
pub const MATCHER_PACKAGE: &str = "connectzero:matcher";

/// Interfaces every component may import whatever its world: what Rust's
/// standard library for `wasm32-wasip2` imports, and the type-only
/// `connectzero:pipeline/types` and `connectzero:matcher/types`. Prefixes
/// of versioned names.
pub const ALWAYS_GRANTED: [&str; 7] = [
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:io/",
    "wasi:random/",
    "wasi:filesystem/",
    "connectzero:pipeline/types@",
    "connectzero:matcher/types@",
];

/// A replaceable stage of the pipeline: what an operator may swap with
/// `--components DIR` and check with `components verify`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Reads 3CX call history and active calls.
    Poll,
    /// Claims each call exactly once (the ledger).
    Dedup,
    /// Finds the call's contact.
    Match,
    /// Posts the call to the contact's conversation.
    Post,
    /// Uploads the recording once 3CX finalises it.
    Attach,
    /// Fires the CRM workflow triggers.
    Trigger,
    /// The Update Call Record workflow action.
    WriteBack,
}

impl Stage {
    /// Every stage: the pipeline's, in order, then write-back.
    pub const ALL: [Stage; 7] = [
        Stage::Poll,
        Stage::Dedup,
        Stage::Match,
        Stage::Post,
        Stage::Attach,
        Stage::Trigger,
        Stage::WriteBack,
    ];

    /// The stages the tick calls, in pipeline order (composed into it).
    pub const PIPELINE: [Stage; 6] = [
        Stage::Poll,
        Stage::Dedup,
        Stage::Match,
        Stage::Post,
        Stage::Attach,
        Stage::Trigger,
    ];

    /// Its row of [`COMPONENTS`].
    pub fn component(self) -> &'static Component {
        COMPONENTS
            .iter()
            .find(|c| c.role == Role::Stage(self))
            .expect("every stage has a row in COMPONENTS")
    }

    /// Its name: the `--stage` value and the metric label, e.g. "write-back".
    pub fn name(self) -> &'static str {
        self.component().name
    }

    /// Its component's file name, e.g. `connectzero_poll.wasm`.
    pub fn file_name(self) -> &'static str {
        self.component().file
    }

    /// The stage called `name` ([`Stage::name`]).
    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// What a component is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A replaceable stage.
    Stage(Stage),
    /// The orchestration of one tick, over the pipeline's stages.
    Tick,
    /// Stands in on Spin for what the bundled host provides natively
    /// (credentials, directory, call log).
    Provider,
    /// The Spin entry point.
    App,
}

/// A group of imports a world grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Grant {
    /// Outgoing HTTP (only to the tenant's own services, enforced by the
    /// runtime's allow-list).
    Http,
    /// The tenant's key-value bucket.
    KvStore,
    /// Compare-and-swap on that bucket (ledger, queues, leases).
    KvAtomics,
    /// Runtime configuration (`wasi:config`, Spin variables).
    Config,
    /// Access tokens for 3CX and the CRM.
    Credentials,
    /// The CRM's contact search.
    Directory,
    /// The call log the runtime keeps.
    CallLog,
    /// The pipeline's stages (the tick's imports).
    Stages,
    /// The tick and the trigger stage's subscriptions (the Spin app's).
    TickAndTrigger,
    /// Completing an OAuth install (the Spin app's).
    CrmInstall,
    /// Choosing the tenant and managing the tenants kept in the store
    /// (the Spin app's).
    Tenancy,
}

impl Grant {
    /// The interfaces the grant opens, unversioned.
    pub fn interfaces(self) -> &'static [&'static str] {
        match self {
            Grant::Http => &["wasi:http/outgoing-handler", "wasi:http/types"],
            Grant::KvStore => &["wasi:keyvalue/store"],
            Grant::KvAtomics => &["wasi:keyvalue/atomics"],
            Grant::Config => &["wasi:config/store"],
            Grant::Credentials => &["connectzero:pipeline/credentials"],
            Grant::Directory => &["connectzero:matcher/directory"],
            Grant::CallLog => &["connectzero:pipeline/call-log"],
            Grant::Stages => &[
                "connectzero:pipeline/poll",
                "connectzero:pipeline/dedup",
                "connectzero:matcher/matcher",
                "connectzero:pipeline/post",
                "connectzero:pipeline/attach",
                "connectzero:pipeline/trigger",
            ],
            Grant::TickAndTrigger => &["connectzero:pipeline/tick", "connectzero:pipeline/trigger"],
            Grant::CrmInstall => &["connectzero:pipeline/crm-install"],
            Grant::Tenancy => &["connectzero:pipeline/tenancy"],
        }
    }
}

/// One component ConnectZero builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Component {
    /// What it is for.
    pub role: Role,
    /// Short name, e.g. "match".
    pub name: &'static str,
    /// Its cargo package.
    pub package: &'static str,
    /// The `.wasm` file the build writes.
    pub file: &'static str,
    /// The WIT package its world is in ([`PIPELINE_PACKAGE`] or
    /// [`MATCHER_PACKAGE`]).
    pub wit_package: &'static str,
    /// Its world in `wit/`, e.g. "match-stage".
    pub world: &'static str,
    /// The interfaces it exports (unversioned) with their functions.
    pub exports: &'static [(&'static str, &'static [&'static str])],
    /// What its world lets it import besides [`ALWAYS_GRANTED`].
    pub grants: &'static [Grant],
}

impl Component {
    /// Its world's full name, e.g. "connectzero:matcher/match-stage".
    pub fn qualified_world(&self) -> String {
        format!("{}/{}", self.wit_package, self.world)
    }

    /// Whether its world grants `grant`.
    pub fn has(&self, grant: Grant) -> bool {
        self.grants.contains(&grant)
    }

    /// Every interface it may import besides [`ALWAYS_GRANTED`], unversioned.
    pub fn granted_interfaces(&self) -> Vec<&'static str> {
        self.grants
            .iter()
            .flat_map(|g| g.interfaces().iter().copied())
            .collect()
    }

    /// Whether it may import `import` (versioned or not).
    pub fn allows_import(&self, import: &str) -> bool {
        always_granted(import)
            || self
                .granted_interfaces()
                .contains(&import.split('@').next().unwrap_or(import))
    }

    /// Whether the bundled host carries it (the stages and the tick).
    pub fn bundled(&self) -> bool {
        matches!(self.role, Role::Stage(_) | Role::Tick)
    }

    /// The environment variable `crates/runtime/build.rs` sets to its built file,
    /// e.g. `CONNECTZERO_COMPONENT_WRITE_BACK`.
    pub fn env_var(&self) -> String {
        format!(
            "CONNECTZERO_COMPONENT_{}",
            self.name.to_uppercase().replace('-', "_")
        )
    }

    /// The full unversioned name of the interface it exports, e.g.
    /// "connectzero:matcher/matcher", or the first one's for components
    /// exporting several.
    pub fn export_interface(&self) -> &'static str {
        self.exports[0].0
    }
}

/// Whether `import` (versioned) is plain WASI or the shared types, which
/// every component may import.
pub fn always_granted(import: &str) -> bool {
    ALWAYS_GRANTED.iter().any(|p| import.starts_with(p))
}

/// The row of the component built as `file`.
pub fn by_file(file: &str) -> Option<&'static Component> {
    COMPONENTS.iter().find(|c| c.file == file)
}

/// The row named `name` ([`Component::name`]); a name not in the table
/// is a programming error.
pub fn named(name: &str) -> &'static Component {
    COMPONENTS
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no component named {name} in COMPONENTS"))
}

/// The row of the tick.
pub fn tick() -> &'static Component {
    COMPONENTS
        .iter()
        .find(|c| c.role == Role::Tick)
        .expect("the tick has a row in COMPONENTS")
}

/// Every function name a component exports: the metrics' label set.
pub fn exported_functions() -> impl Iterator<Item = &'static str> {
    COMPONENTS
        .iter()
        .flat_map(|c| c.exports.iter())
        .flat_map(|(_, functions)| functions.iter().copied())
}

/// Set (to any value) while the outer build runs under clippy's driver
/// (`RUSTC_WORKSPACE_WRAPPER`, with its `CLIPPY_ARGS`) to lint the
/// components as they are built for `wasm32-wasip2` too (clippy's driver
/// lints every workspace crate it compiles, `guest-support` included),
/// and to build the [`FIXTURE_PACKAGES`] with them ([`wasm_packages`]):
/// CI does, so the components are compiled once, not once more by a
/// separate `cargo clippy --target wasm32-wasip2`.
pub const LINT_COMPONENTS: &str = "CONNECTZERO_LINT_COMPONENTS";

/// The Cargo profile components are built with (`[profile.component]` in
/// the workspace's Cargo.toml: optimised for size); their files land in
/// `<target dir>/wasm32-wasip2/<this>/`.
pub const COMPONENT_PROFILE: &str = "component";

/// The nested `cargo build --profile component --target wasm32-wasip2` of
/// components (add `-p` per package) into `target_dir`, run from the
/// workspace `root`: the runtime's build script builds the table's
/// components with it, the tests their fixtures. The outer build's
/// wrappers and flags (clippy, coverage, host `RUSTFLAGS`, the job
/// server) are for the host, not for the components, so they are removed;
/// with [`LINT_COMPONENTS`] set, clippy's driver is kept.
///
/// # Panics
/// When [`LINT_COMPONENTS`] is set but the outer build's workspace
/// wrapper is not clippy's driver: the components would silently go
/// unlinted.
pub fn wasm_build(root: &std::path::Path, target_dir: &std::path::Path) -> std::process::Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build
        .current_dir(root)
        .args(["build", "--profile", COMPONENT_PROFILE, "--target", TARGET])
        .arg("--target-dir")
        .arg(target_dir);
    for var in [
        "RUSTC_WRAPPER",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
    ] {
        build.env_remove(var);
    }
    if std::env::var_os(LINT_COMPONENTS).is_some() {
        let wrapper = std::env::var("RUSTC_WORKSPACE_WRAPPER").unwrap_or_default();
        assert!(
            wrapper.ends_with("clippy-driver"),
            "{LINT_COMPONENTS} is set but the build does not run under clippy's driver \
             (RUSTC_WORKSPACE_WRAPPER={wrapper:?}): set RUSTC_WORKSPACE_WRAPPER to \
             `rustup which clippy-driver` and CLIPPY_ARGS as .ci/run does, or unset {LINT_COMPONENTS}"
        );
    } else {
        build.env_remove("RUSTC_WORKSPACE_WRAPPER");
    }
    build
}

/// The packages the runtime's build script builds for `wasm32-wasip2`: every
/// row of [`COMPONENTS`], and with `lint` ([`LINT_COMPONENTS`]) the
/// [`FIXTURE_PACKAGES`] too, so every wasm package is linted in that one
/// build whether or not a test builds it.
pub fn wasm_packages(lint: bool) -> Vec<&'static str> {
    let fixtures: &[&str] = if lint { &FIXTURE_PACKAGES } else { &[] };
    COMPONENTS
        .iter()
        .map(|c| c.package)
        .chain(fixtures.iter().copied())
        .collect()
}

/// Crates built for `wasm32-wasip2` that are not shipped: a partner's
/// example matcher (docs/PARTNERS.md), the security suite's hostile
/// matcher and the key-value probe (compare-and-swap on each of Spin's
/// key-value backends). Built by the tests, linted by CI, never bundled.
pub const FIXTURE_PACKAGES: [&str; 3] = [
    "connectzero-partner-matcher",
    "connectzero-hostile-matcher",
    "connectzero-kv-probe",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_has_one_row_and_names_are_unique() {
        for stage in Stage::ALL {
            assert_eq!(
                COMPONENTS
                    .iter()
                    .filter(|c| c.role == Role::Stage(stage))
                    .count(),
                1,
                "{stage:?}"
            );
            assert_eq!(Stage::from_name(stage.name()), Some(stage));
        }
        let mut names: Vec<_> = COMPONENTS.iter().map(|c| c.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), COMPONENTS.len());
    }

    #[test]
    fn imports_are_granted_by_the_world_only() {
        let matcher = Stage::Match.component();
        assert!(matcher.allows_import("connectzero:matcher/directory@0.1.0"));
        assert!(matcher.allows_import("wasi:clocks/monotonic-clock@0.2.4"));
        assert!(!matcher.allows_import("wasi:http/outgoing-handler@0.2.4"));
        assert!(!matcher.allows_import("wasi:sockets/tcp@0.2.4"));
        assert_eq!(
            Stage::WriteBack.component().env_var(),
            "CONNECTZERO_COMPONENT_WRITE_BACK"
        );
        assert_eq!(
            Stage::Match.component().export_interface(),
            "connectzero:matcher/matcher"
        );
    }
}
