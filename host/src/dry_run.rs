//! `connectzero match`: which contact would a call from (or to) a number
//! match, by which rule, and is the match ambiguous? Runs the real match
//! component (the bundled one, or a replacement from `--components`)
//! against the tenant's CRM directory; posts nothing and claims nothing.

use crate::bindings::matcher::exports::connectzero::matcher::matcher::{
    ContactMatch, MatchOutcome,
};
use crate::bindings::types::{
    Call, CallLeg, ContactRef, Direction, DnKind, MatchRule, NoMatchPolicy, Party, StageError,
};
use crate::pipeline::{Pipeline, Tenant, describe, direction_name, rule_name};
use guest_support::policy::{self, CallDirection, CallFacts, Decision};
use std::fmt::Write;

/// What the dry run found, ready to print.
#[derive(Debug)]
pub struct DryRun {
    /// The human-readable report.
    pub text: String,
    /// The matcher's answer.
    pub outcome: MatchOutcome,
}

/// Match one call with `number` as the outside party: the caller of an
/// inbound call, the called number of an outbound one. `Err` when the
/// matcher failed (e.g. the CRM refused the token); the error says why.
pub async fn run(
    pipeline: &Pipeline,
    tenant: &Tenant,
    number: &str,
    direction: Direction,
) -> anyhow::Result<DryRun> {
    let call = call_for(number, direction);
    let mut results = pipeline
        .dry_run_match(tenant, std::slice::from_ref(&call))
        .await?;
    let outcome = results
        .pop()
        .ok_or_else(|| anyhow::anyhow!("the match component answered nothing"))?
        .map_err(|error: StageError| {
            anyhow::anyhow!("the match component failed: {}", describe(&error))
        })?;
    let text = render(tenant, number, direction, &outcome);
    Ok(DryRun { text, outcome })
}

/// A finished one-leg call between `number` and an extension with no
/// owner (so only the number rules can match).
/// The policy facts of the dry run's call: only its outside number counts
/// (the one the matcher normalised, as the tick's `facts::policy_facts`
/// takes it); talk time and start time are not real here.
fn number_facts(number: &str, direction: Direction, outcome: &MatchOutcome) -> CallFacts {
    let outside_e164 = match outcome {
        MatchOutcome::Matched(m) if !matches!(m.rule, MatchRule::ExtensionOwner) => {
            Some(m.matched_on.clone())
        }
        MatchOutcome::Unmatched(n) if n.starts_with('+') => Some(n.clone()),
        _ => policy::canonical_e164(number),
    };
    CallFacts {
        direction: match direction {
            Direction::Inbound => CallDirection::Inbound,
            Direction::Outbound => CallDirection::Outbound,
            Direction::Internal => CallDirection::Internal,
        },
        answered: true,
        duration_secs: 0,
        start_ms: chrono::Utc::now().timestamp_millis(),
        outside_e164,
        voicemail: false,
    }
}

fn call_for(number: &str, direction: Direction) -> Call {
    let outside = Party {
        number: number.to_string(),
        display_name: None,
        extension: None,
        external: true,
        owner: None,
        kind: DnKind::ExternalLine,
    };
    let inside = Party {
        number: String::new(),
        display_name: None,
        extension: None,
        external: false,
        owner: None,
        kind: DnKind::Extension,
    };
    let (caller, callee) = match direction {
        Direction::Outbound => (inside, outside),
        _ => (outside, inside),
    };
    let now = chrono::Utc::now().timestamp_millis();
    Call {
        key: format!("dry-run:{now}"),
        legs: vec![CallLeg {
            leg_id: 0,
            start_time: now,
            end_time: now,
            direction,
            answered: true,
            duration_secs: 0,
            caller: caller.clone(),
            callee: callee.clone(),
            recording: None,
        }],
        direction,
        answered: true,
        start_time: now,
        end_time: now,
        duration_secs: 0,
        caller,
        callee,
        answered_by: None,
        route: Vec::new(),
        missed_reason: None,
    }
}

fn contact(c: &ContactRef) -> String {
    let name = if c.name.is_empty() {
        "(no name)"
    } else {
        &c.name
    };
    format!("{name} (contact {})", c.id)
}

fn render(tenant: &Tenant, number: &str, direction: Direction, outcome: &MatchOutcome) -> String {
    let mut out = String::new();
    let towards = match direction {
        Direction::Outbound => "to",
        _ => "from",
    };
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "dry run, tenant {}: {} call {towards} {number} (nothing is posted)",
        tenant.id(),
        direction_name(direction)
    );
    match outcome {
        MatchOutcome::Matched(ContactMatch {
            contact: chosen,
            rule,
            matched_on,
            also_matching,
        }) => {
            let _ = writeln!(out, "match: {}", contact(chosen));
            let _ = writeln!(out, "rule: {} (on {matched_on})", rule_name(*rule));
            if also_matching.is_empty() {
                let _ = writeln!(out, "ambiguity: none");
            } else {
                let _ = writeln!(
                    out,
                    "ambiguity: {} other contact(s) match too: {}; the matcher's first choice is {}, but posting settles it with the tenant's tie-breakers (settings.tie_breakers) or parks the call for review on the status page",
                    also_matching.len(),
                    also_matching
                        .iter()
                        .map(contact)
                        .collect::<Vec<_>>()
                        .join(", "),
                    chosen.name
                );
            }
        }
        MatchOutcome::Unmatched(normalised) => {
            let _ = writeln!(out, "match: none (no contact has {normalised})");
            let _ = writeln!(
                out,
                "no-match policy: {}",
                match tenant.settings.no_match_policy {
                    NoMatchPolicy::Skip => "skip: the call would not be posted",
                    NoMatchPolicy::CreateContact =>
                        "create-contact: a contact would be created for the number",
                }
            );
        }
        MatchOutcome::Skipped(reason) => {
            let _ = writeln!(out, "skipped: {reason} (the call would not be posted)");
        }
    }
    // Only the number filters are meaningful here: the dry run's call has
    // no real talk time or start time for the other policy rules.
    if let Ok(Some(policy)) = tenant.config.policy()
        && let Decision::Ignore(reason) = policy.decide(&number_facts(number, direction, outcome))
        && matches!(reason.as_str(), "blocked number" | "PBX's own number")
    {
        let _ = writeln!(out, "policy: {reason} (the call would not be posted)");
    }
    out
}
