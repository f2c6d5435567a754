//! `POST /t/{tenant}/triggers/subscription`: HighLevel (un)registering a
//! workflow trigger (HighLevel NOTES §5.2), checked here and handed to the
//! trigger stage. The same checks as the bundled host's
//! `host/src/server/subscription.rs`: the shared secret, then
//! `x-wh-signature` when present, then the location and the fields.

use crate::connectzero::pipeline::trigger::{self, Subscription, SubscriptionChange};
use crate::settings::AppSettings;
use guest_support::config;
use guest_support::serve::Incoming;
use guest_support::webhook;
use serde::Deserialize;
use serde_json::{Value, json};

/// The trigger keys ConnectZero offers.
pub const TRIGGER_KEYS: [&str; 4] = [
    "call.started",
    "call.ended",
    "missed-call",
    "missed-call.recovered",
];

/// Header carrying the shared secret unless `secret_header` says otherwise.
const DEFAULT_SECRET_HEADER: &str = "x-connectzero-secret";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionCall {
    trigger_data: TriggerData,
    extras: Extras,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TriggerData {
    id: String,
    key: String,
    event_type: String,
    #[serde(default)]
    target_url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Extras {
    location_id: String,
    #[serde(default)]
    workflow_id: Option<String>,
}

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
    if let Some(signature) = request.header(webhook::SIGNATURE_HEADER) {
        let key = config::get("signature_public_key")
            .map_err(internal)?
            .unwrap_or_else(|| webhook::HIGHLEVEL_WEBHOOK_KEY.to_string());
        webhook::verify_signature(&key, body, signature).map_err(refused)?;
    }
    let call: SubscriptionCall = serde_json::from_slice(body).map_err(|e| {
        (
            400,
            format!("not a HighLevel trigger subscription ({{triggerData, extras}}): {e}"),
        )
    })?;
    let (data, extras) = (call.trigger_data, call.extras);
    if extras.location_id != settings.tenant.crm_location_id {
        return Err((
            403,
            format!(
                "extras.locationId {:?} is not this tenant's location",
                extras.location_id
            ),
        ));
    }
    if !TRIGGER_KEYS.contains(&data.key.as_str()) {
        return Err((
            422,
            format!(
                "triggerData.key {:?} is not a ConnectZero trigger: use one of {}",
                data.key,
                TRIGGER_KEYS.join(", ")
            ),
        ));
    }
    let change = match data.event_type.as_str() {
        "CREATED" => SubscriptionChange::Created,
        "UPDATED" => SubscriptionChange::Updated,
        "DELETED" => SubscriptionChange::Deleted,
        other => {
            return Err((
                422,
                format!("triggerData.eventType {other:?} must be CREATED, UPDATED or DELETED"),
            ));
        }
    };
    if data.id.trim().is_empty() {
        return Err((422, "triggerData.id is empty".into()));
    }
    if change != SubscriptionChange::Deleted && data.target_url.trim().is_empty() {
        return Err((422, "triggerData.targetUrl is empty".into()));
    }
    let subscription = Subscription {
        id: data.id.clone(),
        key: data.key,
        target_url: data.target_url,
        workflow_id: extras.workflow_id.filter(|w| !w.trim().is_empty()),
    };
    trigger::subscribe(&settings.tenant, change, &subscription)
        .map_err(|e| (502, crate::describe(&e)))?;
    Ok(data.id)
}
