//! The stateright `Model` implementation and the properties checked.
//!
//! Stateright's `eventually` only judges terminal paths, and this model
//! has none worth judging (an idle worker can always tick again). The
//! liveness properties are therefore `always` properties over a *drain*:
//! from the state, the other workers stop for good (as if dead), time
//! jumps past every call's end, every lease and every sighting's grace,
//! and worker 0 alone runs its tick to the end and then
//! [`DRAIN_TICKS`] more, through the same step function the checker
//! uses. What the drain leaves is then judged.

use crate::model::{Action, Batch, Fate, ProtocolModel, State, Tick};
use crate::scenario::index;
use guest_support::protocol::Entry;
use stateright::{Model, Property};
use std::cell::RefCell;

/// Full ticks the drain runs after finishing the tick in progress: one
/// reads and handles everything once leases and grace have passed; the
/// second shows nothing is left over.
pub const DRAIN_TICKS: usize = 2;

/// Steps one drained tick may take before the drain gives up (a tick that
/// does not end is itself a liveness failure).
const DRAIN_STEP_LIMIT: usize = 200;

/// Property names, for tests and reports.
pub mod names {
    /// (a) safety: the CRM never holds two messages for one call.
    pub const NO_DOUBLE_POST: &str = "no call is posted twice";
    /// (b) liveness: every call that ends is posted.
    pub const ALL_POSTED: &str = "every ended call is eventually posted";
    /// (c) safety: the cursor stays before every call not done.
    pub const CURSOR_SAFE: &str = "the cursor never passes an unhandled call";
    /// (d) follow-ups queued exactly once per posted call.
    pub const FOLLOWUPS_ONCE: &str = "every posted call's follow-ups are queued exactly once";
    /// Safety: a call is posted with all its segments (never frozen part
    /// way in the CRM).
    pub const POSTED_WHOLE: &str = "every call is posted whole";
    /// Example (vacuity check): a takeover found the message in the CRM.
    pub const REUSED: &str = "a takeover reuses a message the CRM accepted";
    /// Example (vacuity check): a call read waited for its later segments.
    pub const WAITED: &str = "a call read waits for the rest of it";
}

impl ProtocolModel {
    /// `s` drained: worker 0 alone, time past every lease and grace.
    pub fn drain(&self, s: &State) -> Result<State, String> {
        let mut s = s.clone();
        self.fire_due(&mut s);
        self.finish_tick(&mut s)?;
        s.now = s.now.max(self.drain_time());
        self.fire_due(&mut s);
        for _ in 0..DRAIN_TICKS {
            self.step(&mut s, 0, false);
            self.finish_tick(&mut s)?;
        }
        Ok(s)
    }

    fn fire_due(&self, s: &mut State) {
        for e in self.due_events(s) {
            self.fire(s, e);
        }
    }

    fn finish_tick(&self, s: &mut State) -> Result<(), String> {
        for _ in 0..DRAIN_STEP_LIMIT {
            if s.workers[0].tick.is_none() {
                return Ok(());
            }
            self.step(s, 0, false);
        }
        Err(format!(
            "worker 0's tick did not end within {DRAIN_STEP_LIMIT} steps"
        ))
    }

    /// Messages the CRM accepted for call `c`, under any key.
    pub fn messages(s: &State, c: u8) -> u32 {
        s.crm
            .iter()
            .filter(|((call, _), _)| *call == c)
            .map(|(_, n)| u32::from(*n))
            .sum()
    }

    /// Follow-up keys queued for call `c`.
    pub fn queued(s: &State, c: u8) -> usize {
        s.queued.iter().filter(|(call, _)| *call == c).count()
    }

    fn calls(&self) -> impl Iterator<Item = u8> + use<> {
        0..index(self.config.scenario.calls.len())
    }

    /// Whether every leg of call `c` is done in the ledger.
    pub fn done(&self, s: &State, c: u8) -> bool {
        self.config.scenario.calls[usize::from(c)]
            .legs
            .iter()
            .all(|l| {
                matches!(
                    s.ledger.get(&(l.leg_id, crate::scenario::ms(l.start))),
                    Some(Entry::Done { .. })
                )
            })
    }
}

/// A drained state, with the model and the state it was drained from.
type Drained = (usize, State, Result<State, String>);

thread_local! {
    /// The last drain on this thread: stateright evaluates the properties
    /// of one state one after the other on one thread, so the two drained
    /// properties share one drain.
    static LAST_DRAIN: RefCell<Option<Drained>> = const { RefCell::new(None) };
}

/// `m.drain(s)`, once per state for both properties that need it.
fn drained(m: &ProtocolModel, s: &State) -> Result<State, String> {
    let model = std::ptr::from_ref(m) as usize;
    LAST_DRAIN.with(|last| {
        if let Some((of, from, result)) = &*last.borrow()
            && *of == model
            && from == s
        {
            return result.clone();
        }
        let result = m.drain(s);
        *last.borrow_mut() = Some((model, s.clone(), result.clone()));
        result
    })
}

fn no_double_post(m: &ProtocolModel, s: &State) -> bool {
    m.calls().all(|c| ProtocolModel::messages(s, c) <= 1)
}

fn all_posted(m: &ProtocolModel, s: &State) -> bool {
    match drained(m, s) {
        Ok(d) => m.calls().all(|c| ProtocolModel::messages(&d, c) >= 1),
        Err(_) => false,
    }
}

fn cursor_safe(m: &ProtocolModel, s: &State) -> bool {
    let Some(cursor) = s.cursor else {
        return true;
    };
    let reread_from = cursor - m.overlap_ms();
    m.calls().all(|c| {
        let call = &m.config.scenario.calls[usize::from(c)];
        !m.started(s, c) || m.done(s, c) || crate::scenario::ms(call.start()) >= reread_from
    })
}

fn followups_once(m: &ProtocolModel, s: &State) -> bool {
    let never_twice = |s: &State| m.calls().all(|c| ProtocolModel::queued(s, c) <= 1);
    if !never_twice(s) {
        return false;
    }
    match drained(m, s) {
        Ok(d) => {
            never_twice(&d)
                && m.calls().all(|c| {
                    ProtocolModel::messages(&d, c) == 0 || ProtocolModel::queued(&d, c) == 1
                })
        }
        Err(_) => false,
    }
}

fn posted_whole(_: &ProtocolModel, s: &State) -> bool {
    s.partial.is_empty()
}

fn batches(s: &State) -> impl Iterator<Item = &Batch> {
    s.workers.iter().filter_map(|w| match w.tick.as_deref() {
        Some(Tick::Batch(b)) => Some(b),
        _ => None,
    })
}

fn reused(_: &ProtocolModel, s: &State) -> bool {
    batches(s).any(|b| {
        b.calls
            .iter()
            .any(|c| c.fate == Fate::Posted { reused: true })
    })
}

fn waited(_: &ProtocolModel, s: &State) -> bool {
    batches(s).any(|b| b.waited)
}

impl Model for ProtocolModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![self.initial()]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        actions.extend(self.due_events(s).into_iter().map(Action::ThreeCx));
        if self.may_advance(s) {
            actions.push(Action::Advance);
        }
        for w in 0..s.workers.len() {
            let wi = index(w);
            if s.workers[w].tick.is_some() || !s.workers[w].ticked {
                actions.push(Action::Step(wi));
            }
            if s.faults_left > 0 {
                if self.config.lost_answers && Self::at_send(s, w) {
                    actions.push(Action::LoseAnswer(wi));
                }
                if s.workers[w].tick.is_some() {
                    actions.push(Action::Crash(wi));
                }
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Advance => {
                s.now += 1;
                for w in &mut s.workers {
                    w.ticked = false;
                }
            }
            Action::ThreeCx(e) => self.fire(&mut s, e),
            Action::Step(w) => self.step(&mut s, usize::from(w), false),
            Action::LoseAnswer(w) => {
                s.faults_left -= 1;
                self.step(&mut s, usize::from(w), true);
            }
            Action::Crash(w) => {
                s.faults_left -= 1;
                let worker = &mut s.workers[usize::from(w)];
                worker.tick = None;
                worker.incarnation += 1;
            }
        }
        // An idle worker's tick that changes nothing leads back here:
        // stateright drops the repeat by its fingerprint.
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(names::NO_DOUBLE_POST, no_double_post),
            Property::always(names::ALL_POSTED, all_posted),
            Property::always(names::CURSOR_SAFE, cursor_safe),
            Property::always(names::FOLLOWUPS_ONCE, followups_once),
            Property::always(names::POSTED_WHOLE, posted_whole),
            Property::sometimes(names::REUSED, reused),
            Property::sometimes(names::WAITED, waited),
        ]
    }
}
