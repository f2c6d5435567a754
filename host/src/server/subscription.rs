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
use guest_support::webhook;
use serde_json::json;
use std::sync::Arc;

/// HighLevel's webhook signing key, the default for
/// `actions.signature_public_key`; and the trigger keys ConnectZero offers.
pub use guest_support::webhook::{HIGHLEVEL_WEBHOOK_KEY, TRIGGER_KEYS};

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
    let checked =
        webhook::parse_subscription(body, &tenant.config.crm.location_id).map_err(refusal)?;
    let change = match checked.change {
        webhook::SubscriptionChange::Created => SubscriptionChange::Created,
        webhook::SubscriptionChange::Updated => SubscriptionChange::Updated,
        webhook::SubscriptionChange::Deleted => SubscriptionChange::Deleted,
    };
    let id = checked.id.clone();
    let subscription = Subscription {
        id: checked.id,
        kind: checked.kind.into(),
        target_url: checked.target_url,
        workflow_id: checked.workflow_id,
    };
    match pipeline
        .subscribe_trigger(tenant, change, subscription)
        .await
    {
        Ok(Ok(())) => Ok(Json(json!({ "ok": true, "id": id })).into_response()),
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
/// `x-wh-signature` when present: `guest_support::webhook`'s checks, the
/// same the write-back component and the Spin app make.
fn authenticate(
    actions: &ActionsConfig,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), HttpError> {
    let name = actions.header_name();
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let Some(secret) = actions.secret.as_ref().filter(|s| !s.expose().is_empty()) else {
        return Err(HttpError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no shared secret is configured for this tenant, so every call is refused: set actions.secret".into(),
        ));
    };
    webhook::check_secret(name, header(name), Some(secret.expose())).map_err(refusal)?;
    // A header that is not text is no signature: it fails to verify.
    let signature = headers
        .get(webhook::SIGNATURE_HEADER)
        .map(|v| v.to_str().unwrap_or_default());
    let key = actions
        .signature_public_key
        .as_deref()
        .filter(|k| !k.trim().is_empty());
    webhook::check_signature(key, body, signature).map_err(refusal)?;
    Ok(())
}

use super::gate::refused as refusal;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use base64::Engine as _;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    use rsa::{Generate, PrivateKey};
    use sha2::Sha256;

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
