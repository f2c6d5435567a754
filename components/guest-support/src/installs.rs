//! OAuth install states both runtimes keep alike: who asked for one (a
//! client key for per-client limits), how many may be pending, and which
//! a new one pushes out. The host keeps them in SQLite
//! (`host/src/storage/secret_rows.rs`), the Spin app in its key-value
//! store (`components/app/src/oauth.rs`); both read these rules.
//!
//! The install route needs no login (an admin follows a link), so anyone
//! can start installs. A pending state is therefore never dropped for
//! another client's: a client holding [`PENDING_PER_CLIENT`] gives up its
//! own oldest, and a tenant holding [`PENDING_PER_TENANT`] refuses new
//! starts until one expires. Anonymous requests cannot push out an
//! admin's link.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv6Addr};

/// How long an install link stays usable, unless a tenant sets its own.
pub const STATE_TTL_MS: i64 = 10 * 60 * 1000;

/// Pending (unused, unexpired) install states a tenant may have: more
/// starts wait until one expires.
pub const PENDING_PER_TENANT: usize = 20;

/// Pending install states one client may hold per tenant; its next start
/// replaces its own oldest.
pub const PENDING_PER_CLIENT: usize = 3;

/// One pending install state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The state's digest (never the state itself).
    pub state: String,
    /// Who asked for it ([`client_key`]).
    pub client: String,
    /// When it stops being usable, ms since the epoch.
    pub expires_at_ms: i64,
}

/// A start refused: the tenant has [`PENDING_PER_TENANT`] pending links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy {
    /// Until the first of them expires, at least a second.
    pub retry_in_ms: i64,
}

/// Add `new` to a tenant's `pending` states at `now_ms`: expired states
/// leave, the client's own oldest go beyond [`PENDING_PER_CLIENT`] (not
/// for a [shared key](is_shared_key): that client may be anyone); the
/// digests of all that left (expired, or evicted while still usable) are
/// returned, for their stored states to be deleted: nothing else deletes
/// a state that was never redeemed. Refused (`pending` unchanged) when
/// the tenant already has [`PENDING_PER_TENANT`] pending.
pub fn admit(pending: &mut Vec<Pending>, new: Pending, now_ms: i64) -> Result<Vec<String>, Busy> {
    let (mut kept, expired): (Vec<Pending>, Vec<Pending>) = pending
        .iter()
        .cloned()
        .partition(|p| p.expires_at_ms > now_ms);
    // Oldest first, so the client's oldest are the first of its own.
    kept.sort_by_key(|p| p.expires_at_ms);
    let mut evicted: Vec<String> = expired.into_iter().map(|p| p.state).collect();
    let mut own = if is_shared_key(&new.client) {
        0
    } else {
        kept.iter().filter(|p| p.client == new.client).count()
    };
    while own >= PENDING_PER_CLIENT {
        let Some(i) = kept.iter().position(|p| p.client == new.client) else {
            break;
        };
        evicted.push(kept.remove(i).state);
        own -= 1;
    }
    if kept.len() >= PENDING_PER_TENANT {
        let first = kept.iter().map(|p| p.expires_at_ms).min().unwrap_or(now_ms);
        return Err(Busy {
            retry_in_ms: (first - now_ms).max(1_000),
        });
    }
    kept.push(new);
    *pending = kept;
    Ok(evicted)
}

/// The client behind a request, as a key for per-client limits: the
/// connection's address `peer`, or, when that is a loopback or private
/// address (a reverse proxy in front, as `docs/OPERATIONS.md`
/// recommends), the last `X-Forwarded-For` entry, the one the proxy
/// added (`forwarded_for`: the header's values in order). A client on the
/// internet cannot forge it: its own connection's address is public, so
/// its header is not read. IPv6 addresses count per /64, the block one
/// customer gets. Empty when the connection's address is unknown.
pub fn client_key<'a>(
    peer: Option<IpAddr>,
    forwarded_for: impl IntoIterator<Item = &'a str>,
) -> String {
    let Some(peer) = peer else {
        return String::new();
    };
    let client = if behind_proxy(peer) {
        forwarded_for
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .last()
            .and_then(|v| v.parse::<IpAddr>().ok())
            .unwrap_or(peer)
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

/// Whether `key` may stand for many clients: unknown (empty), or the
/// loopback or private address of a proxy that did not say whom it
/// forwards for. Starts under such a key never evict one another, since
/// the admin's may be among them; they count against the tenant only.
pub fn is_shared_key(key: &str) -> bool {
    if key.is_empty() {
        return true;
    }
    match key.strip_suffix("/64") {
        // An IPv6 block ([`client_key`]): `::1`'s is `::`.
        Some(block) => block
            .parse::<Ipv6Addr>()
            .is_ok_and(|b| b.is_unspecified() || b.is_unique_local()),
        None => key.parse::<IpAddr>().is_ok_and(behind_proxy),
    }
}

/// An address as a runtime reports it: `ip:port`, `[v6]:port` or a bare
/// address.
pub fn parse_peer(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| text.parse::<IpAddr>())
        .ok()
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
        client_key(parse_peer(peer), xff)
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
        assert_eq!(key(None, "2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(client_key(None, ["1.2.3.4"]), "");
    }

    fn pending(state: &str, client: &str, expires_at_ms: i64) -> Pending {
        Pending {
            state: state.into(),
            client: client.into(),
            expires_at_ms,
        }
    }

    #[test]
    fn anonymous_starts_never_push_out_another_clients_link() {
        let mut states = vec![pending("admin", "198.51.100.7", 1_000)];
        let mut refused = 0;
        for i in 0..200 {
            // One address a hundred times, then a hundred addresses.
            let client = if i < 100 {
                "203.0.113.1".to_string()
            } else {
                format!("203.0.113.{}", i - 98)
            };
            match admit(
                &mut states,
                pending(&format!("s{i}"), &client, 1_000 + i),
                0,
            ) {
                Ok(evicted) => assert!(!evicted.contains(&"admin".to_string())),
                Err(busy) => {
                    assert_eq!(busy.retry_in_ms, 1_000);
                    refused += 1;
                }
            }
        }
        assert!(refused > 0);
        assert!(states.iter().any(|p| p.state == "admin"));
        assert_eq!(states.len(), PENDING_PER_TENANT);
        assert!(states.iter().filter(|p| p.client == "203.0.113.1").count() <= PENDING_PER_CLIENT);
    }

    #[test]
    fn a_client_replaces_its_own_oldest_and_expired_states_leave() {
        let mut states = Vec::new();
        for i in 0..PENDING_PER_CLIENT {
            assert_eq!(
                admit(
                    &mut states,
                    pending(&format!("s{i}"), "c", 100 + i as i64),
                    0
                ),
                Ok(Vec::new())
            );
        }
        assert_eq!(
            admit(&mut states, pending("next", "c", 200), 0),
            Ok(vec!["s0".to_string()])
        );
        // At 150 the two left from the first round have expired: they
        // leave, and are named so their stored states are deleted.
        assert_eq!(
            admit(&mut states, pending("later", "c", 300), 150),
            Ok(vec!["s1".to_string(), "s2".to_string()])
        );
        let left: Vec<&str> = states.iter().map(|p| p.state.as_str()).collect();
        assert_eq!(left, ["next", "later"]);
    }

    #[test]
    fn starts_under_a_shared_key_never_evict_each_other() {
        let loopback_v6 = client_key(parse_peer("[::1]:5"), None);
        let local_v6 = client_key(parse_peer("[fd00::7]:5"), None);
        for shared in ["", "127.0.0.1", "10.1.2.3", &loopback_v6, &local_v6] {
            assert!(is_shared_key(shared), "{shared:?}");
            let mut states = vec![pending("admin", shared, 1_000)];
            for i in 0..PENDING_PER_TENANT - 1 {
                assert_eq!(
                    admit(&mut states, pending(&format!("s{i}"), shared, 2_000), 0),
                    Ok(Vec::new())
                );
            }
            assert!(admit(&mut states, pending("more", shared, 2_000), 0).is_err());
            assert!(states.iter().any(|p| p.state == "admin"));
        }
        assert!(!is_shared_key("198.51.100.7"));
        assert!(!is_shared_key("2001:db8:1:2::/64"));
    }

    #[test]
    fn a_refused_start_changes_nothing() {
        let mut states: Vec<Pending> = (0..PENDING_PER_TENANT)
            .map(|i| pending(&format!("s{i}"), &format!("c{i}"), 5_000))
            .collect();
        states.push(pending("old", "c0", 10));
        let before = states.clone();
        assert_eq!(
            admit(&mut states, pending("new", "x", 9_000), 0),
            Err(Busy { retry_in_ms: 1_000 })
        );
        assert_eq!(states, before);
    }
}
