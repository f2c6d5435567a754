//! The state, the actions and the step functions of the protocol model.
//!
//! Each worker steps through one tick as the components run it (poll →
//! claim → renew → post → queue follow-ups → complete/release → commit),
//! one I/O step per action, so the checker interleaves every step of every
//! worker with every other worker's, with 3CX events, with time passing
//! and with crashes. Every decision is taken by `guest_support::protocol`;
//! this file only moves facts between the simulated key-value store, 3CX,
//! the CRM and those functions.

use crate::scenario::{Event, Scenario, UNIT_MS, index, ms};
use guest_support::protocol::{
    self, ClaimDecision, Completeness, CursorFacts, ENDED_GRACE_MS, Entry, Listed, Sighting,
};
use std::collections::{BTreeMap, BTreeSet};

/// Which protocol the workers run: the implemented one, or one with a
/// known defect the checker must find.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The protocol as implemented.
    Implemented,
    /// The cursor moves on start times only: every call read is complete
    /// and `next_cursor` sees no sightings.
    CursorOnStartOnly,
    /// A claimed call is posted without claiming it again first.
    NoClaimRecheck,
    /// The ledger marks a call done before its follow-ups are queued.
    FollowupsAfterDone,
}

impl Variant {
    /// Every variant, the implemented protocol first.
    pub const ALL: [Variant; 4] = [
        Variant::Implemented,
        Variant::CursorOnStartOnly,
        Variant::NoClaimRecheck,
        Variant::FollowupsAfterDone,
    ];

    /// The variant's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Implemented => "implemented",
            Variant::CursorOnStartOnly => "cursor-on-start-only",
            Variant::NoClaimRecheck => "no-claim-recheck",
            Variant::FollowupsAfterDone => "followups-after-done",
        }
    }
}

/// The bounds and the world of one model run.
#[derive(Clone, Debug)]
pub struct Config {
    /// The 3CX calls.
    pub scenario: Scenario,
    /// How many workers share the key-value store.
    pub workers: u8,
    /// How many faults may happen in one run: worker crashes (at any
    /// step) and CRM answers lost after the CRM accepted the message.
    pub faults: u8,
    /// Whether a fault may be a lost CRM answer (otherwise only crashes).
    pub lost_answers: bool,
    /// The claim lease, model time units.
    pub lease: u8,
    /// The overlap window the poll re-reads before the cursor, units.
    pub overlap: u8,
    /// Whether time may pass between a worker's `ActiveCalls` read and
    /// its history read (a stall there); otherwise the two are made in
    /// the same time unit.
    pub stall_between_reads: bool,
    /// How a claim that finds the call done marks its other legs: as
    /// implemented (`protocol::joins_done_call`), or only legs without an
    /// entry (the defect the model found).
    pub join: Join,
    /// Time does not pass beyond this while exploring (the drain used by
    /// the liveness properties goes further).
    pub horizon: u8,
    /// The protocol the workers run.
    pub variant: Variant,
}

impl Config {
    /// `scenario` with two workers, one fault, a lease of two units, no
    /// overlap window (the protocol must not need one) and a horizon that
    /// lets a lease expire after the last call ends.
    pub fn new(scenario: Scenario, variant: Variant) -> Self {
        let lease = 2;
        let horizon = scenario.last_event() + lease;
        Self {
            scenario,
            workers: 2,
            faults: 1,
            lost_answers: true,
            lease,
            overlap: 0,
            stall_between_reads: true,
            join: Join::NotDone,
            horizon,
            variant,
        }
    }
}

/// Which legs a claim that finds its call done marks done too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Join {
    /// Legs without an entry (`Ledger::claim_call` before the model found
    /// the defect): kept to show the checker finds it.
    Unmarked,
    /// As implemented: `protocol::joins_done_call`, every leg not done.
    NotDone,
}

/// A call key as the model keeps it: the call (index into the scenario)
/// and the start of the first leg the reading worker saw, model time.
/// Two keys of one call mean it was read split in two, as 3CX's key
/// (`3cx:<call id>@<first leg start>`) would then differ too.
pub type CallKey = (u8, u8);

/// A ledger key: leg id and leg start in ms (`ledger/<leg id>@<start>`).
pub type LegKey = (i32, i64);

/// The whole world: time, 3CX, the shared key-value store, the CRM and
/// the workers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Model time.
    pub now: u8,
    /// Faults that may still happen.
    pub faults_left: u8,
    /// 3CX events that happened (bit per event of `Scenario::events`).
    pub happened: u32,
    /// Key-value store: `poll/active`.
    pub sightings: Vec<Sighting>,
    /// Key-value store: `poll/cursor`, ms.
    pub cursor: Option<i64>,
    /// Key-value store: the ledger.
    pub ledger: BTreeMap<LegKey, Entry>,
    /// Key-value store: `post/sending/<call key>` markers.
    pub markers: BTreeSet<CallKey>,
    /// Key-value store: follow-up jobs queued (idempotent per call key).
    pub queued: BTreeSet<CallKey>,
    /// The CRM: messages accepted per call key (capped at 3).
    pub crm: BTreeMap<CallKey, u8>,
    /// The CRM: keys whose message was sent with some of the call's legs
    /// missing (a partial call, frozen as such in the CRM).
    pub partial: BTreeSet<CallKey>,
    /// The workers.
    pub workers: Vec<Worker>,
}

/// One worker process.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Worker {
    /// Restarts so far: a restarted process claims under a new name.
    pub incarnation: u8,
    /// Whether it started a tick in this time unit: ticks start at most
    /// once a unit (the tick interval), though one may run for many.
    pub ticked: bool,
    /// The tick in progress; `None` when idle.
    pub tick: Option<Box<Tick>>,
}

/// A tick in progress.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Tick {
    /// Cursor read, then `ActiveCalls` read and merged with the stored
    /// sightings; next: store them and read the history.
    Listed {
        /// The stored cursor, as read.
        stored: Option<i64>,
        /// PBX time of the `ActiveCalls` read, ms.
        pbx_now: i64,
        /// The merged sightings.
        sightings: Vec<Sighting>,
    },
    /// History read: the calls handed on and where the tick is with them.
    Batch(Batch),
}

/// The calls one tick works on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Batch {
    /// The next step.
    pub pc: Pc,
    /// `next_cursor` of the poll.
    pub high_water: Option<i64>,
    /// Earliest start of a call held (in flight elsewhere or retrying).
    pub hold: Option<i64>,
    /// `now` of the claim batch: `claim-calls` reads the clock once.
    pub claim_now: Option<i64>,
    /// The complete calls read, oldest first.
    pub calls: Vec<TickCall>,
    /// Whether a call read was left waiting for later segments.
    pub waited: bool,
}

/// A call read by a tick.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TickCall {
    /// Its key.
    pub key: CallKey,
    /// Its visible legs' ledger keys.
    pub legs: Vec<LegKey>,
    /// Its start (first visible leg), ms.
    pub start: i64,
    /// What became of it in this tick.
    pub fate: Fate,
}

/// What became of a call in a tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fate {
    /// Not claimed yet.
    Unclaimed,
    /// This worker holds every leg.
    Claimed,
    /// Handled before (by anyone).
    Done,
    /// Another worker holds it: the cursor waits before it.
    InFlight,
    /// The renewal found it taken over or finished by another worker: not
    /// posted here, and the cursor waits before it.
    Lost,
    /// In the CRM: sent now, or found after a takeover (`reused`).
    Posted {
        /// Found by the takeover lookup instead of sent.
        reused: bool,
    },
    /// The CRM answer was lost: released, retried later.
    Failed,
}

/// The next step of a tick.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Pc {
    /// Claiming call `call` (`renewal`: again, right before posting it).
    Claim {
        /// Index into the batch.
        call: u8,
        /// The claim right before posting.
        renewal: bool,
        /// Where the claim is.
        sub: ClaimStep,
    },
    /// Posting call `call`.
    Post {
        /// Index into the batch.
        call: u8,
        /// When the post request began (the renewal, or the marker read
        /// without one): see [`ProtocolModel::may_advance`].
        window: Option<i64>,
        /// Where the post is.
        sub: PostStep,
    },
    /// Settling: the remaining writes, then the cursor commit.
    Settle {
        /// Remaining operations, next first.
        ops: Vec<Op>,
    },
}

/// One step of `Ledger::claim_call`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClaimStep {
    /// Read every leg's entry and `decide_claim`.
    Decide,
    /// Compare-and-swap leg `leg` under `may_take_leg`.
    Cas {
        /// The claim's clock reading.
        now: i64,
        /// Index into the call's legs.
        leg: u8,
    },
    /// A leg's swap lost: give back the first `taken` legs.
    Undo {
        /// The claim's clock reading.
        now: i64,
        /// Legs taken before the loss.
        taken: u8,
    },
    /// The call is done: mark the legs that had no entry done too.
    Join {
        /// The claim's clock reading.
        now: i64,
        /// The call's outcome.
        outcome: String,
        /// Indices of the legs read without an entry.
        legs: Vec<u8>,
    },
}

/// One step of the post stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PostStep {
    /// Read the send marker; if there is one, look the message up.
    ReadMarker,
    /// Write the send marker.
    WriteMarker,
    /// Send: the CRM accepts the message.
    Send,
}

/// One write of the settle phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Queue the follow-ups of batch call `n` (recording, triggers).
    Queue(u8),
    /// Mark leg `leg` of batch call `n` done (`complete` writes one leg
    /// at a time).
    Complete(u8, u8),
    /// Give back the legs of batch call `n` (failed for now).
    Release(u8),
    /// Commit the cursor; the tick ends.
    Commit,
}

/// What may happen next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// One unit of time passes (also while workers are mid-tick: a stall).
    Advance,
    /// 3CX moves on.
    ThreeCx(Event),
    /// Worker `w` takes its next step; an idle worker starts a tick.
    Step(u8),
    /// Worker `w`'s send reaches the CRM, which accepts the message, but
    /// the answer is lost: the worker takes the call as failed for now.
    LoseAnswer(u8),
    /// Worker `w` crashes; it restarts idle, with no local state, under a
    /// new name.
    Crash(u8),
}

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

    /// What `ActiveCalls` lists now.
    fn listed(&self, s: &State) -> Vec<Listed> {
        let scenario = &self.config.scenario;
        (0..index(scenario.calls.len()))
            .filter(|c| self.started(s, *c) && !self.ended(s, *c))
            .map(|c| Listed {
                id: scenario.calls[usize::from(c)].call_id,
                established_at: Some(ms(scenario.calls[usize::from(c)].start())),
                sides: scenario.sides(c),
            })
            .collect()
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

    /// Worker `w`'s next step; `lose_answer` makes a send's answer lost.
    /// The liveness drain calls this too.
    pub fn step(&self, s: &mut State, w: usize, lose_answer: bool) {
        let now = ms(s.now);
        match s.workers[w].tick.take().map(|t| *t) {
            None => {
                // Poll, step 1: the cursor, then `ActiveCalls` (before the
                // history), merged with what the store remembers.
                let listed = self.listed(s);
                let sightings = protocol::merge_sightings(&s.sightings, &listed, now);
                s.workers[w].ticked = true;
                s.workers[w].tick = Some(Box::new(Tick::Listed {
                    stored: s.cursor,
                    pbx_now: now,
                    sightings,
                }));
            }
            Some(Tick::Listed {
                stored,
                pbx_now,
                sightings,
            }) => {
                let batch = self.read_history(s, stored, pbx_now, sightings);
                s.workers[w].tick = Some(Box::new(Tick::Batch(batch)));
            }
            Some(Tick::Batch(mut batch)) => {
                let name = Self::worker_name(s, w);
                let running = self.batch_step(s, &mut batch, &name, lose_answer);
                if running {
                    s.workers[w].tick = Some(Box::new(Tick::Batch(batch)));
                }
            }
        }
    }

    /// Poll, steps 2 and 3: store the sightings, read the rows from the cursor minus the overlap, group them into calls, hand
    /// on the complete ones and work out the cursor.
    fn read_history(
        &self,
        s: &mut State,
        stored: Option<i64>,
        pbx_now: i64,
        sightings: Vec<Sighting>,
    ) -> Batch {
        s.sightings = sightings.clone();
        let from = stored.map(|c| c - self.overlap_ms());
        let scenario = &self.config.scenario;
        let mut calls = Vec::new();
        let mut unsettled = Vec::new();
        let mut newest_leg_start: Option<i64> = None;
        for c in 0..index(scenario.calls.len()) {
            let visible: Vec<&ModelLeg> = self
                .legs
                .iter()
                .filter(|leg| {
                    leg.call == c
                        && s.happened & (1 << leg.written_by) != 0
                        && from.is_none_or(|f| ms(leg.start) >= f)
                })
                .collect();
            let Some(first) = visible.iter().map(|l| l.start).min() else {
                continue;
            };
            let newest_end = visible.iter().map(|l| ms(l.end)).max().unwrap_or(0);
            let start = ms(first);
            newest_leg_start = newest_leg_start.max(visible.iter().map(|l| ms(l.start)).max());
            let complete = self.config.variant == Variant::CursorOnStartOnly
                || protocol::completeness(&scenario.numbers(c), newest_end, &sightings, pbx_now)
                    == Completeness::Complete;
            if complete {
                let mut legs: Vec<LegKey> =
                    visible.iter().map(|l| (l.leg_id, ms(l.start))).collect();
                legs.sort_by_key(|(id, start)| (*start, *id));
                calls.push(TickCall {
                    key: (c, first),
                    legs,
                    start,
                    fate: Fate::Unclaimed,
                });
            } else {
                unsettled.push(start);
            }
        }
        calls.sort_by_key(|call| (call.start, call.key));
        let high_water = protocol::next_cursor(&CursorFacts {
            stored,
            newest_leg_start,
            unsettled_starts: unsettled.clone(),
            sightings: if self.config.variant == Variant::CursorOnStartOnly {
                Vec::new()
            } else {
                sightings
            },
            pbx_now,
        });
        let pc = if calls.is_empty() {
            Pc::Settle {
                ops: vec![Op::Commit],
            }
        } else {
            Pc::Claim {
                call: 0,
                renewal: false,
                sub: ClaimStep::Decide,
            }
        };
        Batch {
            pc,
            high_water,
            hold: None,
            claim_now: None,
            calls,
            waited: !unsettled.is_empty(),
        }
    }

    /// One step of a tick past the poll. `false` when the tick ended.
    fn batch_step(&self, s: &mut State, b: &mut Batch, name: &str, lose_answer: bool) -> bool {
        let now = ms(s.now);
        match b.pc.clone() {
            Pc::Claim { call, renewal, sub } => {
                self.claim_step(s, b, name, call, renewal, sub);
                true
            }
            Pc::Post { call, window, sub } => {
                self.post_step(s, b, call, window, sub, lose_answer);
                true
            }
            Pc::Settle { mut ops } => {
                let op = ops.remove(0);
                b.pc = Pc::Settle { ops };
                match op {
                    Op::Queue(n) => {
                        s.queued.insert(b.calls[usize::from(n)].key);
                    }
                    Op::Complete(n, leg) => {
                        let call = &b.calls[usize::from(n)];
                        let entry = Entry::done(&key_text(self, call.key), POSTED, now);
                        s.ledger.insert(call.legs[usize::from(leg)], entry);
                    }
                    Op::Release(n) => {
                        for leg in &b.calls[usize::from(n)].legs {
                            if protocol::may_release_leg(s.ledger.get(leg), name) {
                                s.ledger.insert(*leg, Entry::Released { at: now });
                            }
                        }
                    }
                    Op::Commit => {
                        // Step 8: the cursor stays before every call held,
                        // and never moves back.
                        let commit = match (b.high_water, b.hold) {
                            (Some(h), Some(held)) => Some(h.min(held)),
                            (h, _) => h,
                        };
                        if let Some(commit) = commit
                            && let Some(next) = protocol::cursor_to_store(s.cursor, commit)
                        {
                            s.cursor = Some(next);
                        }
                        return false;
                    }
                }
                true
            }
        }
    }

    /// One step of `Ledger::claim_call`, first claim or renewal.
    fn claim_step(
        &self,
        s: &mut State,
        b: &mut Batch,
        name: &str,
        n: u8,
        renewal: bool,
        sub: ClaimStep,
    ) {
        let i = usize::from(n);
        let key = key_text(self, b.calls[i].key);
        let legs = b.calls[i].legs.clone();
        match sub {
            ClaimStep::Decide => {
                // The claim batch reads the clock once; a renewal reads it
                // right before the post.
                let now = if renewal {
                    ms(s.now)
                } else {
                    *b.claim_now.get_or_insert(ms(s.now))
                };
                let entries: Vec<Option<&Entry>> = legs.iter().map(|k| s.ledger.get(k)).collect();
                match protocol::decide_claim(entries.clone(), name, now, self.lease_ms()) {
                    ClaimDecision::AlreadyDone(outcome) => {
                        let join = self.config.join;
                        let unmarked: Vec<u8> = entries
                            .iter()
                            .enumerate()
                            .filter(|(_, e)| match join {
                                Join::Unmarked => e.is_none(),
                                Join::NotDone => protocol::joins_done_call(**e),
                            })
                            .map(|(j, _)| index(j))
                            .collect();
                        if unmarked.is_empty() {
                            self.claimed(b, n, renewal, Fate::Done, now);
                        } else {
                            b.pc = Pc::Claim {
                                call: n,
                                renewal,
                                sub: ClaimStep::Join {
                                    now,
                                    outcome,
                                    legs: unmarked,
                                },
                            };
                        }
                    }
                    ClaimDecision::HeldElsewhere => {
                        self.claimed(b, n, renewal, Fate::InFlight, now);
                    }
                    ClaimDecision::Take => {
                        b.pc = Pc::Claim {
                            call: n,
                            renewal,
                            sub: ClaimStep::Cas { now, leg: 0 },
                        };
                    }
                }
            }
            ClaimStep::Cas { now, leg } => {
                let k = legs[usize::from(leg)];
                if protocol::may_take_leg(s.ledger.get(&k), name, now, self.lease_ms()) {
                    s.ledger.insert(
                        k,
                        Entry::Claimed {
                            call: key,
                            worker: name.to_string(),
                            at: now,
                        },
                    );
                    if usize::from(leg) + 1 == legs.len() {
                        self.claimed(b, n, renewal, Fate::Claimed, now);
                    } else {
                        b.pc = Pc::Claim {
                            call: n,
                            renewal,
                            sub: ClaimStep::Cas { now, leg: leg + 1 },
                        };
                    }
                } else if leg == 0 {
                    self.claimed(b, n, renewal, Fate::InFlight, now);
                } else {
                    b.pc = Pc::Claim {
                        call: n,
                        renewal,
                        sub: ClaimStep::Undo { now, taken: leg },
                    };
                }
            }
            ClaimStep::Undo { now, taken } => {
                for k in &legs[..usize::from(taken)] {
                    if protocol::may_release_leg(s.ledger.get(k), name) {
                        s.ledger.insert(*k, Entry::Released { at: now });
                    }
                }
                self.claimed(b, n, renewal, Fate::InFlight, now);
            }
            ClaimStep::Join {
                now,
                outcome,
                legs: unmarked,
            } => {
                for j in unmarked {
                    s.ledger
                        .insert(legs[usize::from(j)], Entry::done(&key, &outcome, now));
                }
                self.claimed(b, n, renewal, Fate::Done, now);
            }
        }
    }

    /// A claim of batch call `n` ended with `fate`: on to the next call to
    /// claim, or to posting.
    fn claimed(&self, b: &mut Batch, n: u8, renewal: bool, fate: Fate, now: i64) {
        let i = usize::from(n);
        // A renewal that does not answer "claimed" loses the call, as
        // `renew_and_post` does, whatever the reason.
        let fate = if renewal && fate != Fate::Claimed {
            Fate::Lost
        } else {
            fate
        };
        b.calls[i].fate = fate;
        if matches!(fate, Fate::InFlight | Fate::Lost) {
            b.hold = Some(b.hold.map_or(b.calls[i].start, |h| h.min(b.calls[i].start)));
        }
        if renewal {
            if fate == Fate::Claimed {
                b.pc = Pc::Post {
                    call: n,
                    window: Some(now),
                    sub: PostStep::ReadMarker,
                };
            } else {
                self.process_from(b, n + 1);
            }
        } else if i + 1 < b.calls.len() {
            b.pc = Pc::Claim {
                call: n + 1,
                renewal: false,
                sub: ClaimStep::Decide,
            };
        } else {
            self.process_from(b, 0);
        }
    }

    /// Post the claimed calls from batch index `from` on, each claimed
    /// again right before (step 5); then settle.
    fn process_from(&self, b: &mut Batch, from: u8) {
        let next = b.calls[usize::from(from)..]
            .iter()
            .position(|c| c.fate == Fate::Claimed)
            .map(|p| from + index(p));
        b.pc = match next {
            Some(n) if self.config.variant == Variant::NoClaimRecheck => Pc::Post {
                call: n,
                window: None,
                sub: PostStep::ReadMarker,
            },
            Some(n) => Pc::Claim {
                call: n,
                renewal: true,
                sub: ClaimStep::Decide,
            },
            None => Pc::Settle {
                ops: self.settle_ops(b),
            },
        };
    }

    /// Step 7: follow-ups queued, then the posted calls done (or the other
    /// way round in the defective variant), the failed ones released; then
    /// the commit.
    fn settle_ops(&self, b: &Batch) -> Vec<Op> {
        let with = |wanted: fn(Fate) -> bool, op: fn(u8) -> Op| {
            b.calls
                .iter()
                .enumerate()
                .filter(|(_, c)| wanted(c.fate))
                .map(|(i, _)| op(index(i)))
                .collect::<Vec<Op>>()
        };
        let posted = |f| matches!(f, Fate::Posted { .. });
        let queue = with(posted, Op::Queue);
        let complete: Vec<Op> = b
            .calls
            .iter()
            .enumerate()
            .filter(|(_, c)| posted(c.fate))
            .flat_map(|(i, c)| (0..c.legs.len()).map(move |leg| Op::Complete(index(i), index(leg))))
            .collect();
        let mut ops = if self.config.variant == Variant::FollowupsAfterDone {
            [complete, queue].concat()
        } else {
            [queue, complete].concat()
        };
        ops.extend(with(|f| f == Fate::Failed, Op::Release));
        ops.push(Op::Commit);
        ops
    }

    /// One step of the post stage (step 6).
    fn post_step(
        &self,
        s: &mut State,
        b: &mut Batch,
        n: u8,
        window: Option<i64>,
        sub: PostStep,
        lose_answer: bool,
    ) {
        let i = usize::from(n);
        let key = b.calls[i].key;
        let window = window.or(Some(ms(s.now)));
        match sub {
            PostStep::ReadMarker => {
                // A marker means an earlier attempt may have reached the
                // CRM: look the message up (found iff the CRM accepted one
                // under this key) and reuse it.
                if s.markers.contains(&key) && s.crm.get(&key).is_some_and(|n| *n > 0) {
                    b.calls[i].fate = Fate::Posted { reused: true };
                    self.process_from(b, n + 1);
                } else {
                    b.pc = Pc::Post {
                        call: n,
                        window,
                        sub: PostStep::WriteMarker,
                    };
                }
            }
            PostStep::WriteMarker => {
                s.markers.insert(key);
                b.pc = Pc::Post {
                    call: n,
                    window,
                    sub: PostStep::Send,
                };
            }
            PostStep::Send => {
                let sent = s.crm.entry(key).or_insert(0);
                *sent = (*sent + 1).min(3);
                if b.calls[i].legs.len() < self.config.scenario.calls[usize::from(key.0)].legs.len()
                {
                    s.partial.insert(key);
                }
                if lose_answer {
                    b.calls[i].fate = Fate::Failed;
                    b.hold = Some(b.hold.map_or(b.calls[i].start, |h| h.min(b.calls[i].start)));
                } else {
                    b.calls[i].fate = Fate::Posted { reused: false };
                }
                self.process_from(b, n + 1);
            }
        }
    }

    /// Whether worker `w` is about to send (a lost answer may happen).
    pub fn at_send(s: &State, w: usize) -> bool {
        matches!(
            s.workers[w].tick.as_deref(),
            Some(Tick::Batch(Batch {
                pc: Pc::Post {
                    sub: PostStep::Send,
                    ..
                },
                ..
            }))
        )
    }

    /// Model time after which every call has ended, every lease expired
    /// and every sighting's grace passed: where the drain jumps to.
    pub fn drain_time(&self) -> u8 {
        let grace = u8::try_from((ENDED_GRACE_MS + UNIT_MS - 1) / UNIT_MS).expect("small grace");
        self.config.horizon.max(self.config.scenario.last_event()) + self.config.lease + grace + 1
    }
}

/// When worker `w`'s post of the call it is on began, if it is inside
/// one: the clock reading of the renewal, from its swap on, or the marker
/// read.
pub fn post_window(w: &Worker) -> Option<i64> {
    match w.tick.as_deref() {
        Some(Tick::Batch(Batch {
            pc: Pc::Post { window, .. },
            ..
        })) => *window,
        Some(Tick::Batch(Batch {
            pc:
                Pc::Claim {
                    renewal: true,
                    sub: ClaimStep::Cas { now, .. },
                    ..
                },
            ..
        })) => Some(*now),
        _ => None,
    }
}

/// The call key as 3CX-derived text (`3cx:<call id>@<start ms>`), as the
/// ledger's `call` field holds it.
fn key_text(m: &ProtocolModel, key: CallKey) -> String {
    let call = &m.config.scenario.calls[usize::from(key.0)];
    format!("3cx:{}@{}", call.call_id, ms(key.1))
}

impl ProtocolModel {
    /// One line describing `s`, for traces.
    pub fn summary(&self, s: &State) -> String {
        let key = |k: &CallKey| key_text(self, *k);
        let ledger: Vec<String> = s
            .ledger
            .iter()
            .map(|((leg, start), e)| {
                let e = match e {
                    Entry::Claimed { worker, at, .. } => {
                        format!("claimed {worker}@{}", at / UNIT_MS)
                    }
                    Entry::Done { at, .. } => format!("done@{}", at / UNIT_MS),
                    Entry::Released { at } => format!("released@{}", at / UNIT_MS),
                };
                format!("{leg}@{}={e}", start / UNIT_MS)
            })
            .collect();
        let crm: Vec<String> = s
            .crm
            .iter()
            .map(|(k, n)| format!("{}×{n}", key(k)))
            .collect();
        let workers: Vec<String> = s
            .workers
            .iter()
            .enumerate()
            .map(|(w, worker)| {
                let at = match worker.tick.as_deref() {
                    None => "idle".to_string(),
                    Some(Tick::Listed { .. }) => "listed".to_string(),
                    Some(Tick::Batch(b)) => format!("{:?}", b.pc),
                };
                format!("w{w}.{}: {at}", worker.incarnation)
            })
            .collect();
        format!(
            "t={} cursor={:?} ledger=[{}] markers={:?} crm=[{}] queued={:?} | {}",
            s.now,
            s.cursor.map(|c| c / UNIT_MS),
            ledger.join(", "),
            s.markers.iter().map(key).collect::<Vec<_>>(),
            crm.join(", "),
            s.queued.iter().map(key).collect::<Vec<_>>(),
            workers.join(" | ")
        )
    }
}
