//! The table in `src/lib.rs` against everything that repeats it: the WIT
//! worlds (which it must describe exactly), the workspace (every package
//! a member) and CI's lint of the components (every package linted for
//! `wasm32-wasip2`). A stage added to one and not the others fails here.

use connectzero_stages::{COMPONENTS, Component, FIXTURE_PACKAGES, always_granted};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use wit_parser::{Resolve, WorldItem};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The world's imports or exports as unversioned interface names, with
/// each interface's functions.
fn interfaces<'a>(
    resolve: &Resolve,
    items: impl Iterator<Item = &'a WorldItem>,
) -> Vec<(String, BTreeSet<String>)> {
    items
        .filter_map(|item| match item {
            WorldItem::Interface { id, .. } => {
                let name = resolve.id_of(*id)?;
                let unversioned = name.split('@').next().unwrap_or(&name).to_string();
                let functions = resolve.interfaces[*id].functions.keys().cloned().collect();
                Some((unversioned, functions))
            }
            _ => None,
        })
        .collect()
}

fn check(resolve: &Resolve, package: wit_parser::PackageId, c: &Component) -> Vec<String> {
    let mut problems = Vec::new();
    let world = match resolve.select_world(&[package], Some(c.world)) {
        Ok(world) => &resolve.worlds[world],
        Err(e) => return vec![format!("{}: no world {} in wit/: {e}", c.name, c.world)],
    };
    let exports = interfaces(resolve, world.exports.values());
    let declared: Vec<(String, BTreeSet<String>)> = c
        .exports
        .iter()
        .map(|(i, f)| (i.to_string(), f.iter().map(|f| f.to_string()).collect()))
        .collect();
    if exports != declared {
        problems.push(format!(
            "{}: world {} exports {exports:?}, the table says {declared:?}",
            c.name, c.world
        ));
    }
    let imported: BTreeSet<String> = interfaces(resolve, world.imports.values())
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !always_granted(&format!("{name}@")))
        .collect();
    let mut granted: BTreeSet<String> = c
        .granted_interfaces()
        .into_iter()
        .map(str::to_string)
        .collect();
    // Serving HTTP brings the request and response types in.
    if c.exports
        .iter()
        .any(|(i, _)| *i == "wasi:http/incoming-handler")
    {
        granted.insert("wasi:http/types".into());
    }
    if imported != granted {
        problems.push(format!(
            "{}: world {} imports {imported:?}, the table grants {granted:?}",
            c.name, c.world
        ));
    }
    problems
}

#[test]
fn the_table_describes_every_world_exactly() {
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(root().join("wit")).expect("wit/ parses");
    let problems: Vec<String> = COMPONENTS
        .iter()
        .flat_map(|c| check(&resolve, package, c))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Package names of the workspace's members.
fn workspace_packages() -> BTreeSet<String> {
    let manifest: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    manifest["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| {
            let path = root().join(member.as_str().unwrap()).join("Cargo.toml");
            let crate_manifest: toml::Table =
                std::fs::read_to_string(&path).unwrap().parse().unwrap();
            crate_manifest["package"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn every_component_and_fixture_is_a_workspace_member() {
    let members = workspace_packages();
    for package in COMPONENTS.iter().map(|c| c.package).chain(FIXTURE_PACKAGES) {
        assert!(
            members.contains(package),
            "{package} is not in the workspace's members"
        );
    }
}

#[test]
fn ci_lints_every_component_for_wasm() {
    let script = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    let lint = script
        .split("cargo clippy --target wasm32-wasip2")
        .nth(1)
        .expect(".ci/run lints the components for wasm32-wasip2");
    let lint = lint.split("-- -D warnings").next().unwrap();
    let linted: BTreeSet<&str> = lint
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "-p")
        .map(|w| w[1])
        .collect();
    let expected: BTreeSet<&str> = COMPONENTS
        .iter()
        .map(|c| c.package)
        .chain(FIXTURE_PACKAGES)
        .chain(["guest-support"])
        .collect();
    assert_eq!(
        linted, expected,
        ".ci/run's wasm lint list differs from the table"
    );
}
