//! Who picked a call leg up: the one rule the poll stage (answered,
//! attribution, talk time, missed reason) and the post stage (the leg
//! timeline) share, so the message never disagrees with the call record.

use crate::bindings::connectzero::pipeline::types::{CallLeg, DnKind};

/// True for the DN kinds that route or take messages rather than talk:
/// IVR, queue, ring group, voicemail.
pub fn is_routing(kind: DnKind) -> bool {
    matches!(
        kind,
        DnKind::Ivr | DnKind::Queue | DnKind::RingGroup | DnKind::Voicemail
    )
}

/// True when a person picked this leg up: it was answered and the side
/// that answers (the callee) is not a routing point or a mailbox. 3CX may
/// mark an IVR, queue or voicemail segment answered (they pick the line up
/// to play prompts), which is no answer for the caller. A ring group's own
/// segment counts as routing too: the member who picks up has a leg of
/// their own. `other` (a DN type the poll stage's table lacks) counts as a
/// person, so an unknown code never hides an answer.
pub fn answered_by_person(leg: &CallLeg) -> bool {
    leg.answered && !is_routing(leg.callee.kind)
}
