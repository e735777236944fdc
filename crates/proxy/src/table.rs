//! A table made ready to serve: the router built, certificates parsed, each backend's URI
//! authority and sticky cookie prepared, and the counters (round-robin positions, requests
//! in flight per backend) carried over from the table it replaces.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use http::HeaderValue;
use http::uri::Authority;
use ingress::{Backend, HttpRoute, Table, TcpRoute};
use rustls::crypto::CryptoProvider;

use crate::Error;
use crate::certs::Certs;
use crate::routing::Router;

#[derive(Default)]
pub(crate) struct Compiled {
    pub(crate) router: Router,
    /// By the index [`Router::route`] answers.
    pub(crate) routes: Vec<Route>,
    pub(crate) certs: Certs,
    pub(crate) challenges: BTreeMap<String, String>,
    pub(crate) tcp: HashMap<u16, Tcp>,
}

pub(crate) struct Route {
    pub(crate) route: HttpRoute,
    pub(crate) rr: Arc<AtomicUsize>,
    /// By the index of `route.backends`.
    pub(crate) backends: Vec<BackendState>,
}

pub(crate) struct BackendState {
    /// `ip:port`, the authority of the URI the pooled client is given (its pool key).
    pub(crate) authority: Authority,
    /// Shared by every route and every later table with this backend's address.
    pub(crate) in_flight: Arc<AtomicUsize>,
    /// `Set-Cookie` for a sticky route, over plain HTTP and over HTTPS (`Secure`).
    pub(crate) cookie: Option<(HeaderValue, HeaderValue)>,
}

pub(crate) struct Tcp {
    pub(crate) route: TcpRoute,
    pub(crate) rr: Arc<AtomicUsize>,
}

impl Compiled {
    pub(crate) fn new(
        table: Table,
        old: &Compiled,
        provider: &CryptoProvider,
    ) -> (Compiled, Vec<Error>) {
        let (certs, mut problems) = Certs::new(&table.certs, provider);

        let mut in_flight: HashMap<SocketAddr, Arc<AtomicUsize>> = HashMap::new();
        let mut rr: HashMap<(Option<&str>, &str), Arc<AtomicUsize>> = HashMap::new();
        for r in &old.routes {
            rr.insert((r.route.host.as_deref(), &r.route.path), r.rr.clone());
            for (b, s) in r.route.backends.iter().zip(&r.backends) {
                in_flight.insert(b.addr, s.in_flight.clone());
            }
        }

        let router = Router::new(&table.http);
        let mut routes = Vec::with_capacity(table.http.len());
        for mut route in table.http {
            if let Some(name) = &route.sticky
                && !valid_cookie_name(name)
            {
                problems.push(Error::Route {
                    host: route.host.clone().unwrap_or_default(),
                    path: route.path.clone(),
                    reason: format!("{name:?} is not a cookie name: the route is not sticky"),
                });
                route.sticky = None;
            }
            let backends = route
                .backends
                .iter()
                .map(|b| BackendState {
                    authority: authority(b.addr),
                    in_flight: in_flight.entry(b.addr).or_default().clone(),
                    cookie: route.sticky.as_deref().and_then(|name| cookie(name, b)),
                })
                .collect();
            let rr = rr
                .get(&(route.host.as_deref(), route.path.as_str()))
                .cloned()
                .unwrap_or_default();
            routes.push(Route {
                route,
                rr,
                backends,
            });
        }

        let mut tcp = HashMap::with_capacity(table.tcp.len());
        for route in table.tcp {
            let rr = old
                .tcp
                .get(&route.listen)
                .map(|t| t.rr.clone())
                .unwrap_or_default();
            if tcp.contains_key(&route.listen) {
                problems.push(Error::Route {
                    host: String::new(),
                    path: format!("tcp {}", route.listen),
                    reason: "a second TCP route on this port is ignored".into(),
                });
                continue;
            }
            tcp.insert(route.listen, Tcp { route, rr });
        }

        let compiled = Compiled {
            router,
            routes,
            certs,
            challenges: table.challenges,
            tcp,
        };
        (compiled, problems)
    }
}

fn authority(addr: SocketAddr) -> Authority {
    // A socket address always makes an authority; the fallback is never used.
    Authority::try_from(addr.to_string()).unwrap_or_else(|_| Authority::from_static("0.0.0.0:0"))
}

/// RFC 6265 cookie-name: a token.
fn valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// RFC 6265 cookie-octet.
fn valid_cookie_value(v: &str) -> bool {
    v.bytes()
        .all(|b| matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E))
}

fn cookie(name: &str, backend: &Backend) -> Option<(HeaderValue, HeaderValue)> {
    if !valid_cookie_value(&backend.container) {
        tracing::warn!(
            container = backend.container,
            "container name cannot be a cookie value: no stickiness to it"
        );
        return None;
    }
    let plain = format!(
        "{name}={}; Path=/; HttpOnly; SameSite=Lax",
        backend.container
    );
    let secure = format!("{plain}; Secure");
    Some((
        HeaderValue::from_str(&plain).ok()?,
        HeaderValue::from_str(&secure).ok()?,
    ))
}
