//! HighLevel calling the app: workflow trigger subscriptions and custom
//! action executions (NOTES.md §5.2, §5.3). No OpenAPI file describes these
//! callbacks; the payload shapes are those NOTES.md gives [ASSUMED from
//! public client implementations]. HighLevel is not known to sign them
//! (NOTES.md §5.4), so the simulator sends only the headers a test passes,
//! plus `Content-Type: application/json`.

use anyhow::Context as _;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::{HighLevelSim, ids};

/// `meta.version` of every trigger and action call [ASSUMED].
const META_VERSION: &str = "1.0";

/// A trigger subscription HighLevel sent to an app
/// ([`HighLevelSim::subscribe_trigger`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerSubscription {
    /// `triggerData.id`: the trigger instance id (20-char opaque).
    pub id: String,
    /// `triggerData.key` and `meta.key`: the trigger's key.
    pub key: String,
    /// `triggerData.targetUrl`:
    /// `{base_url}/workflows-marketplace/triggers/execute/<24 hex>/<id>`.
    pub target_url: String,
    /// `extras.workflowId` (a UUID).
    pub workflow_id: String,
    /// The HTTP status the app answered.
    pub status: u16,
}

impl HighLevelSim {
    /// Sends an app a trigger subscription, as HighLevel does when a user
    /// adds the app's trigger to a workflow: POSTs to `subscription_url`
    /// `{"triggerData": {"id", "key", "filters": [], "eventType",
    /// "targetUrl"}, "meta": {"key", "version": "1.0"}, "extras":
    /// {"locationId", "workflowId", "companyId"}}` with `headers` added.
    /// A fresh trigger id, workflow id and target URL (served by this
    /// simulator) are generated. Fails only if the app cannot be reached.
    /// To remove a subscription use [`unsubscribe_trigger`](Self::unsubscribe_trigger).
    pub async fn subscribe_trigger(
        &self,
        subscription_url: &str,
        key: &str,
        event_type: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<TriggerSubscription> {
        let id = ids::object_id();
        let mut sub = TriggerSubscription {
            target_url: format!(
                "{}/workflows-marketplace/triggers/execute/{}/{id}",
                self.app.base_url,
                ids::hex_id()
            ),
            id,
            key: key.to_owned(),
            workflow_id: ids::uuid(),
            status: 0,
        };
        sub.status = self
            .send_trigger_event(subscription_url, &sub, event_type, headers)
            .await?;
        Ok(sub)
    }

    /// Tells the app that `sub` was removed from its workflow: the same
    /// shape as [`subscribe_trigger`](Self::subscribe_trigger), with
    /// `sub`'s ids and `eventType: "DELETED"`. Returns the app's status.
    pub async fn unsubscribe_trigger(
        &self,
        subscription_url: &str,
        sub: &TriggerSubscription,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<u16> {
        self.send_trigger_event(subscription_url, sub, "DELETED", headers)
            .await
    }

    async fn send_trigger_event(
        &self,
        url: &str,
        sub: &TriggerSubscription,
        event_type: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<u16> {
        let config = &self.app.config;
        let payload = json!({
            "triggerData": {
                "id": sub.id,
                "key": sub.key,
                "filters": [],
                "eventType": event_type,
                "targetUrl": sub.target_url,
            },
            "meta": {"key": sub.key, "version": META_VERSION},
            "extras": {
                "locationId": config.location_id,
                "workflowId": sub.workflow_id,
                "companyId": config.company_id,
            },
        });
        let (status, _) = post_json(url, serde_json::to_vec(&payload)?, headers).await?;
        Ok(status)
    }

    /// The body HighLevel POSTs to a custom action's endpoint (NOTES.md §5.3):
    /// `{"data": data, "extras": {"locationId", "contactId", "workflowId"},
    /// "meta": {"key", "version": "1.0"}, "isMarketplaceAction": true}`,
    /// with a fresh workflow id. Serialise it and pass the bytes to
    /// [`execute_action_raw`](Self::execute_action_raw) to sign them first.
    pub fn action_payload(&self, key: &str, data: Value, contact_id: &str) -> Value {
        json!({
            "data": data,
            "extras": {
                "locationId": self.app.config.location_id,
                "contactId": contact_id,
                "workflowId": ids::uuid(),
            },
            "meta": {"key": key, "version": META_VERSION},
            "isMarketplaceAction": true,
        })
    }

    /// Executes an app's custom action as a workflow would: POSTs the
    /// [`action_payload`](Self::action_payload) to `action_url` with
    /// `headers` added. Returns the app's status and JSON body
    /// (`Value::Null` when the body is not JSON). Fails only if the app
    /// cannot be reached.
    pub async fn execute_action(
        &self,
        action_url: &str,
        key: &str,
        data: Value,
        contact_id: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(u16, Value)> {
        let body = serde_json::to_vec(&self.action_payload(key, data, contact_id))?;
        self.execute_action_raw(action_url, body, headers).await
    }

    /// Like [`execute_action`](Self::execute_action) with the exact body
    /// bytes (e.g. a payload a test signed, or a malformed one), sent as
    /// `application/json` unless `headers` set another `Content-Type`.
    pub async fn execute_action_raw(
        &self,
        action_url: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(u16, Value)> {
        post_json(action_url, body, headers).await
    }
}

/// POSTs `body` as JSON with `extra` headers (a `Content-Type` among them
/// replaces the default); returns the status and the body parsed as JSON
/// (`Value::Null` if it is not).
async fn post_json(
    url: &str,
    body: Vec<u8>,
    extra: &[(&str, &str)],
) -> anyhow::Result<(u16, Value)> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in extra {
        let name = HeaderName::try_from(*name).with_context(|| format!("header name {name:?}"))?;
        let value =
            HeaderValue::try_from(*value).with_context(|| format!("value of header {name}"))?;
        if name == CONTENT_TYPE {
            headers.insert(name, value);
        } else {
            headers.append(name, value);
        }
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .context("building the HTTP client")?;
    let response = client
        .post(url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status().as_u16();
    let bytes = response
        .bytes()
        .await
        .with_context(|| format!("reading the answer of POST {url}"))?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}
