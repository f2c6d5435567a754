//! `POST /t/{tenant}/triggers/subscription`: HighLevel (un)registering a
//! workflow trigger (NOTES §5.2), checked here and handed to the trigger
//! component.

use super::{HttpError, ServerState, unknown_tenant};
use crate::bindings::trigger::exports::connectzero::pipeline::trigger::{
    Subscription, SubscriptionChange,
};
use crate::bindings::types::StageError;
use crate::config::ActionsConfig;
use crate::pipeline::{Pipeline, Tenant, describe};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rsa::pkcs8::DecodePublicKey;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// HighLevel's webhook signing key (`docs/oauth/WebhookAuthentication.md`),
/// the default for `actions.signature_public_key`.
pub const HIGHLEVEL_WEBHOOK_KEY: &str =
    include_str!("../../../components/guest-support/src/highlevel_webhook_key.pem");

/// The trigger keys ConnectZero offers.
pub const TRIGGER_KEYS: [&str; 4] = [
    "call.started",
    "call.ended",
    "missed-call",
    "missed-call.recovered",
];

/// HighLevel's subscription call (NOTES §5.2).
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
    /// Absent on some DELETED calls.
    #[serde(default)]
    target_url: String,
    // `filters` is accepted and not used: the workflow applies its own.
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Extras {
    location_id: String,
    #[serde(default)]
    workflow_id: Option<String>,
}

pub(super) async fn subscription(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(tenant) = state.tenants.get(&id) else {
        return unknown_tenant(&id).into_response();
    };
    match subscribe(&state.pipeline, tenant, &headers, &body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn subscribe(
    pipeline: &Pipeline,
    tenant: &Tenant,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, HttpError> {
    authenticate(&tenant.config.actions, headers, body)?;
    let call: SubscriptionCall = serde_json::from_slice(body).map_err(|e| {
        HttpError(
            StatusCode::BAD_REQUEST,
            format!("not a HighLevel trigger subscription ({{triggerData, extras}}): {e}"),
        )
    })?;
    let (data, extras) = (call.trigger_data, call.extras);
    if extras.location_id != tenant.config.crm.location_id {
        return Err(HttpError(
            StatusCode::FORBIDDEN,
            format!(
                "extras.locationId {:?} is not this tenant's location: each location has its own subscription URL",
                extras.location_id
            ),
        ));
    }
    let unprocessable = |m: String| HttpError(StatusCode::UNPROCESSABLE_ENTITY, m);
    if !TRIGGER_KEYS.contains(&data.key.as_str()) {
        return Err(unprocessable(format!(
            "triggerData.key {:?} is not a ConnectZero trigger: use one of {}",
            data.key,
            TRIGGER_KEYS.join(", ")
        )));
    }
    let change = match data.event_type.as_str() {
        "CREATED" => SubscriptionChange::Created,
        "UPDATED" => SubscriptionChange::Updated,
        "DELETED" => SubscriptionChange::Deleted,
        other => {
            return Err(unprocessable(format!(
                "triggerData.eventType {other:?} must be CREATED, UPDATED or DELETED"
            )));
        }
    };
    if data.id.trim().is_empty() {
        return Err(unprocessable("triggerData.id is empty".into()));
    }
    if change != SubscriptionChange::Deleted && data.target_url.trim().is_empty() {
        return Err(unprocessable("triggerData.targetUrl is empty".into()));
    }
    let subscription = Subscription {
        id: data.id.clone(),
        key: data.key,
        target_url: data.target_url,
        workflow_id: extras.workflow_id.filter(|w| !w.trim().is_empty()),
    };
    match pipeline
        .subscribe_trigger(tenant, change, subscription)
        .await
    {
        Ok(Ok(())) => Ok(Json(json!({ "ok": true, "id": data.id })).into_response()),
        Ok(Err(error)) => Err(stage_refusal(&error)),
        Err(error) => {
            tracing::error!(tenant = tenant.id(), error = %format!("{error:#}"), "the trigger component failed");
            Err(HttpError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the trigger component failed; the host log has the details".into(),
            ))
        }
    }
}

/// The status for a stage error: the caller's fault (422), ours (500) or
/// the CRM's (502).
fn stage_refusal(error: &StageError) -> HttpError {
    let status = match error {
        StageError::InvalidData(_) => StatusCode::UNPROCESSABLE_ENTITY,
        StageError::InvalidSettings(_) | StageError::Storage(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        StageError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::BAD_GATEWAY,
    };
    HttpError(status, describe(error))
}

/// The shared-secret header (fail closed when none is configured), then
/// `x-wh-signature` when present.
fn authenticate(
    actions: &ActionsConfig,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), HttpError> {
    let name = actions.header_name();
    let Some(secret) = actions.secret.as_ref().filter(|s| !s.expose().is_empty()) else {
        return Err(HttpError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no shared secret is configured for this tenant, so every call is refused: set actions.secret".into(),
        ));
    };
    let unauthorized = |m: String| HttpError(StatusCode::UNAUTHORIZED, m);
    let Some(presented) = headers.get(name) else {
        return Err(unauthorized(format!(
            "missing the {name} header: add it to the app's request headers"
        )));
    };
    // Digests keep the comparison constant-time in length as well as content.
    let equal =
        Sha256::digest(presented.as_bytes()).ct_eq(&Sha256::digest(secret.expose().as_bytes()));
    if !bool::from(equal) {
        return Err(unauthorized(format!(
            "the {name} header does not match this tenant's secret"
        )));
    }
    if let Some(signature) = headers.get("x-wh-signature") {
        let pem = actions
            .signature_public_key
            .as_deref()
            .unwrap_or(HIGHLEVEL_WEBHOOK_KEY);
        let key = rsa::PublicKey::from_public_key_pem(pem.trim()).map_err(|e| {
            HttpError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("actions.signature_public_key is not a PEM public key: {e}"),
            )
        })?;
        let verified = base64::engine::general_purpose::STANDARD
            .decode(signature.as_bytes())
            .ok()
            .is_some_and(|sig| key.pkcs1v15_verify::<Sha256>(body, &sig).is_ok());
        if !verified {
            return Err(unauthorized(
                "x-wh-signature does not verify: the call was not signed by HighLevel, or the body was changed".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    use rsa::{Generate, PrivateKey};

    fn actions(secret: Option<&str>) -> ActionsConfig {
        ActionsConfig {
            secret: secret.map(Secret::new),
            ..Default::default()
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    fn status(result: Result<(), HttpError>) -> u16 {
        result.map_or_else(|e| e.0.as_u16(), |()| 200)
    }

    #[test]
    fn the_secret_is_required_and_fails_closed() {
        let ok = headers(&[("x-connectzero-secret", "s")]);
        assert_eq!(status(authenticate(&actions(Some("s")), &ok, b"{}")), 200);
        assert_eq!(status(authenticate(&actions(None), &ok, b"{}")), 500);
        assert_eq!(
            status(authenticate(&actions(Some("s")), &headers(&[]), b"{}")),
            401
        );
        let wrong = headers(&[("x-connectzero-secret", "t")]);
        assert_eq!(
            status(authenticate(&actions(Some("s")), &wrong, b"{}")),
            401
        );
    }

    #[test]
    fn a_present_signature_must_verify() {
        let key = PrivateKey::generate();
        let mut config = actions(Some("s"));
        config.signature_public_key = Some(
            key.to_public_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
        );
        let signature = base64::engine::general_purpose::STANDARD
            .encode(key.pkcs1v15_sign::<Sha256>(b"{\"a\":1}").unwrap());
        let signed = headers(&[
            ("x-connectzero-secret", "s"),
            ("x-wh-signature", &signature),
        ]);
        assert_eq!(status(authenticate(&config, &signed, b"{\"a\":1}")), 200);
        assert_eq!(status(authenticate(&config, &signed, b"{\"a\":2}")), 401);
        // HighLevel's own key (the default) does not accept our signature.
        assert_eq!(
            status(authenticate(&actions(Some("s")), &signed, b"{\"a\":1}")),
            401
        );
    }
}
