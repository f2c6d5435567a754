//! Posting a call message ([`Crm::post_call`]), and the tenant's note
//! that HighLevel refuses `userId` on call messages, after which calls are
//! posted without it.

use super::{CallMessage, Crm, MessageResponse};
use guest_support::bindings::wasi::keyvalue::store::Bucket;
use guest_support::{StageError, kv};
use serde::{Deserialize, Serialize};

impl Crm {
    /// Post a call message.
    ///
    /// [ASSUMED] Both directions go to `add-an-inbound-message` with
    /// `direction` set: it is the only call DTO that carries a `message`
    /// body (duration, who answered) and a `direction`
    /// ("if required can be set manually"); `add-an-outbound-message` has
    /// neither. Switching outbound calls to it is a change to this one path.
    ///
    /// `userId` is left out once HighLevel refused it for this tenant (see
    /// [`refuses_user_id`]); the first refusal posts the call again without
    /// it, so the call is logged either way.
    pub fn post_call(
        &self,
        bucket: &Bucket,
        mut message: CallMessage,
    ) -> Result<MessageResponse, StageError> {
        if message.user_id.is_some()
            && kv::get_json::<UserIdRefused>(bucket, USER_ID_REFUSED_KEY)?.is_some()
        {
            message.user_id = None;
        }
        let sent = match self.send_call(&message) {
            Err(StageError::Upstream(e)) if message.user_id.is_some() && refuses_user_id(&e) => {
                // A refused body created nothing: posting again is no
                // duplicate.
                eprintln!(
                    "connectzero post: HighLevel refuses userId on call messages (HTTP {}: {}); posting calls without it from now on",
                    e.status, e.message
                );
                kv::set_json(
                    bucket,
                    USER_ID_REFUSED_KEY,
                    &UserIdRefused {
                        at_ms: guest_support::time::now_ms(),
                        status: e.status,
                        message: e.message.clone(),
                    },
                )?;
                message.user_id = None;
                self.send_call(&message)
            }
            other => other,
        };
        sent.map(|mut response| {
            response.user_id = message.user_id.clone();
            response
        })
    }

    /// operationId `add-an-inbound-message`.
    fn send_call(&self, message: &CallMessage) -> Result<MessageResponse, StageError> {
        self.conversations
            .post_json("/conversations/messages/inbound", message)
    }
}

/// Key of the tenant's note that HighLevel refused `userId` on call
/// messages; while it exists, calls are posted without `userId`.
const USER_ID_REFUSED_KEY: &str = "post/user-id-refused";

/// What [`USER_ID_REFUSED_KEY`] holds: when and how HighLevel refused, for
/// whoever looks at the store. Deleting the key makes the app try again.
#[derive(Serialize, Deserialize)]
struct UserIdRefused {
    at_ms: i64,
    status: u16,
    message: String,
}

/// True when HighLevel refused a call message because of its `userId`.
///
/// [ASSUMED] `ProcessMessageBodyDto` does not list `userId`; HighLevel's
/// NestJS validation rejects properties a DTO lacks with a 400 or 422 whose
/// message names them ("property userId should not exist"). This is the
/// one place that reads that answer.
pub fn refuses_user_id(error: &guest_support::UpstreamError) -> bool {
    matches!(error.status, 400 | 422) && error.message.contains("userId")
}
