//! Simulator configuration.

use std::time::Duration;

/// Configuration of a [`HighLevelSim`](super::HighLevelSim): the marketplace
/// app's credentials and the single sub-account (location) it is installed in.
#[derive(Clone, Debug)]
pub struct HighLevelConfig {
    /// OAuth `client_id` of the marketplace app.
    pub client_id: String,
    /// OAuth `client_secret` of the marketplace app.
    pub client_secret: String,
    /// The sub-account (location) the app is installed in; tokens are bound to it.
    pub location_id: String,
    /// The agency (company) owning the location.
    pub company_id: String,
    /// Id of the app's conversation provider of type Call; inbound/outbound
    /// call messages must name it.
    pub conversation_provider_id: String,
    /// `expires_in` of issued access tokens, in seconds (HighLevel: 86399).
    pub access_token_lifetime_secs: u64,
    /// Burst limit per location; `None` disables rate limiting (and its headers).
    pub rate_limit: Option<RateLimit>,
    /// How `GET /conversations/{id}/messages` shapes its page.
    pub messages_page: MessagesPage,
}

/// The two shapes of a conversation's message page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MessagesPage {
    /// `{"messages": {"lastMessageId", "nextPage", "messages": [...]}}`:
    /// what the live API answers (NOTES.md §8, api-docs issue #54).
    #[default]
    Nested,
    /// `{"lastMessageId", "nextPage", "messages": [...]}`: the document's
    /// `GetMessagesByConversationResponseDto`.
    Flat,
}

/// A token-bucket burst limit: at most `max` requests, refilled at
/// `max` per `interval` (HighLevel: 100 per 10 seconds per app per location).
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    /// Bucket capacity and `X-RateLimit-Max`.
    pub max: u32,
    /// Time to refill a full bucket and `X-RateLimit-Interval-Milliseconds`.
    pub interval: Duration,
}

impl RateLimit {
    /// HighLevel's documented burst limit: 100 requests per 10 seconds.
    pub const HIGHLEVEL: RateLimit = RateLimit {
        max: 100,
        interval: Duration::from_secs(10),
    };
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::HIGHLEVEL
    }
}

impl Default for HighLevelConfig {
    /// Fixed, readable ids shaped like HighLevel's (20-char alphanumeric
    /// location/company ids, 24-hex provider id), so tests can assert on them.
    fn default() -> Self {
        Self {
            client_id: "connectzero-app".to_owned(),
            client_secret: "sim-hl-secret".to_owned(),
            location_id: "simLocation000000001".to_owned(),
            company_id: "simCompany0000000001".to_owned(),
            conversation_provider_id: "65f0c0ffee00000000000001".to_owned(),
            access_token_lifetime_secs: 86_399,
            rate_limit: Some(RateLimit::HIGHLEVEL),
            messages_page: MessagesPage::Nested,
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn default_ids_have_highlevel_shapes() {
        let config = HighLevelConfig::default();
        assert_eq!(config.location_id.len(), 20);
        assert_eq!(config.company_id.len(), 20);
        assert_eq!(config.conversation_provider_id.len(), 24);
        assert!(
            config
                .conversation_provider_id
                .chars()
                .all(|c| c.is_ascii_hexdigit())
        );
        assert_eq!(config.access_token_lifetime_secs, 86_399);
        let limit = config.rate_limit.expect("rate limit on by default");
        assert_eq!((limit.max, limit.interval.as_secs()), (100, 10));
    }
}
