//! Which protocol the model's workers run ([`Variant`]), and the bounds
//! and the world of one run ([`Config`]): what a check is asked, kept
//! apart from the state it explores.

use crate::scenario::Scenario;

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
