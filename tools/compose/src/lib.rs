//! # connectzero-compose: the one composition graph
//!
//! The stage components import `connectzero:pipeline/credentials` and
//! `directory`, which the bundled host implements natively. Runtimes
//! without the host (Spin) get them from two provider components instead.
//! This crate wires, with wac, the deployable components from the unchanged
//! stage binaries:
//!
//! - [`Deployable::App`]: the Spin entry point (`components/app`) with every
//!   stage plugged in, credentials shared by poll, post, attach, trigger and
//!   the directory (and the same provider instance completing OAuth
//!   installs), the directory plugged into the matcher. Its imports are
//!   only WASI 0.2 (`wasi:http`, `wasi:keyvalue`, `wasi:config`, ...):
//!   what Spin's `platform` world provides.
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

/// A deployable component and what goes into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deployable {
    /// The Spin entry point with the whole pipeline.
    App,
    /// The Update Call Record action.
    WriteBack,
}

impl Deployable {
    /// Both deployables.
    pub const ALL: [Deployable; 2] = [Deployable::App, Deployable::WriteBack];

    /// File name of the composed component.
    pub fn file_name(self) -> &'static str {
        match self {
            Deployable::App => "connectzero_app.composed.wasm",
            Deployable::WriteBack => "connectzero_write_back.composed.wasm",
        }
    }

    /// The component files (in the build's output directory) it is made of.
    pub fn inputs(self) -> &'static [&'static str] {
        match self {
            Deployable::App => &[
                "connectzero_credentials.wasm",
                "connectzero_directory.wasm",
                "connectzero_poll.wasm",
                "connectzero_dedup.wasm",
                "connectzero_match.wasm",
                "connectzero_post.wasm",
                "connectzero_attach.wasm",
                "connectzero_trigger.wasm",
                "connectzero_app.wasm",
            ],
            Deployable::WriteBack => &[
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
}

/// Compose `deployable` from the components in `dir`.
pub fn compose(deployable: Deployable, dir: &Path) -> Result<Vec<u8>, ComposeError> {
    let mut graph = Graph::new(dir);
    let credentials_instance = graph.instance("connectzero_credentials.wasm")?;
    let credentials = graph.export_of(credentials_instance, "credentials")?;
    let root = match deployable {
        Deployable::WriteBack => {
            let write_back = graph.instance("connectzero_write_back.wasm")?;
            graph.plug(write_back, "credentials", credentials)?;
            write_back
        }
        Deployable::App => {
            let directory = graph.instance("connectzero_directory.wasm")?;
            graph.plug(directory, "credentials", credentials)?;
            let directory = graph.export_of(directory, "directory")?;
            let app = graph.instance("connectzero_app.wasm")?;
            let install = graph.export_of(credentials_instance, "crm-install")?;
            graph.plug(app, "crm-install", install)?;
            for (file, interface) in [
                ("connectzero_poll.wasm", "poll"),
                ("connectzero_dedup.wasm", "dedup"),
                ("connectzero_match.wasm", "matcher"),
                ("connectzero_post.wasm", "post"),
                ("connectzero_attach.wasm", "attach"),
                ("connectzero_trigger.wasm", "trigger"),
            ] {
                let stage = graph.instance(file)?;
                match interface {
                    "dedup" => {}
                    "matcher" => graph.plug(stage, "directory", directory)?,
                    _ => graph.plug(stage, "credentials", credentials)?,
                }
                let export = graph.export_of(stage, interface)?;
                graph.plug(app, interface, export)?;
            }
            app
        }
    };
    graph.finish(root)
}

/// A composition graph under construction.
struct Graph<'a> {
    dir: &'a Path,
    graph: CompositionGraph,
}

fn interface_name(interface: &str) -> String {
    format!("{PKG}/{interface}@{VERSION}")
}

impl<'a> Graph<'a> {
    fn new(dir: &'a Path) -> Self {
        Self {
            dir,
            graph: CompositionGraph::new(),
        }
    }

    fn register(&mut self, file: &str) -> Result<PackageId, ComposeError> {
        let input = |reason: String| ComposeError::Input {
            file: file.to_string(),
            reason,
        };
        let path = self.dir.join(file);
        let bytes = std::fs::read(&path).map_err(|e| input(format!("{}: {e}", path.display())))?;
        let name = format!(
            "connectzero:{}",
            file.trim_end_matches(".wasm").replace('_', "-")
        );
        let package = Package::from_bytes(&name, None, bytes, self.graph.types_mut())
            .map_err(|e| input(format!("{e:#}")))?;
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

    /// Export `root`'s HTTP handler and encode. Every import nobody
    /// satisfied (the WASI ones) becomes an import of the result.
    fn finish(mut self, root: NodeId) -> Result<Vec<u8>, ComposeError> {
        const HANDLER: &str = "wasi:http/incoming-handler@0.2.4";
        let wiring = |what: &str, reason: String| ComposeError::Wiring {
            what: what.to_string(),
            reason,
        };
        let handler = self
            .graph
            .alias_instance_export(root, HANDLER)
            .map_err(|e| wiring(HANDLER, e.to_string()))?;
        self.graph
            .export(handler, HANDLER)
            .map_err(|e| wiring(HANDLER, e.to_string()))?;
        self.graph
            .encode(EncodeOptions::default())
            .map_err(|e| wiring("the composition", e.to_string()))
    }
}
