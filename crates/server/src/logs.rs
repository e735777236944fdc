//! Log streams relayed from agents to API clients.
//!
//! Each stream has an unguessable id and belongs to the host it was opened on: an agent
//! can feed or end only its own host's streams. Delivery never waits: a reader that does
//! not keep up fills its bounded buffer, and the stream is then dropped with a message
//! (the agent is told to stop), so a stalled `logs -f` can never hold up an agent session.
//!
//! The same streams, of other chunks, carry exec sessions (`exec.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

/// Chunks buffered per stream before a slow reader is dropped...
pub const BUFFER: usize = 256;
/// ...or bytes, whichever comes first.
pub const BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Why a stream ended early, shown to its reader as its last line.
pub type EndReason = Arc<Mutex<Option<String>>>;

/// What a stream carries: its size counts against [`BUFFER_BYTES`].
pub trait Chunk: Send + 'static {
    fn size(&self) -> usize;
}

impl Chunk for String {
    fn size(&self) -> usize {
        self.len()
    }
}

struct Stream<T> {
    host: String,
    /// The agent session the request went to: only its end ends the stream.
    session: u64,
    /// One place more than [`BUFFER`]: kept for the last chunk ([`Streams::finish`]).
    tx: mpsc::Sender<T>,
    reason: EndReason,
    /// Bytes delivered and not yet read.
    queued: Arc<AtomicUsize>,
}

pub struct Streams<T = String> {
    inner: Mutex<HashMap<u64, Stream<T>>>,
}

impl<T> Default for Streams<T> {
    fn default() -> Self {
        Streams {
            inner: Mutex::default(),
        }
    }
}

/// What became of a chunk an agent sent.
#[derive(Debug, PartialEq)]
pub enum Delivery {
    Delivered,
    /// No such stream for this host (ended, or not this host's): ignored.
    Unknown,
    /// The reader is too slow: the stream was ended; the agent should stop sending.
    Dropped,
}

/// The reading end of a stream.
pub struct Reader<T = String> {
    pub req: u64,
    rx: mpsc::Receiver<T>,
    pub reason: EndReason,
    queued: Arc<AtomicUsize>,
}

impl<T: Chunk> Reader<T> {
    /// The next chunk; `None` once the stream ended (see `reason` for why, if not
    /// normally).
    pub async fn recv(&mut self) -> Option<T> {
        let chunk = self.rx.recv().await?;
        self.queued.fetch_sub(chunk.size(), Ordering::Relaxed);
        Some(chunk)
    }

    /// Why the stream ended early, if it did (taken: asked once).
    pub fn take_reason(&self) -> Option<String> {
        self.reason.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    #[cfg(test)]
    pub(crate) fn try_recv(&mut self) -> Result<T, mpsc::error::TryRecvError> {
        let chunk = self.rx.try_recv()?;
        self.queued.fetch_sub(chunk.size(), Ordering::Relaxed);
        Ok(chunk)
    }
}

impl<T: Chunk> Streams<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Stream<T>>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a stream for a container on `host`, whose request goes to agent session
    /// `session`.
    pub fn open(&self, host: &str, session: u64) -> Reader<T> {
        let (tx, rx) = mpsc::channel(BUFFER + 1);
        let reason = EndReason::default();
        let queued = Arc::new(AtomicUsize::new(0));
        let mut streams = self.lock();
        let req = loop {
            let id = random_id();
            if id != 0 && !streams.contains_key(&id) {
                break id;
            }
        };
        streams.insert(
            req,
            Stream {
                host: host.to_string(),
                session,
                tx,
                reason: reason.clone(),
                queued: queued.clone(),
            },
        );
        Reader {
            req,
            rx,
            reason,
            queued,
        }
    }

    /// Whether stream `req` is `host`'s.
    pub fn owns(&self, host: &str, req: u64) -> bool {
        self.lock().get(&req).is_some_and(|s| s.host == host)
    }

    /// A chunk from `host`'s agent for stream `req`.
    pub fn deliver(&self, host: &str, req: u64, data: T) -> Delivery {
        let mut streams = self.lock();
        let Some(s) = streams.get(&req).filter(|s| s.host == host) else {
            return Delivery::Unknown;
        };
        let len = data.size();
        // Counted before it can be read, uncounted if it is not sent: never below zero.
        let before = s.queued.fetch_add(len, Ordering::Relaxed);
        // The last place is kept for `finish`.
        let sent = if before + len > BUFFER_BYTES || s.tx.capacity() <= 1 {
            Err(mpsc::error::TrySendError::Full(data))
        } else {
            s.tx.try_send(data)
        };
        if sent.is_err() {
            s.queued.fetch_sub(len, Ordering::Relaxed);
        }
        match sent {
            Ok(()) => Delivery::Delivered,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                streams.remove(&req);
                Delivery::Unknown
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                if let Some(s) = streams.remove(&req) {
                    set_reason(
                        &s.reason,
                        format!(
                            "reader too slow: more than {BUFFER} chunks behind, stream dropped"
                        ),
                    );
                }
                Delivery::Dropped
            }
        }
    }

    /// Ends stream `req` of `host` with one last chunk, which always finds room.
    pub fn finish(&self, host: &str, req: u64, last: T) {
        let mut streams = self.lock();
        if streams.get(&req).is_some_and(|s| s.host == host)
            && let Some(s) = streams.remove(&req)
        {
            s.queued.fetch_add(last.size(), Ordering::Relaxed);
            if s.tx.try_send(last).is_err() {
                set_reason(
                    &s.reason,
                    "the stream ended without its last message".into(),
                );
            }
        }
    }

    /// Ends stream `req` if it is `host`'s (`host` `None`: whoever's), with an error to
    /// show the reader, if any.
    pub fn end(&self, host: Option<&str>, req: u64, error: Option<String>) {
        let mut streams = self.lock();
        if streams
            .get(&req)
            .is_some_and(|s| host.is_none_or(|h| s.host == h))
            && let Some(s) = streams.remove(&req)
            && let Some(e) = error
        {
            set_reason(&s.reason, e);
        }
    }

    /// Ends every stream agent session `session` of `host` was serving (it went away).
    pub fn end_session(&self, host: &str, session: u64, why: &str) {
        self.lock().retain(|_, s| {
            if s.host == host && s.session == session {
                set_reason(&s.reason, why.to_string());
                false
            } else {
                true
            }
        });
    }
}

fn set_reason(reason: &EndReason, why: String) {
    *reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
}

fn random_id() -> u64 {
    let mut b = [0u8; 8];
    // The OS random source failing is not recoverable for an unguessable id.
    if let Err(e) = getrandom::fill(&mut b) {
        panic!("OS random source unavailable: {e}");
    }
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owning_host_feeds_or_ends_a_stream() {
        let s = Streams::<String>::default();
        let mut r = s.open("h1", 1);
        let other = s.open("h1", 1);
        assert_ne!(r.req, other.req);
        assert_eq!(s.deliver("h2", r.req, "evil".into()), Delivery::Unknown);
        s.end(Some("h2"), r.req, Some("evil end".into()));
        assert_eq!(s.deliver("h1", r.req, "ok".into()), Delivery::Delivered);
        assert_eq!(r.try_recv().ok().as_deref(), Some("ok"));
        s.end(Some("h1"), r.req, Some("container gone".into()));
        assert!(matches!(
            r.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
        assert_eq!(
            r.reason.lock().expect("lock").as_deref(),
            Some("container gone")
        );
        assert_eq!(s.deliver("h1", r.req, "late".into()), Delivery::Unknown);
    }

    #[test]
    fn a_stalled_reader_is_dropped_without_waiting() {
        let s = Streams::<String>::default();
        let r = s.open("h1", 1);
        for i in 0..BUFFER {
            assert_eq!(s.deliver("h1", r.req, i.to_string()), Delivery::Delivered);
        }
        assert_eq!(s.deliver("h1", r.req, "more".into()), Delivery::Dropped);
        assert_eq!(s.deliver("h1", r.req, "more".into()), Delivery::Unknown);
        let reason = r.reason.lock().expect("lock").clone().unwrap_or_default();
        assert!(reason.contains("reader too slow"), "{reason}");

        // A few huge chunks count by their bytes, and reading makes room again.
        let mut r = s.open("h1", 1);
        let big = "x".repeat(BUFFER_BYTES / 2);
        assert_eq!(s.deliver("h1", r.req, big.clone()), Delivery::Delivered);
        assert_eq!(s.deliver("h1", r.req, big.clone()), Delivery::Delivered);
        assert_eq!(r.try_recv().map(|c| c.len()), Ok(big.len()));
        assert_eq!(s.deliver("h1", r.req, big.clone()), Delivery::Delivered);
        assert_eq!(s.deliver("h1", r.req, big), Delivery::Dropped);
    }

    #[test]
    fn a_session_going_away_ends_its_streams_only() {
        let s = Streams::<String>::default();
        let mut a = s.open("h1", 1);
        let mut b = s.open("h2", 1);
        let mut newer = s.open("h1", 2);
        s.end_session("h1", 1, "agent disconnected");
        assert!(matches!(
            a.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
        assert!(matches!(
            b.try_recv(),
            Err(mpsc::error::TryRecvError::Empty)
        ));
        // A stale session ending leaves the streams of the host's newer session alone.
        assert!(matches!(
            newer.try_recv(),
            Err(mpsc::error::TryRecvError::Empty)
        ));
    }
}
