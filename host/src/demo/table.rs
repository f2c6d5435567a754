//! What happened to each placed call next to what should have, as a table.

use super::{Answer, CallPlan, Expect, PlacedCall, expected_answer, recovered_by};
use crate::storage::CallRecord;
use crate::testbed::{TENANT, World};
use connectzero_simulators::threecx::{
    DN_TYPE_END_CALL, DN_TYPE_IVR, DN_TYPE_QUEUE, DN_TYPE_RING_GROUP, DN_TYPE_VOICEMAIL,
};
use serde_json::Value;
use std::collections::HashMap;

/// One row of the result table.
#[derive(Clone, Debug)]
pub struct Row {
    /// The placed call.
    pub call: PlacedCall,
    /// What the host recorded, if anything yet.
    pub record: Option<CallRecord>,
    /// Who answered, or why nobody did, as the CRM's `call.ended` event
    /// said (`None` before it was delivered or without triggers).
    pub answer: Option<Answer>,
    /// Whether the record matches the expectation.
    pub as_expected: bool,
}

/// Who answered, or why nobody did, as a `call.ended` payload says.
fn answer_of(body: &Value) -> Option<Answer> {
    if body["answered"].as_bool()? {
        Some(Answer::By(body["extension"].as_str()?.to_string()))
    } else {
        Some(Answer::Missed(body["missedReason"].as_str()?.to_string()))
    }
}

/// The workflow triggers a call should fire once workflows subscribe to
/// `call.ended` and `missed-call`: `call.ended` for every posted call, plus
/// `missed-call` for an unanswered inbound one. (`missed-call.recovered`
/// depends on when the callback is placed: see [`rows`].)
pub fn expected_triggers(plan: &CallPlan) -> Vec<&'static str> {
    if !matches!(plan.expect, Expect::Posted { .. }) {
        return Vec::new();
    }
    let inbound = plan.legs.first().is_some_and(|l| !l.src.internal);
    // A person must answer: an IVR, queue, ring group or voicemail picking
    // up leaves the call missed (as the poll stage counts it).
    let machine = [
        DN_TYPE_IVR,
        DN_TYPE_QUEUE,
        DN_TYPE_RING_GROUP,
        DN_TYPE_VOICEMAIL,
        DN_TYPE_END_CALL,
    ];
    let answered = plan
        .legs
        .iter()
        .any(|l| l.answered && !machine.contains(&l.dst.dn_type));
    if inbound && !answered {
        vec!["call.ended", "missed-call"]
    } else {
        vec!["call.ended"]
    }
}

/// Whether the call fired its triggers: [`expected_triggers`], plus
/// `missed-call.recovered` when the call that recovers it was placed.
fn triggers_match(record: &CallRecord, call: &PlacedCall, placed: &[PlacedCall]) -> bool {
    let mut fired: Vec<&str> = record
        .triggers
        .split_whitespace()
        .filter_map(|t| t.split('×').next())
        .collect();
    fired.sort_unstable();
    let mut expected = expected_triggers(&call.plan);
    if call.plan.recording.is_some_and(|r| r.transcribed) {
        expected.push("call.insights");
    }
    let recovering = recovered_by(call.plan.call_id);
    if recovering.is_some_and(|id| placed.iter().any(|p| p.plan.call_id == id)) {
        expected.push("missed-call.recovered");
    }
    expected.sort_unstable();
    fired == expected
}

/// Compare what happened with what should have, per placed call: outcome,
/// rule and contact, the recording attached exactly when the call has one,
/// and (with `with_triggers`) the workflow triggers it should fire and who
/// answered or why nobody did, as the `call.ended` event told the CRM.
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
    let answers: HashMap<String, Option<Answer>> = world
        .crm
        .trigger_executions()
        .iter()
        .filter(|e| e.body["event"] == "call.ended")
        .filter_map(|e| Some((e.body["callId"].as_str()?.to_string(), answer_of(&e.body))))
        .collect();
    Ok(placed
        .iter()
        .map(|call| {
            let record = records.get(&call.key).cloned();
            let answer = answers.get(&call.key).cloned().flatten();
            let answer_ok =
                || expected_answer(call.plan.call_id).is_none_or(|want| answer == Some(want));
            let as_expected = record.as_ref().is_some_and(|r| {
                matches_expectation(r, &call.plan.expect, contacts)
                    && (r.recording == "attached") == call.plan.recording.is_some()
                    && (r.insights == "written")
                        == call.plan.recording.is_some_and(|rec| rec.transcribed)
                    && (!with_triggers || (triggers_match(r, call, placed) && answer_ok()))
            });
            Row {
                call: call.clone(),
                record,
                answer,
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

/// True when every placed call has a final outcome, no recording or
/// insights are still pending, and (with `with_triggers`) its triggers have fired.
pub fn all_final(rows: &[Row], with_triggers: bool) -> bool {
    let placed: Vec<PlacedCall> = rows.iter().map(|r| r.call.clone()).collect();
    rows.iter().all(|r| {
        r.record.as_ref().is_some_and(|rec| {
            rec.outcome != "retrying"
                && rec.recording != "pending"
                && rec.insights != "pending"
                && (!with_triggers || triggers_match(rec, &r.call, &placed))
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
        "{:>2}  {:<44} {:<9} {:<16} {:<12} {:<24} {:<22} {:>8}  {:<9} {:<26} {}\n",
        "#",
        "call",
        "direction",
        "rule",
        "contact",
        "result",
        "answered by / missed",
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
        let result: String = result.chars().take(24).collect();
        let answer = match &row.answer {
            Some(Answer::By(ext)) => format!("ext. {ext}"),
            Some(Answer::Missed(reason)) => reason.clone(),
            None => "-".into(),
        };
        out.push_str(&format!(
            "{:>2}  {:<44} {:<9} {:<16} {:<12} {:<24} {:<22} {:>8}  {:<9} {:<26} {}\n",
            i + 1,
            row.call.plan.label,
            direction,
            rule,
            contact,
            result,
            answer,
            latency,
            if recording == "none" { "-" } else { &recording },
            if triggers.is_empty() { "-" } else { &triggers },
            if row.as_expected { "✓" } else { "✗" }
        ));
    }
    out
}
