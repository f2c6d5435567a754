//! What routing looks at in a call ([`RouteFacts`]) and the one place
//! that reads a call's DID ([`did_of`]) and compares it with a configured
//! number ([`did_matches`]).

use crate::policy::{canonical_e164, country_code_len};

/// What routing looks at in one call; build it with
/// [`RouteFacts::of_call`] or [`RouteFacts::of_active_call`], the one
/// derivation both runtimes use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteFacts {
    /// The number the caller dialled, from [`did_of`]; `None` for outbound
    /// and internal calls and when 3CX did not report it.
    pub did: Option<String>,
    /// The call is inbound but its DID cannot be known: an active call
    /// whose free-text `Callee` names an extension or queue, not the
    /// dialled number. The default tenant then leaves the call alone when
    /// another tenant routes by DID, since it may be theirs.
    pub did_unknown: bool,
    /// Every PBX extension (DN) the call reached or came from, in leg
    /// order: queues, ring groups, IVRs and extensions alike.
    pub dns: Vec<String>,
}

impl RouteFacts {
    /// The facts of a call from 3CX's call history: its DID read by
    /// [`did_of`] from the first leg's called side (`first_callee_number`,
    /// `first_callee_dn`), and `extensions` (each leg's caller and callee
    /// DN, in leg order; `None` for outside parties) without repeats.
    pub fn of_call<'a>(
        inbound: bool,
        first_callee_number: &str,
        first_callee_dn: Option<&str>,
        extensions: impl IntoIterator<Item = Option<&'a str>>,
    ) -> Self {
        let mut dns: Vec<String> = Vec::new();
        for dn in extensions.into_iter().flatten() {
            if !dns.iter().any(|d| d == dn) {
                dns.push(dn.to_string());
            }
        }
        Self {
            did: did_of(inbound, first_callee_number, first_callee_dn),
            did_unknown: false,
            dns,
        }
    }

    /// The facts of a call 3CX lists as active (`ListActiveCall`), taken
    /// apart into a one-leg call the same way as [`RouteFacts::of_call`].
    ///
    /// [ASSUMED] (3CX NOTES §4): `Callee` is free text; it names the DID
    /// only when 3CX writes the dialled number there. When it names an
    /// extension or queue instead, an inbound call's DID is unknown
    /// ([`RouteFacts::did_unknown`]): `call.started` by DID needs the DID
    /// in 3CX's active-call text.
    pub fn of_active_call<'a>(
        inbound: bool,
        callee_number: &str,
        callee_dn: Option<&str>,
        extensions: impl IntoIterator<Item = Option<&'a str>>,
    ) -> Self {
        let mut facts = Self::of_call(inbound, callee_number, callee_dn, extensions);
        facts.did_unknown = inbound && facts.did.is_none();
        facts
    }
}

/// The DID (dialled number) of a call, or `None`.
///
/// [ASSUMED] 3CX's `CallHistoryView` has no DID field (3CX NOTES §2a); the
/// dialled number is read from the first segment of an *inbound* call:
/// its destination side (`DstCallerNumber`, the same as `CallLogData`
/// `DestinationCallerId`) when that is not just the DN the inbound rule
/// sent the call to (`DstDn`, e.g. "800"). A call whose first segment
/// names only the DN has no DID here and can be routed by queue instead.
/// This is the one function that reads it: if a real 3CX reports the DID
/// elsewhere, only this changes. Returns the number as 3CX wrote it
/// (compared with [`did_matches`]).
pub fn did_of(
    inbound: bool,
    first_callee_number: &str,
    first_callee_dn: Option<&str>,
) -> Option<String> {
    if !inbound {
        return None;
    }
    let number = first_callee_number.trim();
    if number.is_empty() || Some(number) == first_callee_dn.map(str::trim) {
        return None;
    }
    // A DID has at least six digits; an extension number never does.
    let digits = number.chars().filter(char::is_ascii_digit).count();
    (digits >= 6).then(|| number.to_string())
}

/// Whether a DID as 3CX wrote it is the configured E.164 `did`. An E.164
/// number must be equal. 3CX writes the DID as the trunk delivers it, so
/// a number without `+` matches when its digits, leading zeros (trunk or
/// international prefix) aside, are the configured number's national
/// significant number ("02079460000", "4155550100" for "+14155550100")
/// or all of its digits ("0044…", "1415…"). A shorter tail is no match:
/// "5550100" is the end of many numbers ("+441615550100",
/// "+441625550100"), so it identifies none of them.
pub fn did_matches(did: &str, configured_e164: &str) -> bool {
    if let Some(e164) = canonical_e164(did) {
        return e164 == configured_e164;
    }
    let digits: String = did.chars().filter(char::is_ascii_digit).collect();
    let national = digits.trim_start_matches('0');
    let Some(full) = configured_e164.strip_prefix('+') else {
        return false;
    };
    let nsn = full[country_code_len(full)..].trim_start_matches('0');
    !national.is_empty() && (national == full || national == nsn)
}
