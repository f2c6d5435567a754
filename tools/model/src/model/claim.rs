//! The claim in the model: one step of `Ledger::claim_call` at a time
//! (decide, swap each leg, undo, or join a done call), for a tick's first
//! claim and for the renewal right before a post.

use super::{Batch, ClaimStep, Fate, Join, Pc, PostStep, ProtocolModel, State, key_text};
use crate::scenario::{index, ms};
use guest_support::protocol::{self, ClaimDecision, Entry};

impl ProtocolModel {
    /// One step of `Ledger::claim_call`, first claim or renewal.
    pub(super) fn claim_step(
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
}
