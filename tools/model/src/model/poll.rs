//! The poll in the model: what 3CX's `ActiveCalls` lists at a moment, and
//! the history read that groups the visible rows into calls, hands on the
//! complete ones and works out the cursor.

use super::{
    Batch, ClaimStep, Fate, LegKey, ModelLeg, Op, Pc, ProtocolModel, State, TickCall, Variant,
};
use crate::scenario::{index, ms};
use guest_support::protocol::{self, Completeness, CursorFacts, Listed, Sighting};

impl ProtocolModel {
    /// What `ActiveCalls` lists now.
    pub(super) fn listed(&self, s: &State) -> Vec<Listed> {
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

    /// Poll, steps 2 and 3: store the sightings, read the rows from the cursor minus the overlap, group them into calls, hand
    /// on the complete ones and work out the cursor.
    pub(super) fn read_history(
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
}
