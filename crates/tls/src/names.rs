//! Names: what the server certificate is issued for, and the URL an advertised address
//! stands for. Pure: the caller reads the hostname.

use std::net::IpAddr;

/// DNS names and addresses the server certificate is issued for: the listen address
/// (unless it is a wildcard), the advertised addresses, the hostname and loopback.
pub fn certificate_names(
    listen: IpAddr,
    advertise: &[String],
    hostname: Option<&str>,
) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |n: &str| {
        if !n.is_empty() && !names.iter().any(|m| m == n) {
            names.push(n.to_string());
        }
    };
    if !listen.is_unspecified() {
        add(&listen.to_string());
    }
    for a in advertise {
        add(host_part(a));
    }
    if let Some(h) = hostname {
        add(h);
    }
    for n in ["localhost", "127.0.0.1", "::1"] {
        add(n);
    }
    names
}

/// The host of `host`, `host:port`, `[v6]:port` or a URL.
pub fn host_part(a: &str) -> &str {
    let a = a.split_once("://").map_or(a, |(_, rest)| rest);
    let a = a.split('/').next().unwrap_or(a);
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match a.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.parse::<u16>().is_ok() => h,
        _ => a,
    }
}

/// Whether `host[:port]`, `[v6]:port` or a URL names this machine.
pub fn is_loopback(a: &str) -> bool {
    let host = host_part(a);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The URL an advertised address stands for.
pub fn advertised_url(scheme: &str, a: &str, port: u16) -> String {
    let host = host_part(a);
    let rest = a.split_once("://").map_or(a, |(_, r)| r);
    let rest = rest.split('/').next().unwrap_or(rest);
    // A port follows the host only as `host:port` or `[v6]:port`, never in a bare v6.
    let after_host = rest
        .strip_prefix('[')
        .map_or(rest, |r| r.split_once(']').map_or("", |(_, p)| p));
    let port = match after_host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => p.parse::<u16>().unwrap_or(port),
        _ => port,
    };
    if host.contains(':') {
        format!("{scheme}://[{host}]:{port}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_addresses_become_names_and_urls() {
        assert_eq!(host_part("10.0.0.5"), "10.0.0.5");
        assert_eq!(host_part("10.0.0.5:7480"), "10.0.0.5");
        assert_eq!(host_part("https://drover.example:443/"), "drover.example");
        assert_eq!(host_part("[fd00::1]:7480"), "fd00::1");
        assert_eq!(host_part("fd00::1"), "fd00::1");
        assert_eq!(
            advertised_url("https", "10.0.0.5", 7480),
            "https://10.0.0.5:7480"
        );
        assert_eq!(
            advertised_url("https", "drover.example:8443", 7480),
            "https://drover.example:8443"
        );
        assert_eq!(
            advertised_url("https", "fd00::1", 7480),
            "https://[fd00::1]:7480"
        );
    }

    #[test]
    fn certificates_name_every_way_the_server_is_reached() {
        let listen: IpAddr = "10.0.0.5".parse().expect("ip");
        let adv = vec!["drover.example:8443".to_string(), "10.0.0.5".to_string()];
        assert_eq!(
            certificate_names(listen, &adv, Some("node1")),
            [
                "10.0.0.5",
                "drover.example",
                "node1",
                "localhost",
                "127.0.0.1",
                "::1"
            ]
        );
        let any: IpAddr = "0.0.0.0".parse().expect("ip");
        assert_eq!(
            certificate_names(any, &[], None),
            ["localhost", "127.0.0.1", "::1"]
        );
    }

    #[test]
    fn loopback_is_recognised_with_or_without_ports() {
        for a in ["127.0.0.1:7480", "localhost", "[::1]:7480", "LOCALHOST:1"] {
            assert!(is_loopback(a), "{a}");
        }
        for a in ["10.0.0.5:7480", "drover.example", "[fd00::1]:7480"] {
            assert!(!is_loopback(a), "{a}");
        }
    }
}
