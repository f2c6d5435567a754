//! Random bytes in front of every value the provider swaps in.
//!
//! Spin's Redis store reports every swap as failed, so the provider reads
//! the key back to learn whether its swap wrote (`store::swap_on_spin`).
//! Two writers may swap in the same value (two workers claiming one queue
//! job alike, two requests taking the credentials' refresh lease in the
//! same millisecond): read back, both would find "their" bytes and both
//! would go on as the winner. Stamped, no two swaps write the same bytes.
//!
//! A stamped value is [`MARK`], 8 random bytes, then the value; every read
//! through the provider takes the stamp off, and values written before
//! this version (or with `set`) have none and read as they are. The mark
//! starts with a NUL byte, which no JSON value begins with; a sealed
//! value (credentials) begins with its random nonce, so one in 2^40 of
//! those written with `set` would be misread: accepted.

/// What a stamped value begins with.
pub const MARK: &[u8] = b"\0czs1";

/// How many random bytes follow [`MARK`].
const NONCE_LEN: usize = 8;

/// `value` with a fresh stamp in front.
pub fn stamped(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MARK.len() + NONCE_LEN + value.len());
    out.extend_from_slice(MARK);
    out.extend_from_slice(&nonce().to_le_bytes());
    out.extend_from_slice(value);
    out
}

/// The value stored as `bytes`, stamp taken off.
pub fn unstamped(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() >= MARK.len() + NONCE_LEN && bytes.starts_with(MARK) {
        bytes.drain(..MARK.len() + NONCE_LEN);
    }
    bytes
}

#[cfg(target_arch = "wasm32")]
fn nonce() -> u64 {
    guest_support::wasi::random::random::get_random_u64()
}

/// Native builds are unit tests only: distinct, not random.
#[cfg(not(target_arch = "wasm32"))]
fn nonce() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_stamps_of_one_value_differ_and_read_back_as_it() {
        let a = stamped(br#"{"claimed_by":"w"}"#);
        let b = stamped(br#"{"claimed_by":"w"}"#);
        assert_ne!(a, b);
        assert_eq!(unstamped(a), br#"{"claimed_by":"w"}"#);
        assert_eq!(unstamped(b), br#"{"claimed_by":"w"}"#);
    }

    #[test]
    fn values_without_a_stamp_read_as_they_are() {
        assert_eq!(unstamped(b"{}".to_vec()), b"{}");
        assert_eq!(unstamped(Vec::new()), b"");
        // Too short to hold a stamp: left alone.
        assert_eq!(unstamped(MARK.to_vec()), MARK);
    }

    #[test]
    fn an_empty_value_survives_stamping() {
        assert_eq!(unstamped(stamped(b"")), b"");
    }
}
