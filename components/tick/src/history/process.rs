//! The claimed calls' way to the CRM: routed (by DID or queue), matched,
//! judged by the logging policy and posted, each ending as a handled
//! call or a claim lost to another worker.

use super::dids::{DidRead, did_unread, recorded_dids};
use super::renew::{LostClaim, Renewed, renew_and_post};
use super::{Handled, short_answer};
use crate::connectzero::matcher::matcher::{self, MatchOutcome};
use crate::connectzero::pipeline::post::{PostJob, PostOutcome, Target};
use crate::facts::{policy_facts, route_facts};
use crate::options::Options;
use crate::timing::time;
use guest_support::bindings::connectzero::pipeline::types::CallOutcome as Outcome;
use guest_support::bindings::connectzero::pipeline::types::{Call, MatchRule, NoMatchPolicy};
use guest_support::policy::Decision;
use guest_support::routing::RouteDecision;

/// The claimed calls after routing, matching, policy and posting.
pub(super) struct Processed {
    /// One per call this worker settles, oldest first.
    pub(super) handled: Vec<Handled>,
    /// Calls whose claim passed to another worker before they were posted:
    /// theirs to settle; the cursor waits before those not finished yet.
    pub(super) lost: Vec<(Call, LostClaim)>,
}

/// Route, match, apply the policy and post the claimed calls.
pub(super) fn process(options: &Options, calls: Vec<Call>) -> Processed {
    let mut lost = Vec::new();
    if calls.is_empty() {
        return Processed {
            handled: Vec::new(),
            lost,
        };
    }
    let s = &options.settings;
    let mut handled = Vec::with_capacity(calls.len());
    // Routing first: a call another tenant on the same 3CX takes costs no
    // directory lookup and no CRM request here.
    let calls: Vec<Call> = match &options.route {
        None => calls,
        Some(route) => {
            let dids = recorded_dids(s, route, &calls, guest_support::time::now_ms());
            calls
                .into_iter()
                .filter_map(|call| {
                    let did = match dids.get(&call.key) {
                        None | Some(DidRead::None) => None,
                        Some(DidRead::Known(did)) => Some(did.as_str()),
                        // Routed without its DID, the call could go to the
                        // wrong tenant for good (each tenant on the 3CX
                        // decides alone): it waits, or is parked.
                        Some(DidRead::Wait(why)) => {
                            handled.push(Handled::failed(call, did_unread(why)));
                            return None;
                        }
                        Some(DidRead::Park(why)) => {
                            handled.push(Handled::done(call, Outcome::Parked(why.clone())));
                            return None;
                        }
                    };
                    match route.decide(&route_facts(&call, did)) {
                        RouteDecision::Take => Some(call),
                        RouteDecision::Elsewhere(reason) => {
                            handled.push(Handled::done(call, Outcome::Skipped(reason)));
                            None
                        }
                    }
                })
                .collect()
        }
    };
    let mut matches = if calls.is_empty() {
        Vec::new()
    } else {
        time("match", "match-calls", || {
            matcher::match_calls(&s.into(), &calls)
        })
    };
    // A batch stage answers once per input; a replacement that does not is
    // broken, and guessing which answer is whose could post a call to the
    // wrong contact: the unanswered calls are retried (after the fix).
    matches.resize_with(calls.len(), || Err(short_answer("match")));
    let mut jobs = Vec::new();
    for (call, matched) in calls.into_iter().zip(matches) {
        let decision = match (&options.policy, &matched) {
            (Some(policy), Ok(outcome)) => Some(policy.decide(&policy_facts(&call, outcome))),
            _ => None,
        };
        if let Some(Decision::Ignore(reason)) = decision {
            handled.push(Handled::done(call, Outcome::Skipped(reason)));
            continue;
        }
        match matched {
            Ok(MatchOutcome::Matched(m)) => jobs.push(PostJob {
                call,
                ambiguous: !m.also_matching.is_empty(),
                target: Target::Contact(m.contact),
                rule: Some(m.rule),
                also_matching: m.also_matching,
            }),
            Ok(MatchOutcome::Unmatched(number)) => {
                let create = decision == Some(Decision::LogAndCreateContact)
                    || matches!(s.no_match_policy, NoMatchPolicy::CreateContact);
                if create && number.starts_with('+') {
                    jobs.push(PostJob {
                        call,
                        target: Target::CreateContact(number),
                        rule: None,
                        ambiguous: false,
                        also_matching: Vec::new(),
                    });
                } else {
                    handled.push(Handled::done(call, Outcome::Skipped("no-match".into())));
                }
            }
            Ok(MatchOutcome::Skipped(reason)) => {
                handled.push(Handled::done(call, Outcome::Skipped(reason)))
            }
            Err(error) => handled.push(Handled::failed(call, error)),
        }
    }
    if !jobs.is_empty() {
        let targets: Vec<(Call, Option<MatchRule>, Option<String>)> = jobs
            .iter()
            .map(|j| {
                let contact = match &j.target {
                    Target::Contact(c) => Some(c.id.clone()),
                    Target::CreateContact(_) => None,
                };
                (j.call.clone(), j.rule, contact)
            })
            .collect();
        let posted: Vec<Renewed> = jobs
            .iter()
            .map(|job| renew_and_post(options, job))
            .collect();
        for ((call, rule, contact), renewed) in targets.into_iter().zip(posted) {
            let result = match renewed {
                Renewed::Posted(result) => result,
                Renewed::Lost(why) => {
                    lost.push((call, why));
                    continue;
                }
            };
            let mut h = match result {
                Ok(PostOutcome::Posted(p)) => Handled {
                    contact_id: Some(p.contact_id),
                    conversation_id: Some(p.conversation_id),
                    user_id: p.user_id,
                    ..Handled::done(call, Outcome::Posted(p.message_id))
                },
                Ok(PostOutcome::NeedsReview(candidates)) => {
                    let reason = guest_support::review::needs_review_reason(
                        candidates.iter().map(|c| c.id.as_str()),
                        options.review_place,
                    );
                    Handled::done(call, Outcome::Parked(reason))
                }
                Err(error) => Handled {
                    contact_id: contact,
                    ..Handled::failed(call, error)
                },
            };
            h.rule = rule;
            handled.push(h);
        }
    }
    handled.sort_by_key(|h| h.call.start_time);
    Processed { handled, lost }
}
