//! # connectzero-compose: the one composition graph
//!
//! The pipeline is the `tick` component (`components/tick`) over the
//! unchanged stage components. This crate wires it with wac, once
//! ([`compose`]'s `pipeline`), and plugs it into each runtime:
//!
//! - [`Deployable::Tick`]: what the bundled host runs. The tick with every
//!   stage plugged in; `credentials`, `directory` and `call-log` stay
//!   imports, which the host implements natively (its sealed secrets, its
//!   directory cache, its SQLite call log). Exports `connectzero:pipeline/tick`.
//! - [`Deployable::App`]: the Spin entry point (`components/app`) over the
//!   same pipeline, with provider components in those three imports:
//!   credentials shared by poll, post, attach, trigger and the directory
//!   (and the same provider instance completing OAuth installs), the
//!   directory plugged into the matcher, the call-log provider into the
//!   tick. Its imports are only WASI 0.2 (`wasi:http`, `wasi:keyvalue`,
//!   `wasi:config`, ...): what Spin's `platform` world provides.
//! - [`Deployable::WriteBack`]: the Update Call Record action with
//!   credentials plugged in.
//!
//! `host/build.rs` runs it after building the components, so a normal
//! `cargo build` produces the composed files next to the stage ones.

use std::path::Path;
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions, NodeId, PackageId};

/// WIT package of the ConnectZero interfaces, with version.
const PKG: &str = "connectzero:pipeline";
const VERSION: &str = "0.1.0";

/// The HTTP handler the Spin deployables export.
const HANDLER: &str = "wasi:http/incoming-handler@0.2.4";

/// The stage components, with the interface each exports, in pipeline order.
const STAGES: [(&str, &str); 6] = [
    ("connectzero_poll.wasm", "poll"),
    ("connectzero_dedup.wasm", "dedup"),
    ("connectzero_match.wasm", "matcher"),
    ("connectzero_post.wasm", "post"),
    ("connectzero_attach.wasm", "attach"),
    ("connectzero_trigger.wasm", "trigger"),
];

/// A deployable component and what goes into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deployable {
    /// The pipeline as the bundled host runs it.
    Tick,
    /// The Spin entry point with the whole pipeline.
    App,
    /// The Update Call Record action.
    WriteBack,
}

impl Deployable {
    /// Every deployable.
    pub const ALL: [Deployable; 3] = [Deployable::Tick, Deployable::App, Deployable::WriteBack];

    /// File name of the composed component.
    pub fn file_name(self) -> &'static str {
        match self {
            Deployable::Tick => "connectzero_tick.composed.wasm",
            Deployable::App => "connectzero_app.composed.wasm",
            Deployable::WriteBack => "connectzero_write_back.composed.wasm",
        }
    }

    /// The component files (in the build's output directory) it is made of.
    pub fn inputs(self) -> Vec<&'static str> {
        let pipeline = STAGES
            .iter()
            .map(|(file, _)| *file)
            .chain(["connectzero_tick.wasm"]);
        match self {
            Deployable::Tick => pipeline.collect(),
            Deployable::App => [
                "connectzero_credentials.wasm",
                "connectzero_directory.wasm",
                "connectzero_call_log.wasm",
            ]
            .into_iter()
            .chain(pipeline)
            .chain(["connectzero_app.wasm"])
            .collect(),
            Deployable::WriteBack => vec![
                "connectzero_credentials.wasm",
                "connectzero_write_back.wasm",
            ],
        }
    }
}

/// Why a composition failed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// A component file could not be read or is not a component.
    #[error("reading component {file}: {reason}")]
    Input {
        /// The file.
        file: String,
        /// What went wrong.
        reason: String,
    },
    /// The components do not fit together (an export or import is missing
    /// or has another type): the WIT of one of them changed.
    #[error("wiring {what}: {reason}")]
    Wiring {
        /// Which connection.
        what: String,
        /// What wac said.
        reason: String,
    },
    /// A pipeline component imports something its stage is not granted
    /// (e.g. a replacement matcher importing `wasi:http`): composing it
    /// would hand it the composition's import.
    #[error(
        "{file} imports {import}, which is not granted to it (it may import only WASI cli/io/clocks/random/filesystem and: {granted}); rebuild it against its stage world in wit/"
    )]
    NotGranted {
        /// The component file.
        file: String,
        /// The import it is not granted.
        import: String,
        /// What it may import besides plain WASI.
        granted: String,
    },
}

/// Where the component files come from: a directory (the build's output),
/// or the bundled host's own bytes with an operator's replacements.
pub trait Source {
    /// The bytes of component `file` (e.g. `connectzero_match.wasm`).
    fn read(&self, file: &str) -> Result<Vec<u8>, String>;
}

/// Component files in a directory.
pub struct Dir<'a>(pub &'a Path);

impl Source for Dir<'_> {
    fn read(&self, file: &str) -> Result<Vec<u8>, String> {
        let path = self.0.join(file);
        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// What a pipeline component may import besides plain WASI (interface
/// names without version): the grants each stage world in `wit/` lists.
/// `None` for the provider components, which are ours and composed only
/// into Spin deployables.
pub fn granted_imports(file: &str) -> Option<&'static [&'static str]> {
    const HTTP: &str = "wasi:http/outgoing-handler";
    const HTTP_TYPES: &str = "wasi:http/types";
    const STORE: &str = "wasi:keyvalue/store";
    const ATOMICS: &str = "wasi:keyvalue/atomics";
    const CREDENTIALS: &str = "connectzero:pipeline/credentials";
    Some(match file {
        "connectzero_poll.wasm" | "connectzero_post.wasm" => {
            &[HTTP, HTTP_TYPES, STORE, CREDENTIALS]
        }
        "connectzero_dedup.wasm" => &[STORE, ATOMICS],
        "connectzero_match.wasm" => &["connectzero:pipeline/directory"],
        "connectzero_attach.wasm" | "connectzero_trigger.wasm" => {
            &[HTTP, HTTP_TYPES, STORE, ATOMICS, CREDENTIALS]
        }
        "connectzero_tick.wasm" => &[
            "connectzero:pipeline/poll",
            "connectzero:pipeline/dedup",
            "connectzero:pipeline/matcher",
            "connectzero:pipeline/post",
            "connectzero:pipeline/attach",
            "connectzero:pipeline/trigger",
            "connectzero:pipeline/call-log",
            STORE,
            ATOMICS,
        ],
        _ => return None,
    })
}

/// Whether `import` (with version) is plain WASI or the shared types,
/// which every component may import.
fn always_granted(import: &str) -> bool {
    const PLAIN: [&str; 6] = [
        "wasi:cli/",
        "wasi:io/",
        "wasi:clocks/",
        "wasi:random/",
        "wasi:filesystem/",
        "connectzero:pipeline/types@",
    ];
    PLAIN.iter().any(|p| import.starts_with(p))
}

/// Compose `deployable` from the components in `dir`.
pub fn compose(deployable: Deployable, dir: &Path) -> Result<Vec<u8>, ComposeError> {
    compose_from(deployable, &Dir(dir))
}

/// Compose `deployable` from the components `source` gives.
pub fn compose_from(deployable: Deployable, source: &dyn Source) -> Result<Vec<u8>, ComposeError> {
    let mut graph = Graph::new(source);
    match deployable {
        Deployable::Tick => {
            let pipeline = pipeline(&mut graph, None)?;
            graph.finish(pipeline.tick, &interface_name("tick"))
        }
        Deployable::App => {
            let credentials_instance = graph.instance("connectzero_credentials.wasm")?;
            let credentials = graph.export_of(credentials_instance, "credentials")?;
            let directory = graph.instance("connectzero_directory.wasm")?;
            graph.plug(directory, "credentials", credentials)?;
            let directory = graph.export_of(directory, "directory")?;
            let call_log = graph.instance("connectzero_call_log.wasm")?;
            let call_log = graph.export_of(call_log, "call-log")?;
            let providers = Providers {
                credentials,
                directory,
                call_log,
            };
            let pipeline = pipeline(&mut graph, Some(&providers))?;
            let app = graph.instance("connectzero_app.wasm")?;
            let tick = graph.export_of(pipeline.tick, "tick")?;
            graph.plug(app, "tick", tick)?;
            // The app registers workflow subscriptions on the same trigger
            // instance the tick queues events on.
            graph.plug(app, "trigger", pipeline.trigger)?;
            let install = graph.export_of(credentials_instance, "crm-install")?;
            graph.plug(app, "crm-install", install)?;
            graph.finish(app, HANDLER)
        }
        Deployable::WriteBack => {
            let credentials_instance = graph.instance("connectzero_credentials.wasm")?;
            let credentials = graph.export_of(credentials_instance, "credentials")?;
            let write_back = graph.instance("connectzero_write_back.wasm")?;
            graph.plug(write_back, "credentials", credentials)?;
            graph.finish(write_back, HANDLER)
        }
    }
}

/// The components that stand in for the host's native imports.
struct Providers {
    /// The `credentials` export of the credentials provider.
    credentials: NodeId,
    /// The `directory` export of the directory provider.
    directory: NodeId,
    /// The `call-log` export of the call-log provider.
    call_log: NodeId,
}

/// The pipeline both runtimes run.
struct Pipeline {
    /// The tick instance.
    tick: NodeId,
    /// The trigger stage's export (the Spin app also subscribes on it).
    trigger: NodeId,
}

/// The one pipeline graph: every stage instantiated once and plugged into
/// the tick. With `providers`, their exports satisfy the stages' and the
/// tick's `credentials`, `directory` and `call-log` imports; without, those
/// stay imports of the composition, for the host to provide.
fn pipeline(
    graph: &mut Graph<'_>,
    providers: Option<&Providers>,
) -> Result<Pipeline, ComposeError> {
    let tick = graph.instance("connectzero_tick.wasm")?;
    let mut trigger = None;
    for (file, interface) in STAGES {
        let stage = graph.instance(file)?;
        if let Some(p) = providers {
            match interface {
                "dedup" => {}
                "matcher" => graph.plug(stage, "directory", p.directory)?,
                _ => graph.plug(stage, "credentials", p.credentials)?,
            }
        }
        let export = graph.export_of(stage, interface)?;
        graph.plug(tick, interface, export)?;
        if interface == "trigger" {
            trigger = Some(export);
        }
    }
    if let Some(p) = providers {
        graph.plug(tick, "call-log", p.call_log)?;
    }
    Ok(Pipeline {
        tick,
        trigger: trigger.expect("STAGES lists the trigger stage"),
    })
}

/// A composition graph under construction.
struct Graph<'a> {
    source: &'a dyn Source,
    graph: CompositionGraph,
}

fn interface_name(interface: &str) -> String {
    format!("{PKG}/{interface}@{VERSION}")
}

impl<'a> Graph<'a> {
    fn new(source: &'a dyn Source) -> Self {
        Self {
            source,
            graph: CompositionGraph::new(),
        }
    }

    fn register(&mut self, file: &str) -> Result<PackageId, ComposeError> {
        let input = |reason: String| ComposeError::Input {
            file: file.to_string(),
            reason,
        };
        let bytes = self.source.read(file).map_err(input)?;
        let name = format!(
            "connectzero:{}",
            file.trim_end_matches(".wasm").replace('_', "-")
        );
        let package = Package::from_bytes(&name, None, bytes, self.graph.types_mut())
            .map_err(|e| input(format!("{e:#}")))?;
        if let Some(granted) = granted_imports(file) {
            let world = &self.graph.types()[package.ty()];
            for import in world.imports.keys() {
                let unversioned = import.split('@').next().unwrap_or(import);
                if !always_granted(import) && !granted.contains(&unversioned) {
                    return Err(ComposeError::NotGranted {
                        file: file.to_string(),
                        import: import.clone(),
                        granted: granted.join(", "),
                    });
                }
            }
        }
        self.graph
            .register_package(package)
            .map_err(|e| input(e.to_string()))
    }

    /// A new instance of the component in `file`.
    fn instance(&mut self, file: &str) -> Result<NodeId, ComposeError> {
        let package = self.register(file)?;
        Ok(self.graph.instantiate(package))
    }

    /// The ConnectZero `interface` an instance exports.
    fn export_of(&mut self, instance: NodeId, interface: &str) -> Result<NodeId, ComposeError> {
        let name = interface_name(interface);
        self.graph
            .alias_instance_export(instance, &name)
            .map_err(|e| ComposeError::Wiring {
                what: format!("the export {name}"),
                reason: e.to_string(),
            })
    }

    /// Satisfy `instance`'s import of `interface` with `export`.
    fn plug(
        &mut self,
        instance: NodeId,
        interface: &str,
        export: NodeId,
    ) -> Result<(), ComposeError> {
        let name = interface_name(interface);
        self.graph
            .set_instantiation_argument(instance, &name, export)
            .map_err(|e| ComposeError::Wiring {
                what: format!("the import {name}"),
                reason: e.to_string(),
            })
    }

    /// Export `root`'s `export` (an interface name with version) and
    /// encode. Every import nobody satisfied becomes an import of the result.
    fn finish(mut self, root: NodeId, export: &str) -> Result<Vec<u8>, ComposeError> {
        let wiring = |what: &str, reason: String| ComposeError::Wiring {
            what: what.to_string(),
            reason,
        };
        let node = self
            .graph
            .alias_instance_export(root, export)
            .map_err(|e| wiring(export, e.to_string()))?;
        self.graph
            .export(node, export)
            .map_err(|e| wiring(export, e.to_string()))?;
        self.graph
            .encode(EncodeOptions::default())
            .map_err(|e| wiring("the composition", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_wasi_and_the_shared_types_are_always_granted() {
        assert!(always_granted("wasi:cli/environment@0.2.4"));
        assert!(always_granted("connectzero:pipeline/types@0.1.0"));
        assert!(!always_granted("wasi:http/outgoing-handler@0.2.4"));
        assert!(!always_granted("connectzero:pipeline/credentials@0.1.0"));
    }

    #[test]
    fn the_matcher_is_granted_the_directory_only() {
        let granted = granted_imports("connectzero_match.wasm").unwrap();
        assert_eq!(granted, ["connectzero:pipeline/directory"]);
        assert!(granted_imports("connectzero_credentials.wasm").is_none());
    }
}
