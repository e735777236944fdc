//! The host agent. It connects OUT to the server over a WebSocket, says who it is, receives
//! the desired state of its host, and drives the local engine to it with the pure
//! [`reconciler`]. It keeps what runs when the server is unreachable (it acts only on a
//! desired state the server sent in this process's life), reconnects with backoff, and
//! recovers when the engine comes back.
//!
//! Tasks: `session` (the WebSocket, heartbeats, log streams) and `worker` (observe,
//! reconcile, act, report), joined by watch channels.

mod session;
mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use proto::{Desired, Observed};
use tokio::sync::{Notify, watch};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("agent data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid server URL {0:?}: expected http://HOST:PORT")]
    ServerUrl(String),
}

pub struct Config {
    /// Server base URL, e.g. `http://127.0.0.1:7480`.
    pub server: String,
    pub token: String,
    /// Where the agent keeps its host id.
    pub data_dir: PathBuf,
    pub labels: BTreeMap<String, String>,
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
    /// Server base URL and token, for fetching build contexts.
    pub server: String,
    pub token: String,
}

impl Shared {
    pub(crate) fn contact(&self) {
        self.last_contact_ms
            .store(worker::now_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    /// When the lease runs out (ms since the epoch).
    pub(crate) fn lease_deadline(&self) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        self.last_contact_ms.load(Relaxed) + self.lease_ms.load(Relaxed)
    }
}

/// Runs the agent until the process ends.
pub async fn run(cfg: Config) -> Result<(), Error> {
    let ws_url = ws_url(&cfg.server)?;
    let host_id = host_id(&cfg.data_dir)?;
    let shared = Arc::new(Shared {
        desired: watch::channel(None).0,
        observed: watch::channel(None).0,
        cluster: watch::channel(None).0,
        wake: Notify::new(),
        last_contact_ms: std::sync::atomic::AtomicU64::new(0),
        lease_ms: std::sync::atomic::AtomicU64::new(proto::LEASE_MS),
        server: cfg.server.trim_end_matches('/').to_string(),
        token: cfg.token.clone(),
    });
    let hello = proto::Hello {
        protocol: proto::PROTOCOL_VERSION,
        host_id,
        hostname: hostname(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        labels: cfg.labels.clone(),
    };
    tokio::spawn(worker::run(shared.clone()));
    session::run(shared, ws_url, cfg.token, hello).await;
    Ok(())
}

fn ws_url(server: &str) -> Result<String, Error> {
    let base = server.trim_end_matches('/');
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| Error::ServerUrl(server.to_string()))?;
    if rest.is_empty() || rest.contains('/') {
        return Err(Error::ServerUrl(server.to_string()));
    }
    Ok(format!("ws://{rest}/v1/agent/connect"))
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
    std::fs::write(&path, &id).map_err(err)?;
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
        assert!(ws_url("127.0.0.1:7480").is_err());
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
