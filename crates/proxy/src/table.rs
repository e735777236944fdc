//! A table made ready to serve: `ingress::Router` built on it, certificates parsed (those
//! that do not parse left out before the router sees them), each backend's pool, in-flight
//! count and sticky cookie prepared, and the counters (round-robin positions, requests in
//! flight, pools) carried over from the table it replaces.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use http::HeaderValue;
use ingress::{Router, Table};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;

use crate::Error;
use crate::pool::Pool;

#[derive(Default)]
pub(crate) struct Compiled {
    pub(crate) router: Router,
    /// By the index of the router's `table().http`.
    pub(crate) routes: Vec<Route>,
    /// By the index of the router's `table().certs` (which holds only those that parsed).
    pub(crate) certs: Vec<Arc<CertifiedKey>>,
    /// Round-robin positions of TCP routes, by port.
    pub(crate) tcp_rr: HashMap<u16, Arc<AtomicUsize>>,
}

pub(crate) struct Route {
    pub(crate) rr: Arc<AtomicUsize>,
    /// By the index of the route's `backends`.
    pub(crate) backends: Vec<BackendState>,
}

pub(crate) struct BackendState {
    /// Keep-alive connections to it, and its requests in flight (least_conn): shared by
    /// every route and every later table with this backend's address.
    pub(crate) pool: Arc<Pool>,
    pub(crate) in_flight: Arc<AtomicUsize>,
    /// A sticky route's cookie naming this backend.
    pub(crate) sticky: Option<Sticky>,
}

pub(crate) struct Sticky {
    /// `ingress::sticky_value`: what the request's cookie holds when it names this backend.
    pub(crate) value: String,
    /// `Set-Cookie` over plain HTTP and over HTTPS.
    pub(crate) plain: HeaderValue,
    pub(crate) secure: HeaderValue,
}

/// The index of `item` in `slice`, by address: the router answers with references into
/// its table, and the proxy keeps its state in vectors of the same order.
pub(crate) fn index_of<T>(slice: &[T], item: &T) -> Option<usize> {
    let size = std::mem::size_of::<T>().max(1);
    let start = slice.as_ptr() as usize;
    let at = std::ptr::from_ref(item) as usize;
    let i = at.checked_sub(start)? / size;
    (i < slice.len() && at == start + i * size).then_some(i)
}

impl Compiled {
    pub(crate) fn new(
        mut table: Table,
        old: &Compiled,
        provider: &CryptoProvider,
    ) -> (Compiled, Vec<Error>) {
        let mut problems = Vec::new();
        let mut certs = Vec::with_capacity(table.certs.len());
        table
            .certs
            .retain(|cert| match crate::certs::parse(cert, provider) {
                Ok(key) => {
                    certs.push(Arc::new(key));
                    true
                }
                Err(reason) => {
                    problems.push(Error::Cert {
                        name: cert.name.clone(),
                        reason,
                    });
                    false
                }
            });
        let mut seen = std::collections::HashSet::new();
        for t in &table.tcp {
            if !seen.insert(t.listen) {
                problems.push(Error::Route {
                    host: String::new(),
                    path: format!("tcp {}", t.listen),
                    reason: "a second TCP route on this port is ignored".into(),
                });
            }
        }

        let mut shared: HashMap<SocketAddr, (Arc<Pool>, Arc<AtomicUsize>)> = HashMap::new();
        let mut rr: HashMap<(Option<&str>, &str), Arc<AtomicUsize>> = HashMap::new();
        for (r, s) in old.router.table().http.iter().zip(&old.routes) {
            rr.insert((r.host.as_deref(), &r.path), s.rr.clone());
            for (b, s) in r.backends.iter().zip(&s.backends) {
                shared.insert(b.addr, (s.pool.clone(), s.in_flight.clone()));
            }
        }

        let router = Router::from(table);
        let mut routes = Vec::with_capacity(router.table().http.len());
        for route in &router.table().http {
            let backends = route
                .backends
                .iter()
                .map(|b| {
                    let (pool, in_flight) = shared
                        .entry(b.addr)
                        .or_insert_with(|| (Arc::new(Pool::new(b.addr)), Arc::default()))
                        .clone();
                    let sticky = route.sticky.as_ref().and_then(|_| {
                        let cookie = |secure| {
                            ingress::router::sticky_cookie(route, b, secure)
                                .and_then(|c| HeaderValue::from_str(&c).ok())
                        };
                        let sticky = Sticky {
                            value: ingress::router::sticky_value(b),
                            plain: cookie(false)?,
                            secure: cookie(true)?,
                        };
                        Some(sticky)
                    });
                    BackendState {
                        pool,
                        in_flight,
                        sticky,
                    }
                })
                .collect::<Vec<BackendState>>();
            if route.sticky.is_some() && backends.iter().any(|b| b.sticky.is_none()) {
                problems.push(Error::Route {
                    host: route.host.clone().unwrap_or_default(),
                    path: route.path.clone(),
                    reason: "its sticky cookie does not make a valid header".into(),
                });
            }
            let rr = rr
                .get(&(route.host.as_deref(), route.path.as_str()))
                .cloned()
                .unwrap_or_default();
            routes.push(Route { rr, backends });
        }
        let tcp_rr = router
            .table()
            .tcp
            .iter()
            .map(|t| {
                let rr = old.tcp_rr.get(&t.listen).cloned().unwrap_or_default();
                (t.listen, rr)
            })
            .collect();
        let compiled = Compiled {
            router,
            routes,
            certs,
            tcp_rr,
        };
        (compiled, problems)
    }

    /// The ports TCP routes listen on.
    pub(crate) fn tcp_ports(&self) -> Vec<u16> {
        self.tcp_rr.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::index_of;

    #[test]
    fn index_by_address() {
        let v = vec![String::from("a"), String::from("b"), String::from("c")];
        assert_eq!(index_of(&v, &v[2]), Some(2));
        assert_eq!(index_of(&v, &v[0]), Some(0));
        let other = String::from("b");
        assert_eq!(index_of(&v, &other), None);
        assert_eq!(index_of(&v[..1], &v[1]), None);
    }
}
