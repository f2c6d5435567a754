//! Calls `connectzero demo` lets the page place, so a visitor (and the
//! browser test) can watch the pipeline react to a setting or a retry.

use crate::demo::{CallPlan, Expect, LegPlan, Placer};
use crate::testbed::World;
use crate::web::DemoCalls;
use connectzero_simulators::highlevel::Fault;
use connectzero_simulators::threecx::SimParty;
use std::sync::{Arc, Mutex};

/// Call ids and segment ids of page-placed calls start here, clear of the
/// demo's own (9001…, segments 7000…).
const FIRST_CALL_ID: i32 = 9501;
const FIRST_SEGMENT_ID: i32 = 8001;

/// The demo's world, placing calls for the page.
pub struct DemoWorld {
    world: Arc<World>,
    next: Mutex<(i32, i32)>,
}

impl DemoWorld {
    /// Place calls into `world`'s simulators.
    pub fn new(world: Arc<World>) -> Self {
        Self {
            world,
            next: Mutex::new((FIRST_CALL_ID, FIRST_SEGMENT_ID)),
        }
    }
}

fn ext(dn: &str, name: &str) -> SimParty {
    SimParty::extension(dn, name, 0)
}

impl DemoCalls for DemoWorld {
    fn kinds(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("internal", "Internal call: Bob (102) → Alice (101)"),
            ("inbound", "Inbound call from Dana Fox"),
            ("refused", "Inbound call the CRM refuses once (it parks)"),
        ]
    }

    fn place(&self, kind: &str) -> anyhow::Result<(String, String)> {
        use crate::demo::numbers::DANA;
        let (label, src, dst) = match kind {
            "internal" => (
                "Internal call",
                ext("102", "Bob Jones"),
                ext("101", "Alice Smith"),
            ),
            "inbound" | "refused" => (
                "Inbound call",
                SimParty::external(DANA, 0),
                ext("101", "Alice Smith"),
            ),
            other => anyhow::bail!(
                "{other:?} is not a demo call: use one of the buttons (internal, inbound, refused)"
            ),
        };
        if kind == "refused" {
            // HighLevel answers the next call message with a 422, which
            // the pipeline treats as permanent: the call parks.
            self.world.crm.inject_failures_on(
                "/conversations/messages/inbound",
                Fault::Unprocessable("demo: the CRM refused this message once".into()),
                1,
            );
        }
        let (call_id, segment_id) = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let ids = *next;
            *next = (ids.0 + 1, ids.1 + 1);
            ids
        };
        let plan = CallPlan {
            label,
            call_id,
            first_segment_id: Some(segment_id),
            legs: vec![LegPlan {
                src,
                dst,
                answered: true,
                secs: 30,
            }],
            expect: Expect::Skipped("placed from the status page"),
            recording: None,
        };
        let placed = Placer::default().place(&self.world, &plan, chrono::Utc::now());
        tracing::info!(call = %placed.key, kind, "demo: placed a call from the status page");
        Ok((placed.key, label.to_string()))
    }
}
