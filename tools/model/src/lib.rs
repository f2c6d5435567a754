//! # A model checker for ConnectZero's exactly-once protocol (issue 22)
//!
//! A [stateright] model of the workers that move 3CX calls into the CRM:
//! several workers share one key-value store and step, one I/O at a time,
//! through poll → claim → renew → post → queue follow-ups →
//! complete/release → commit, while 3CX writes rows as calls end, time
//! passes (stalls, lease expiry) and workers crash. Every decision is
//! taken by the real code in `guest_support::protocol`; the model only
//! simulates the I/O around it.
//!
//! - [`scenario`]: the 3CX calls and when their rows appear.
//! - [`model`]: state, actions and the worker's step function.
//! - [`properties`]: the `Model` implementation and what is checked.
//!
//! See docs/MODEL.md for what is modelled and what is abstracted away.
//!
//! It depends on `stateright` and on the protocol's decisions in `guest-
//! support` (the code the components run): never on wasmtime, the runtime
//! or the host.

pub mod model;
pub mod properties;
pub mod scenario;

pub use model::{Action, Config, Join, ProtocolModel, State, Variant};
pub use scenario::Scenario;

use stateright::{Checker, Model};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A counterexample (or example): the actions from the initial state, and
/// the state they lead to.
#[derive(Clone, Debug)]
pub struct Trace {
    /// The actions, first first.
    pub actions: Vec<Action>,
    /// The state at the end.
    pub last: State,
}

/// What one check found.
#[derive(Debug)]
pub struct Report {
    /// Unique states explored.
    pub unique_states: usize,
    /// States generated, repeats included.
    pub states: usize,
    /// Longest path explored.
    pub max_depth: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Discoveries by property name: counterexamples of `always`
    /// properties, examples of `sometimes` ones.
    pub discoveries: BTreeMap<&'static str, Trace>,
    /// Whether the whole bounded state space was explored (a check told
    /// to stop at a discovery may end early).
    pub complete: bool,
}

/// When a check may stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopAt {
    /// Explore every reachable state.
    Exhausted,
    /// Stop at the first discovery of this property.
    Discovery(&'static str),
}

/// Explore `config`'s state space breadth first on `threads` threads
/// (one thread finds the shortest counterexamples).
pub fn check(config: Config, threads: usize, stop: StopAt) -> Report {
    let started = Instant::now();
    let mut builder = ProtocolModel::new(config).checker().threads(threads);
    if let StopAt::Discovery(name) = stop {
        builder = builder.finish_when(stateright::HasDiscoveries::AnyOf([name].into()));
    }
    let checker = builder.spawn_bfs().join();
    let discoveries = checker
        .discoveries()
        .into_iter()
        .map(|(name, path)| {
            let last = path.last_state().clone();
            let actions = path.into_actions();
            (name, Trace { actions, last })
        })
        .collect();
    let complete = match stop {
        StopAt::Exhausted => true,
        StopAt::Discovery(name) => {
            let found: &BTreeMap<&str, Trace> = &discoveries;
            !found.contains_key(name)
        }
    };
    Report {
        unique_states: checker.unique_state_count(),
        states: checker.state_count(),
        max_depth: checker.max_depth(),
        elapsed: started.elapsed(),
        discoveries,
        complete,
    }
}

/// Every `always` property's name.
pub fn safety_and_liveness() -> [&'static str; 5] {
    use properties::names::*;
    [
        NO_DOUBLE_POST,
        ALL_POSTED,
        CURSOR_SAFE,
        FOLLOWUPS_ONCE,
        POSTED_WHOLE,
    ]
}

/// `trace` replayed on `config`, one line per action: the action, then
/// the world after it (time, cursor, ledger, markers, CRM, follow-ups and
/// where each worker is). For reading counterexamples.
pub fn explain(config: &Config, trace: &Trace) -> String {
    let model = ProtocolModel::new(config.clone());
    let mut state = model.initial();
    let mut out = String::new();
    for (i, action) in trace.actions.iter().enumerate() {
        match model.next_state(&state, *action) {
            Some(next) => state = next,
            None => return out + "(the trace does not replay)\n",
        }
        out += &format!(
            "{:>3}. {:<16} {}\n",
            i + 1,
            format!("{action:?}"),
            model.summary(&state)
        );
    }
    out
}
