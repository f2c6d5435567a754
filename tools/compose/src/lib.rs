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
//!   tick, and the tenancy provider in front of every component's
//!   `wasi:keyvalue` and `wasi:config` (each tenant's keys and settings its
//!   own). Its imports are only WASI 0.2 (`wasi:http`, `wasi:keyvalue`,
//!   `wasi:config`, ...): what Spin's `platform` world provides.
//! - [`Deployable::WriteBack`]: the Update Call Record action with
//!   credentials and the tenancy provider (the app's own tenant's scope)
//!   plugged in.
//!
//! `crates/runtime/build.rs` runs it after building the components, so a normal
//! `cargo build` produces the composed files next to the stage ones.
//!
//! It depends on `wac-graph` and the component table (`connectzero-
//! stages`): never on wasmtime, the runtime or the host, which call it.

mod error;

pub use error::ComposeError;

use connectzero_stages::{Component, Grant, Stage, named};
use std::path::Path;
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions, NodeId, PackageId};

/// WIT package of the ConnectZero interfaces, with version.
const PKG: &str = "connectzero:pipeline";
const VERSION: &str = "0.1.0";

/// The Spin imports the tenancy provider (`components/tenancy`) exports
/// in the app's composition: every other component's use of them goes
/// through it.
const TENANCY_STANDS_IN_FOR: [&str; 4] = [
    "wasi:keyvalue/store@0.2.0-draft2",
    "wasi:keyvalue/atomics@0.2.0-draft2",
    "wasi:config/store@0.2.0-draft-2024-09-27",
    "wasi:http/outgoing-handler@0.2.4",
];

/// The HTTP handler the Spin deployables export.
const HANDLER: &str = "wasi:http/incoming-handler@0.2.4";

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

/// The component in `file` whose imports the composition checks against
/// its world's grants (`connectzero_stages`): the stages and the tick,
/// which an operator may replace. `None` for the Spin providers and the
/// app, which are ours and composed only into Spin deployables.
pub fn checked_component(file: &str) -> Option<&'static Component> {
    connectzero_stages::by_file(file).filter(|c| c.bundled())
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
            let credentials_instance = graph.instance(named("credentials").file)?;
            let credentials = graph.export_of(credentials_instance, "credentials")?;
            let directory = graph.instance(named("directory").file)?;
            graph.plug(directory, "credentials", credentials)?;
            let directory = graph.export_of(directory, self::directory())?;
            let call_log = graph.instance(named("call-log").file)?;
            let call_log = graph.export_of(call_log, "call-log")?;
            let providers = Providers {
                credentials,
                directory,
                call_log,
            };
            let pipeline = pipeline(&mut graph, Some(&providers))?;
            let app = graph.instance(named("app").file)?;
            let tick = graph.export_of(pipeline.tick, "tick")?;
            graph.plug(app, "tick", tick)?;
            // The app registers workflow subscriptions on the same trigger
            // instance the tick queues events on.
            graph.plug(app, "trigger", pipeline.trigger)?;
            let install = graph.export_of(credentials_instance, "crm-install")?;
            graph.plug(app, "crm-install", install)?;
            // Last, when every instance exists: each tenant's keys and
            // settings are its own, its HighLevel requests in its budget.
            let tenancy = graph.tenancy()?;
            let select = graph.export_of(tenancy, "tenancy")?;
            graph.plug(app, "tenancy", select)?;
            graph.finish(app, HANDLER)
        }
        Deployable::WriteBack => {
            let credentials_instance = graph.instance(named("credentials").file)?;
            let credentials = graph.export_of(credentials_instance, "credentials")?;
            let write_back = graph.instance(Stage::WriteBack.file_name())?;
            graph.plug(write_back, "credentials", credentials)?;
            // The tenancy provider here too, in the app's own tenant's
            // scope: its checked compare-and-swap (Spin's Redis store
            // reports every swap as failed) and the location's budget.
            graph.tenancy()?;
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
    let tick = graph.instance(connectzero_stages::tick().file)?;
    let mut trigger = None;
    for stage in Stage::PIPELINE {
        let component = stage.component();
        let instance = graph.instance(component.file)?;
        if let Some(p) = providers {
            if component.has(Grant::Credentials) {
                graph.plug(instance, "credentials", p.credentials)?;
            }
            if component.has(Grant::Directory) {
                graph.plug(instance, directory(), p.directory)?;
            }
        }
        let interface = component.export_interface();
        let export = graph.export_of(instance, interface)?;
        graph.plug(tick, interface, export)?;
        if stage == Stage::Trigger {
            trigger = Some(export);
        }
    }
    if let Some(p) = providers {
        graph.plug(tick, "call-log", p.call_log)?;
    }
    Ok(Pipeline {
        tick,
        trigger: trigger.expect("the pipeline has a trigger stage"),
    })
}

/// A composition graph under construction.
struct Graph<'a> {
    source: &'a dyn Source,
    graph: CompositionGraph,
    /// Every instance made so far, with its package.
    instances: Vec<(NodeId, PackageId)>,
}

/// The versioned name of a ConnectZero interface: a full name (the
/// matcher contract's `connectzero:matcher/directory`) as given, a short
/// one (`tick`) in the pipeline's package.
fn interface_name(interface: &str) -> String {
    if interface.contains(':') {
        format!("{interface}@{VERSION}")
    } else {
        format!("{PKG}/{interface}@{VERSION}")
    }
}

/// The directory's interface, from the registry (the matcher contract's).
fn directory() -> &'static str {
    Grant::Directory.interfaces()[0]
}

impl<'a> Graph<'a> {
    fn new(source: &'a dyn Source) -> Self {
        Self {
            source,
            graph: CompositionGraph::new(),
            instances: Vec::new(),
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
        if let Some(component) = checked_component(file) {
            let world = &self.graph.types()[package.ty()];
            for import in world.imports.keys() {
                if !component.allows_import(import) {
                    return Err(ComposeError::NotGranted {
                        file: file.to_string(),
                        import: import.clone(),
                        granted: component.granted_interfaces().join(", "),
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
        let node = self.graph.instantiate(package);
        self.instances.push((node, package));
        Ok(node)
    }

    /// The tenancy provider, standing in for Spin's key-value store,
    /// variables and outgoing HTTP in every instance made so far.
    fn tenancy(&mut self) -> Result<NodeId, ComposeError> {
        let tenancy = self.instance(named("tenancy").file)?;
        for interface in TENANCY_STANDS_IN_FOR {
            let export = self.export_named(tenancy, interface)?;
            self.plug_everywhere(interface, export, tenancy)?;
        }
        Ok(tenancy)
    }

    /// The export `name` (full, with version) of an instance.
    fn export_named(&mut self, instance: NodeId, name: &str) -> Result<NodeId, ComposeError> {
        self.graph
            .alias_instance_export(instance, name)
            .map_err(|e| ComposeError::Wiring {
                what: format!("the export {name}"),
                reason: e.to_string(),
            })
    }

    /// Satisfy the import `name` (full, with version) of every instance
    /// but `except` whose component imports it with `export`.
    fn plug_everywhere(
        &mut self,
        name: &str,
        export: NodeId,
        except: NodeId,
    ) -> Result<(), ComposeError> {
        for (node, package) in self.instances.clone() {
            let world = &self.graph.types()[self.graph[package].ty()];
            if node == except || !world.imports.contains_key(name) {
                continue;
            }
            self.graph
                .set_instantiation_argument(node, name, export)
                .map_err(|e| ComposeError::Wiring {
                    what: format!("the import {name}"),
                    reason: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// The ConnectZero `interface` an instance exports.
    fn export_of(&mut self, instance: NodeId, interface: &str) -> Result<NodeId, ComposeError> {
        self.export_named(instance, &interface_name(interface))
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
    fn the_matcher_is_checked_against_the_directory_only_and_providers_are_not() {
        let matcher = checked_component("connectzero_match.wasm").unwrap();
        assert_eq!(
            matcher.granted_interfaces(),
            ["connectzero:matcher/directory"]
        );
        assert!(checked_component("connectzero_tick.wasm").is_some());
        assert!(checked_component("connectzero_credentials.wasm").is_none());
    }
}
