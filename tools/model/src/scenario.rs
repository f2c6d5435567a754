//! The 3CX side of the model: which calls happen, when, and when their
//! history rows become visible.
//!
//! Time is abstract: small integers, one unit being [`UNIT_MS`]. A call is
//! listed in `ActiveCalls` from its first leg's start until its end event
//! fires; its rows appear either all at once with that end event, or (a
//! segmented call) each segment at its own end while the call goes on.

use guest_support::protocol::ENDED_GRACE_MS;

/// Milliseconds in one unit of model time. Half the ended-call grace, so
/// the grace spans two units and a sighting outlives its call by a tick.
pub const UNIT_MS: i64 = ENDED_GRACE_MS / 2;

/// Model time `t` in the milliseconds the protocol code works in.
pub fn ms(t: u8) -> i64 {
    i64::from(t) * UNIT_MS
}

/// One segment of a call (`CallHistoryView` row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegSpec {
    /// `SegmentId`. May repeat across calls (reissued after a restore):
    /// the ledger keys a leg by id *and* start.
    pub leg_id: i32,
    /// `SegmentStartTime`, model time.
    pub start: u8,
    /// `SegmentEndTime`, model time.
    pub end: u8,
}

/// One 3CX call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSpec {
    /// A short name for traces.
    pub name: &'static str,
    /// The 3CX call id, used in the call key (`3cx:<id>@<start>`).
    pub call_id: i32,
    /// Its legs, oldest first. The call starts with the first and ends
    /// with the last to end.
    pub legs: Vec<LegSpec>,
    /// Rows written segment by segment (a queue segment is visible while
    /// the agent still talks); otherwise all rows appear when it ends.
    pub segmented: bool,
}

impl CallSpec {
    /// When the call starts (its first leg), model time.
    pub fn start(&self) -> u8 {
        self.legs.iter().map(|l| l.start).min().unwrap_or(0)
    }

    /// When the call ends (its last leg), model time.
    pub fn end(&self) -> u8 {
        self.legs.iter().map(|l| l.end).max().unwrap_or(0)
    }
}

/// The calls of one model run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// The calls; their index is their identity in the model.
    pub calls: Vec<CallSpec>,
}

/// A 3CX event: the world moving on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A segment of a segmented call ended and its row is written; the
    /// call goes on (global leg index).
    WriteSegment(u8),
    /// A call ended: it leaves `ActiveCalls` and its remaining rows are
    /// written, in one step (3CX writes them "when the call ends").
    End(u8),
}

impl Scenario {
    /// The short call, the long one around it, and a call whose queue
    /// segment is visible while the agent still talks. The short call
    /// reuses the long call's leg id (reissued after a restore).
    pub fn mixed() -> Self {
        Self {
            calls: vec![
                CallSpec {
                    name: "long",
                    call_id: 1,
                    legs: vec![LegSpec {
                        leg_id: 10,
                        start: 1,
                        end: 3,
                    }],
                    segmented: false,
                },
                CallSpec {
                    name: "short",
                    call_id: 2,
                    legs: vec![LegSpec {
                        leg_id: 10,
                        start: 2,
                        end: 2,
                    }],
                    segmented: false,
                },
                CallSpec {
                    name: "queued",
                    call_id: 3,
                    legs: vec![
                        LegSpec {
                            leg_id: 30,
                            start: 1,
                            end: 2,
                        },
                        LegSpec {
                            leg_id: 31,
                            start: 2,
                            end: 3,
                        },
                    ],
                    segmented: true,
                },
            ],
        }
    }

    /// Only the long call and the short one inside it.
    pub fn long_and_short() -> Self {
        let mut s = Self::mixed();
        s.calls.truncate(2);
        s
    }

    /// Only the call written segment by segment.
    pub fn segmented() -> Self {
        let mut s = Self::mixed();
        s.calls.drain(..2);
        s
    }

    /// One short call: the smallest world for claims, leases, crashes and
    /// the CRM.
    pub fn single() -> Self {
        Self {
            calls: vec![CallSpec {
                name: "single",
                call_id: 1,
                legs: vec![LegSpec {
                    leg_id: 10,
                    start: 0,
                    end: 1,
                }],
                segmented: false,
            }],
        }
    }

    /// A scenario by name: `mixed`, `long-and-short`, `segmented`, `single`.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "mixed" => Some(Self::mixed()),
            "long-and-short" => Some(Self::long_and_short()),
            "segmented" => Some(Self::segmented()),
            "single" => Some(Self::single()),
            _ => None,
        }
    }

    /// Every leg, in a fixed order: (call index, leg).
    pub fn legs(&self) -> Vec<(u8, &LegSpec)> {
        self.calls
            .iter()
            .enumerate()
            .flat_map(|(c, call)| call.legs.iter().map(move |l| (index(c), l)))
            .collect()
    }

    /// Model time of `event`.
    pub fn time_of(&self, event: Event) -> u8 {
        match event {
            Event::WriteSegment(g) => self.legs()[usize::from(g)].1.end,
            Event::End(c) => self.calls[usize::from(c)].end(),
        }
    }

    /// Every event, in a fixed order.
    pub fn events(&self) -> Vec<Event> {
        let mut events = Vec::new();
        for (g, (c, leg)) in self.legs().into_iter().enumerate() {
            let call = &self.calls[usize::from(c)];
            if call.segmented && leg.end < call.end() {
                events.push(Event::WriteSegment(index(g)));
            }
        }
        events.extend((0..self.calls.len()).map(|c| Event::End(index(c))));
        events
    }

    /// When the last event happens, model time.
    pub fn last_event(&self) -> u8 {
        self.calls.iter().map(CallSpec::end).max().unwrap_or(0)
    }

    /// The digits-only numbers of call `c`'s parties, as history rows give
    /// them: a caller of its own and the agent's extension.
    pub fn numbers(&self, c: u8) -> Vec<String> {
        vec![
            format!("1415555{:04}", c),
            format!("{}", 201 + u32::from(c)),
        ]
    }

    /// Call `c`'s `Caller` and `Callee` as `ActiveCalls` writes them.
    pub fn sides(&self, c: u8) -> Vec<String> {
        vec![
            format!("+1 415 555 {:04}", c),
            format!("{} Agent {}", 201 + u32::from(c), c),
        ]
    }
}

/// A small index as stored in the model state.
pub fn index(i: usize) -> u8 {
    u8::try_from(i).expect("model bounds are small")
}
