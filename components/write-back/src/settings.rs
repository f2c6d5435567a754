//! The component's configuration, read through `wasi:config/store`.
//!
//! | key | default |
//! |---|---|
//! | `crm-base-url` | `https://services.leadconnectorhq.com` |
//! | `crm-location-id` | none: every call is refused until it is set |
//! | `secret-header` | `x-connectzero-secret` |
//! | `secret` | none: every call is refused until it is set |
//! | `signature-public-key` | HighLevel's published webhook key |
//! | `sentiment-field-key` | `connectzero_call_sentiment` |
//! | `max-notes-chars` | 5000 |
//!
//! Each key may also be spelt with `_` for `-` (`crm_location_id`), the
//! only form Spin variables allow.

use crate::reply::ApiError;

/// HighLevel's production API.
pub const DEFAULT_CRM_BASE_URL: &str = "https://services.leadconnectorhq.com";
/// Header that carries the shared secret unless `secret-header` says otherwise.
pub const DEFAULT_SECRET_HEADER: &str = "x-connectzero-secret";
/// Contact custom field that receives the sentiment.
pub const DEFAULT_SENTIMENT_FIELD_KEY: &str = "connectzero_call_sentiment";
/// Longest notes text accepted by default, in characters.
pub const DEFAULT_MAX_NOTES_CHARS: usize = 5000;
/// HighLevel's webhook signing key (kept in `guest_support::webhook`).
pub use guest_support::webhook::HIGHLEVEL_WEBHOOK_KEY;

/// Everything the action needs to know about its tenant.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Base URL of the HighLevel API, without a trailing slash.
    pub crm_base_url: String,
    /// The only location (sub-account) this instance writes to.
    pub location_id: Option<String>,
    /// Name of the shared-secret header, lower case.
    pub secret_header: String,
    /// The shared secret; `None` refuses every call.
    pub secret: Option<String>,
    /// PEM public key that `x-wh-signature` is checked against, when one
    /// is configured (then every call must be signed); HighLevel's
    /// published key otherwise.
    pub signature_public_key: Option<String>,
    /// Contact custom field key for the sentiment.
    pub sentiment_field_key: String,
    /// Longest notes text, in characters.
    pub max_notes_chars: usize,
}

impl Settings {
    /// Read every key with `get`, applying defaults. Empty values count as
    /// unset. A value that cannot be used is a 500 naming the key.
    pub fn load(get: impl Fn(&str) -> Result<Option<String>, String>) -> Result<Self, ApiError> {
        // Spin variable names cannot contain '-': `crm_location_id` is
        // read when `crm-location-id` is unset.
        let read = |key: &str| -> Result<Option<String>, ApiError> {
            let value = |k: &str| {
                get(k)
                    .map(|v| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
                    .map_err(|e| {
                        ApiError::internal(format!("reading configuration {k:?} failed: {e}"))
                    })
            };
            match value(key)? {
                Some(v) => Ok(Some(v)),
                None => value(&key.replace('-', "_")),
            }
        };
        let max_notes_chars = match read("max-notes-chars")? {
            None => DEFAULT_MAX_NOTES_CHARS,
            Some(text) => text.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ApiError::internal(format!(
                    "configuration max-notes-chars {text:?} must be a positive whole number of characters"
                ))
            })?,
        };
        Ok(Self {
            crm_base_url: read("crm-base-url")?
                .unwrap_or_else(|| DEFAULT_CRM_BASE_URL.into())
                .trim_end_matches('/')
                .to_string(),
            location_id: read("crm-location-id")?,
            secret_header: read("secret-header")?
                .unwrap_or_else(|| DEFAULT_SECRET_HEADER.into())
                .to_ascii_lowercase(),
            secret: read("secret")?,
            signature_public_key: read("signature-public-key")?,
            sentiment_field_key: read("sentiment-field-key")?
                .unwrap_or_else(|| DEFAULT_SENTIMENT_FIELD_KEY.into()),
            max_notes_chars,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Settings, ApiError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load(|key| Ok(pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())))
    }

    #[test]
    fn defaults_apply_to_unset_and_empty_keys() {
        let s = from(&[("secret", "  "), ("crm-base-url", "http://127.0.0.1:9/")]).unwrap();
        assert_eq!(s.crm_base_url, "http://127.0.0.1:9");
        assert_eq!(s.secret, None);
        assert_eq!(s.location_id, None);
        assert_eq!(s.secret_header, DEFAULT_SECRET_HEADER);
        assert_eq!(s.sentiment_field_key, DEFAULT_SENTIMENT_FIELD_KEY);
        assert_eq!(s.max_notes_chars, DEFAULT_MAX_NOTES_CHARS);
        assert_eq!(s.signature_public_key, None, "HighLevel's published key");
    }

    #[test]
    fn header_names_are_lower_cased_and_bad_numbers_name_the_key() {
        let s = from(&[("secret-header", "X-My-Secret"), ("max-notes-chars", "200")]).unwrap();
        assert_eq!(s.secret_header, "x-my-secret");
        assert_eq!(s.max_notes_chars, 200);
        let e = from(&[("max-notes-chars", "lots")]).unwrap_err();
        assert_eq!(e.status, 500);
        assert!(e.message.contains("max-notes-chars"), "{}", e.message);
    }

    #[test]
    fn spin_style_underscore_keys_are_read_too() {
        let s = from(&[("crm_location_id", "loc9"), ("max_notes_chars", "7")]).unwrap();
        assert_eq!(s.location_id.as_deref(), Some("loc9"));
        assert_eq!(s.max_notes_chars, 7);
        let both = from(&[("secret", "dash"), ("secret", "ignored")]).unwrap();
        assert_eq!(both.secret.as_deref(), Some("dash"));
    }

    #[test]
    fn config_store_failures_are_internal_errors() {
        let e = Settings::load(|_| Err("vault sealed".into())).unwrap_err();
        assert_eq!(e.status, 500);
        assert!(e.message.contains("vault sealed"));
    }
}
