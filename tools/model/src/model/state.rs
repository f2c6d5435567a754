//! The world's state ([`State`]), a tick's progress through its steps
//! ([`Tick`], [`Batch`], [`Pc`]) and the actions the checker may take
//! ([`Action`]): plain data, so the step functions elsewhere read as the
//! moves between these states.

use crate::scenario::Event;
use guest_support::protocol::{Entry, Sighting};
use std::collections::{BTreeMap, BTreeSet};

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
        /// without one): see [`ProtocolModel::may_advance`](super::ProtocolModel::may_advance).
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
