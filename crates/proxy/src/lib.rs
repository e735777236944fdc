//! Drover's ingress proxy: serves an [`ingress::Table`] on an ingress host.
//!
//! - HTTP on [`Config::http`] and HTTPS on [`Config::https`] (HTTP/1.1 and HTTP/2: ALPN `h2`
//!   on TLS, prior knowledge `h2c` on plain HTTP), routed as `ingress::Router` decides (host,
//!   then longest path prefix) to the route's ready backends (HTTP/1.1, keep-alive
//!   connections pooled per backend), chosen by `ingress::pick` (round-robin, least requests
//!   in flight, sticky cookie). WebSocket (and any HTTP/1.1 `Upgrade`) is relayed both ways.
//! - The certificate is chosen by SNI; a handshake without SNI, or for a name no
//!   certificate serves, fails. Plain HTTP to a route with a certificate is redirected
//!   (308) to HTTPS. ACME HTTP-01 challenges are answered on plain HTTP for every host.
//! - TCP routes listen on [`Config::tcp_ip`]:`listen`, each connection relayed to the next
//!   backend that accepts it, optionally after a PROXY protocol v2 header.
//! - [`Proxy::update`] swaps the table at once; nothing open is closed by it.
//! - [`Workers`] runs it on threads of its own, one current-thread tokio runtime each with
//!   its own listeners (`SO_REUSEPORT`): no task, socket or backend connection moves
//!   between threads. On 2 shared cores it served 1.3-1.7x the keep-alive requests/s of
//!   one multi-thread runtime with 2 worker threads, about the same with a connection per
//!   request (`cargo run --release -p xtask -- bench-ingress --multi-thread-too`).
//!
//! Drover's own answers: 404 (no route), 503 (a route without a ready backend), 502 (the
//! backend could not be reached, or failed), each with a one-line text body.

mod body;
mod certs;
mod http;
mod pool;
mod table;
mod tcp;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::crypto::CryptoProvider;
use tokio::net::{TcpListener, TcpSocket};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::table::Compiled;

/// Where the proxy listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Plain HTTP (ACME challenges, redirects to HTTPS, routes without TLS).
    pub http: SocketAddr,
    /// HTTPS.
    pub https: SocketAddr,
    /// The address TCP routes' listeners bind to (with each route's `listen` port).
    pub tcp_ip: IpAddr,
}

impl Default for Config {
    /// `0.0.0.0:80`, `0.0.0.0:443`, TCP routes on `0.0.0.0`.
    fn default() -> Config {
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        Config {
            http: SocketAddr::new(any, ingress::DEFAULT_HTTP_PORT),
            https: SocketAddr::new(any, ingress::DEFAULT_HTTPS_PORT),
            tcp_ip: any,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A [`Workers`] thread or its runtime could not be started.
    #[error("cannot start an ingress worker: {0}")]
    Worker(std::io::Error),
    /// A certificate of the table that is not served (never carries its key).
    #[error("certificate {name} skipped: {reason}")]
    Cert { name: String, reason: String },
    /// A part of a route that is not served as asked.
    #[error("route {host}{path}: {reason}")]
    Route {
        host: String,
        path: String,
        reason: String,
    },
}

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to a backend may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an HTTP/1 client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// [`Shared::stop`]'s values.
const RUNNING: u8 = 0;
/// Accept no more; HTTP connections finish their requests and close.
const DRAINING: u8 = 1;
/// Everything still open is dropped.
const CLOSED: u8 = 2;

/// What every listener and connection task shares.
pub(crate) struct Shared {
    pub(crate) table: Arc<ArcSwap<Compiled>>,
    pub(crate) server: auto::Builder<TokioExecutor>,
    /// For redirects to HTTPS.
    pub(crate) https_port: u16,
    pub(crate) stop: watch::Sender<u8>,
    tcp_ip: IpAddr,
    /// Listeners bind with SO_REUSEPORT ([`Workers`]: one of each per worker).
    reuse_port: bool,
    runtime: Handle,
    provider: Arc<CryptoProvider>,
    /// Open TCP routes' accept loops by port. Held through a whole update, so updates
    /// apply one at a time.
    tcp_listeners: Mutex<HashMap<u16, JoinHandle<()>>>,
}

/// Waits until the proxy's stop level reaches `level`.
pub(crate) async fn stopping(stop: &mut watch::Receiver<u8>, level: u8) {
    // The sender lives in `Shared`, which every waiter holds: this never errs early.
    let _ = stop.wait_for(|s| *s >= level).await.map(|_| ());
}

/// A running proxy. Dropping it stops its listeners and drops every open connection;
/// [`Proxy::shutdown`] lets them finish first.
pub struct Proxy {
    shared: Arc<Shared>,
    http_addr: SocketAddr,
    https_addr: SocketAddr,
    accept: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// Binds the HTTP and HTTPS listeners (an error names the address) and serves an empty
    /// table (every request 404) until [`Proxy::update`]. Must run inside a tokio runtime,
    /// which the proxy's tasks then run on.
    pub async fn start(cfg: Config) -> Result<Proxy, Error> {
        Proxy::start_with(cfg, false).await
    }

    async fn start_with(cfg: Config, reuse_port: bool) -> Result<Proxy, Error> {
        let http = bind(cfg.http, reuse_port)?;
        let https = bind(cfg.https, reuse_port)?;
        let http_addr = local_addr(&http, cfg.http)?;
        let https_addr = local_addr(&https, cfg.https)?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let table = Arc::new(ArcSwap::from_pointee(Compiled::default()));
        let mut tls = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(certs::Resolver(table.clone())));
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tls.ticketer = rustls::crypto::ring::Ticketer::new()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let mut server = auto::Builder::new(TokioExecutor::new());
        server
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT);
        server.http2().timer(TokioTimer::new());

        let (stop, _) = watch::channel(RUNNING);
        let shared = Arc::new(Shared {
            table,
            server,
            https_port: https_addr.port(),
            stop,
            tcp_ip: cfg.tcp_ip,
            reuse_port,
            runtime: Handle::current(),
            provider,
            tcp_listeners: Mutex::new(HashMap::new()),
        });
        let accept = vec![
            tokio::spawn(http::accept(shared.clone(), http, None)),
            tokio::spawn(http::accept(shared.clone(), https, Some(acceptor))),
        ];
        tracing::info!(%http_addr, %https_addr, "ingress proxy listening");
        Ok(Proxy {
            shared,
            http_addr,
            https_addr,
            accept,
        })
    }

    /// The plain HTTP listener's address (its port when [`Config::http`] asked for 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The HTTPS listener's address.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// Replaces the table: new requests and connections use it at once; open connections
    /// and requests in flight are not closed (a backend that left the table finishes what
    /// it was sent). Listeners for new TCP routes are opened, those of TCP routes gone are
    /// closed (their open connections go on).
    ///
    /// Returns what of the table is not served (a certificate that does not parse, a TCP
    /// port that cannot be bound — tried again at the next update —, an invalid cookie
    /// name); each is logged too. The rest is served.
    pub fn update(&self, table: ingress::Table) -> Vec<Error> {
        let shared = &self.shared;
        let mut listeners = shared
            .tcp_listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let old = shared.table.load_full();
        let (compiled, mut problems) = Compiled::new(table, &old, &shared.provider);
        let ports = compiled.tcp_ports();
        let (routes, certs) = (compiled.routes.len(), compiled.certs.len());
        shared.table.store(Arc::new(compiled));

        listeners.retain(|port, task| {
            let keep = ports.contains(port);
            if !keep {
                tracing::info!(port, "TCP route gone: listener closed");
                task.abort();
            }
            keep
        });
        for port in ports {
            if listeners.contains_key(&port) {
                continue;
            }
            match tcp::listen(shared, port) {
                Ok(task) => {
                    tracing::info!(port, "TCP route listening");
                    listeners.insert(port, task);
                }
                Err(e) => problems.push(e),
            }
        }
        for p in &problems {
            tracing::warn!("ingress table: {p}");
        }
        tracing::debug!(
            routes,
            certs,
            tcp = listeners.len(),
            "ingress table updated"
        );
        problems
    }

    /// The ports of the TCP routes listening now.
    pub fn tcp_ports(&self) -> Vec<u16> {
        let listeners = self
            .shared
            .tcp_listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut ports: Vec<u16> = listeners.keys().copied().collect();
        ports.sort_unstable();
        ports
    }

    /// Stops accepting, lets HTTP connections finish their requests in flight (idle ones
    /// close at once) and TCP and upgraded connections run, for at most `grace`; then
    /// drops whatever is still open.
    pub async fn shutdown(self, grace: Duration) {
        shutdown(std::slice::from_ref(&self), grace).await;
    }

    fn stop_listening(&self) {
        for task in &self.accept {
            task.abort();
        }
        let mut listeners = self
            .shared
            .tcp_listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (_, task) in listeners.drain() {
            task.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop_listening();
        self.shared.stop.send_replace(CLOSED);
    }
}

/// Stops accepting on every proxy, lets them drain together for at most `grace`, then
/// drops what is still open.
async fn shutdown(proxies: &[Proxy], grace: Duration) {
    for p in proxies {
        p.stop_listening();
        p.shared.stop.send_replace(DRAINING);
    }
    let drained = async {
        for p in proxies {
            p.shared.stop.closed().await;
        }
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::info!("ingress proxy: grace period over, closing what is still open");
    }
    for p in proxies {
        p.shared.stop.send_replace(CLOSED);
    }
}

/// The proxy on `n` threads of its own, each a current-thread tokio runtime running a
/// [`Proxy`] whose listeners (HTTP, HTTPS, TCP routes) bind with SO_REUSEPORT on the same
/// addresses: the kernel spreads new connections over the workers, and a connection, its
/// requests and the backend connections they use stay on one thread (each worker has its
/// own backend pools, round-robin positions and requests-in-flight counts). The methods
/// are [`Proxy`]'s, applied to every worker. Dropping it drops every open connection and
/// stops the threads.
pub struct Workers {
    proxies: Vec<Proxy>,
    threads: Vec<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
}

impl Workers {
    /// Starts `n` (at least 1) workers. With port 0 in `cfg`, the first worker's ports are
    /// the others'. Needs no runtime of the caller's.
    pub fn start(cfg: Config, n: usize) -> Result<Workers, Error> {
        let mut workers = Workers {
            proxies: Vec::new(),
            threads: Vec::new(),
        };
        let mut cfg = cfg;
        for i in 0..n.max(1) {
            let (started_tx, started) = std::sync::mpsc::channel();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("ingress-{i}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = started_tx.send(Err(Error::Worker(e)));
                            return;
                        }
                    };
                    runtime.block_on(async move {
                        let _ = started_tx.send(Proxy::start_with(cfg, true).await);
                        // Serves until told to stop (or `Workers` is gone).
                        let _ = stopped.await;
                    });
                })
                .map_err(Error::Worker)?;
            workers.threads.push((stop, thread));
            let proxy = started.recv().map_err(|_| {
                Error::Worker(std::io::Error::other("the worker thread ended at start"))
            })??;
            cfg.http = proxy.http_addr;
            cfg.https = proxy.https_addr;
            workers.proxies.push(proxy);
        }
        Ok(workers)
    }

    /// How many workers serve.
    pub fn len(&self) -> usize {
        self.proxies.len()
    }

    /// Never: at least one worker serves.
    pub fn is_empty(&self) -> bool {
        self.proxies.is_empty()
    }

    /// [`Proxy::http_addr`].
    pub fn http_addr(&self) -> SocketAddr {
        self.proxies[0].http_addr
    }

    /// [`Proxy::https_addr`].
    pub fn https_addr(&self) -> SocketAddr {
        self.proxies[0].https_addr
    }

    /// [`Proxy::update`] on every worker; the problems are the first worker's (each finds
    /// the same, but a TCP port that cannot be bound).
    pub fn update(&self, table: ingress::Table) -> Vec<Error> {
        let mut problems = Vec::new();
        for (i, p) in self.proxies.iter().enumerate() {
            let found = p.update(table.clone());
            if i == 0 {
                problems = found;
            }
        }
        problems
    }

    /// [`Proxy::tcp_ports`] (the first worker's).
    pub fn tcp_ports(&self) -> Vec<u16> {
        self.proxies[0].tcp_ports()
    }

    /// [`Proxy::shutdown`], every worker at once; then the threads end.
    pub async fn shutdown(mut self, grace: Duration) {
        shutdown(&self.proxies, grace).await;
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        self.proxies.clear();
        for (stop, thread) in self.threads.drain(..) {
            let _ = stop.send(());
            // Its runtime drops its tasks and returns at once.
            let _ = thread.join();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

/// A listener with SO_REUSEADDR (and SO_REUSEPORT for [`Workers`]) and a backlog for
/// bursts of connections.
pub(crate) fn bind(addr: SocketAddr, reuse_port: bool) -> Result<TcpListener, Error> {
    let err = |source| Error::Bind { addr, source };
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    if reuse_port {
        socket.set_reuseport(true).map_err(err)?;
    }
    socket.bind(addr).map_err(err)?;
    socket.listen(1024).map_err(err)
}

fn local_addr(listener: &TcpListener, asked: SocketAddr) -> Result<SocketAddr, Error> {
    listener.local_addr().map_err(|source| Error::Bind {
        addr: asked,
        source,
    })
}
