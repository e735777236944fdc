//! The control plane: REST API under `/v1` (axum), agent sessions over WebSocket, placement
//! of containers onto hosts, and the desired state each agent receives.
//!
//! `router(state)` builds the whole HTTP app without a socket; [`start`] binds it.
//! Module map: `state` (shared state, desired-state computation, pushes to agents),
//! `auth` (bearer tokens, stored as SHA-256 only), `error` (the one `ApiError`),
//! `agents` (the WebSocket session of each agent), `scheduling` (placement and failover
//! around the pure `scheduler` crate),
//! `api/*` (one file per resource), `openapi` (the document at `/v1/openapi.json`).

mod accounts;
pub mod acme;
mod agents;
mod api;
mod auth;
mod catalogs;
mod directory;
mod error;
mod exec;
mod files;
mod ingress;
mod logs;
mod mesh;
mod model;
mod openapi;
mod registries;
mod rolls;
pub mod scheduling;
mod state;
mod stats;
mod ui;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use auth::{hash_token, new_token};
pub use state::{AppState, JoinInfo};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] tls::Error),
    #[error("refusing to serve plain HTTP on {0}: only loopback addresses may go without TLS")]
    PlainHttp(SocketAddr),
    #[error("stored secrets: {0}")]
    Secrets(String),
}

/// How the server speaks on its listener.
#[derive(Debug, Clone, PartialEq)]
pub enum Tls {
    /// Plain HTTP: loopback listeners only.
    Off,
    /// HTTPS with the server's own CA, made on first start in `<data-dir>/tls`, and a
    /// server certificate issued from it at every start.
    Auto,
    /// HTTPS with the operator's certificate chain and key (PEM files).
    Files { cert: PathBuf, key: PathBuf },
}

pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub timing: scheduling::Timing,
    pub tls: Tls,
    /// Addresses agents and clients reach the server at (host or host:port), besides the
    /// listen address: they go into the server certificate, and the first one into the
    /// `drover agent` command `host token create` prints.
    pub advertise: Vec<String>,
    /// The key sealing secrets at rest [default: `<data_dir>/secrets.key`].
    pub secrets_key: Option<PathBuf>,
    /// Audit events older than this are pruned.
    pub audit_retention_ms: u64,
    /// At most this many audit events are kept.
    pub audit_max_rows: u64,
    /// `/metrics` without a token.
    pub metrics_public: bool,
    /// Where `tls: auto` certificates come from.
    pub acme: acme::Config,
}

/// The first admin (user `admin`), made on the very first start.
pub struct NewAdmin {
    /// Its first API key.
    pub token: String,
    pub password: String,
}

pub struct Started {
    pub addr: SocketAddr,
    /// `https` or `http`.
    pub scheme: &'static str,
    /// The CA certificate (PEM) clients should trust, when serving TLS.
    pub ca_pem: Option<String>,
    /// The first admin's API key and password, only on the very first start (both are
    /// stored as hashes only).
    pub new_admin: Option<NewAdmin>,
    pub state: Arc<AppState>,
}

/// Sets up TLS, binds the listener, opens the store, creates the admin token on first
/// start (only once nothing else can fail, so it is always shown), and serves in the
/// background.
pub async fn start(cfg: Config) -> Result<Started, Error> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| Error::DataDir {
        path: cfg.data_dir.clone(),
        source,
    })?;
    if cfg.tls == Tls::Off && !cfg.listen.ip().is_loopback() {
        return Err(Error::PlainHttp(cfg.listen));
    }
    let identity = match &cfg.tls {
        Tls::Off => None,
        Tls::Auto => Some(tls::self_managed(
            &cfg.data_dir.join("tls"),
            &certificate_names(&cfg),
        )?),
        Tls::Files { cert, key } => Some(tls::from_files(cert, key)?),
    };
    let tls_config = identity.as_ref().map(tls::server_config).transpose()?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Listen {
        addr: cfg.listen,
        source,
    })?;
    let db = cfg.data_dir.join("drover.db");
    let mut store = store::Store::open(&db)?;
    let cluster_id = store.meta_init("cluster_id", &new_token()[4..20])?;
    let mut new_admin = None;
    if store.count_users()? == 0 {
        // The first admin: a user `admin` with a password, and its first API key (the
        // token the CLI config gets), both shown once.
        let token = new_token();
        let password = new_token()[4..28].to_string();
        let phc = accounts::hash_password(&password).map_err(Error::Secrets)?;
        let now = state::now_ms();
        let hash = hash_token(&token);
        store.create_user(
            &store::UserRow {
                name: "admin".into(),
                password_hash: Some(phc),
                admin: true,
                source: "local".into(),
                created_ms: now,
            },
            Some(&store::NewUserToken {
                hash: &hash,
                name: "key_admin",
                kind: "apikey",
                user: "admin",
                env: access::ANY_ENV,
                expires_ms: None,
            }),
            &store::NewEvent {
                env: "",
                actor: "system",
                kind: "user.created",
                subject: "admin",
                detail: "admin",
                source: "",
                result: "ok",
            },
            now,
        )?;
        new_admin = Some(NewAdmin { token, password });
    }
    let state = Arc::new(AppState::open(
        store,
        cluster_id,
        &cfg.data_dir,
        cfg.secrets_key.as_deref(),
        cfg.timing,
    )?);
    state
        .monitor
        .public
        .store(cfg.metrics_public, std::sync::atomic::Ordering::Relaxed);
    tokio::spawn(scheduling::run_loop(state.clone(), cfg.timing));
    tokio::spawn(mesh::run(state.clone()));
    tokio::spawn(directory::refresh(state.clone()));
    tokio::spawn(catalogs::refresh(state.clone()));
    tokio::spawn(stats::watch_reconcile(state.clone()));
    tokio::spawn(acme::run(state.clone(), cfg.acme.clone()));
    tokio::spawn(accounts::sweep(
        state.clone(),
        cfg.audit_retention_ms,
        cfg.audit_max_rows,
    ));
    let scheme = if identity.is_some() { "https" } else { "http" };
    state.set_join_info(JoinInfo {
        url: cfg
            .advertise
            .first()
            .map(|a| tls::names::advertised_url(scheme, a, addr.port())),
        ca_hash: identity.as_ref().map(tls::Identity::ca_hash),
    });
    let ca_pem = identity.as_ref().map(tls::Identity::ca_pem);
    let app = router(state.clone());
    match tls_config {
        None => {
            tokio::spawn(async move {
                let app = app.into_make_service_with_connect_info::<SocketAddr>();
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!("http server stopped: {e}");
                }
            });
        }
        Some(config) => {
            tokio::spawn(serve_tls(listener, app, config));
        }
    }
    Ok(Started {
        addr,
        scheme,
        ca_pem,
        new_admin,
        state,
    })
}

pub fn router(state: Arc<AppState>) -> axum::Router {
    api::routes(state)
}

/// For benchmarks only (`xtask bench-monitor`): a monitor holding an hour of samples
/// (360 at 10 s) of `containers` containers spread over `hosts` hosts, as agents send them.
pub fn monitor_hour_for_bench(containers: usize, hosts: usize) -> Box<dyn std::any::Any> {
    let m = stats::Monitor::default();
    let per_host = containers.div_ceil(hosts.max(1));
    for round in 0..stats::HISTORY as u64 {
        for h in 0..hosts {
            let list = (0..per_host)
                .map(|i| proto::ContainerStats {
                    name: format!("stack{}-svc{}-{}", h, i % 50, i),
                    env: "default".into(),
                    stack: format!("stack{h}"),
                    service: format!("svc{}", i % 50),
                    cpu_percent: (i % 100) as f64,
                    mem_bytes: 1 << 20,
                    mem_limit: 1 << 30,
                    net_rx: round * 1000,
                    net_tx: round * 2000,
                    blk_read: round,
                    blk_write: round,
                })
                .collect();
            m.record(
                &format!("host{h}"),
                proto::Stats {
                    at_ms: 1_000_000 + round * 10_000,
                    host: proto::HostStats::default(),
                    containers: list,
                },
            );
        }
    }
    Box::new(m)
}

/// For benchmarks only (`xtask bench-auth`): the router without its authorisation edge,
/// every request acting as the caller of the API key `token` (authenticated once, here).
/// Never served.
pub fn router_without_edge_for_bench(
    state: Arc<AppState>,
    token: &str,
) -> Result<axum::Router, String> {
    let caller = auth::authenticate(&state, Some(token)).map_err(|e| e.message)?;
    let identity = auth::identity(&state, &caller).map_err(|e| e.message)?;
    Ok(api::routes_without_edge(
        state,
        auth::Authorized { caller, identity },
    ))
}

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a connection may wait for a request's headers, idle keep-alive included (hyper
/// times both alike): long enough that clients drop idle connections first (Drover's own
/// after 30 s), short enough that silent connections cannot hold slots for long.
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Connections in their handshake or serving HTTP requests at once; more wait to be
/// accepted. (An upgraded WebSocket, an agent session, no longer counts.)
const MAX_CONNECTIONS: usize = 16_384;

/// Serves `app` over TLS: every connection's handshake and requests run in a task of its
/// own, so a slow or silent client holds up nobody else.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    config: Arc<rustls::ServerConfig>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tcp.set_nodelay(true);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => return,
            };
            let app = app.layer(axum::Extension(axum::extract::ConnectInfo(peer)));
            let service = hyper_util::service::TowerToHyperService::new(app);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(IDLE_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "connection: {e}");
            }
        });
    }
}

/// DNS names and addresses the server certificate is issued for.
fn certificate_names(cfg: &Config) -> Vec<String> {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    tls::names::certificate_names(
        cfg.listen.ip(),
        &cfg.advertise,
        hostname.as_deref().map(str::trim),
    )
}
