//! The check of an idle tenant's 3CX before its next tick
//! (`connectzero_runtime::scheduler::QuietProbe`): two small reads, with
//! the tenant's 3CX token and the host's own client, compared by
//! `guest_support::protocol::quiet`.

use crate::bindings::types::Service;
use crate::scheduler::QuietProbe;
use connectzero_runtime::credentials::TokenSource;
use connectzero_runtime::report::QuietWindow;
use guest_support::protocol::quiet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A tenant's 3CX, as the check reads it.
pub struct PbxProbe {
    /// The host's client (no redirects, bounded in time).
    http: reqwest::Client,
    /// `<3CX base URL>/xapi/v1`.
    api: String,
}

impl PbxProbe {
    /// The check of the 3CX at `pbx_base_url`.
    pub fn new(http: reqwest::Client, pbx_base_url: &str) -> Self {
        Self {
            http,
            api: format!("{}/xapi/v1", pbx_base_url.trim_end_matches('/')),
        }
    }

    /// `path`'s JSON answer, or `None` for anything but a 200 with JSON
    /// (bounded: `upstream::capped_text`). A 401 drops the token, as a
    /// component's would.
    async fn read(
        &self,
        credentials: &dyn TokenSource,
        token: &str,
        path: &str,
    ) -> Option<serde_json::Value> {
        let response = match self
            .http
            .get(format!("{}{path}", self.api))
            .bearer_auth(token)
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(%error, "the check of an idle tenant got no answer; the tick runs");
                return None;
            }
        };
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            credentials.token_rejected(Service::Pbx, token);
            return None;
        }
        if !response.status().is_success() {
            // The tick runs instead, and shows what 3CX says.
            tracing::debug!(status = %response.status(), "3CX refused the check of an idle tenant; the tick runs");
            return None;
        }
        let text = crate::upstream::capped_text(response).await.ok()?;
        serde_json::from_str(&text).ok()
    }
}

impl QuietProbe for PbxProbe {
    fn unchanged(
        self: Arc<Self>,
        window: QuietWindow,
        credentials: Arc<dyn TokenSource>,
    ) -> Pin<Box<dyn Future<Output = bool> + Send>> {
        Box::pin(async move {
            if window.segment_ids.len() >= quiet::MAX_ROWS {
                return false;
            }
            let Ok(token) = credentials.clone().invocation_token(Service::Pbx).await else {
                return false;
            };
            // Calls in progress first, as the poll reads them: a call that
            // ends between the two reads is then listed or written.
            let Some(active) = self
                .read(credentials.as_ref(), &token, &quiet::active_check_path())
                .await
            else {
                return false;
            };
            let Some(history) = self
                .read(
                    credentials.as_ref(),
                    &token,
                    &quiet::history_check_path(window.start_ms),
                )
                .await
            else {
                return false;
            };
            quiet::unchanged(&window.segment_ids, &active, &history)
        })
    }
}
