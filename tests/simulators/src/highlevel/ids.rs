//! Opaque identifier generation.
//!
//! HighLevel ids are opaque strings; the specs' examples are 20-character
//! alphanumerics (`ve9EPM428h8vShlRW1KT`) for locations, contacts,
//! conversations and messages, and 24-hex Mongo ids for providers and apps
//! (`61d6d1f9cdac7612faf80753`, used by the fixed default provider id in
//! `config.rs`).

use rand::Rng;
use rand::distr::Alphanumeric;

/// A 20-character alphanumeric id (contacts, conversations, messages, users).
pub(crate) fn object_id() -> String {
    random_alnum(20)
}

/// An opaque bearer credential (access token, refresh token, authorization code).
pub(crate) fn secret(prefix: &str) -> String {
    format!("{prefix}{}", random_alnum(40))
}

/// A random UUID v4 string, used as the per-request `traceId`.
pub(crate) fn trace_id() -> String {
    uuid()
}

/// A 24-hex-digit Mongo-style id (apps, providers, trigger target paths).
pub(crate) fn hex_id() -> String {
    let bytes: [u8; 12] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random UUID v4 string (workflow ids are UUIDs in `get-workflow`).
pub(crate) fn uuid() -> String {
    let mut bytes: [u8; 16] = rand::rng().random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn random_alnum(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(object_id().len(), 20);
        let trace = trace_id();
        assert_eq!(trace.len(), 36);
        assert_eq!(&trace[14..15], "4");
        let hex = hex_id();
        assert_eq!(hex.len(), 24);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
