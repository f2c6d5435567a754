//! Logging a posted call on one more contact that shares its number.
//!
//! A call whose number several contacts share is posted once, to the
//! contact a tie-breaker chose (by default the first contact with the
//! number, [`crate::ambiguity`]). Its message says so, and the post stage
//! keeps what an operator needs to log it elsewhere too under
//! `post/shared/<call key>` ([`Shared`]): the candidates and the message as
//! sent. The bundled host's status page lists those calls with one button
//! per other candidate; a click becomes a [`CopyRequest`] that a tick hands
//! to [`post_copies`].
//!
//! Each copy is its own message, posted under its own CRM key
//! (`<call's CRM key>/also/<contact id>`) with the same exactly-once
//! protocol as the call's first message: a marker
//! (`post/shared/<call key>/copy/<contact id>`) names the conversation
//! before the send, so a worker that crashed after HighLevel took the copy
//! finds it instead of sending it again; once sent, the marker keeps the
//! message id and the request is answered from it forever after. The
//! runtime hands a request to one worker at a time (the bundled host
//! leases it, `host/src/storage/shared_rows.rs`); should a lease run out
//! while a worker is still at it, the marker says a send began, and
//! another worker that does not find the copy waits ([`IN_FLIGHT_MS`])
//! rather than send it again.
//!
//! The retention sweep deletes a marker only once its call's entry is
//! gone, so a copy already made is never offered again.

use crate::ambiguity::{Candidate, Choice};
use crate::crm::{CallMessage, Crm};
use crate::exports::connectzero::pipeline::post::CopyOutcome;
use crate::summary;
use guest_support::bindings::connectzero::pipeline::types::{ContactRef, CopyRequest, StageError};
use guest_support::bindings::wasi::keyvalue::store::Bucket;
use guest_support::kv;
use serde::{Deserialize, Serialize};

/// `post/shared/<call key>`: a call settled among several contacts without
/// an operator, as the status page and [`post_copies`] read it. The host
/// reads this format too (`host/src/storage/shared_rows.rs`).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shared {
    /// How the contact was chosen, in words (the message says the same).
    pub how: String,
    /// The contact the call was logged on.
    pub chosen: Candidate,
    /// The other contacts with the number, oldest first.
    pub others: Vec<Candidate>,
    /// The message as sent to `chosen` (its conversation, contact and
    /// text are replaced for a copy).
    pub message: CallMessage,
    /// The text of a copy without its "Ref:" line.
    pub copy_text: String,
}

/// `post/shared/<call key>/copy/<contact id>`: one copy's progress.
#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CopyMarker {
    /// The conversation the copy is (being) sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    conversation: Option<String>,
    /// The copy's CRM key (its `altId` and "Ref:" line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crm_key: Option<String>,
    /// When the send began, ms since the epoch (bounds the look-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<i64>,
    /// The copy's message id, once HighLevel took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
    /// Why the copy cannot be made, when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refused: Option<String>,
    /// A send began and has not been answered (yet).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    sending: bool,
}

/// How long after a send began another worker that does not find the copy
/// still assumes it may be on its way, and waits rather than send again:
/// far longer than one request may take (the HTTP timeouts and the CRM
/// limiter's longest hold), so two workers never both send it.
const IN_FLIGHT_MS: i64 = 10 * 60 * 1000;

/// The shared-number entry's key.
pub fn shared_key(call_key: &str) -> String {
    format!("post/shared/{call_key}")
}

/// A copy's marker key (call keys never hold a `/`, so the retention
/// sweep reads the call key back whole and dates it).
fn marker_key(contact_id: &str, call_key: &str) -> String {
    format!("post/shared/{call_key}/copy/{contact_id}")
}

/// The CRM key a copy is posted under.
fn copy_crm_key(call_crm_key: &str, contact_id: &str) -> String {
    format!("{call_crm_key}/also/{contact_id}")
}

/// Keep what an operator needs to log the call on another candidate. Only
/// for a choice a tie-breaker made: an operator's assignment is final.
/// Written before the call's message is sent, so it exists whenever the
/// message does.
pub fn keep(
    bucket: &Bucket,
    call_key: &str,
    choice: Choice,
    candidates: &[ContactRef],
    chosen_id: &str,
    message: &CallMessage,
    copy_text: String,
) -> Result<(), StageError> {
    if choice == Choice::Operator {
        return Ok(());
    }
    let candidate = |c: &ContactRef| Candidate {
        id: c.id.clone(),
        name: c.name.clone(),
        phone: c.phone.clone(),
    };
    let Some(chosen) = candidates.iter().find(|c| c.id == chosen_id) else {
        return Ok(());
    };
    let shared = Shared {
        how: choice.describe().to_string(),
        chosen: candidate(chosen),
        others: candidates
            .iter()
            .filter(|c| c.id != chosen_id)
            .map(candidate)
            .collect(),
        message: message.clone(),
        copy_text,
    };
    kv::set_json(bucket, &shared_key(call_key), &shared)
}

/// Carry out `requests`, one answer per request.
pub fn post_copies(
    crm: &Crm,
    bucket: &Bucket,
    requests: &[CopyRequest],
) -> Vec<Result<CopyOutcome, StageError>> {
    requests
        .iter()
        .map(|request| copy_one(crm, bucket, request))
        .collect()
}

fn copy_one(crm: &Crm, bucket: &Bucket, request: &CopyRequest) -> Result<CopyOutcome, StageError> {
    let contact_id = request.contact_id.trim();
    if contact_id.is_empty() || contact_id.contains('/') || request.call_key.is_empty() {
        return Ok(CopyOutcome::Refused(format!(
            "{:?} is not a contact id: pick one of the buttons next to the call",
            request.contact_id
        )));
    }
    let key = marker_key(contact_id, &request.call_key);
    let mut marker = kv::get_json::<CopyMarker>(bucket, &key)?.unwrap_or_default();
    if let Some(id) = &marker.message_id {
        return Ok(CopyOutcome::Logged(id.clone()));
    }
    if let Some(why) = &marker.refused {
        return Ok(CopyOutcome::Refused(why.clone()));
    }
    let shared = kv::get_json::<Shared>(bucket, &shared_key(&request.call_key))?;
    // A send that began before: look for it before sending again. Whether
    // HighLevel dates a message by its `date` (the call's start) or by its
    // arrival is not documented [ASSUMED either]: the look-up reaches back
    // to the earlier of the two.
    if let (Some(conversation), Some(crm_key)) = (&marker.conversation, &marker.crm_key) {
        let call_start = shared
            .as_ref()
            .and_then(|s| guest_support::time::parse_rfc3339_ms(&s.message.date).ok());
        let since = match (marker.at, call_start) {
            (Some(at), Some(start)) => Some(at.min(start)),
            (at, start) => at.or(start),
        };
        if let Some(found) = crm.find_call_message(conversation, crm_key, since)? {
            return logged(bucket, &key, marker, found.id);
        }
        let now = guest_support::time::now_ms();
        if marker.sending && marker.at.is_some_and(|at| now - at < IN_FLIGHT_MS) {
            return Err(StageError::Upstream(guest_support::UpstreamError {
                service: guest_support::Service::Crm,
                status: 503,
                message: "a worker began sending this copy moments ago and may still be at it: looked for again later".into(),
            }));
        }
    }
    let Some(shared) = shared else {
        return refuse(
            bucket,
            &key,
            marker,
            "the call was not logged on the first of several contacts with its number (or its state has been forgotten), so there is nothing to copy".into(),
        );
    };
    // The entry was written before a send that may have failed; a later
    // attempt may have posted the call elsewhere (the contacts changed, an
    // operator assigned it). The send marker names where it went.
    let sent_to =
        kv::get_json::<serde_json::Value>(bucket, &format!("post/sending/{}", request.call_key))?
            .and_then(|marker| marker.get("contact")?.as_str().map(str::to_string));
    if sent_to.is_some_and(|sent_to| sent_to != shared.chosen.id) {
        return refuse(
            bucket,
            &key,
            marker,
            "the call was logged on another contact in the end: copy it from the CRM".into(),
        );
    }
    if !shared.others.iter().any(|c| c.id == contact_id) {
        return refuse(
            bucket,
            &key,
            marker,
            "that contact is not one of the others that share the call's number".into(),
        );
    }
    let conversation = match crm.conversation_for(bucket, contact_id) {
        Ok(id) => id,
        Err(error) => return refused_for_good(bucket, &key, marker, error),
    };
    let crm_key = copy_crm_key(&shared.message.alt_id, contact_id);
    marker.conversation = Some(conversation.clone());
    marker.crm_key = Some(crm_key.clone());
    marker.at = Some(guest_support::time::now_ms());
    marker.sending = true;
    kv::set_json(bucket, &key, &marker)?;
    marker.sending = false;
    let mut message = shared.message;
    message.conversation_id = conversation;
    message.contact_id = contact_id.to_string();
    message.message = format!("{}{}", shared.copy_text, summary::reference_to(&crm_key));
    message.alt_id = crm_key;
    match crm.post_call(bucket, message) {
        Ok(response) => logged(bucket, &key, marker, response.message_id),
        Err(error) => refused_for_good(bucket, &key, marker, error),
    }
}

fn logged(
    bucket: &Bucket,
    key: &str,
    mut marker: CopyMarker,
    message_id: String,
) -> Result<CopyOutcome, StageError> {
    marker.message_id = Some(message_id.clone());
    kv::set_json(bucket, key, &marker)?;
    Ok(CopyOutcome::Logged(message_id))
}

fn refuse(
    bucket: &Bucket,
    key: &str,
    mut marker: CopyMarker,
    why: String,
) -> Result<CopyOutcome, StageError> {
    marker.refused = Some(why.clone());
    kv::set_json(bucket, key, &marker)?;
    Ok(CopyOutcome::Refused(why))
}

/// An answer HighLevel will give again (a 4xx other than 408: the contact
/// was deleted, the body is refused) refuses the copy; anything else (401,
/// 403 and 429 have variants of their own) is for now and the request is
/// sent again later. The marker keeps its conversation and key, so a copy
/// asked for again is looked for before it is sent afresh.
fn refused_for_good(
    bucket: &Bucket,
    key: &str,
    marker: CopyMarker,
    error: StageError,
) -> Result<CopyOutcome, StageError> {
    match &error {
        StageError::Upstream(e) if (400..500).contains(&e.status) && e.status != 408 => refuse(
            bucket,
            key,
            marker,
            format!("HighLevel refused it (HTTP {}): {}", e.status, e.message),
        ),
        _ => Err(error),
    }
}
