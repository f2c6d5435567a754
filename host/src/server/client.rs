//! Who a request comes from, as a key for per-client limits (the status
//! page's sign-in throttle, pending installs per client).

use axum::http::HeaderMap;
use std::net::SocketAddr;

/// The client behind a request: the connection's address, or the last
/// `X-Forwarded-For` entry when the connection comes from a reverse proxy
/// (the rule both runtimes share: `guest_support::installs::client_key`).
/// Empty when the connection's address is unknown.
pub fn client_key(headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    guest_support::installs::client_key(
        peer.map(|p| p.ip()),
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_forwarded_for_header_is_read_and_the_last_entry_wins() {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", "1.2.3.4".parse().unwrap());
        headers.append("x-forwarded-for", "5.6.7.8, 198.51.100.7".parse().unwrap());
        assert_eq!(
            client_key(&headers, Some("127.0.0.1:5".parse().unwrap())),
            "198.51.100.7"
        );
        assert_eq!(
            client_key(&headers, Some("203.0.113.9:5".parse().unwrap())),
            "203.0.113.9"
        );
        assert_eq!(client_key(&HeaderMap::new(), None), "");
    }
}
