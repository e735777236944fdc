//! The host agent. It connects OUT to the server over a WebSocket, says who it is, receives
//! the desired state of its host, and drives the local engine to it with the pure
//! [`reconciler`]. It keeps what runs when the server is unreachable (it acts only on a
//! desired state the server sent in this process's life), reconnects with backoff, and
//! recovers when the engine comes back.
//!
//! Tasks: `session` (the WebSocket, heartbeats, log streams) and `worker` (observe,
//! reconcile, act, report), joined by watch channels.

mod exec;
mod files;
mod ingress;
mod mesh;
mod probes;
mod session;
mod stats;
mod worker;

pub use mesh::MeshConfig;

pub use session::{OpenError, Ws, open};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use proto::{Desired, Observed};
use sha2::Digest as _;
use tokio::sync::{Notify, watch};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("agent data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid server URL {0:?}: expected https://HOST:PORT (or http:// on loopback)")]
    ServerUrl(String),
    #[error(
        "refusing {0}: plain HTTP would send the token and credential in clear; use https:// (http:// is for loopback only)"
    )]
    PlainHttp(String),
    #[error("{0} is HTTPS: pass --ca-hash sha256:... as printed by `drover host token create`")]
    NoPin(String),
    #[error(
        "no registration token: pass --token (or --token-file) as printed by `drover host token create`"
    )]
    NoToken,
    #[error(transparent)]
    Tls(#[from] tls::Error),
    /// The agent stopped for good (host removed, token refused, server not the pinned one).
    #[error("{0}")]
    Stopped(String),
}

pub struct Config {
    /// Server base URL, e.g. `https://10.0.0.5:7480`.
    pub server: String,
    /// Registration token: needed only until the host has its credential.
    pub token: Option<String>,
    /// `sha256:HEX` of the server's CA certificate (needed for https until the first join,
    /// which keeps it in the data directory).
    pub ca_hash: Option<String>,
    /// Where the agent keeps its host id, credential and CA pin.
    pub data_dir: PathBuf,
    pub labels: BTreeMap<String, String>,
    /// The server's own in-process agent (`drover up`): when its credential is refused (its
    /// host was removed), it registers again with its token instead of stopping.
    pub reclaim: bool,
    /// Join the environment's mesh (tunnel, subnets, DNS); `None` leaves networks local.
    pub mesh: Option<MeshConfig>,
    /// Where the ingress listens when the host is labelled `drover.ingress=true`.
    pub ingress: proxy::Config,
}

/// State shared between the session and the worker.
pub(crate) struct Shared {
    pub desired: watch::Sender<Option<Desired>>,
    /// What the worker last observed; `None` until its first look at the engine.
    pub observed: watch::Sender<Option<Observed>>,
    pub cluster: watch::Sender<Option<String>>,
    pub wake: Notify,
    /// When the server was last heard from (ms since the epoch), and the singleton lease it
    /// granted: past `last_contact_ms + lease_ms` the agent is fenced.
    pub last_contact_ms: std::sync::atomic::AtomicU64,
    pub lease_ms: std::sync::atomic::AtomicU64,
    /// Server base URL, a client trusting it, and the host's credential, for fetching
    /// build contexts.
    pub server: String,
    pub http: reqwest::Client,
    pub credential: String,
    /// Set when the agent stops for good: it fences at once.
    pub revoked: std::sync::atomic::AtomicBool,
    /// The mesh, when this host runs one.
    pub mesh: Option<Arc<mesh::Mesh>>,
    /// Health of the containers the agent checks itself (`x-drover.health`), by name.
    pub probed: watch::Sender<std::collections::HashMap<String, proto::Health>>,
    /// Where containers' secrets and configs are kept (a tmpfs).
    pub files: files::Files,
    /// The route table this host's ingress serves (`None`: it runs none).
    pub ingress: watch::Sender<Option<::ingress::Table>>,
}

impl Shared {
    /// The server heard from this agent what it sent at `sent_ms` (ms since the epoch): the
    /// lease runs from then. The server counts its own failover from when it last heard the
    /// agent, which is later, so the agent is fenced before the server moves a singleton.
    pub(crate) fn contact(&self, sent_ms: u64) {
        self.last_contact_ms
            .fetch_max(sent_ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// When the lease runs out (ms since the epoch); now, once revoked.
    pub(crate) fn lease_deadline(&self) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        if self.revoked.load(Relaxed) {
            return 0;
        }
        self.last_contact_ms.load(Relaxed) + self.lease_ms.load(Relaxed)
    }
}

/// Files in the agent's data directory: the host's credential (made by the agent before
/// its first connection, mode 0600), a marker that the server accepted it, and the CA pin.
const CREDENTIAL_FILE: &str = "credential";
const REGISTERED_FILE: &str = "registered";
const PIN_FILE: &str = "ca-hash";

/// Runs the agent until it is stopped for good (its host removed, its token refused, the
/// server not the pinned one): then it fences its singletons and returns why.
pub async fn run(cfg: Config) -> Result<(), Error> {
    let ws_url = ws_url(&cfg.server)?;
    let host_id = host_id(&cfg.data_dir)?;
    // TLS follows the scheme; the pin is needed (and kept) for https only.
    let tls = if ws_url.starts_with("wss://") {
        let saved_pin = read_file(&cfg.data_dir.join(PIN_FILE))?;
        let Some(pin) = cfg.ca_hash.clone().or(saved_pin.clone()) else {
            return Err(Error::NoPin(cfg.server.clone()));
        };
        let config = tls::pinned_client_config(&pin)?;
        if saved_pin.as_ref() != Some(&pin) {
            tls::write_private(&cfg.data_dir.join(PIN_FILE), pin.as_bytes())?;
        }
        Some(config)
    } else {
        None
    };
    // Without a token, only a credential made earlier can get the agent in (registered,
    // or registered with its answer lost).
    let registered = cfg.data_dir.join(REGISTERED_FILE).exists();
    if !registered && cfg.token.is_none() && !cfg.data_dir.join(CREDENTIAL_FILE).exists() {
        return Err(Error::NoToken);
    }
    let credential = credential(&cfg.data_dir)?;
    tls::install_default_provider();
    // Over plain HTTP (loopback) a configuration that trusts nothing: it is never used, and
    // the system's roots need not be loaded.
    let client_tls = match &tls {
        Some(t) => t.clone(),
        None => tls::trusting_client_config("")?,
    };
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured((*client_tls).clone())
        .build()
        .map_err(|e| Error::Stopped(format!("HTTP client: {e}")))?;
    let mesh = match &cfg.mesh {
        None => None,
        Some(m) => match mesh::Mesh::start(m, &cfg.data_dir, &cfg.server).await {
            Ok(m) => Some(Arc::new(m)),
            Err(e) => {
                tracing::warn!(
                    "mesh not started: {e}; this host's networks stay local (needs root and /dev/net/tun)"
                );
                None
            }
        },
    };
    if let Some(m) = &mesh {
        tracing::info!(endpoint = %m.hello.endpoint, "mesh tunnel up");
        tokio::spawn(m.clone().run());
    }
    let shared = Arc::new(Shared {
        desired: watch::channel(None).0,
        observed: watch::channel(None).0,
        cluster: watch::channel(None).0,
        wake: Notify::new(),
        last_contact_ms: std::sync::atomic::AtomicU64::new(0),
        lease_ms: std::sync::atomic::AtomicU64::new(proto::LEASE_MS),
        server: cfg.server.trim_end_matches('/').to_string(),
        http,
        credential: credential.clone(),
        revoked: std::sync::atomic::AtomicBool::new(false),
        mesh: mesh.clone(),
        probed: watch::channel(Default::default()).0,
        files: files::Files::new(&host_id),
        ingress: watch::channel(None).0,
    });
    let hello = proto::Hello {
        protocol: proto::PROTOCOL_VERSION,
        host_id,
        hostname: hostname(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        labels: cfg.labels.clone(),
        credential_hash: Some(hex::encode(sha2::Sha256::digest(credential.as_bytes()))),
        mesh: mesh.as_ref().map(|m| m.hello.clone()),
    };
    tokio::spawn(worker::run(shared.clone()));
    tokio::spawn(probes::run(shared.clone(), client_tls.clone()));
    tokio::spawn(ingress::run(shared.clone(), cfg.ingress));
    let link = session::Link {
        url: ws_url,
        tls,
        data_dir: cfg.data_dir.clone(),
        credential,
        registered,
        token: cfg.token.clone(),
        reclaim: cfg.reclaim,
        token_turn: false,
    };
    let why = session::run(shared.clone(), link, hello).await;
    tracing::error!("{why}");
    fence_now(&shared).await;
    Err(Error::Stopped(why))
}

/// The host's credential, made on first use: `drh_` and 64 hex digits of OS randomness.
fn credential(data_dir: &std::path::Path) -> Result<String, Error> {
    let path = data_dir.join(CREDENTIAL_FILE);
    if let Some(c) = read_file(&path)? {
        return Ok(c);
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::DataDir {
        path: path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let c = format!("drh_{}", hex::encode(bytes));
    tls::write_private(&path, c.as_bytes())?;
    Ok(c)
}

/// Stops every singleton container now (the server may start it elsewhere) and waits,
/// at most 15 s, until the worker has seen them gone.
async fn fence_now(shared: &Shared) {
    shared
        .revoked
        .store(true, std::sync::atomic::Ordering::Relaxed);
    shared.wake.notify_one();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut observed = shared.observed.subscribe();
    loop {
        let singletons_running = {
            let desired = shared.desired.borrow();
            let obs = observed.borrow_and_update();
            match (&*desired, &*obs) {
                (Some(d), Some(o)) => d.containers.iter().any(|c| {
                    proto::is_singleton(&c.spec)
                        && o.containers.iter().any(|oc| {
                            oc.name == c.name && oc.state == proto::ContainerState::Running
                        })
                }),
                _ => false,
            }
        };
        if !singletons_running {
            return;
        }
        shared.wake.notify_one();
        if tokio::time::timeout_at(deadline, observed.changed())
            .await
            .is_err()
        {
            tracing::warn!("singletons still running after 15 s of fencing");
            return;
        }
    }
}

/// A small file's trimmed contents, `None` when missing or empty.
fn read_file(path: &std::path::Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::DataDir {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn ws_url(server: &str) -> Result<String, Error> {
    let base = server.trim_end_matches('/');
    let (scheme, rest) = if let Some(rest) = base.strip_prefix("https://") {
        ("wss", rest)
    } else if let Some(rest) = base.strip_prefix("http://") {
        ("ws", rest)
    } else {
        return Err(Error::ServerUrl(server.to_string()));
    };
    if rest.is_empty() || rest.contains('/') {
        return Err(Error::ServerUrl(server.to_string()));
    }
    if scheme == "ws" && !tls::names::is_loopback(rest) {
        return Err(Error::PlainHttp(server.to_string()));
    }
    Ok(format!("{scheme}://{rest}/v1/agent/connect"))
}

/// The host's stable id, kept in `data_dir/host-id` (created on first run).
fn host_id(data_dir: &std::path::Path) -> Result<String, Error> {
    let err = |source| Error::DataDir {
        path: data_dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(err)?;
    let path = data_dir.join("host-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| err(std::io::Error::other(e.to_string())))?;
    let id = hex::encode(bytes);
    tls::write_private(&path, id.as_bytes())
        .map_err(|e| err(std::io::Error::other(e.to_string())))?;
    Ok(id)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_become_websocket_urls() {
        assert_eq!(
            ws_url("http://127.0.0.1:7480/").ok().as_deref(),
            Some("ws://127.0.0.1:7480/v1/agent/connect")
        );
        assert_eq!(
            ws_url("https://10.0.0.5:7480").ok().as_deref(),
            Some("wss://10.0.0.5:7480/v1/agent/connect")
        );
        assert!(ws_url("127.0.0.1:7480").is_err());
        assert!(matches!(
            ws_url("http://10.0.0.5:7480"),
            Err(Error::PlainHttp(_))
        ));
        assert!(ws_url("http://localhost:7480").is_ok());
        assert!(ws_url("http://[::1]:7480").is_ok());
        assert!(ws_url("http://").is_err());
    }

    #[test]
    fn host_id_is_stable() {
        let dir = std::env::temp_dir().join(format!("drover-agent-test-{}", std::process::id()));
        let a = host_id(&dir).expect("id");
        let b = host_id(&dir).expect("id again");
        assert_eq!(a, b);
        assert_eq!(a.len(), 32);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
