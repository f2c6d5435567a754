//! `connectzero demo`: the whole pipeline against the simulators.
//!
//! Seeds a small realistic PBX and CRM, places ~20 calls in waves as they
//! "hang up", runs the real scheduler, and prints what happened to each
//! call next to what should have happened.

use crate::testbed::World;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use connectzero_simulators::threecx::{
    SegmentWrites, SimActiveCall, SimParty, SimRecording, SimSegment, silent_wav,
};

mod calls;
mod table;
pub mod web;

pub use calls::{
    Answer, demo_calls, demo_contacts, expected_answer, numbers, recovered_by, seed_directory,
    seed_pbx_users,
};
pub use table::{Row, all_final, expected_triggers, render, rows};

/// What should happen to a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Posted to this contact (by name) by this rule.
    Posted {
        /// Contact name as seeded.
        contact: &'static str,
        /// Rule name (`caller-number`, `called-number`, `extension-owner`).
        rule: &'static str,
    },
    /// Not posted, for this reason.
    Skipped(&'static str),
}

/// One leg of a planned call.
#[derive(Clone, Debug)]
pub struct LegPlan {
    /// Calling side.
    pub src: SimParty,
    /// Called side.
    pub dst: SimParty,
    /// Whether this leg was answered.
    pub answered: bool,
    /// Length of the leg in seconds.
    pub secs: i64,
}

/// A call to place in the 3CX simulator, with its expected outcome.
#[derive(Clone, Debug)]
pub struct CallPlan {
    /// What the call is, for the table.
    pub label: &'static str,
    /// 3CX call id.
    pub call_id: i32,
    /// Segment id of the first leg, when it must be a specific one (a leg id
    /// reissued after a restore); later legs count up from the plan's base.
    pub first_segment_id: Option<i32>,
    /// The legs, in order.
    pub legs: Vec<LegPlan>,
    /// What should happen.
    pub expect: Expect,
    /// The recording 3CX makes of the call's last leg, if any.
    pub recording: Option<RecordingPlan>,
}

/// A recording and when 3CX finalises it.
#[derive(Clone, Copy, Debug)]
pub struct RecordingPlan {
    /// 3CX `Recording.Id`.
    pub id: i32,
    /// How long after hang-up 3CX takes to finalise it.
    pub finalise_after: std::time::Duration,
    /// The DID the call dialled as the recording names it (`ToDidNumber`,
    /// bare digits): the only place 3CX's API shows a DID (NOTES §8).
    pub dialled: Option<&'static str>,
    /// 3CX transcribes it (summary, transcript, sentiment score) a moment
    /// after it is final: the call gains its insights and fires
    /// `call.insights`.
    pub transcribed: bool,
}

/// The summary 3CX writes of the demo's transcribed call.
pub const DEMO_SUMMARY: &str =
    "Dana asked to move Tuesday's delivery to Thursday morning; Alice confirmed the new slot.";

/// The sentiment score 3CX gives the demo's transcribed call.
pub const DEMO_SENTIMENT: i32 = 8;

impl CallPlan {
    /// The same call, recorded as `id`, final `finalise_after` after hang-up.
    pub fn recorded(mut self, id: i32, finalise_after: std::time::Duration) -> Self {
        self.recording = Some(RecordingPlan {
            id,
            finalise_after,
            dialled: None,
            transcribed: false,
        });
        self
    }

    /// The same call, its recording transcribed by 3CX (a second after it
    /// is final). Needs [`Self::recorded`] first.
    pub fn transcribed(mut self) -> Self {
        if let Some(recording) = &mut self.recording {
            recording.transcribed = true;
        }
        self
    }

    /// The same call, its recording naming `did` as the number dialled
    /// (bare digits, as 3CX writes `ToDidNumber`). Needs [`Self::recorded`]
    /// first.
    pub fn dialled(mut self, did: &'static str) -> Self {
        if let Some(recording) = &mut self.recording {
            recording.dialled = Some(did);
        }
        self
    }
}

/// A placed call: its key in ConnectZero.
#[derive(Clone, Debug)]
pub struct PlacedCall {
    /// The plan.
    pub plan: CallPlan,
    /// `3cx:<call id>@<start ms>`, the key the pipeline gives it.
    pub key: String,
    /// When it hung up.
    pub ended: DateTime<Utc>,
}

/// The earliest hang-up time at which `plan` can be placed so that it
/// starts after every missed call it recovers has ended (a callback cannot
/// start before the miss), or `None` when it recovers nothing placed.
pub fn callback_not_before(placed: &[PlacedCall], plan: &CallPlan) -> Option<DateTime<Utc>> {
    let talk: i64 = plan.legs.iter().map(|l| l.secs).sum();
    placed
        .iter()
        .filter(|p| recovered_by(p.plan.call_id) == Some(plan.call_id))
        .map(|p| p.ended + ChronoDuration::seconds(talk) + ChronoDuration::milliseconds(100))
        .max()
}

/// First segment id the demo hands out.
pub const SEGMENT_BASE: i32 = 7000;

/// Allocates segment ids for placed calls.
#[derive(Debug)]
pub struct Placer {
    next_segment: i32,
}

impl Default for Placer {
    fn default() -> Self {
        Self {
            next_segment: SEGMENT_BASE,
        }
    }
}

impl Placer {
    /// Put `plan` into the 3CX simulator as a call that ended at `ended`.
    pub fn place(&mut self, world: &World, plan: &CallPlan, ended: DateTime<Utc>) -> PlacedCall {
        let total: i64 = plan.legs.iter().map(|l| l.secs).sum();
        let start = ended - ChronoDuration::seconds(total);
        for segment in self.segments(world, plan, start) {
            world.pbx.add_segment(segment);
        }
        PlacedCall {
            plan: plan.clone(),
            key: format!("3cx:{}@{}", plan.call_id, start.timestamp_millis()),
            ended,
        }
    }

    /// Put `plan` into the 3CX simulator as a call that began at `started`
    /// and is still going on: listed in `ActiveCalls`, its rows written as
    /// `writes` says, the rest when the test ends it
    /// (`world.pbx.end_call(plan.call_id, true)`; its last leg then runs to
    /// the hang-up).
    pub fn begin(
        &mut self,
        world: &World,
        plan: &CallPlan,
        started: DateTime<Utc>,
        writes: SegmentWrites,
    ) -> PlacedCall {
        let total: i64 = plan.legs.iter().map(|l| l.secs).sum();
        let segments = self.segments(world, plan, started);
        world
            .pbx
            .begin_call(active_call(plan, started), segments, writes);
        PlacedCall {
            plan: plan.clone(),
            key: format!("3cx:{}@{}", plan.call_id, started.timestamp_millis()),
            ended: started + ChronoDuration::seconds(total),
        }
    }

    /// The segments of `plan` back to back from `start` (and its recording,
    /// added to the simulator).
    fn segments(
        &mut self,
        world: &World,
        plan: &CallPlan,
        mut start: DateTime<Utc>,
    ) -> Vec<SimSegment> {
        let mut segments = Vec::with_capacity(plan.legs.len());
        for (i, leg) in plan.legs.iter().enumerate() {
            let end = start + ChronoDuration::seconds(leg.secs);
            let segment_id = match (i, plan.first_segment_id) {
                (0, Some(id)) => id,
                _ => {
                    self.next_segment += 1;
                    self.next_segment - 1
                }
            };
            let mut src = leg.src.clone();
            let mut dst = leg.dst.clone();
            src.participant_id = segment_id * 10 + 1;
            dst.participant_id = segment_id * 10 + 2;
            if let (Some(rec), true) = (plan.recording, i + 1 == plan.legs.len()) {
                // 3CX records the PBX side of the leg.
                let inside = if dst.internal { &mut dst } else { &mut src };
                inside.rec_id = Some(rec.id);
                let recording = SimRecording {
                    id: rec.id,
                    start,
                    end: Some(end),
                    from_dn: src.dn.clone(),
                    to_dn: dst.dn.clone(),
                    from_caller_number: src.caller_number.clone(),
                    to_caller_number: dst.caller_number.clone(),
                    from_did_number: None,
                    to_did_number: rec.dialled.map(str::to_owned),
                    audio: silent_wav(2_000),
                };
                world
                    .pbx
                    .add_recording_finalising_after(recording, rec.finalise_after);
                if rec.transcribed {
                    world.pbx.set_transcription(
                        rec.id,
                        connectzero_simulators::threecx::SimTranscription::Transcribed {
                            after: rec.finalise_after,
                            summary: Some(DEMO_SUMMARY.into()),
                            transcription: Some(
                                "Alice: Acme deliveries, Alice speaking. Dana: Hi, could we move Tuesday's delivery to Thursday morning? Alice: Of course, Thursday at nine is booked.".into(),
                            ),
                            sentiment_score: Some(DEMO_SENTIMENT),
                        },
                    );
                }
            }
            segments.push(SimSegment::new(
                segment_id,
                plan.call_id,
                (start, end),
                src,
                dst,
                leg.answered,
            ));
            start = end;
        }
        segments
    }
}

/// The call as 3CX lists it while it is in progress (`ActiveCalls`):
/// free text "number name" on each side ([ASSUMED] format, 3CX NOTES §4).
pub fn active_call(plan: &CallPlan, now: DateTime<Utc>) -> SimActiveCall {
    let describe = |p: &SimParty| match (&p.display_name, p.internal) {
        (Some(name), true) => format!("{} {name}", p.dn),
        _ => p.caller_number.clone(),
    };
    let first = &plan.legs[0];
    SimActiveCall {
        id: plan.call_id,
        caller: describe(&first.src),
        callee: describe(&first.dst),
        status: "Talking".into(),
        established_at: now,
    }
}
