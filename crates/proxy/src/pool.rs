//! Keep-alive HTTP/1.1 connections to one backend.
//!
//! The proxy's own small pool over hyper's connection API rather than hyper-util's pooled
//! client: connecting is a step of its own, before the request is handed over, so a
//! backend that refuses is known while the request is still whole (the retry on another
//! backend needs no copy of it), and a request costs no pool-key hashing and no task of
//! its own. Connections are taken most recently used first; one goes back when its
//! response body has been read to the end.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::CONNECT_TIMEOUT;
use crate::body::ProxyBody;

/// Idle connections kept per backend.
const MAX_IDLE: usize = 512;
/// How long a connection just given back may take to be ready again.
const SETTLE: Duration = Duration::from_secs(1);
/// How long an idle connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) type Sender = SendRequest<ProxyBody>;

pub(crate) struct Pool {
    addr: SocketAddr,
    idle: Mutex<VecDeque<(Sender, Instant)>>,
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),
    #[error("connect: no answer in {}s", CONNECT_TIMEOUT.as_secs())]
    Timeout,
    #[error("HTTP/1 handshake: {0}")]
    Handshake(#[from] hyper::Error),
}

impl Pool {
    pub(crate) fn new(addr: SocketAddr) -> Pool {
        Pool {
            addr,
            idle: Mutex::new(VecDeque::new()),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, VecDeque<(Sender, Instant)>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection ready for a request: the most recently used idle one (`reused`), else a
    /// new one. `fresh`: skip the idle ones.
    pub(crate) async fn get(&self, fresh: bool) -> Result<(Sender, bool), ConnectError> {
        if !fresh {
            loop {
                let Some((mut tx, _)) = self.idle().pop_back() else {
                    break;
                };
                if tx.is_ready() {
                    return Ok((tx, true));
                }
                if tx.is_closed() {
                    continue;
                }
                // Put back as its body ended, a moment before its connection said it is
                // idle (and never waited on for long).
                if let Ok(Ok(())) = tokio::time::timeout(SETTLE, tx.ready()).await {
                    return Ok((tx, true));
                }
            }
        }
        Ok((self.connect().await?, false))
    }

    async fn connect(&self) -> Result<Sender, ConnectError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.addr))
            .await
            .map_err(|_| ConnectError::Timeout)??;
        let _ = stream.set_nodelay(true);
        let (tx, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        let addr = self.addr;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(backend = %addr, "backend connection ended: {e}");
            }
        });
        Ok(tx)
    }

    /// Takes back a connection whose response was read to the end.
    pub(crate) fn put(&self, tx: Sender) {
        if tx.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle();
        while idle
            .front()
            .is_some_and(|(_, since)| now.duration_since(*since) > IDLE_TIMEOUT)
            || idle.len() >= MAX_IDLE
        {
            idle.pop_front();
        }
        idle.push_back((tx, now));
    }
}

/// A connection lent to one request, back to its pool when the response body ended.
pub(crate) struct Lent {
    pub(crate) tx: Option<Sender>,
    pub(crate) pool: Arc<Pool>,
    pub(crate) done: bool,
}

impl Drop for Lent {
    fn drop(&mut self) {
        if self.done
            && let Some(tx) = self.tx.take()
        {
            self.pool.put(tx);
        }
    }
}
