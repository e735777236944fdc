//! The one body type the proxy sends and answers with, so nothing is boxed per request.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

pub(crate) enum ProxyBody {
    /// Drover's own answers (and the empty body of a retried request).
    Full(Option<Bytes>),
    /// A body relayed as it arrives.
    Incoming(Incoming),
    /// A backend's response body; the backend's request counts as in flight until it is
    /// done (or dropped).
    Upstream {
        body: Incoming,
        _in_flight: InFlight,
    },
}

impl ProxyBody {
    pub(crate) fn empty() -> ProxyBody {
        ProxyBody::Full(None)
    }

    pub(crate) fn text(s: &'static str) -> ProxyBody {
        ProxyBody::Full(Some(Bytes::from_static(s.as_bytes())))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ProxyBody::Incoming(body) | ProxyBody::Upstream { body, .. } => {
                Pin::new(body).poll_frame(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(data) => data.is_none(),
            ProxyBody::Incoming(body) | ProxyBody::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ProxyBody::Incoming(body) | ProxyBody::Upstream { body, .. } => body.size_hint(),
        }
    }
}

/// One request in flight to a backend (least_conn counts these); ends when dropped.
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub(crate) fn new(counter: &Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
