//! AES-256-GCM for tokens kept in the key-value store: the app's
//! `token_key` (`guest_support::sealing::store_key`, which the tenancy
//! provider seals tenant secrets with too).

pub use guest_support::sealing::store_key::Key;
