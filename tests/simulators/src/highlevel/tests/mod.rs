//! End-to-end tests: a started simulator on 127.0.0.1, driven with reqwest.

mod contact_changes;
mod contacts;
mod conversations;
mod limits;
mod messages;
mod oauth;
mod tasks;
mod upload;
mod users;
mod workflows;

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::{HighLevelConfig, HighLevelSim, SimContact};
use crate::highlevel::routes::{CONTACTS_VERSION, CONVERSATIONS_VERSION};

/// A response, read whole.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("response body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A running simulator, an HTTP client and an installed token.
struct Fixture {
    sim: HighLevelSim,
    http: reqwest::Client,
    token: String,
}

impl Fixture {
    async fn new() -> Self {
        Self::with(HighLevelConfig::default()).await
    }

    async fn with(config: HighLevelConfig) -> Self {
        let sim = HighLevelSim::start(config).await.expect("simulator starts");
        let token = sim.install().access_token;
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("http client");
        Self { sim, http, token }
    }

    fn location(&self) -> String {
        self.sim.config().location_id.clone()
    }

    fn provider(&self) -> String {
        self.sim.config().conversation_provider_id.clone()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    fn version_for(path: &str) -> &'static str {
        // The users API pins the contacts API's version (apps/users.json).
        if path.starts_with("/contacts") || path.starts_with("/users") {
            CONTACTS_VERSION
        } else {
            CONVERSATIONS_VERSION
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
            .header("Version", Self::version_for(path))
    }

    async fn get(&self, path: &str) -> Reply {
        Reply::read(
            self.request(reqwest::Method::GET, path)
                .send()
                .await
                .expect("send"),
        )
        .await
    }

    async fn send_json(&self, method: reqwest::Method, path: &str, body: &Value) -> Reply {
        let response = self
            .request(method, path)
            .json(body)
            .send()
            .await
            .expect("send");
        Reply::read(response).await
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send_json(reqwest::Method::POST, path, body).await
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Reply {
        let response = self
            .http
            .post(self.url("/oauth/token"))
            .form(form)
            .send()
            .await
            .expect("send");
        Reply::read(response).await
    }

    /// Seeds a contact with `phone` and creates its conversation via the API.
    async fn contact_with_conversation(&self, phone: &str) -> (String, String) {
        let contact_id = self
            .sim
            .add_contact(SimContact::with_phone("Grace", "Hopper", phone));
        let reply = self
            .post(
                "/conversations/",
                &serde_json::json!({"locationId": self.location(), "contactId": contact_id}),
            )
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
        let conversation_id = reply.body["conversation"]["id"]
            .as_str()
            .expect("conversation id")
            .to_owned();
        (contact_id, conversation_id)
    }
}
