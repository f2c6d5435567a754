//! `connectzero demo`: the whole pipeline against the simulators.
//!
//! Seeds a small realistic PBX and CRM, places ~20 calls in waves as they
//! "hang up", runs the real scheduler, and prints what happened to each
//! call next to what should have happened.

use crate::storage::CallRecord;
use crate::testbed::{TENANT, World};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use connectzero_simulators::highlevel::SimContact;
use connectzero_simulators::threecx::{
    SimActiveCall, SimParty, SimRecording, SimSegment, SimUser, silent_wav,
};
use std::collections::HashMap;

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
}

impl CallPlan {
    /// The same call, recorded as `id`, final `finalise_after` after hang-up.
    pub fn recorded(mut self, id: i32, finalise_after: std::time::Duration) -> Self {
        self.recording = Some(RecordingPlan { id, finalise_after });
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
}

/// Outside numbers of the seeded contacts.
pub mod numbers {
    /// Dana Fox.
    pub const DANA: &str = "+14155550101";
    /// Eli Grant.
    pub const ELI: &str = "+14155550102";
    /// Fay Hart.
    pub const FAY: &str = "+14155550103";
    /// Gus Ivy and Hal Ivy share this number.
    pub const IVY: &str = "+14155550104";
    /// Gwen Lake.
    pub const GWEN: &str = "+14155550105";
    /// Ian Moss, in London.
    pub const IAN: &str = "+442079460958";
}

fn ext(dn: &str, name: &str) -> SimParty {
    SimParty::extension(dn, name, 0)
}

fn outside(number: &str) -> SimParty {
    SimParty::external(number, 0)
}

fn leg(src: SimParty, dst: SimParty, answered: bool, secs: i64) -> LegPlan {
    LegPlan {
        src,
        dst,
        answered,
        secs,
    }
}

/// Seed 3CX users and CRM contacts. Returns contact ids by name.
pub fn seed_directory(world: &World) -> HashMap<&'static str, String> {
    use numbers::*;
    world.pbx.add_user(SimUser::new(
        1,
        "101",
        "Alice",
        "Smith",
        "alice@acme.example",
    ));
    world
        .pbx
        .add_user(SimUser::new(2, "102", "Bob", "Jones", "bob@acme.example"));
    world.pbx.add_user(SimUser::new(
        3,
        "103",
        "Carol",
        "White",
        "carol@acme.example",
    ));
    let base = Utc::now() - ChronoDuration::days(30);
    let contacts: [(&'static str, SimContact); 8] = [
        ("Dana Fox", SimContact::new("Dana", "Fox").phone(DANA)),
        ("Eli Grant", SimContact::new("Eli", "Grant").phone(ELI)),
        ("Fay Hart", SimContact::new("Fay", "Hart").phone(FAY)),
        ("Gus Ivy", SimContact::new("Gus", "Ivy").phone(IVY)),
        ("Hal Ivy", SimContact::new("Hal", "Ivy").phone(IVY)),
        ("Gwen Lake", SimContact::new("Gwen", "Lake").phone(GWEN)),
        ("Ian Moss", SimContact::new("Ian", "Moss").phone(IAN)),
        (
            "Alice Smith",
            SimContact::new("Alice", "Smith").email("alice@acme.example"),
        ),
    ];
    contacts
        .into_iter()
        .enumerate()
        .map(|(i, (name, contact))| {
            (
                name,
                world
                    .crm
                    .add_contact_at(contact, base + ChronoDuration::days(i as i64)),
            )
        })
        .collect()
}

/// The demo's calls: every direction, missed, internal, unknown numbers, a
/// queue call through an IVR, a transfer, a shared number and a leg id 3CX
/// reissued after a backup restore.
pub fn demo_calls() -> Vec<CallPlan> {
    use numbers::*;
    let posted = |contact, rule| Expect::Posted { contact, rule };
    let (alice, bob, carol) = (
        || ext("101", "Alice Smith"),
        || ext("102", "Bob Jones"),
        || ext("103", "Carol White"),
    );
    let (ivr, queue) = (|| ext("800", "Main IVR"), || ext("801", "Sales Queue"));
    let plan = |label, call_id, legs, expect| CallPlan {
        label,
        call_id,
        first_segment_id: None,
        legs,
        expect,
        recording: None,
    };
    let (now, soon) = (std::time::Duration::ZERO, std::time::Duration::from_secs(4));
    vec![
        plan(
            "Inbound, answered, recorded",
            9001,
            vec![leg(outside(DANA), alice(), true, 95)],
            posted("Dana Fox", "caller-number"),
        )
        .recorded(3301, now),
        plan(
            "Outbound, answered, recorded late",
            9002,
            vec![leg(bob(), outside(ELI), true, 240)],
            posted("Eli Grant", "called-number"),
        )
        .recorded(3302, soon),
        plan(
            "Inbound, missed",
            9003,
            vec![leg(outside(FAY), alice(), false, 20)],
            posted("Fay Hart", "caller-number"),
        ),
        plan(
            "Inbound, national number format",
            9004,
            vec![leg(outside("(415) 555-0101"), bob(), true, 45)],
            posted("Dana Fox", "caller-number"),
        ),
        plan(
            "Queue call: IVR → queue → agent",
            9005,
            vec![
                leg(outside(GWEN), ivr(), false, 20),
                leg(outside(GWEN), queue(), false, 15),
                leg(outside(GWEN), carol(), true, 180),
            ],
            posted("Gwen Lake", "caller-number"),
        ),
        plan(
            "Transferred call",
            9006,
            vec![
                leg(outside(FAY), alice(), true, 60),
                leg(outside(FAY), bob(), true, 120),
            ],
            posted("Fay Hart", "caller-number"),
        ),
        plan(
            "Internal call",
            9007,
            vec![leg(alice(), bob(), true, 30)],
            Expect::Skipped("internal-call"),
        ),
        plan(
            "Internal call, missed",
            9008,
            vec![leg(bob(), carol(), false, 10)],
            Expect::Skipped("internal-call"),
        ),
        plan(
            "Unknown number",
            9009,
            vec![leg(outside("+14155550199"), carol(), true, 50)],
            Expect::Skipped("no-match"),
        ),
        plan(
            "Unknown number, owner has a contact",
            9010,
            vec![leg(outside("+14155550198"), alice(), true, 70)],
            posted("Alice Smith", "extension-owner"),
        ),
        plan(
            "Number shared by two contacts",
            9011,
            vec![leg(outside(IVY), bob(), true, 35)],
            posted("Gus Ivy", "caller-number"),
        ),
        plan(
            "Outbound, no answer",
            9012,
            vec![leg(alice(), outside(ELI), false, 25)],
            posted("Eli Grant", "called-number"),
        ),
        plan(
            "Outbound, unknown number",
            9013,
            vec![leg(carol(), outside("+14155550197"), true, 40)],
            Expect::Skipped("no-match"),
        ),
        plan(
            "Inbound from the UK, recorded",
            9014,
            vec![leg(outside(IAN), alice(), true, 300)],
            posted("Ian Moss", "caller-number"),
        )
        .recorded(3314, now),
        plan(
            "Withheld caller id",
            9015,
            vec![leg(outside("anonymous"), bob(), true, 15)],
            Expect::Skipped("no-match"),
        ),
        plan(
            "Outbound, national number format",
            9016,
            vec![leg(bob(), outside("4155550101"), true, 90)],
            posted("Dana Fox", "called-number"),
        ),
        plan(
            "Missed in the IVR",
            9017,
            vec![leg(outside(DANA), ivr(), false, 12)],
            posted("Dana Fox", "caller-number"),
        ),
        CallPlan {
            label: "Leg id reissued after a 3CX restore",
            call_id: 9018,
            first_segment_id: Some(SEGMENT_BASE),
            legs: vec![leg(outside(ELI), carol(), true, 65)],
            expect: posted("Eli Grant", "caller-number"),
            recording: None,
        },
        plan(
            "Inbound, short call",
            9019,
            vec![leg(outside(GWEN), bob(), true, 8)],
            posted("Gwen Lake", "caller-number"),
        ),
        plan(
            "Outbound to the UK",
            9020,
            vec![leg(alice(), outside(IAN), true, 150)],
            posted("Ian Moss", "called-number"),
        ),
    ]
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
        let mut start = ended - ChronoDuration::seconds(total);
        let first_start = start;
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
                    audio: silent_wav(2_000),
                };
                world
                    .pbx
                    .add_recording_finalising_after(recording, rec.finalise_after);
            }
            world.pbx.add_segment(SimSegment::new(
                segment_id,
                plan.call_id,
                (start, end),
                src,
                dst,
                leg.answered,
            ));
            start = end;
        }
        PlacedCall {
            plan: plan.clone(),
            key: format!("3cx:{}@{}", plan.call_id, first_start.timestamp_millis()),
        }
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

/// One row of the result table.
#[derive(Clone, Debug)]
pub struct Row {
    /// The placed call.
    pub call: PlacedCall,
    /// What the host recorded, if anything yet.
    pub record: Option<CallRecord>,
    /// Whether the record matches the expectation.
    pub as_expected: bool,
}

/// The workflow triggers a call should fire once workflows subscribe to
/// all three: `call.ended` for every posted call, plus `missed-call` for an
/// unanswered inbound one.
pub fn expected_triggers(plan: &CallPlan) -> Vec<&'static str> {
    if !matches!(plan.expect, Expect::Posted { .. }) {
        return Vec::new();
    }
    let inbound = plan.legs.first().is_some_and(|l| !l.src.internal);
    let answered = plan.legs.iter().any(|l| l.answered);
    if inbound && !answered {
        vec!["call.ended", "missed-call"]
    } else {
        vec!["call.ended"]
    }
}

fn triggers_match(record: &CallRecord, plan: &CallPlan) -> bool {
    let mut fired: Vec<&str> = record
        .triggers
        .split_whitespace()
        .filter_map(|t| t.split('×').next())
        .collect();
    fired.sort_unstable();
    let mut expected = expected_triggers(plan);
    expected.sort_unstable();
    fired == expected
}

/// Compare what happened with what should have, per placed call: outcome,
/// rule and contact, the recording attached exactly when the call has one,
/// and (with `with_triggers`) the workflow triggers it should fire.
pub fn rows(
    world: &World,
    placed: &[PlacedCall],
    contacts: &HashMap<&'static str, String>,
    with_triggers: bool,
) -> anyhow::Result<Vec<Row>> {
    let records: HashMap<String, CallRecord> = world
        .storage
        .calls(TENANT)?
        .into_iter()
        .map(|r| (r.call_key.clone(), r))
        .collect();
    Ok(placed
        .iter()
        .map(|call| {
            let record = records.get(&call.key).cloned();
            let as_expected = record.as_ref().is_some_and(|r| {
                matches_expectation(r, &call.plan.expect, contacts)
                    && (r.recording == "attached") == call.plan.recording.is_some()
                    && (!with_triggers || triggers_match(r, &call.plan))
            });
            Row {
                call: call.clone(),
                record,
                as_expected,
            }
        })
        .collect())
}

fn matches_expectation(
    record: &CallRecord,
    expect: &Expect,
    contacts: &HashMap<&'static str, String>,
) -> bool {
    match expect {
        Expect::Posted { contact, rule } => {
            record.outcome == "posted"
                && record.rule.as_deref() == Some(*rule)
                && record.contact_id.as_deref() == contacts.get(contact).map(String::as_str)
        }
        Expect::Skipped(reason) => record.outcome == "skipped" && record.detail == *reason,
    }
}

/// True when every placed call has a final outcome, no recording is still
/// pending, and (with `with_triggers`) its triggers have fired.
pub fn all_final(rows: &[Row], with_triggers: bool) -> bool {
    rows.iter().all(|r| {
        r.record.as_ref().is_some_and(|rec| {
            rec.outcome != "retrying"
                && rec.recording != "pending"
                && (!with_triggers || triggers_match(rec, &r.call.plan))
        })
    })
}

/// The table, as text.
pub fn render(rows: &[Row], contacts: &HashMap<&'static str, String>) -> String {
    let names: HashMap<&str, &str> = contacts
        .iter()
        .map(|(name, id)| (id.as_str(), *name))
        .collect();
    let mut out = String::new();
    out.push_str(&format!(
        "{:>2}  {:<38} {:<9} {:<16} {:<12} {:<32} {:>8}  {:<9} {:<26} {}\n",
        "#",
        "call",
        "direction",
        "rule",
        "contact",
        "result",
        "latency",
        "recording",
        "triggers",
        "ok"
    ));
    for (i, row) in rows.iter().enumerate() {
        let (recording, triggers) = row
            .record
            .as_ref()
            .map(|r| {
                (
                    r.recording.split(':').next().unwrap_or("").to_string(),
                    r.triggers.clone(),
                )
            })
            .unwrap_or_default();
        let (direction, rule, contact, result, latency) = match &row.record {
            Some(r) => (
                r.direction.as_str(),
                r.rule.clone().unwrap_or_else(|| "-".into()),
                r.contact_id
                    .as_deref()
                    .and_then(|id| names.get(id).copied())
                    .unwrap_or("-")
                    .to_string(),
                match r.outcome.as_str() {
                    "posted" => format!("posted: {}", r.detail),
                    other => format!("{other}: {}", r.detail),
                },
                format!("{:.2} s", (r.handled_at_ms - r.ended_at_ms) as f64 / 1000.0),
            ),
            None => (
                "-",
                "-".into(),
                "-".into(),
                "not processed".into(),
                "-".into(),
            ),
        };
        let result: String = result.chars().take(32).collect();
        out.push_str(&format!(
            "{:>2}  {:<38} {:<9} {:<16} {:<12} {:<32} {:>8}  {:<9} {:<26} {}\n",
            i + 1,
            row.call.plan.label,
            direction,
            rule,
            contact,
            result,
            latency,
            if recording == "none" { "-" } else { &recording },
            if triggers.is_empty() { "-" } else { &triggers },
            if row.as_expected { "✓" } else { "✗" }
        ));
    }
    out
}
