//! What the proxy asks per connection and per request: [`Router`] (which route, which
//! certificate, which TCP route, which ACME answer), [`pick`] (which backend), and the
//! headers it adds.
//!
//! Matching a request:
//! - The `Host` is compared lowercase, without its `:port` and a trailing dot.
//! - An exact host beats `*.suffix`, which beats routes without host. `*.example.com`
//!   matches exactly one label before the suffix (`shop.example.com`, not
//!   `a.shop.example.com` nor `example.com`), as a wildcard certificate does, and as
//!   Kubernetes' Ingress does.
//! - The most specific host that has routes decides alone: when none of its paths match,
//!   the answer is no route (404), never a route of a less specific host. A catch-all of
//!   one stack never answers for a host another stack serves.
//! - Within a host, the longest path prefix that matches at a segment boundary wins: `/api`
//!   matches `/api`, `/api/`, `/api/x` and `/api?q`, not `/apix`; `/api/` matches
//!   `/api/x`, not `/api`; `/` matches every path. Paths are compared byte for byte as sent
//!   (no percent-decoding, no dot-segment removal: the backend sees the same path).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::expose::is_token_char;
use crate::{ACME_CHALLENGE_PREFIX, Backend, Balance, Cert, HttpRoute, Table, TcpRoute};

/// A [`Table`] indexed for the proxy's questions. Built once per table the server sends.
#[derive(Debug, Clone, Default)]
pub struct Router {
    table: Table,
    /// Exact host → its routes' indexes, longest path first.
    exact: HashMap<String, Vec<usize>>,
    /// `*.suffix` → (by suffix) its routes' indexes, longest path first.
    wildcard: HashMap<String, Vec<usize>>,
    /// Routes without host, longest path first.
    any: Vec<usize>,
    tcp: HashMap<u16, usize>,
    /// Certificate domain → index of the first certificate (by name) holding it.
    sni_exact: HashMap<String, usize>,
    /// Wildcard certificate domain, by suffix → index.
    sni_wildcard: HashMap<String, usize>,
}

impl From<Table> for Router {
    fn from(table: Table) -> Router {
        let mut router = Router {
            table,
            ..Router::default()
        };
        for (i, r) in router.table.http.iter().enumerate() {
            let list = match r.host.as_deref().map(|h| (h, h.strip_prefix("*."))) {
                None => &mut router.any,
                Some((_, Some(suffix))) => router.wildcard.entry(suffix.to_string()).or_default(),
                Some((host, None)) => router.exact.entry(host.to_string()).or_default(),
            };
            list.push(i);
        }
        let http = &router.table.http;
        let longest_first = |list: &mut Vec<usize>| {
            list.sort_by(|&a, &b| {
                let (a, b) = (&http[a].path, &http[b].path);
                b.len().cmp(&a.len()).then_with(|| a.cmp(b))
            })
        };
        longest_first(&mut router.any);
        router.exact.values_mut().for_each(longest_first);
        router.wildcard.values_mut().for_each(longest_first);
        for (i, t) in router.table.tcp.iter().enumerate() {
            router.tcp.entry(t.listen).or_insert(i);
        }
        let mut certs: Vec<usize> = (0..router.table.certs.len()).collect();
        certs.sort_by(|&a, &b| router.table.certs[a].name.cmp(&router.table.certs[b].name));
        for i in certs {
            for d in &router.table.certs[i].domains {
                let d = d.to_ascii_lowercase();
                match d.strip_prefix("*.") {
                    Some(suffix) => router.sni_wildcard.entry(suffix.to_string()),
                    None => router.sni_exact.entry(d),
                }
                .or_insert(i);
            }
        }
        router
    }
}

impl Router {
    /// Indexes a copy of `table`.
    pub fn new(table: &Table) -> Router {
        Router::from(table.clone())
    }

    /// The table this router answers from.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The route of a request: `host` its `Host` header (or the authority of an absolute
    /// or HTTP/2 request) as sent, `path` its path with any query.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&HttpRoute> {
        let candidates = match host.and_then(host_key) {
            Some(host) => match self.exact.get(&host) {
                Some(list) => list,
                None => match first_label_off(&host).and_then(|s| self.wildcard.get(s)) {
                    Some(list) => list,
                    None => &self.any,
                },
            },
            None => &self.any,
        };
        candidates
            .iter()
            .map(|&i| &self.table.http[i])
            .find(|r| prefix_matches(&r.path, path))
    }

    /// The certificate for a TLS client hello's server name: one holding the name itself,
    /// else one holding `*.` and the name's parent (one label, as TLS clients match); among
    /// several, the first by certificate name.
    pub fn cert_for(&self, sni: &str) -> Option<&Cert> {
        let name = sni.strip_suffix('.').unwrap_or(sni).to_ascii_lowercase();
        let i = match self.sni_exact.get(&name) {
            Some(i) => i,
            None => self.sni_wildcard.get(first_label_off(&name)?)?,
        };
        self.table.certs.get(*i)
    }

    /// The TCP route listening on `port`.
    pub fn tcp(&self, port: u16) -> Option<&TcpRoute> {
        self.tcp.get(&port).map(|&i| &self.table.tcp[i])
    }

    /// The key authorization to answer an ACME HTTP-01 request for `path`
    /// (`/.well-known/acme-challenge/TOKEN`), on any host and before any route or
    /// redirect to HTTPS.
    pub fn challenge(&self, path: &str) -> Option<&str> {
        let token = path.strip_prefix(ACME_CHALLENGE_PREFIX)?;
        self.table.challenges.get(token).map(String::as_str)
    }
}

/// `Host` as routes hold it: lowercase, without port or trailing dot; `None` when empty.
/// An IPv6 literal keeps its brackets (`[::1]`).
fn host_key(host: &str) -> Option<String> {
    let host = host.trim();
    let name = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.split_once(':').map_or(host, |(name, _)| name)
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

/// `shop.example.com` → `example.com`: what `*.example.com` would match it by.
fn first_label_off(name: &str) -> Option<&str> {
    match name.split_once('.') {
        Some((label, rest)) if !label.is_empty() && !rest.is_empty() => Some(rest),
        _ => None,
    }
}

/// Whether the route path `prefix` matches the request path `path` (with any query) at a
/// segment boundary.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?']),
        None => false,
    }
}

/// The backend for one request (or one retry) on `route`:
/// - `exclude`: backends already tried for this request (a refused connection is retried
///   once on another backend); never picked.
/// - `sticky`: the value of the route's sticky cookie when the request carries one and
///   the route is sticky; it names a backend by [`sticky_value`]. When that backend is
///   gone or excluded, the balance decides (and the proxy sets the cookie anew).
/// - round robin: the `rr % n`-th of the `n` backends not excluded, `rr` a counter the
///   proxy increments per request;
/// - least_conn: the fewest requests in flight (`in_flight`), ties by `rr` the same way.
///
/// `None`: no backend left (503).
pub fn pick<'r>(
    route: &'r HttpRoute,
    rr: u64,
    in_flight: &dyn Fn(&Backend) -> usize,
    sticky: Option<&str>,
    exclude: &[SocketAddr],
) -> Option<&'r Backend> {
    let candidates: Vec<&Backend> = route
        .backends
        .iter()
        .filter(|b| !exclude.contains(&b.addr))
        .collect();
    if route.sticky.is_some()
        && let Some(value) = sticky
        && let Some(b) = candidates.iter().find(|b| sticky_value(b) == value)
    {
        return Some(b);
    }
    let nth = |list: &[&'r Backend]| -> Option<&'r Backend> {
        let n = u64::try_from(list.len()).ok().filter(|&n| n > 0)?;
        list.get(usize::try_from(rr % n).ok()?).copied()
    };
    match route.balance {
        Balance::RoundRobin => nth(&candidates),
        Balance::LeastConn => {
            let load: Vec<usize> = candidates.iter().map(|b| in_flight(b)).collect();
            let least = load.iter().min()?;
            let tied: Vec<&Backend> = candidates
                .iter()
                .zip(&load)
                .filter(|(_, l)| *l == least)
                .map(|(b, _)| *b)
                .collect();
            nth(&tied)
        }
    }
}

/// The sticky cookie's value naming `backend`: 16 hex digits of the FNV-1a hash of its
/// container's name. The same on every ingress host and across restarts, and it does not
/// show clients the container's name.
pub fn sticky_value(backend: &Backend) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in backend.container.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The `Set-Cookie` value that keeps a client on `backend`, for a sticky route (`None`
/// when the route is not sticky): scoped to the route's path, `HttpOnly`, `SameSite=Lax`,
/// and `Secure` when the request came over HTTPS.
pub fn sticky_cookie(route: &HttpRoute, backend: &Backend, secure: bool) -> Option<String> {
    let name = route.sticky.as_deref()?;
    let secure = if secure { "; Secure" } else { "" };
    Some(format!(
        "{name}={}; Path={}; HttpOnly; SameSite=Lax{secure}",
        sticky_value(backend),
        route.path
    ))
}

/// The value of the cookie `name` in one `Cookie` header (`a=1; b=2`), the first if it is
/// there twice, without surrounding double quotes.
pub fn cookie<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split(';').find_map(|pair| {
        let (n, v) = pair.trim().split_once('=')?;
        (n.trim() == name).then(|| {
            let v = v.trim();
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
        })
    })
}

/// The headers the proxy adds to a request it forwards (names lowercase, as HTTP/2 and
/// `http::HeaderName::from_static` want them; each replaces any the client sent):
/// - `x-forwarded-for`: `existing_xff` (the client's own, if any) and the client's
///   address, comma-separated: the last entry is the one this ingress vouches for;
/// - `x-forwarded-proto`: `proto` (`http` or `https`);
/// - `x-forwarded-host`: the `Host` as sent, when there is one (left out when it holds
///   anything but visible ASCII);
/// - `forwarded` (RFC 7239): `for=ADDR;proto=PROTO;host=HOST`, an IPv6 address quoted in
///   brackets (`for="[2001:db8::1]"`), a host with a port quoted.
///
/// An IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`) is written as IPv4.
pub fn forwarded_headers(
    client: SocketAddr,
    proto: &str,
    host: Option<&str>,
    existing_xff: Option<&str>,
) -> Vec<(&'static str, String)> {
    let ip = client.ip().to_canonical();
    let xff = match existing_xff.map(str::trim).filter(|x| !x.is_empty()) {
        Some(existing) => format!("{existing}, {ip}"),
        None => ip.to_string(),
    };
    let host = host.filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()));
    let mut forwarded = match ip {
        IpAddr::V4(v4) => format!("for={v4}"),
        IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
    };
    forwarded += &format!(";proto={}", forwarded_value(proto));
    let mut headers = vec![
        ("x-forwarded-for", xff),
        ("x-forwarded-proto", proto.to_string()),
    ];
    if let Some(host) = host {
        forwarded += &format!(";host={}", forwarded_value(host));
        headers.push(("x-forwarded-host", host.to_string()));
    }
    headers.push(("forwarded", forwarded));
    headers
}

/// An RFC 7239 value: a token as it is, anything else a quoted string.
fn forwarded_value(value: &str) -> String {
    if !value.is_empty() && value.bytes().all(is_token_char) {
        return value.to_string();
    }
    let mut quoted = String::from("\"");
    for c in value.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// Whether a request with this method may be sent again after its connection failed
/// midway (RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE; methods are
/// case-sensitive). A refused connection may be retried whatever the method: nothing was
/// sent.
pub fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}
