//! What the provider reads from `wasi:config/store` (Spin variables).
//!
//! | key | meaning |
//! |---|---|
//! | `pbx_base_url` | 3CX base URL, `https://pbx.example.com` |
//! | `pbx_client_id`, `pbx_client_secret` | the 3CX API client (Admin > Integrations > API) |
//! | `crm_base_url` | HighLevel API, default `https://services.leadconnectorhq.com` |
//! | `crm_client_id`, `crm_client_secret` | the marketplace app's OAuth client |
//! | `crm_refresh_token` | optional: a refresh token from an install made elsewhere; the app's own install (`/t/<tenant>/oauth/install`) and rotated tokens are kept in the store and win |
//! | `token_key` | base64 of 32 random bytes: encrypts tokens kept in the key-value store |

use crate::sealed::Key;
use guest_support::StageError;
use guest_support::config;

/// HighLevel's production API.
pub const DEFAULT_CRM_BASE_URL: &str = "https://services.leadconnectorhq.com";

/// The provider's configuration.
pub struct Settings {
    /// 3CX base URL, no trailing slash.
    pub pbx_base_url: String,
    /// 3CX API client id.
    pub pbx_client_id: String,
    /// 3CX API key.
    pub pbx_client_secret: String,
    /// HighLevel base URL, no trailing slash.
    pub crm_base_url: String,
    /// HighLevel app client id.
    pub crm_client_id: String,
    /// HighLevel app client secret.
    pub crm_client_secret: String,
    /// A refresh token from an install made elsewhere (one in the store wins).
    pub crm_refresh_token: Option<String>,
    /// Key sealing what is kept in the key-value store.
    pub token_key: Key,
}

impl Settings {
    /// Read every key; a missing one is an error naming it.
    pub fn load() -> Result<Self, StageError> {
        let checked = |key: &str, value: String| {
            guest_support::settings::check_base_url(&value)
                .map_err(|e| StageError::InvalidSettings(format!("configuration \"{key}\" {e}")))
        };
        Ok(Self {
            // Optional: the write-back component is given no 3CX client
            // (it calls only HighLevel); asking it for a 3CX token fails.
            pbx_base_url: match config::get("pbx_base_url")? {
                Some(url) => checked("pbx_base_url", url)?,
                None => String::new(),
            },
            pbx_client_id: config::get("pbx_client_id")?.unwrap_or_default(),
            pbx_client_secret: config::get("pbx_client_secret")?.unwrap_or_default(),
            crm_base_url: checked(
                "crm_base_url",
                config::get("crm_base_url")?.unwrap_or_else(|| DEFAULT_CRM_BASE_URL.into()),
            )?,
            crm_client_id: config::require("crm_client_id")?,
            crm_client_secret: config::require("crm_client_secret")?,
            crm_refresh_token: config::get("crm_refresh_token")?,
            token_key: Key::from_base64(&config::require("token_key")?)?,
        })
    }
}
