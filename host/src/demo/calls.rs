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
