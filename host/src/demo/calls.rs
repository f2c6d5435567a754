//! The demo's data set: who is in the PBX and the CRM, and the calls.

use super::{CallPlan, Expect, LegPlan, SEGMENT_BASE};
use crate::testbed::World;
use chrono::{Duration as ChronoDuration, Utc};
use connectzero_simulators::highlevel::SimContact;
use connectzero_simulators::threecx::{SimParty, SimUser};
use std::collections::HashMap;

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
    seed_pbx_users(world);
    // Bob is a HighLevel user too (same e-mail), and Hal Ivy is assigned
    // to him: the call to the shared Ivy number that Bob answers is
    // settled by the `assigned-user` tie-breaker.
    let bob_in_crm = world.crm.add_user("Bob", "Jones", "bob@acme.example");
    let base = Utc::now() - ChronoDuration::days(30);
    demo_contacts(&bob_in_crm)
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

/// Seed the 3CX users: Alice (101), Bob (102) and Carol (103).
pub fn seed_pbx_users(world: &World) {
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
}

/// The CRM's contacts by name, oldest first; Hal Ivy is assigned to
/// `bob_in_crm`, Bob's HighLevel user id.
pub fn demo_contacts(bob_in_crm: &str) -> [(&'static str, SimContact); 8] {
    use numbers::*;
    [
        ("Dana Fox", SimContact::new("Dana", "Fox").phone(DANA)),
        ("Eli Grant", SimContact::new("Eli", "Grant").phone(ELI)),
        ("Fay Hart", SimContact::new("Fay", "Hart").phone(FAY)),
        ("Gus Ivy", SimContact::new("Gus", "Ivy").phone(IVY)),
        (
            "Hal Ivy",
            SimContact::new("Hal", "Ivy")
                .phone(IVY)
                .assigned_to(bob_in_crm),
        ),
        ("Gwen Lake", SimContact::new("Gwen", "Lake").phone(GWEN)),
        ("Ian Moss", SimContact::new("Ian", "Moss").phone(IAN)),
        (
            "Alice Smith",
            SimContact::new("Alice", "Smith").email("alice@acme.example"),
        ),
    ]
}

/// The demo's calls: every direction, missed (in the IVR too), internal,
/// unknown numbers, a queue call through an IVR transferred between
/// agents, a transfer, a shared number settled by a tie-breaker, a leg id
/// 3CX reissued after a backup restore and a callback recovering a missed
/// call.
pub fn demo_calls() -> Vec<CallPlan> {
    use numbers::*;
    let posted = |contact, rule| Expect::Posted { contact, rule };
    let (alice, bob, carol) = (
        || ext("101", "Alice Smith"),
        || ext("102", "Bob Jones"),
        || ext("103", "Carol White"),
    );
    let (ivr, queue) = (
        || SimParty::ivr("800", "Main IVR", 0),
        || SimParty::queue("801", "Sales Queue", 0),
    );
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
        .recorded(3301, now)
        .transcribed(),
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
            "Queue call: IVR → queue → agent → transfer",
            9005,
            vec![
                // The IVR and the queue pick up; no person yet.
                leg(outside(GWEN), ivr(), true, 20),
                leg(outside(GWEN), queue(), true, 15),
                leg(outside(GWEN), alice(), true, 60),
                // Alice transfers to Carol: the call is Carol's.
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
            posted("Hal Ivy", "caller-number"),
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
            "Missed: caller hung up in the IVR",
            9017,
            vec![leg(outside(DANA), ivr(), true, 12)],
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
        // Last, so it starts after the missed call 9003 ended (the demo
        // holds it back until then): it recovers that missed call.
        plan(
            "Callback to the missed caller",
            CALLBACK,
            vec![leg(alice(), outside(FAY), true, 6)],
            posted("Fay Hart", "called-number"),
        ),
    ]
}

/// The call id of the demo's callback.
const CALLBACK: i32 = 9021;

/// What the CRM's `call.ended` event should say about who took a demo
/// call: the answering extension, or why nobody answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Answered; the extension the call ended with (after transfers).
    By(String),
    /// Missed, with this `missedReason`.
    Missed(String),
}

/// The expected answer for the demo calls whose answer the table checks
/// (the call chains and missed reasons of issue 8); `None` for the rest.
pub fn expected_answer(call_id: i32) -> Option<Answer> {
    let (by, missed) = (
        |ext: &str| Some(Answer::By(ext.into())),
        |reason: &str| Some(Answer::Missed(reason.into())),
    );
    match call_id {
        9003 => missed("no-answer"),
        9005 => by("103"),
        9006 => by("102"),
        9011 => by("102"),
        9017 => missed("abandoned-in-ivr"),
        _ => None,
    }
}

/// The demo call that recovers missed call `call_id` (fires
/// `missed-call.recovered` for it), if any.
pub fn recovered_by(call_id: i32) -> Option<i32> {
    (call_id == 9003).then_some(CALLBACK)
}
