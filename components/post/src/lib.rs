//! # Stage 6: post — one message per call in the contact's conversation
//!
//! For each job: create the contact when the no-match policy asks for it,
//! find or create the contact's conversation (cached per contact), then post
//! one call message carrying the direction, status (answered or missed), the
//! start time, the talk time, who answered and the route the call took.
//!
//! The message names the CRM user the call was for (`users`), and a number
//! several contacts share is settled here (`ambiguity`): by an operator's
//! assignment, the tenant's tie-breakers, or parked for review.

mod ambiguity;
mod crm;
mod summary;
mod timeline;
mod users;

use crm::{CallData, CallMessage, Crm};
use guest_support::bindings::connectzero::pipeline::types::{
    Direction, MissedReason, TenantSettings,
};
use guest_support::{StageError, kv};

guest_support::stage_bindings!(http_kv "post-stage");

use exports::connectzero::pipeline::post::{Guest, PostJob, PostOutcome, Posted, Target};

struct Post;

impl Guest for Post {
    fn post_calls(
        settings: TenantSettings,
        jobs: Vec<PostJob>,
    ) -> Vec<Result<PostOutcome, StageError>> {
        let bucket = match kv::open() {
            Ok(bucket) => bucket,
            Err(e) => return jobs.iter().map(|_| Err(e.clone())).collect(),
        };
        let crm = Crm::new(&settings);
        jobs.iter()
            .map(|job| post_one(&settings, &crm, &bucket, job))
            .collect()
    }
}

fn post_one(
    settings: &TenantSettings,
    crm: &Crm,
    bucket: &guest_support::bindings::wasi::keyvalue::store::Bucket,
    job: &PostJob,
) -> Result<PostOutcome, StageError> {
    if settings.crm_conversation_provider_id.trim().is_empty() {
        return Err(StageError::InvalidSettings(
            "crm-conversation-provider-id is empty: set it to the id of the app's Call conversation provider".into(),
        ));
    }
    let user_id = users::crm_user_for(settings, bucket, &job.call)?;
    let mut choice = None;
    let contact_id = match &job.target {
        Target::Contact(contact) if !job.also_matching.is_empty() => {
            let mut candidates = vec![contact.clone()];
            candidates.extend(job.also_matching.iter().cloned());
            match ambiguity::settle(
                settings,
                bucket,
                &job.call.key,
                &candidates,
                user_id.as_deref(),
            )? {
                Some((chosen, how)) => {
                    choice = Some(how);
                    chosen.id
                }
                None => {
                    ambiguity::park_for_review(bucket, &job.call.key, &candidates)?;
                    return Ok(PostOutcome::NeedsReview(candidates));
                }
            }
        }
        Target::Contact(contact) => contact.id.clone(),
        // A retry (or a second call from the same new number in the batch)
        // finds the contact created before instead of creating another.
        Target::CreateContact(e164) => match crm.existing_contact(e164)? {
            Some(id) => id,
            None => crm.create_contact(e164)?,
        },
    };
    let conversation_id = crm.conversation_for(bucket, &contact_id)?;
    // A marker written before posting survives a crash between the CRM
    // accepting the message and the ledger recording it. Whoever takes the
    // call over then looks for the message instead of posting it again.
    // The marker records the CRM key the call is posted under, so a
    // takeover looks for exactly that key even if the tenant's prefix
    // changed in between; a marker from before the prefix existed is the
    // bare conversation id, posted under the bare call key.
    let crm_key = summary::crm_key(settings, &job.call);
    let marker = format!("post/sending/{}", job.call.key);
    if let Some(sending) = kv::get_json::<serde_json::Value>(bucket, &marker)? {
        let sent_as = match sending.get("crm_key").and_then(|k| k.as_str()) {
            Some(key) => key.to_string(),
            None => job.call.key.clone(),
        };
        let reference = summary::reference_to(&sent_as);
        if let Some(message_id) = crm.find_call_message(&conversation_id, &reference)? {
            return Ok(PostOutcome::Posted(Posted {
                message_id,
                conversation_id,
                contact_id,
                user_id,
            }));
        }
    }
    kv::set_json(
        bucket,
        &marker,
        &serde_json::json!({ "conversation": conversation_id, "crm_key": crm_key }),
    )?;
    let call = &job.call;
    let (from, to) = match call.direction {
        Direction::Outbound => (
            call.caller.number.clone(),
            summary::outside_number(call).to_string(),
        ),
        _ => (call.caller.number.clone(), call.callee.number.clone()),
    };
    let message = CallMessage {
        kind: "Call",
        conversation_id,
        contact_id: contact_id.clone(),
        conversation_provider_id: settings.crm_conversation_provider_id.clone(),
        call: CallData {
            to,
            from,
            // `CallDataDTO.status` has "busy"; every other missed call
            // (IVR, queue, out of hours) is "no-answer" to HighLevel, and the
            // message text says which.
            status: if call.answered {
                "completed"
            } else if call.missed_reason == Some(MissedReason::Busy) {
                "busy"
            } else {
                "no-answer"
            },
        },
        date: guest_support::time::format_rfc3339_ms(call.start_time),
        message: summary::with_crm_key(
            summary::message_text(job, choice, settings.call_timeline),
            call,
            &crm_key,
        ),
        alt_id: crm_key,
        user_id: user_id.clone(),
        direction: if matches!(call.direction, Direction::Outbound) {
            "outbound"
        } else {
            "inbound"
        },
    };
    let response = crm.post_call(&message)?;
    Ok(PostOutcome::Posted(Posted {
        message_id: response.message_id,
        conversation_id: response.conversation_id,
        contact_id,
        user_id,
    }))
}

// Exported only when building the component: a native build (unit tests)
// would otherwise put WIT export names into the host linker's symbol list.
#[cfg(target_arch = "wasm32")]
export!(Post);
