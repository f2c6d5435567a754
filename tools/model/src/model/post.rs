//! The post stage in the model: which claimed call is posted next, the
//! marker read, the marker write and the send, and whether a worker is
//! inside a post (a lost answer, a post window time must respect).

use super::{Batch, ClaimStep, Fate, Pc, PostStep, ProtocolModel, State, Tick, Variant, Worker};
use crate::scenario::{index, ms};

impl ProtocolModel {
    /// Post the claimed calls from batch index `from` on, each claimed
    /// again right before (step 5); then settle.
    pub(super) fn process_from(&self, b: &mut Batch, from: u8) {
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

    /// One step of the post stage (step 6).
    pub(super) fn post_step(
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
