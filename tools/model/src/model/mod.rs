//! The state, the actions and the step functions of the protocol model.
//!
//! Each worker steps through one tick as the components run it (poll →
//! claim → renew → post → queue follow-ups → complete/release → commit),
//! one I/O step per action, so the checker interleaves every step of every
//! worker with every other worker's, with 3CX events, with time passing
//! and with crashes. Every decision is taken by `guest_support::protocol`;
//! this module only moves facts between the simulated key-value store, 3CX,
//! the CRM and those functions.
//!
//! This module holds the model itself ([`ProtocolModel`]: the scenario's
//! events and legs, and the questions about time and 3CX every step asks);
//! each of its parts has one job:
//!
//! - `config`: which protocol the workers run, within which bounds.
//! - `state`: the world's state, a tick's progress and the actions.
//! - `step`: a worker's next step, and the writes of the settle phase.
//! - `poll`: what `ActiveCalls` lists, and the history read.
//! - `claim`: the steps of a claim, first claim or renewal.
//! - `post`: the steps of the post stage.
//! - `summary`: one line describing a state, for traces.

mod claim;
mod config;
mod poll;
mod post;
mod state;
mod step;
mod summary;

pub use config::{Config, Join, Variant};
pub use post::post_window;
pub use state::{
    Action, Batch, CallKey, ClaimStep, Fate, LegKey, Op, Pc, PostStep, State, Tick, TickCall,
    Worker,
};

use crate::scenario::{Event, UNIT_MS, index, ms};
use guest_support::protocol::ENDED_GRACE_MS;
use std::collections::{BTreeMap, BTreeSet};

/// The protocol model: a [`Config`] and what follows from it.
#[derive(Clone, Debug)]
pub struct ProtocolModel {
    /// The bounds and the world.
    pub config: Config,
    /// The scenario's events, in a fixed order, with their times.
    events: Vec<(Event, u8)>,
    /// Every leg: its call, id, start and end, and the event that writes
    /// its row.
    legs: Vec<ModelLeg>,
}

/// A leg as the model looks it up.
#[derive(Clone, Debug)]
struct ModelLeg {
    call: u8,
    leg_id: i32,
    start: u8,
    end: u8,
    /// Index of the event that writes its row.
    written_by: usize,
}

/// Outcome string of a posted call (`posted:<message id>`); the message
/// id is the same for every post of a call, so one string does.
const POSTED: &str = "posted:m";

impl ProtocolModel {
    /// The model of `config`.
    pub fn new(config: Config) -> Self {
        let scenario = &config.scenario;
        let events: Vec<(Event, u8)> = scenario
            .events()
            .into_iter()
            .map(|e| (e, scenario.time_of(e)))
            .collect();
        assert!(events.len() <= 32, "happened is a 32-bit set");
        let position = |wanted: Event| {
            events
                .iter()
                .position(|(e, _)| *e == wanted)
                .expect("every leg's row is written by an event")
        };
        let legs = scenario
            .legs()
            .into_iter()
            .enumerate()
            .map(|(g, (call, leg))| ModelLeg {
                call,
                leg_id: leg.leg_id,
                start: leg.start,
                end: leg.end,
                written_by: if scenario.events().contains(&Event::WriteSegment(index(g))) {
                    position(Event::WriteSegment(index(g)))
                } else {
                    position(Event::End(call))
                },
            })
            .collect();
        Self {
            config,
            events,
            legs,
        }
    }

    /// The lease in ms, as the tick passes it to the ledger.
    pub fn lease_ms(&self) -> u64 {
        u64::from(self.config.lease) * u64::try_from(UNIT_MS).expect("positive unit")
    }

    /// The overlap window in ms.
    pub fn overlap_ms(&self) -> i64 {
        ms(self.config.overlap)
    }

    /// The world before anything happened.
    pub fn initial(&self) -> State {
        State {
            now: 0,
            faults_left: self.config.faults,
            happened: 0,
            sightings: Vec::new(),
            cursor: None,
            ledger: BTreeMap::new(),
            markers: BTreeSet::new(),
            queued: BTreeSet::new(),
            crm: BTreeMap::new(),
            partial: BTreeSet::new(),
            workers: (0..self.config.workers)
                .map(|_| Worker {
                    incarnation: 0,
                    ticked: false,
                    tick: None,
                })
                .collect(),
        }
    }

    /// The events that are due and have not happened, in a fixed order.
    pub fn due_events(&self, s: &State) -> Vec<Event> {
        self.events
            .iter()
            .enumerate()
            .filter(|(i, (_, at))| s.happened & (1 << i) == 0 && *at <= s.now)
            .map(|(_, (e, _))| *e)
            .collect()
    }

    /// Let `event` happen.
    pub fn fire(&self, s: &mut State, event: Event) {
        let i = self
            .events
            .iter()
            .position(|(e, _)| *e == event)
            .expect("an event of the scenario");
        s.happened |= 1 << i;
    }

    fn happened(&self, s: &State, event: Event) -> bool {
        self.events
            .iter()
            .position(|(e, _)| *e == event)
            .is_some_and(|i| s.happened & (1 << i) != 0)
    }

    /// Whether call `c` has ended (left `ActiveCalls`).
    pub fn ended(&self, s: &State, c: u8) -> bool {
        self.happened(s, Event::End(c))
    }

    /// Whether call `c` has begun (listed, or ended).
    pub fn started(&self, s: &State, c: u8) -> bool {
        self.config.scenario.calls[usize::from(c)].start() <= s.now
    }

    /// Whether time may pass. Events happen in their time unit; and a
    /// worker inside the post of one call finishes it within the lease,
    /// counted from the clock reading of its renewal (or, without one, its
    /// marker read) to the send: that is the assumption a lease rests on
    /// (without fencing, an expired claim cannot stop a request already on
    /// its way). Everywhere else a worker may stall for any time.
    pub fn may_advance(&self, s: &State) -> bool {
        if s.now >= self.config.horizon || !self.due_events(s).is_empty() {
            return false;
        }
        let next = ms(s.now + 1);
        let lease = ms(self.config.lease);
        s.workers.iter().all(|w| {
            post_window(w).is_none_or(|start| next - start < lease)
                && (self.config.stall_between_reads
                    || !matches!(w.tick.as_deref(), Some(Tick::Listed { .. })))
        })
    }

    /// The name worker `w` claims under.
    pub fn worker_name(s: &State, w: usize) -> String {
        format!("w{w}.{}", s.workers[w].incarnation)
    }

    /// Model time after which every call has ended, every lease expired
    /// and every sighting's grace passed: where the drain jumps to.
    pub fn drain_time(&self) -> u8 {
        let grace = u8::try_from((ENDED_GRACE_MS + UNIT_MS - 1) / UNIT_MS).expect("small grace");
        self.config.horizon.max(self.config.scenario.last_event()) + self.config.lease + grace + 1
    }
}

/// The call key as 3CX-derived text (`3cx:<call id>@<start ms>`), as the
/// ledger's `call` field holds it.
fn key_text(m: &ProtocolModel, key: CallKey) -> String {
    let call = &m.config.scenario.calls[usize::from(key.0)];
    format!("3cx:{}@{}", call.call_id, ms(key.1))
}
