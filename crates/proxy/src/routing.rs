//! Which route, which backend, which forwarding headers: the proxy's own minimal decisions.
//!
//! TODO(ingress-core): this whole module is a stand-in for `ingress::Router` (`route(host,
//! path)`), `ingress::pick` and `ingress::forwarded_headers`, which the `ingress` crate is
//! getting in branch `ingress-core`. When that lands, `table.rs` builds an `ingress::Router`
//! instead of [`Router`], `http.rs` calls `ingress::pick` and `ingress::forwarded_headers`, and
//! this file goes. Nothing else in the crate depends on how matching is done.

use std::collections::HashMap;
use std::net::IpAddr;

use ingress::{Balance, HttpRoute};

/// HTTP routes by host, then by longest path prefix.
///
/// Hosts are tried from the most specific: an exact name, then a `*.suffix` wildcard (one
/// label, as in certificates), then routes for any host; within one tier the longest path
/// prefix (on a segment boundary) wins, and a tier with no matching path falls through to
/// the next.
#[derive(Debug, Default)]
pub(crate) struct Router {
    exact: HashMap<String, Vec<usize>>,
    /// `*.example.com` is kept under `example.com`.
    wildcard: HashMap<String, Vec<usize>>,
    any: Vec<usize>,
    /// Each route's path prefix, by route index.
    paths: Vec<String>,
}

impl Router {
    pub(crate) fn new(routes: &[HttpRoute]) -> Router {
        let mut r = Router {
            paths: routes.iter().map(|rt| rt.path.clone()).collect(),
            ..Router::default()
        };
        for (i, route) in routes.iter().enumerate() {
            match route.host.as_deref().map(str::to_ascii_lowercase) {
                None => r.any.push(i),
                Some(h) => match h.strip_prefix("*.") {
                    Some(suffix) => r.wildcard.entry(suffix.to_owned()).or_default().push(i),
                    None => r.exact.entry(h).or_default().push(i),
                },
            }
        }
        let paths = &r.paths;
        let by_length = |v: &mut Vec<usize>| v.sort_by_key(|&i| std::cmp::Reverse(paths[i].len()));
        r.exact.values_mut().for_each(by_length);
        r.wildcard.values_mut().for_each(by_length);
        by_length(&mut r.any);
        r
    }

    /// The route for a request: `host` without its port (any case, a trailing dot allowed),
    /// `path` as it came.
    pub(crate) fn route(&self, host: &str, path: &str) -> Option<usize> {
        let host = host.strip_suffix('.').unwrap_or(host);
        let lower;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = host.to_ascii_lowercase();
            lower.as_str()
        } else {
            host
        };
        let in_tier = |v: &Vec<usize>| {
            v.iter()
                .copied()
                .find(|&i| prefix_matches(&self.paths[i], path))
        };
        if let Some(i) = self.exact.get(host).and_then(in_tier) {
            return Some(i);
        }
        if let Some((_, parent)) = host.split_once('.')
            && let Some(i) = self.wildcard.get(parent).and_then(in_tier)
        {
            return Some(i);
        }
        in_tier(&self.any)
    }
}

/// `/api` matches `/api`, `/api/` and `/api/x`, not `/apix`; `/` and `/api/` match what they
/// start.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix)
        && (prefix.ends_with('/')
            || path.len() == prefix.len()
            || path.as_bytes()[prefix.len()] == b'/')
}

/// The backend chosen for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Picked {
    pub(crate) index: usize,
    /// The route is sticky and the request did not name this backend: the response sets
    /// the cookie.
    pub(crate) set_cookie: bool,
}

/// Chooses a backend of `route`: the one the sticky cookie names (`sticky`: its value, a
/// container name) if it is still there, else by the route's balance. `rr` is a
/// round-robin counter the caller advances per request, `in_flight(i)` backend `i`'s open
/// requests, `exclude` a backend that already failed this request.
pub(crate) fn pick(
    route: &HttpRoute,
    rr: usize,
    in_flight: impl Fn(usize) -> usize,
    sticky: Option<&str>,
    exclude: Option<usize>,
) -> Option<Picked> {
    let n = route.backends.len();
    if route.sticky.is_some()
        && let Some(name) = sticky
        && let Some(i) = route.backends.iter().position(|b| b.container == name)
        && exclude != Some(i)
    {
        return Some(Picked {
            index: i,
            set_cookie: false,
        });
    }
    let mut candidates = (0..n)
        .map(|k| (rr.wrapping_add(k)) % n)
        .filter(|&i| exclude != Some(i));
    let index = match route.balance {
        Balance::RoundRobin => candidates.next(),
        // Ties go to the first from the round-robin position, so they spread.
        Balance::LeastConn => candidates.min_by_key(|&i| in_flight(i)),
    }?;
    Some(Picked {
        index,
        set_cookie: route.sticky.is_some(),
    })
}

/// One `Forwarded` element (RFC 7239): `for=IP;proto=PROTO[;host=HOST]`, quoting an IPv6
/// address and a host that is not a token.
pub(crate) fn forwarded_element(client: IpAddr, proto: &str, host: Option<&str>) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(64);
    let _ = match client {
        IpAddr::V4(ip) => write!(s, "for={ip}"),
        IpAddr::V6(ip) => write!(s, "for=\"[{ip}]\""),
    };
    s.push_str(";proto=");
    s.push_str(proto);
    if let Some(host) = host {
        s.push_str(";host=");
        if !host.is_empty() && host.bytes().all(is_tchar) {
            s.push_str(host);
        } else {
            s.push('"');
            for c in host.chars() {
                if c == '"' || c == '\\' {
                    s.push('\\');
                }
                s.push(c);
            }
            s.push('"');
        }
    }
    s
}

/// RFC 9110 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingress::{Backend, Tls};

    fn route(host: Option<&str>, path: &str) -> HttpRoute {
        HttpRoute {
            host: host.map(str::to_owned),
            path: path.to_owned(),
            stack: "s".into(),
            service: "w".into(),
            tls: Tls::None,
            balance: Balance::RoundRobin,
            sticky: None,
            backends: vec![],
        }
    }

    #[test]
    fn hosts_from_the_most_specific_and_longest_paths() {
        let r = Router::new(&[
            route(None, "/"),
            route(Some("*.example.com"), "/"),
            route(Some("shop.example.com"), "/"),
            route(Some("shop.example.com"), "/api"),
            route(Some("*.example.com"), "/static/"),
        ]);
        assert_eq!(r.route("shop.example.com", "/api/x"), Some(3));
        assert_eq!(r.route("Shop.Example.COM.", "/api"), Some(3));
        assert_eq!(r.route("shop.example.com", "/apix"), Some(2));
        assert_eq!(r.route("a.example.com", "/static/x.css"), Some(4));
        assert_eq!(r.route("a.example.com", "/static"), Some(1));
        assert_eq!(r.route("a.b.example.com", "/"), Some(0));
        assert_eq!(r.route("example.com", "/"), Some(0));
        assert_eq!(r.route("", "/"), Some(0));
        let only = Router::new(&[route(Some("a.test"), "/app")]);
        assert_eq!(only.route("a.test", "/"), None);
        assert_eq!(only.route("b.test", "/app"), None);
    }

    #[test]
    fn a_tier_without_the_path_falls_through() {
        let r = Router::new(&[route(Some("a.test"), "/api"), route(None, "/")]);
        assert_eq!(r.route("a.test", "/web"), Some(1));
    }

    fn backends(n: usize) -> Vec<Backend> {
        (0..n)
            .map(|i| Backend {
                container: format!("c{i}"),
                host: "h".into(),
                addr: ([10, 0, 0, i as u8], 80).into(),
            })
            .collect()
    }

    #[test]
    fn picks() {
        let mut rt = route(None, "/");
        rt.backends = backends(3);
        let idx = |rr, ex| pick(&rt, rr, |_| 0, None, ex).map(|p| p.index);
        assert_eq!(idx(4, None), Some(1));
        assert_eq!(idx(4, Some(1)), Some(2));
        rt.balance = Balance::LeastConn;
        let load = [5, 0, 2];
        assert_eq!(
            pick(&rt, 0, |i| load[i], None, None).map(|p| p.index),
            Some(1)
        );
        assert_eq!(
            pick(&rt, 0, |i| load[i], None, Some(1)).map(|p| p.index),
            Some(2)
        );
        rt.sticky = Some("srv".into());
        assert_eq!(
            pick(&rt, 0, |i| load[i], Some("c2"), None),
            Some(Picked {
                index: 2,
                set_cookie: false
            })
        );
        assert_eq!(
            pick(&rt, 0, |i| load[i], Some("gone"), None),
            Some(Picked {
                index: 1,
                set_cookie: true
            })
        );
        rt.backends.truncate(1);
        assert_eq!(pick(&rt, 0, |_| 0, None, Some(0)), None);
    }

    #[test]
    fn forwarded_elements() {
        assert_eq!(
            forwarded_element([192, 0, 2, 1].into(), "https", Some("a.test")),
            "for=192.0.2.1;proto=https;host=a.test"
        );
        assert_eq!(
            forwarded_element(
                "2001:db8::1".parse().expect("ip"),
                "http",
                Some("a.test:8080")
            ),
            "for=\"[2001:db8::1]\";proto=http;host=\"a.test:8080\""
        );
        assert_eq!(
            forwarded_element([127, 0, 0, 1].into(), "http", None),
            "for=127.0.0.1;proto=http"
        );
    }
}
