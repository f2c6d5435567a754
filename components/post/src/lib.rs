//! # Stage 6: post — one message per call in the contact's conversation
//!
//! For each job: create the contact when the no-match policy asks for it,
//! find or create the contact's conversation (cached per contact), then post
//! one call message carrying the direction, status (answered or missed), the
//! start time, the talk time, who answered and the route the call took.

mod crm;
mod summary;

use crm::{CallData, CallMessage, Crm};
use guest_support::bindings::connectzero::pipeline::types::{Direction, TenantSettings};
use guest_support::{StageError, kv};

guest_support::stage_bindings!(http_kv "post-stage");

use exports::connectzero::pipeline::post::{Guest, PostJob, Posted, Target};

struct Post;

impl Guest for Post {
    fn post_calls(settings: TenantSettings, jobs: Vec<PostJob>) -> Vec<Result<Posted, StageError>> {
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
) -> Result<Posted, StageError> {
    if settings.crm_conversation_provider_id.trim().is_empty() {
        return Err(StageError::InvalidSettings(
            "crm-conversation-provider-id is empty: set it to the id of the app's Call conversation provider".into(),
        ));
    }
    let contact_id = match &job.target {
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
    let marker = format!("post/sending/{}", job.call.key);
    if kv::get_json::<String>(bucket, &marker)?.is_some() {
        let reference = summary::reference(&job.call);
        if let Some(message_id) = crm.find_call_message(&conversation_id, &reference)? {
            return Ok(Posted {
                message_id,
                conversation_id,
                contact_id,
            });
        }
    }
    kv::set_json(bucket, &marker, &conversation_id)?;
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
            status: if call.answered {
                "completed"
            } else {
                "no-answer"
            },
        },
        date: guest_support::time::format_rfc3339_ms(call.start_time),
        alt_id: call.key.clone(),
        message: summary::message_text(job),
        direction: if matches!(call.direction, Direction::Outbound) {
            "outbound"
        } else {
            "inbound"
        },
    };
    let response = crm.post_call(&message)?;
    Ok(Posted {
        message_id: response.message_id,
        conversation_id: response.conversation_id,
        contact_id,
    })
}

// Exported only when building the component: a native build (unit tests)
// would otherwise put WIT export names into the host linker's symbol list.
#[cfg(target_arch = "wasm32")]
export!(Post);
