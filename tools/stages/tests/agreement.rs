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
    let world = match resolve.select_world(&[package], Some(&c.qualified_world())) {
        Ok(world) => &resolve.worlds[world],
        Err(e) => {
            return vec![format!(
                "{}: no world {} in wit/: {e}",
                c.name,
                c.qualified_world()
            )];
        }
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

/// CI lints the components for `wasm32-wasip2` as the runtime's build script
/// builds them (every row of the table and, when linting, every fixture)
/// through [`connectzero_stages::wasm_build`]: `.ci/run`
/// must run the README's test command under clippy's driver with
/// [`connectzero_stages::LINT_COMPONENTS`] set, or nothing is linted there.
/// (`wasm_build` panics when the flag is set without the driver.)
#[test]
fn ci_lints_every_component_for_wasm() {
    let script = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    for needed in [
        "export RUSTC_WORKSPACE_WRAPPER=\"$(rustup which clippy-driver)\"\n",
        "export CLIPPY_ARGS=\"-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__\"\n",
        &format!("export {}=1\n", connectzero_stages::LINT_COMPONENTS),
    ] {
        let at = script.find(needed);
        let test = script.find("\ncargo test --workspace\n");
        assert!(
            matches!((at, test), (Some(at), Some(test)) if at < test),
            ".ci/run must set {needed:?} before the README's test command"
        );
    }
    let linted: BTreeSet<&str> = connectzero_stages::wasm_packages(true)
        .into_iter()
        .collect();
    let every: BTreeSet<&str> = COMPONENTS
        .iter()
        .map(|c| c.package)
        .chain(FIXTURE_PACKAGES)
        .collect();
    assert_eq!(linted, every, "the linted build leaves a wasm package out");
    assert!(
        !script.contains("cargo clippy --target wasm32-wasip2"),
        "the components are linted as they build; a separate wasm lint would compile them again"
    );
}

/// A partner builds a matcher from `wit/matcher/matcher.wit` alone
/// (docs/PARTNERS.md): the file must parse with no other WIT beside it,
/// hold the match stage's world, and the pipeline must use its records
/// rather than its own copies.
#[test]
fn the_matcher_contract_stands_alone() {
    let mut alone = Resolve::default();
    let (package, _) = alone
        .push_dir(root().join("wit/matcher"))
        .expect("wit/matcher parses without the pipeline's WIT");
    assert_eq!(
        alone.packages.len(),
        1,
        "the matcher contract imports no package"
    );
    let matcher = connectzero_stages::Stage::Match.component();
    assert_eq!(matcher.wit_package, connectzero_stages::MATCHER_PACKAGE);
    alone
        .select_world(&[package], Some(matcher.world))
        .expect("the matcher contract holds the match stage's world");

    let mut pipeline = Resolve::default();
    pipeline.push_dir(root().join("wit")).expect("wit/ parses");
    // `use` makes an alias in the using interface: the definition is the
    // one whose kind is not a plain reference to another type.
    for record in ["call", "party", "contact-ref", "stage-error"] {
        let (definitions, aliases): (Vec<_>, Vec<_>) = pipeline
            .types
            .iter()
            .filter(|(_, t)| t.name.as_deref() == Some(record))
            .filter_map(|(_, t)| match t.owner {
                wit_parser::TypeOwner::Interface(i) => pipeline.id_of(i).map(|owner| (t, owner)),
                _ => None,
            })
            .partition(|(t, _)| !matches!(t.kind, wit_parser::TypeDefKind::Type(_)));
        let owners = |found: Vec<(&wit_parser::TypeDef, String)>| -> Vec<String> {
            found.into_iter().map(|(_, owner)| owner).collect()
        };
        assert_eq!(
            owners(definitions),
            ["connectzero:matcher/types@0.1.0"],
            "{record} is defined once, by the matcher contract (used by {:?})",
            owners(aliases)
        );
    }
}

/// The interfaces every component may import ([`connectzero_stages::ALWAYS_GRANTED`])
/// must stay type-only: a function or resource added to one would be
/// granted to every component, a replacement matcher included.
#[test]
fn always_granted_interfaces_hold_only_types() {
    let mut resolve = Resolve::default();
    resolve.push_dir(root().join("wit")).expect("wit/ parses");
    let mut seen = 0;
    for (id, interface) in resolve.interfaces.iter() {
        let Some(name) = resolve.id_of(id) else {
            continue;
        };
        if !name.starts_with("connectzero:") || !always_granted(&name) {
            continue;
        }
        seen += 1;
        assert!(interface.functions.is_empty(), "{name} has functions");
        for (type_name, ty) in &interface.types {
            assert!(
                !matches!(resolve.types[*ty].kind, wit_parser::TypeDefKind::Resource),
                "{name} defines the resource {type_name}"
            );
        }
    }
    assert_eq!(seen, 2, "the pipeline's and the matcher's `types`");
}
