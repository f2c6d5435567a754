//! `POST /t/{tenant}/triggers/subscription`: HighLevel (un)registering a
//! workflow trigger (HighLevel NOTES §5.2), checked here and handed to the
//! trigger stage. The same checks as the bundled host's
//! `host/src/server/subscription.rs`, from `guest_support::webhook`: the
//! shared secret, then `x-wh-signature` when present, then the location and
//! the fields.

use crate::connectzero::pipeline::trigger::{self, Subscription, SubscriptionChange};
use crate::settings::AppSettings;
use guest_support::config;
use guest_support::serve::Incoming;
use guest_support::webhook;
use serde_json::{Value, json};

/// Header carrying the shared secret unless `secret_header` says otherwise.
const DEFAULT_SECRET_HEADER: &str = "x-connectzero-secret";

/// Check and apply one subscription call.
pub fn handle(request: &Incoming) -> (u16, Value) {
    match apply(request) {
        Ok(id) => (200, json!({"ok": true, "id": id})),
        Err((status, message)) => (status, json!({"error": message})),
    }
}

fn apply(request: &Incoming) -> Result<String, (u16, String)> {
    let internal = |e: guest_support::StageError| (500, crate::describe(&e));
    let settings = AppSettings::load().map_err(internal)?;
    let header = config::get("secret_header")
        .map_err(internal)?
        .unwrap_or_else(|| DEFAULT_SECRET_HEADER.into());
    let secret = config::get("secret").map_err(internal)?;
    let refused = |r: webhook::Refusal| (r.status, r.message);
    webhook::check_secret(&header, request.header(&header), secret.as_deref()).map_err(refused)?;
    let body = request.body.as_ref().map_err(|e| (400, e.clone()))?;
    let key = config::get("signature_public_key").map_err(internal)?;
    webhook::check_signature(
        key.as_deref(),
        body,
        request.header(webhook::SIGNATURE_HEADER),
    )
    .map_err(refused)?;
    let checked =
        webhook::parse_subscription(body, &settings.tenant.crm_location_id).map_err(refused)?;
    let change = match checked.change {
        webhook::SubscriptionChange::Created => SubscriptionChange::Created,
        webhook::SubscriptionChange::Updated => SubscriptionChange::Updated,
        webhook::SubscriptionChange::Deleted => SubscriptionChange::Deleted,
    };
    let subscription = Subscription {
        id: checked.id.clone(),
        kind: checked.kind.into(),
        target_url: checked.target_url,
        workflow_id: checked.workflow_id,
    };
    trigger::subscribe(&settings.tenant, change, &subscription)
        .map_err(|e| (502, crate::describe(&e)))?;
    Ok(checked.id)
}
