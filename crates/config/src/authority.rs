//! Who a URL points at: `host:port`, the unit the outbound allow-list,
//! the rate limiter and the metrics count by. A leaf module, so the
//! configuration, the limiter, the metrics and the outbound policy share
//! one reading of a URL without depending on each other.

/// `host:port` of a base URL, with the scheme's default port filled in.
pub fn authority_of_url(url: &str) -> Option<String> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        (false, url.strip_prefix("http://")?)
    };
    let authority = rest.split('/').next()?;
    normalise_authority(authority, https)
}

/// `authority` (`host[:port]`) in lower case with the scheme's default
/// port filled in; `None` when it is empty or carries credentials.
pub fn normalise_authority(authority: &str, https: bool) -> Option<String> {
    let authority = authority.trim().to_ascii_lowercase();
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let has_port = authority.rsplit_once(':').is_some_and(|(host, port)| {
        !port.is_empty()
            && port.chars().all(|c| c.is_ascii_digit())
            && (!host.contains(':') || host.ends_with(']'))
    });
    Some(if has_port {
        authority
    } else {
        format!("{authority}:{}", if https { 443 } else { 80 })
    })
}

/// Whether `authority`'s host is `localhost` or a loopback address.
pub fn is_loopback(authority: &str) -> bool {
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
