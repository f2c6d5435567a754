//! Who a request comes from, as a key for per-client limits (the status
//! page's sign-in throttle, pending installs per client).

use axum::http::HeaderMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The client behind a request: the connection's address, or, when that
/// is a loopback or private address (a reverse proxy in front of the host,
/// as `docs/OPERATIONS.md` recommends), the last `X-Forwarded-For` entry,
/// the one the proxy added. A client on the internet cannot forge it: its
/// own connection's address is public, so its header is not read. IPv6
/// addresses count per /64, the block one customer gets. Empty when the
/// connection's address is unknown.
pub fn client_key(headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    let Some(peer) = peer.map(|p| p.ip()) else {
        return String::new();
    };
    let forwarded = || {
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| !v.is_empty())?
            .parse::<IpAddr>()
            .ok()
    };
    let client = if behind_proxy(peer) {
        forwarded().unwrap_or(peer)
    } else {
        peer
    };
    match client {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let block = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", Ipv6Addr::from(block))
        }
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4).to_string(),
        IpAddr::V4(_) => client.to_string(),
    }
}

/// Whether `peer` is where a reverse proxy would connect from.
fn behind_proxy(peer: IpAddr) -> bool {
    match peer {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unique_local()
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_private())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(xff: Option<&str>, peer: &str) -> String {
        let mut headers = HeaderMap::new();
        if let Some(xff) = xff {
            headers.insert("x-forwarded-for", xff.parse().unwrap());
        }
        client_key(&headers, Some(peer.parse().unwrap()))
    }

    #[test]
    fn a_proxys_header_is_read_and_a_strangers_is_not() {
        // A proxy on the host: the address it added (the last one).
        assert_eq!(
            key(Some("1.2.3.4, 198.51.100.7"), "127.0.0.1:5"),
            "198.51.100.7"
        );
        assert_eq!(key(None, "127.0.0.1:5"), "127.0.0.1");
        // A stranger cannot pick its key.
        assert_eq!(key(Some("198.51.100.7"), "203.0.113.9:5"), "203.0.113.9");
        assert_eq!(key(Some("garbage"), "10.0.0.2:5"), "10.0.0.2");
        // IPv6 per /64.
        assert_eq!(
            key(None, "[2001:db8:1:2:aaaa::1]:5"),
            key(None, "[2001:db8:1:2:bbbb::9]:5")
        );
        assert_eq!(key(None, "[2001:db8:1:2::1]:5"), "2001:db8:1:2::/64");
        assert_eq!(client_key(&HeaderMap::new(), None), "");
    }
}
