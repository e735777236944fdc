//! The control plane: REST API under `/v1` (axum), agent sessions over WebSocket, placement
//! of containers onto hosts, and the desired state each agent receives.
//!
//! `router(state)` builds the whole HTTP app without a socket; [`start`] binds it.
//! Module map: `state` (shared state, desired-state computation, pushes to agents),
//! `auth` (bearer tokens, stored as SHA-256 only), `error` (the one `ApiError`),
//! `agents` (the WebSocket session of each agent), `scheduling` (placement and failover
//! around the pure `scheduler` crate),
//! `api/*` (one file per resource), `openapi` (the document at `/v1/openapi.json`).

mod agents;
mod api;
mod auth;
mod error;
mod model;
mod openapi;
pub mod scheduling;
mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use auth::{hash_token, new_token};
pub use state::AppState;

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
}

pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub timing: scheduling::Timing,
}

pub struct Started {
    pub addr: SocketAddr,
    /// The admin token, only on the very first start (it is stored as a hash only).
    pub new_admin_token: Option<String>,
    pub state: Arc<AppState>,
}

/// Opens the store, creates the admin token on first start, binds the listener and serves
/// in the background.
pub async fn start(cfg: Config) -> Result<Started, Error> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| Error::DataDir {
        path: cfg.data_dir.clone(),
        source,
    })?;
    let db = cfg.data_dir.join("drover.db");
    let mut store = store::Store::open(&db)?;
    let cluster_id = store.meta_init("cluster_id", &new_token()[4..20])?;
    let mut new_admin_token = None;
    if store.count_tokens("admin")? == 0 {
        let token = new_token();
        store.add_token(
            &hash_token(&token),
            "admin",
            "admin",
            "default",
            state::now_ms(),
        )?;
        new_admin_token = Some(token);
    }
    let state = Arc::new(AppState::new(
        store,
        cluster_id,
        cfg.data_dir.join("blobs"),
        cfg.timing,
    )?);
    tokio::spawn(scheduling::run_loop(state.clone(), cfg.timing));
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
    let app = router(state.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("http server stopped: {e}");
        }
    });
    Ok(Started {
        addr,
        new_admin_token,
        state,
    })
}

pub fn router(state: Arc<AppState>) -> axum::Router {
    api::routes(state)
}
