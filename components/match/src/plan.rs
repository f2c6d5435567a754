//! The match rules, written once for every binding of the WIT types: the
//! component runs them over its `directory` import, the host's benchmark
//! baseline (`connectzero bench --scenario boundary`) over the same
//! directory without the component boundary. Plain Rust over borrowed
//! views of a call, so each side only fills a [`CallView`] from its own
//! binding and performs the lookups the [`Plan`] lists, in order.

use crate::normalise::to_e164;

/// Which way a call went, seen from the PBX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// From outside to the PBX.
    Inbound,
    /// From the PBX to outside.
    Outbound,
    /// Between two extensions.
    Internal,
}

/// The owner of an extension, as the rules see it.
#[derive(Clone, Copy, Debug)]
pub struct OwnerView<'a> {
    /// The extension number.
    pub extension: &'a str,
    /// The owner's e-mail, when 3CX has one.
    pub email: Option<&'a str>,
}

/// One side of a call, as the rules see it.
#[derive(Clone, Copy, Debug)]
pub struct PartyView<'a> {
    /// The number as 3CX reported it.
    pub number: &'a str,
    /// Outside the PBX.
    pub external: bool,
    /// The owner of its extension, when it is one.
    pub owner: Option<OwnerView<'a>>,
}

/// A call, as the rules see it.
#[derive(Clone, Debug)]
pub struct CallView<'a> {
    /// Its direction.
    pub way: Way,
    /// Who called.
    pub caller: PartyView<'a>,
    /// Who was called.
    pub callee: PartyView<'a>,
    /// Who answered, when someone did.
    pub answered_by: Option<PartyView<'a>>,
    /// The callee of every leg, in order.
    pub leg_callees: Vec<PartyView<'a>>,
}

/// For the binding of the WIT `types` interface at `$($types)::+` and of
/// the `matcher` interface at `$($matcher)::+`: `fn plan_call(settings,
/// call)` (the [`plan`] of a call, or its skipped outcome), `fn view(call)
/// -> CallView` (with its `party`), and `fn matched(rule, lookup, contact,
/// others) -> MatchOutcome`. The guests' and the host's bindings name the
/// same fields, so one text serves both.
#[macro_export]
macro_rules! call_view_fns {
    ($($types:ident)::+ ; $($matcher:ident)::+) => {
        /// The lookups for `call` with the tenant's `settings`, in order,
        /// and its outside number; or why the call is skipped.
        fn plan_call(
            settings: &$($matcher)::+::MatcherSettings,
            call: &$($types)::+::Call,
        ) -> Result<(Vec<($crate::plan::Rule, $crate::plan::Lookup)>, String), String> {
            match $crate::plan::plan(
                &view(call),
                settings.log_internal_calls,
                &settings.default_country,
            ) {
                $crate::plan::Plan::Skip(reason) => Err(reason.into()),
                $crate::plan::Plan::Look { lookups, unmatched } => Ok((lookups, unmatched)),
            }
        }

        /// A skipped call's outcome.
        fn skipped(reason: String) -> $($matcher)::+::MatchOutcome {
            $($matcher)::+::MatchOutcome::Skipped(reason)
        }

        /// An unmatched call's outcome, with its outside number.
        fn unmatched(number: String) -> $($matcher)::+::MatchOutcome {
            $($matcher)::+::MatchOutcome::Unmatched(number)
        }

        /// The outcome of a lookup that found `contact` (and `others`).
        fn matched(
            rule: $crate::plan::Rule,
            lookup: &$crate::plan::Lookup,
            contact: $($types)::+::ContactRef,
            others: Vec<$($types)::+::ContactRef>,
        ) -> $($matcher)::+::MatchOutcome {
            use $($types)::+::MatchRule;
            use $crate::plan::Rule;
            $($matcher)::+::MatchOutcome::Matched($($matcher)::+::ContactMatch {
                contact,
                rule: match rule {
                    Rule::CallerNumber => MatchRule::CallerNumber,
                    Rule::CalledNumber => MatchRule::CalledNumber,
                    Rule::ExtensionOwner => MatchRule::ExtensionOwner,
                },
                matched_on: lookup.key().to_string(),
                also_matching: others,
            })
        }

        /// `call` as the match rules see it.
        fn view(call: &$($types)::+::Call) -> $crate::plan::CallView<'_> {
            use $($types)::+::Direction;
            use $crate::plan::Way;
            $crate::plan::CallView {
                way: match call.direction {
                    Direction::Inbound => Way::Inbound,
                    Direction::Outbound => Way::Outbound,
                    Direction::Internal => Way::Internal,
                },
                caller: party(&call.caller),
                callee: party(&call.callee),
                answered_by: call.answered_by.as_ref().map(party),
                leg_callees: call.legs.iter().map(|l| party(&l.callee)).collect(),
            }
        }

        /// `p` as the match rules see it.
        fn party(p: &$($types)::+::Party) -> $crate::plan::PartyView<'_> {
            $crate::plan::PartyView {
                number: &p.number,
                external: p.external,
                owner: p.owner.as_ref().map(|o| $crate::plan::OwnerView {
                    extension: &o.extension,
                    email: o.email.as_deref(),
                }),
            }
        }
    };
}

/// The outcome of matching `$call` for `$settings`, as
/// `Result<MatchOutcome, _>`: the lookups of its [`plan`] in order, each
/// found with `$find` (an expression of `$lookup`, which may `?` and
/// `.await`), the first that finds a contact deciding. Expands in a
/// function that has the helpers of [`call_view_fns!`] in scope: the one
/// text of the rules' driver for the component (sync directory) and the
/// host's baseline (async).
#[macro_export]
macro_rules! match_call_with {
    ($settings:expr, $call:expr, |$lookup:ident| $find:expr) => {{
        match plan_call($settings, $call) {
            Err(reason) => Ok(skipped(reason)),
            Ok((lookups, number)) => {
                let mut outcome = None;
                for (rule, $lookup) in lookups {
                    if let Some((contact, others)) = $crate::plan::pick($find) {
                        outcome = Some(matched(rule, &$lookup, contact, others));
                        break;
                    }
                }
                Ok(outcome.unwrap_or_else(|| unmatched(number)))
            }
        }
    }};
}

/// The rule a lookup applies (the WIT `match-rule`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The caller's number (inbound).
    CallerNumber,
    /// The called number (outbound).
    CalledNumber,
    /// The extension owner's e-mail.
    ExtensionOwner,
}

/// One directory lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Contacts with this E.164 number.
    Phone(String),
    /// Contacts with this e-mail (as 3CX has it; directories compare it
    /// case-insensitively).
    Email(String),
}

impl Lookup {
    /// What the lookup searched for: the match's `matched-on`.
    pub fn key(&self) -> &str {
        match self {
            Lookup::Phone(key) | Lookup::Email(key) => key,
        }
    }
}

/// What to do with one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Match nothing: skip the call for this reason.
    Skip(&'static str),
    /// Try these lookups in order; the first that finds a contact decides
    /// with its rule. None does: the call is unmatched, its outside number
    /// being `unmatched` (E.164 when it reads as one).
    Look {
        /// The lookups, most specific first.
        lookups: Vec<(Rule, Lookup)>,
        /// The outside number for the no-match policy.
        unmatched: String,
    },
}

/// The plan for `call`: internal calls are skipped unless they are logged;
/// then the outside number (caller inbound, called number outbound, read
/// with `country`), then the e-mail of each extension owner who handled
/// the call (who answered, who was called, who called).
pub fn plan(call: &CallView<'_>, log_internal: bool, country: &str) -> Plan {
    if call.way == Way::Internal && !log_internal {
        return Plan::Skip("internal-call");
    }
    let outside = outside_party(call);
    let outside_e164 = outside.and_then(|p| to_e164(p.number, country));
    let mut lookups = Vec::new();
    let number_rule = match call.way {
        Way::Inbound => Some(Rule::CallerNumber),
        Way::Outbound => Some(Rule::CalledNumber),
        Way::Internal => None,
    };
    if let (Some(rule), Some(e164)) = (number_rule, &outside_e164) {
        lookups.push((rule, Lookup::Phone(e164.clone())));
    }
    for owner in owners(call) {
        if let Some(email) = owner.email {
            lookups.push((Rule::ExtensionOwner, Lookup::Email(email.to_string())));
        }
    }
    Plan::Look {
        lookups,
        unmatched: outside_e164
            .or_else(|| outside.map(|p| p.number.to_string()))
            .unwrap_or_default(),
    }
}

/// The contact a lookup chose among what it `found`: the first (the
/// directory answers oldest first), with the others that share the key.
pub fn pick<C>(mut found: Vec<C>) -> Option<(C, Vec<C>)> {
    if found.is_empty() {
        return None;
    }
    let first = found.remove(0);
    Some((first, found))
}

/// The party outside the PBX: the caller of an inbound call, the first
/// outside callee of an outbound one.
fn outside_party<'a>(call: &CallView<'a>) -> Option<PartyView<'a>> {
    match call.way {
        Way::Inbound => Some(call.caller),
        Way::Outbound => call.leg_callees.iter().copied().find(|p| p.external),
        Way::Internal => None,
    }
}

/// Owners of the extensions that handled the call, most relevant first:
/// who answered, then who was called, then who called; each once.
fn owners<'a>(call: &CallView<'a>) -> Vec<OwnerView<'a>> {
    let mut owners: Vec<OwnerView<'a>> = Vec::new();
    let candidates = [call.answered_by, Some(call.callee), Some(call.caller)];
    for party in candidates.into_iter().flatten() {
        if let Some(owner) = party.owner
            && !owners.iter().any(|o| o.extension == owner.extension)
        {
            owners.push(owner);
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(
        number: &'static str,
        external: bool,
        owner: Option<(&'static str, &'static str)>,
    ) -> PartyView<'static> {
        PartyView {
            number,
            external,
            owner: owner.map(|(extension, email)| OwnerView {
                extension,
                email: Some(email),
            }),
        }
    }

    #[test]
    fn an_inbound_call_looks_up_the_caller_then_the_owners_once_each() {
        let agent = party("101", false, Some(("101", "ann@example.com")));
        let call = CallView {
            way: Way::Inbound,
            caller: party("020 7946 0958", true, None),
            callee: agent,
            answered_by: Some(agent),
            leg_callees: vec![agent],
        };
        assert_eq!(
            plan(&call, false, "GB"),
            Plan::Look {
                lookups: vec![
                    (Rule::CallerNumber, Lookup::Phone("+442079460958".into())),
                    (
                        Rule::ExtensionOwner,
                        Lookup::Email("ann@example.com".into())
                    ),
                ],
                unmatched: "+442079460958".into(),
            }
        );
    }

    #[test]
    fn an_outbound_call_looks_up_the_first_outside_callee() {
        let agent = party("101", false, Some(("101", "ann@example.com")));
        let call = CallView {
            way: Way::Outbound,
            caller: agent,
            callee: party("800", false, None),
            answered_by: None,
            leg_callees: vec![party("800", false, None), party("+14155550100", true, None)],
        };
        let Plan::Look { lookups, .. } = plan(&call, false, "US") else {
            panic!("an outbound call is looked up");
        };
        assert_eq!(
            lookups[0],
            (Rule::CalledNumber, Lookup::Phone("+14155550100".into()))
        );
    }

    #[test]
    fn internal_calls_are_skipped_unless_logged_and_the_first_contact_wins() {
        let a = party("101", false, None);
        let call = CallView {
            way: Way::Internal,
            caller: a,
            callee: a,
            answered_by: None,
            leg_callees: vec![a],
        };
        assert_eq!(plan(&call, false, "US"), Plan::Skip("internal-call"));
        assert!(matches!(plan(&call, true, "US"), Plan::Look { .. }));
        assert_eq!(pick(vec![1, 2, 3]), Some((1, vec![2, 3])));
        assert_eq!(pick(Vec::<u8>::new()), None);
    }

    #[test]
    fn owners_are_tried_answerer_then_callee_then_caller_each_once_with_their_email_as_written() {
        let answerer = party("102", false, Some(("102", "Bea@Example.com")));
        let callee = party("101", false, Some(("101", "ann@example.com")));
        let caller = PartyView {
            number: "103",
            external: false,
            owner: Some(OwnerView {
                extension: "103",
                email: None,
            }),
        };
        let call = CallView {
            way: Way::Internal,
            caller,
            callee,
            // The answerer again as a leg's callee: tried once.
            answered_by: Some(answerer),
            leg_callees: vec![callee, answerer],
        };
        let Plan::Look { lookups, unmatched } = plan(&call, true, "US") else {
            panic!("a logged internal call is looked up");
        };
        assert_eq!(
            lookups,
            [
                (
                    Rule::ExtensionOwner,
                    Lookup::Email("Bea@Example.com".into())
                ),
                (
                    Rule::ExtensionOwner,
                    Lookup::Email("ann@example.com".into())
                ),
            ]
        );
        assert_eq!(lookups[0].1.key(), "Bea@Example.com");
        // Internal: no outside number.
        assert_eq!(unmatched, "");
    }

    #[test]
    fn a_number_that_is_no_e164_is_not_looked_up_and_is_reported_as_written() {
        let call = CallView {
            way: Way::Inbound,
            caller: party("anonymous", true, None),
            callee: party("101", false, None),
            answered_by: None,
            leg_callees: vec![party("101", false, None)],
        };
        assert_eq!(
            plan(&call, false, "US"),
            Plan::Look {
                lookups: Vec::new(),
                unmatched: "anonymous".into(),
            }
        );
    }
}
