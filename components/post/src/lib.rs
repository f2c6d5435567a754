//! # The post stage — one message per call in the contact's conversation
//!
//! For each job: create the contact when the no-match policy asks for it,
//! find or create the contact's conversation (cached per contact), then post
//! one call message carrying the direction, status (answered or missed), the
//! start time, the talk time, who answered and the route the call took.
//!
//! The message names the CRM user the call was for (`users`), and a number
//! several contacts share is settled here (`ambiguity`): by an operator's
//! assignment, the tenant's tie-breakers, or parked for review; an
//! operator may then log it on another of them too (`copies`).
//!
//! It depends on `guest-support` and on what the `post-stage` world grants:
//! never on the host, the runtime or another stage.

mod ambiguity;
mod attribution;
mod copies;
mod crm;
mod summary;
mod timeline;
mod users;

use crm::{CallData, CallMessage, Crm};
use guest_support::bindings::connectzero::pipeline::types::{
    CopyRequest, Direction, TenantSettings,
};
use guest_support::{StageError, kv};

guest_support::stage_bindings!(http_kv "post-stage");

use exports::connectzero::pipeline::post::{
    CopyOutcome, Guest, PostJob, PostOutcome, Posted, Target,
};

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

    fn post_copies(
        settings: TenantSettings,
        requests: Vec<CopyRequest>,
    ) -> Vec<Result<CopyOutcome, StageError>> {
        let bucket = match kv::open() {
            Ok(bucket) => bucket,
            Err(e) => return requests.iter().map(|_| Err(e.clone())).collect(),
        };
        copies::post_copies(&Crm::new(&settings), &bucket, &requests)
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
    // A marker written before posting survives a crash between the CRM
    // accepting the message and the ledger recording it. Whoever takes the
    // call over then looks for the message instead of posting it again,
    // in the conversation the marker names: the contact chosen now may
    // differ (a tie-breaker reads live CRM data), but the message is where
    // it was posted.
    let marker = format!("post/sending/{}", job.call.key);
    let sending = kv::get_json::<serde_json::Value>(bucket, &marker)?
        .map(|value| Sending::read(&value, &job.call.key));
    let recovered = match &sending {
        Some(Sending {
            conversation: Some(conversation),
            crm_key,
            ..
        }) => crm
            .find_call_message(
                conversation,
                crm_key,
                sending.as_ref().and_then(|s| s.at_ms),
            )?
            .map(|found| (conversation.clone(), found)),
        _ => None,
    };
    if let (Some((conversation_id, found)), Some(sending)) = (&recovered, &sending)
        && let Some(contact_id) = found.contact_id.clone().or_else(|| sending.contact.clone())
    {
        ambiguity::forget(bucket, &job.call.key);
        return Ok(PostOutcome::Posted(Posted {
            message_id: found.id.clone(),
            conversation_id: conversation_id.clone(),
            contact_id,
            user_id: sending.user.clone().unwrap_or(user_id),
        }));
    }
    let mut choice = None;
    let mut candidates = Vec::new();
    let contact_id = match &job.target {
        Target::Contact(contact) if !job.also_matching.is_empty() => {
            candidates.push(contact.clone());
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
    // Found above, but neither the message nor the marker named its
    // contact: report it with the contact chosen now.
    if let Some((conversation_id, found)) = recovered {
        ambiguity::forget(bucket, &job.call.key);
        return Ok(PostOutcome::Posted(Posted {
            message_id: found.id,
            conversation_id,
            contact_id,
            user_id,
        }));
    }
    let conversation_id = crm.conversation_for(bucket, &contact_id)?;
    // A marker from before markers named their conversation is the bare
    // conversation id, posted under the bare call key: look in the
    // conversation chosen now, as then.
    if let Some(sending) = sending.as_ref().filter(|s| s.conversation.is_none())
        && let Some(found) =
            crm.find_call_message(&conversation_id, &sending.crm_key, sending.at_ms)?
    {
        ambiguity::forget(bucket, &job.call.key);
        return Ok(PostOutcome::Posted(Posted {
            message_id: found.id,
            conversation_id,
            contact_id,
            user_id,
        }));
    }
    // The CRM key the call is posted under is recorded, so a takeover
    // looks for exactly that key even if the tenant's prefix changed in
    // between.
    let crm_key = summary::crm_key(settings, &job.call);
    kv::set_json(
        bucket,
        &marker,
        &serde_json::json!({
            "conversation": conversation_id,
            "crm_key": crm_key,
            "contact": contact_id,
            "user": user_id,
            // When it was written: the retention sweep keeps it for the
            // horizon from then, even for an old call being replayed.
            "at": guest_support::time::now_ms(),
        }),
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
        kind: "Call".into(),
        conversation_id,
        contact_id: contact_id.clone(),
        conversation_provider_id: settings.crm_conversation_provider_id.clone(),
        call: CallData {
            to,
            from,
            status: summary::call_status(call).into(),
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
        }
        .into(),
    };
    if let Some(how) = choice {
        // Kept before the send, so it exists whenever the message does.
        let copy_text = summary::message_text(
            job,
            Some(ambiguity::Choice::AlsoLogged),
            settings.call_timeline,
        );
        let copy_text = copy_text
            .strip_suffix(&summary::reference(call))
            .unwrap_or(&copy_text)
            .to_string();
        copies::keep(
            bucket,
            &call.key,
            how,
            &candidates,
            &contact_id,
            &message,
            copy_text,
        )?;
    }
    let direction = message.direction.clone();
    let response = crm.post_call(bucket, message)?;
    ambiguity::forget(bucket, &job.call.key);
    if let Some(sent) = &response.user_id {
        attribution::check_if_due(crm, bucket, &direction, &response.message_id, sent);
    }
    Ok(PostOutcome::Posted(Posted {
        message_id: response.message_id,
        conversation_id: response.conversation_id,
        contact_id,
        user_id,
    }))
}

/// A `post/sending/<call key>` marker as read back.
struct Sending {
    /// The conversation the message was posted to; `None` for a marker
    /// from before markers named it.
    conversation: Option<String>,
    /// The CRM key the message carries.
    crm_key: String,
    /// The contact of that conversation, when the marker names it.
    contact: Option<String>,
    /// The CRM user the call was posted for (`Some(None)`: none), when the
    /// marker names it.
    user: Option<Option<String>>,
    /// When the marker was written (ms), when it says: the message, if
    /// posted, is no older.
    at_ms: Option<i64>,
}

impl Sending {
    /// Three shapes, oldest first: the bare conversation id (posted under
    /// the bare call key), `{conversation, crm_key}`, and
    /// `{conversation, crm_key, contact, user}`. The bare id is not taken
    /// as `conversation`: such markers keep the search they had.
    fn read(value: &serde_json::Value, call_key: &str) -> Self {
        let text = |field: &str| value.get(field).and_then(|v| v.as_str()).map(String::from);
        Self {
            conversation: text("conversation"),
            crm_key: text("crm_key").unwrap_or_else(|| call_key.to_string()),
            contact: text("contact"),
            user: value.get("user").map(|u| u.as_str().map(String::from)),
            at_ms: value.get("at").and_then(serde_json::Value::as_i64),
        }
    }
}

// Exported only when building the component: a native build (unit tests)
// would otherwise put WIT export names into the host linker's symbol list.
#[cfg(target_arch = "wasm32")]
export!(Post);

#[cfg(test)]
mod tests {
    use super::Sending;
    use serde_json::json;

    #[test]
    fn every_marker_shape_reads_back() {
        let bare = Sending::read(&json!("conv1"), "3cx:1@2");
        assert_eq!(bare.conversation, None, "a bare id keeps the old search");
        assert_eq!(bare.crm_key, "3cx:1@2");
        let keyed = Sending::read(
            &json!({"conversation": "conv1", "crm_key": "pbx/3cx:1@2"}),
            "3cx:1@2",
        );
        assert_eq!(keyed.conversation.as_deref(), Some("conv1"));
        assert_eq!(keyed.crm_key, "pbx/3cx:1@2");
        assert_eq!((keyed.contact, keyed.user), (None, None));
        let full = Sending::read(
            &json!({"conversation": "conv1", "crm_key": "3cx:1@2", "contact": "c1", "user": null}),
            "3cx:1@2",
        );
        assert_eq!(full.contact.as_deref(), Some("c1"));
        assert_eq!(full.user, Some(None), "posted for no user");
    }
}
