//! `connectzero components verify`: does a replacement component fit its
//! stage?
//!
//! A partner's component must implement the stage's world from
//! `wit/worlds.wit` (the matcher's from `wit/matcher/matcher.wit`): export the stage interface with every function, and
//! import nothing beyond what that world imports (plus the WASI interfaces
//! every `wasm32-wasip2` program imports for its standard library). The
//! host refuses anything else at start-up anyway; this check says *what*
//! is wrong, one line per problem, before anyone deploys it.
//!
//! The checks read the component's own type information; the last one
//! loads it into a runtime exactly as `--components DIR` would, so a
//! component that passes here also starts in the host.

use crate::engine::{Runtime, Stage};
use anyhow::Context;
use std::fmt;
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;
use wasmtime::{Config, Engine};

/// What one stage's world looks like: its row of the one component table
/// (`connectzero_stages`, held to `wit/` by that crate's tests).
#[derive(Clone, Debug)]
pub struct WorldSpec {
    /// The stage.
    pub stage: Stage,
    /// World name in `wit/`.
    pub world: &'static str,
    /// The interface the component must export (without version).
    pub export: &'static str,
    /// Functions that interface must have.
    pub functions: &'static [&'static str],
    /// Interfaces the world imports besides plain WASI and the shared
    /// types (without version).
    pub imports: Vec<&'static str>,
}

impl WorldSpec {
    /// The world of `stage`.
    pub fn of(stage: Stage) -> Self {
        let component = stage.component();
        let (export, functions) = component.exports[0];
        Self {
            stage,
            world: component.world,
            export,
            functions,
            imports: component.granted_interfaces(),
        }
    }

    fn allows_import(&self, name: &str) -> bool {
        self.stage.component().allows_import(name)
    }
}

/// `wasi:http/types@0.2.4` → `wasi:http/types`.
fn without_version(name: &str) -> &str {
    name.split_once('@').map_or(name, |(n, _)| n)
}

/// A component that fits its stage.
#[derive(Debug)]
pub struct Verified {
    /// The stage it fits.
    pub spec: WorldSpec,
    /// Everything it imports.
    pub imports: Vec<String>,
    /// Everything it exports.
    pub exports: Vec<String>,
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "ok: implements the {} world (stage {}): exports {} with {}",
            self.spec.world,
            self.spec.stage.name(),
            self.spec.export,
            self.spec.functions.join(", ")
        )?;
        writeln!(f, "imports:")?;
        for import in &self.imports {
            writeln!(f, "  {import}")?;
        }
        write!(
            f,
            "load it with `connectzero --components DIR …`, the file named {} in DIR",
            self.spec.stage.file_name()
        )
    }
}

/// Why a component does not fit.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file could not be read or is not a WASI 0.2 component.
    #[error("{path}: not a WASI 0.2 component: {reason}")]
    NotAComponent {
        /// The file.
        path: PathBuf,
        /// What wasmtime said.
        reason: String,
    },
    /// No `--stage` and nothing it exports names a stage.
    #[error(
        "{path}: exports none of the stage interfaces ({exports}); pass --stage, or build it for one of the worlds in wit/worlds.wit (a matcher: wit/matcher/matcher.wit, whose package changed in this release)"
    )]
    UnknownStage {
        /// The file.
        path: PathBuf,
        /// What it does export.
        exports: String,
    },
    /// It is a component, but not one for this stage.
    #[error("{path} does not implement the {world} world:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    WrongWorld {
        /// The file.
        path: PathBuf,
        /// The world it should implement.
        world: &'static str,
        /// One line per problem.
        problems: Vec<String>,
    },
}

/// An engine with the host's compilation settings (and its on-disk cache).
fn engine() -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    if let Ok(cache) = wasmtime::Cache::from_file(None) {
        config.cache(Some(cache));
    }
    Ok(Engine::new(&config)?)
}

/// Check `path` against `stage`'s world, or against the stage whose
/// interface it exports when `stage` is `None`.
pub fn verify(path: &Path, stage: Option<Stage>) -> anyhow::Result<Result<Verified, VerifyError>> {
    // A missing or unreadable file is an error of the command, not a
    // verdict on a component.
    std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let engine = engine()?;
    let component = match Component::from_file(&engine, path) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Err(VerifyError::NotAComponent {
                path: path.to_path_buf(),
                reason: format!("{e:#}"),
            }));
        }
    };
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(&engine).map(|(n, _)| n.to_string()).collect();
    let exports: Vec<(String, ComponentItem)> = ty
        .exports(&engine)
        .map(|(n, e)| (n.to_string(), e.ty))
        .collect();
    let export_names = || {
        let names: Vec<&str> = exports.iter().map(|(n, _)| n.as_str()).collect();
        if names.is_empty() {
            "nothing".to_string()
        } else {
            names.join(", ")
        }
    };
    let stage = match stage.or_else(|| {
        Stage::ALL.into_iter().find(|s| {
            let spec = WorldSpec::of(*s);
            exports
                .iter()
                .any(|(n, _)| without_version(n) == spec.export)
        })
    }) {
        Some(stage) => stage,
        None => {
            return Ok(Err(VerifyError::UnknownStage {
                path: path.to_path_buf(),
                exports: format!("it exports {}", export_names()),
            }));
        }
    };
    let spec = WorldSpec::of(stage);
    let mut problems = Vec::new();
    match exports
        .iter()
        .find(|(n, _)| without_version(n) == spec.export)
    {
        None => problems.push(format!(
            "it does not export {} (it exports {}); build it for the {} world",
            spec.export,
            export_names(),
            spec.world
        )),
        Some((name, ComponentItem::ComponentInstance(instance))) => {
            let functions: Vec<String> = instance
                .exports(&engine)
                .filter(|(_, e)| matches!(e.ty, ComponentItem::ComponentFunc(_)))
                .map(|(n, _)| n.to_string())
                .collect();
            for wanted in spec.functions {
                if !functions.iter().any(|f| f == wanted) {
                    problems.push(format!(
                        "its export {name} has no function {wanted} (it has: {})",
                        if functions.is_empty() {
                            "none".to_string()
                        } else {
                            functions.join(", ")
                        }
                    ));
                }
            }
        }
        Some((name, _)) => problems.push(format!("its export {name} is not an interface instance")),
    }
    let refused: Vec<&String> = imports.iter().filter(|i| !spec.allows_import(i)).collect();
    for import in &refused {
        problems.push(format!(
            "it imports {import}, which the {} world does not grant",
            spec.world
        ));
    }
    if !refused.is_empty() {
        problems.push(format!(
            "the {} world grants only {}WASI cli, clocks, io, random and filesystem; remove the code that needs more (a matcher reads contacts through connectzero:matcher/directory, never the network)",
            spec.world,
            spec.imports
                .iter()
                .map(|i| format!("{i}, "))
                .collect::<String>()
        ));
    }
    if problems.is_empty()
        && let Err(error) = load_like_the_host(path, stage)
    {
        // Names and imports are right, yet the host cannot link it: a
        // function signature or a package version differs from wit/.
        problems.push(format!(
            "the host cannot load it (a type or version differs from wit/): {error:#}"
        ));
    }
    if !problems.is_empty() {
        return Ok(Err(VerifyError::WrongWorld {
            path: path.to_path_buf(),
            world: spec.world,
            problems,
        }));
    }
    Ok(Ok(Verified {
        spec,
        imports,
        exports: exports.into_iter().map(|(n, _)| n).collect(),
    }))
}

/// Load `path` as the replacement of `stage` with the host's real runtime.
fn load_like_the_host(path: &Path, stage: Stage) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "connectzero-verify-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir)?;
    let result = std::fs::copy(path, dir.join(stage.file_name()))
        .map_err(anyhow::Error::from)
        .and_then(|_| Runtime::new(Some(&dir)).map(|_| ()));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Parse a `--stage` value: `poll`, `dedup`, `match`, `post`, `attach`,
/// `trigger` or `write-back`.
pub fn parse_stage(name: &str) -> Result<Stage, String> {
    Stage::from_name(name).ok_or_else(|| {
        format!(
            "unknown stage {name:?}: one of {}",
            Stage::ALL.map(Stage::name).join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_world_grants_its_imports_in_any_version_and_nothing_else() {
        let matcher = WorldSpec::of(Stage::Match);
        assert!(matcher.allows_import("connectzero:matcher/directory@0.1.0"));
        assert!(matcher.allows_import("connectzero:pipeline/types@0.1.0"));
        assert!(matcher.allows_import("wasi:cli/stdout@0.2.6"));
        assert!(!matcher.allows_import("wasi:http/outgoing-handler@0.2.4"));
        assert!(!matcher.allows_import("wasi:sockets/tcp@0.2.4"));
        assert!(!matcher.allows_import("wasi:keyvalue/store@0.2.0-draft2"));
        let dedup = WorldSpec::of(Stage::Dedup);
        assert!(dedup.allows_import("wasi:keyvalue/atomics@0.2.0-draft2"));
        assert!(!dedup.allows_import("connectzero:pipeline/credentials@0.1.0"));
    }

    #[test]
    fn stages_are_named_as_in_the_metrics() {
        assert_eq!(parse_stage("write-back"), Ok(Stage::WriteBack));
        assert!(
            parse_stage("matcher")
                .unwrap_err()
                .contains("one of poll, dedup, match")
        );
    }
}
