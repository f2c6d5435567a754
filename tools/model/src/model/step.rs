//! A worker's next step ([`ProtocolModel::step`]): the dispatch from one
//! step of a tick to the next, and the settle phase, which queues the
//! follow-ups, completes or releases the calls and commits the cursor.

use super::{Batch, Fate, Op, POSTED, Pc, ProtocolModel, State, Tick, Variant, key_text};
use crate::scenario::{index, ms};
use guest_support::protocol::{self, Entry};

impl ProtocolModel {
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

    /// Step 7: follow-ups queued, then the posted calls done (or the other
    /// way round in the defective variant), the failed ones released; then
    /// the commit.
    pub(super) fn settle_ops(&self, b: &Batch) -> Vec<Op> {
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
}
