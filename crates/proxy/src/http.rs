//! HTTP and HTTPS: accept, serve a connection, and each request: ACME challenge, route,
//! redirect, balance, forward (with one retry), relay the answer or the upgrade.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::{Body, Incoming};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use ingress::{Backend, HttpRoute, Tls};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::body::{InFlight, ProxyBody};
use crate::pool::Lent;
use crate::table::{BackendState, Route, index_of};
use crate::{CLOSED, DRAINING, HANDSHAKE_TIMEOUT, Shared, stopping};

const NO_ROUTE: &str = "drover: no route for this host and path\n";
const NO_BACKEND: &str = "drover: no backend of this service is ready\n";
const BAD_GATEWAY: &str = "drover: the backend did not answer\n";
const NO_CHALLENGE: &str = "drover: no such ACME challenge\n";
const BAD_HOST: &str = "drover: this request needs a valid Host\n";
const NO_CONNECT: &str = "drover: CONNECT is not served\n";

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Accepts connections until aborted; `tls`: the HTTPS listener.
pub(crate) async fn accept(shared: Arc<Shared>, listener: TcpListener, tls: Option<TlsAcceptor>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, or a connection gone before it was taken.
                tracing::debug!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        match &tls {
            None => {
                tokio::spawn(serve(shared, stream, peer, false));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => serve(shared, tls, peer, true).await,
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

/// What every request of one client connection shares.
struct Conn {
    shared: Arc<Shared>,
    https: bool,
    client: Client,
}

/// The client's part of the forwarding headers, made once per connection.
struct Client {
    /// Its address as an `X-Forwarded-For` entry.
    ip: HeaderValue,
    proto: &'static str,
    /// `for=IP;proto=PROTO`, the start of its `Forwarded` element.
    forwarded_for: Bytes,
}

impl Client {
    fn new(addr: SocketAddr, https: bool) -> Client {
        let proto = if https { "https" } else { "http" };
        Client {
            ip: HeaderValue::from_str(&addr.ip().to_canonical().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            proto,
            forwarded_for: Bytes::from(forwarded_for(addr.ip(), proto)),
        }
    }
}

/// Serves one connection (HTTP/1.1 with upgrades, or HTTP/2) until it closes or the proxy
/// stops.
async fn serve<I>(shared: Arc<Shared>, io: I, client: SocketAddr, https: bool)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut stop = shared.stop.subscribe();
    let conn = Arc::new(Conn {
        shared: shared.clone(),
        https,
        client: Client::new(client, https),
    });
    let service = hyper::service::service_fn(move |req| {
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(handle(&conn, req).await) }
    });
    let served = shared
        .server
        .serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(served);
    let result = tokio::select! {
        r = served.as_mut() => r,
        () = stopping(&mut stop, DRAINING) => {
            served.as_mut().graceful_shutdown();
            tokio::select! {
                r = served.as_mut() => r,
                () = stopping(&mut stop, CLOSED) => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%client, "connection ended: {e}");
    }
}

fn answer(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::text(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

async fn handle(conn: &Conn, req: Request<Incoming>) -> Response<ProxyBody> {
    let table = conn.shared.table.load_full();
    let path = req.uri().path();
    if !conn.https && (req.method() == Method::GET || req.method() == Method::HEAD) {
        match table.router.challenge(path) {
            Some(key_authorization) => return challenge(key_authorization),
            None if path.starts_with(ingress::ACME_CHALLENGE_PREFIX) => {
                return answer(StatusCode::NOT_FOUND, NO_CHALLENGE);
            }
            None => {}
        }
    }
    if req.method() == Method::CONNECT {
        return answer(StatusCode::METHOD_NOT_ALLOWED, NO_CONNECT);
    }
    let host = request_host(&req);
    let Some(route) = table.router.route(host, path) else {
        return answer(StatusCode::NOT_FOUND, NO_ROUTE);
    };
    let Some(state) = index_of(&table.router.table().http, route).and_then(|i| table.routes.get(i))
    else {
        return answer(StatusCode::NOT_FOUND, NO_ROUTE);
    };
    if !conn.https && matches!(route.tls, Tls::Cert(_)) {
        return redirect(conn, host, req.uri());
    }
    if route.backends.is_empty() {
        return answer(StatusCode::SERVICE_UNAVAILABLE, NO_BACKEND);
    }
    forward(conn, route, state, req).await
}

fn challenge(key_authorization: &str) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::Full(Some(Bytes::copy_from_slice(
        key_authorization.as_bytes(),
    ))));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// The request's host without its port: the URI's authority (HTTP/2, absolute form), else
/// the `Host` header.
fn request_host<B>(req: &Request<B>) -> Option<&str> {
    if let Some(authority) = req.uri().authority() {
        return Some(authority.host());
    }
    let host = req.headers().get(header::HOST)?.to_str().ok()?;
    Some(without_port(host.trim()))
}

fn without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// A name or an IP literal, nothing that could change where a URL leads.
fn plain_host(host: &str) -> bool {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => {
            !v6.is_empty()
                && v6
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        None => {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        }
    }
}

/// 308 to the same host, path and query on HTTPS (port omitted when it is 443).
fn redirect(conn: &Conn, host: Option<&str>, uri: &Uri) -> Response<ProxyBody> {
    let Some(host) = host.filter(|h| plain_host(h)) else {
        return answer(StatusCode::BAD_REQUEST, BAD_HOST);
    };
    let pq = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    let port = conn.shared.https_port;
    let location = if port == 443 {
        format!("https://{host}{pq}")
    } else {
        format!("https://{host}:{port}{pq}")
    };
    let Ok(location) = HeaderValue::from_str(&location) else {
        return answer(StatusCode::BAD_REQUEST, BAD_HOST);
    };
    let mut resp = Response::new(ProxyBody::empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    resp.headers_mut().insert(header::LOCATION, location);
    resp
}

/// HTTP/1.1 `Connection: upgrade` with an `Upgrade` header.
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// The value of the request's cookie `name` (the first, over every `Cookie` header).
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| ingress::router::cookie(v, name))
}

/// Removes the hop-by-hop headers (RFC 9110 7.6.1): those the `Connection` header names,
/// `Connection` itself, `Keep-Alive`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`,
/// `Proxy-*` (and `Proxy`, which no one should forward).
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    for name in [
        &KEEP_ALIVE,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ] {
        headers.remove(name);
    }
    if headers.keys().any(|k| k.as_str().starts_with("proxy")) {
        let proxy: Vec<HeaderName> = headers
            .keys()
            .filter(|k| k.as_str() == "proxy" || k.as_str().starts_with("proxy-"))
            .cloned()
            .collect();
        for name in proxy {
            headers.remove(name);
        }
    }
}

/// HTTP/2 may split `Cookie` into several fields; HTTP/1.1 backends get one (RFC 9113
/// 8.2.3).
fn join_cookies(headers: &mut HeaderMap) {
    let cookies = headers.get_all(header::COOKIE);
    if cookies.iter().nth(1).is_none() {
        return;
    }
    let mut joined = BytesMut::new();
    for (i, v) in cookies.iter().enumerate() {
        if i > 0 {
            joined.put_slice(b"; ");
        }
        joined.put_slice(v.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(joined.freeze()) {
        headers.insert(header::COOKIE, v);
    }
}

/// `for=IP;proto=PROTO`, the start of the `Forwarded` element every request of a
/// connection shares (as `ingress::forwarded_headers` writes it: an IPv4 client seen
/// through IPv6 as IPv4, an IPv6 address quoted in brackets).
fn forwarded_for(client: IpAddr, proto: &str) -> String {
    match client.to_canonical() {
        IpAddr::V4(ip) => format!("for={ip};proto={proto}"),
        IpAddr::V6(ip) => format!("for=\"[{ip}]\";proto={proto}"),
    }
}

/// RFC 9110 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Appends `;host=HOST` to a `Forwarded` element, quoted unless it is a token.
fn push_forwarded_host(out: &mut BytesMut, host: &str) {
    out.put_slice(b";host=");
    if host.bytes().all(is_tchar) {
        out.put_slice(host.as_bytes());
        return;
    }
    out.put_u8(b'"');
    for b in host.bytes() {
        if b == b'"' || b == b'\\' {
            out.put_u8(b'\\');
        }
        out.put_u8(b);
    }
    out.put_u8(b'"');
}

/// The headers `ingress::forwarded_headers` decides, made without its allocations (the
/// client's part once per connection): `X-Forwarded-For` the client's own entries and its
/// address, `X-Forwarded-Proto`, `X-Forwarded-Host` (the `Host` as sent, if it is visible
/// ASCII), `Forwarded` (RFC 7239: this hop's element only). Each replaces what the client
/// sent. `tests::forwarding_is_ingress_forwarded_headers` holds the two equal.
fn add_forwarding(client: &Client, headers: &mut HeaderMap, host: Option<&HeaderValue>) {
    let mut existing = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .map(|v| v.as_bytes().trim_ascii())
        .filter(|v| !v.is_empty())
        .peekable();
    let xff = if existing.peek().is_some() {
        let mut xff = BytesMut::with_capacity(64);
        for v in existing {
            xff.put_slice(v);
            xff.put_slice(b", ");
        }
        xff.put_slice(client.ip.as_bytes());
        // Made of header values and an address: always a valid one.
        HeaderValue::from_maybe_shared(xff.freeze()).unwrap_or_else(|_| client.ip.clone())
    } else {
        client.ip.clone()
    };
    headers.insert(X_FORWARDED_FOR.clone(), xff);
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(client.proto),
    );
    let host = host.filter(|h| !h.is_empty() && h.as_bytes().iter().all(u8::is_ascii_graphic));
    let mut forwarded =
        BytesMut::with_capacity(client.forwarded_for.len() + host.map_or(0, |h| 2 * h.len() + 8));
    forwarded.put_slice(&client.forwarded_for);
    match host {
        Some(h) => {
            // Visible ASCII: always a str.
            push_forwarded_host(&mut forwarded, h.to_str().unwrap_or_default());
            headers.insert(X_FORWARDED_HOST.clone(), h.clone());
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
    if let Ok(forwarded) = HeaderValue::from_maybe_shared(forwarded.freeze()) {
        headers.insert(FORWARDED.clone(), forwarded);
    }
}

/// The backend chosen for a request.
#[derive(Clone, Copy)]
struct Picked {
    index: usize,
    /// The route is sticky and the request's cookie did not name this backend.
    set_cookie: bool,
}

/// `ingress::pick`, answered as the backend's index.
fn pick(
    route: &HttpRoute,
    state: &Route,
    rr: usize,
    sticky: Option<&str>,
    exclude: &[SocketAddr],
) -> Option<Picked> {
    let in_flight = |b: &Backend| {
        index_of(&route.backends, b)
            .and_then(|i| state.backends.get(i))
            .map_or(0, |s| s.in_flight.load(Ordering::Relaxed))
    };
    let backend = ingress::pick(route, rr as u64, &in_flight, sticky, exclude)?;
    let index = index_of(&route.backends, backend)?;
    let set_cookie = state
        .backends
        .get(index)?
        .sticky
        .as_ref()
        .is_some_and(|s| sticky != Some(s.value.as_str()));
    Some(Picked { index, set_cookie })
}

async fn forward(
    conn: &Conn,
    route: &HttpRoute,
    state: &Route,
    mut req: Request<Incoming>,
) -> Response<ProxyBody> {
    let upgrade = req.version() == Version::HTTP_11 && wants_upgrade(req.headers());
    let front_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();

    let rr = state.rr.fetch_add(1, Ordering::Relaxed);
    let sticky = route
        .sticky
        .as_deref()
        .and_then(|name| cookie(&parts.headers, name));
    let Some(mut picked) = pick(route, state, rr, sticky, &[]) else {
        return answer(StatusCode::SERVICE_UNAVAILABLE, NO_BACKEND);
    };

    let upgrade_value = if upgrade {
        parts.headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    let host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    remove_hop_by_hop(&mut parts.headers);
    if parts.version == Version::HTTP_2 {
        join_cookies(&mut parts.headers);
    }
    if let Some(value) = upgrade_value {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, value);
    }
    if let Some(host) = &host
        && !parts.headers.contains_key(header::HOST)
    {
        parts.headers.insert(header::HOST, host.clone());
    }
    add_forwarding(&conn.client, &mut parts.headers, host.as_ref());

    // A request that may go to a second backend when the first cannot be reached:
    // idempotent, without a body, and with somewhere else to go.
    let retryable = route.backends.len() > 1
        && ingress::is_idempotent(parts.method.as_str())
        && body.is_end_stream();
    // Origin form, HTTP/1.1; the Host header stays the client's.
    let pq = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut req = Request::new(ProxyBody::Incoming(body));
    *req.method_mut() = parts.method;
    *req.uri_mut() = Uri::from(pq);
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = parts.headers;

    let mut moved_on = false;
    let mut fresh = false;
    loop {
        let (Some(backend), Some(addr)) = (
            state.backends.get(picked.index),
            route.backends.get(picked.index).map(|b| b.addr),
        ) else {
            return answer(StatusCode::SERVICE_UNAVAILABLE, NO_BACKEND);
        };
        let guard = InFlight::new(&backend.in_flight);
        let (mut tx, reused) = match backend.pool.get(fresh).await {
            Ok(connection) => connection,
            Err(e) => {
                tracing::warn!(
                    backend = %addr,
                    service = %route.service,
                    stack = %route.stack,
                    "backend unreachable: {e}"
                );
                if retryable
                    && !moved_on
                    && let Some(next) = pick(route, state, rr, None, &[addr])
                {
                    (picked, moved_on, fresh) = (next, true, false);
                    continue;
                }
                return answer(StatusCode::BAD_GATEWAY, BAD_GATEWAY);
            }
        };
        match tx.try_send_request(req).await {
            Ok(resp) => {
                let lent = Lent {
                    tx: Some(tx),
                    pool: backend.pool.clone(),
                    done: false,
                };
                return respond(
                    conn,
                    route,
                    backend,
                    picked,
                    resp,
                    guard,
                    lent,
                    front_upgrade,
                );
            }
            Err(mut e) => match e.take_message() {
                // A kept-alive connection the backend had closed: nothing was sent, so
                // once more on a new connection.
                Some(unsent) if reused && !fresh => {
                    req = unsent;
                    fresh = true;
                }
                _ => {
                    tracing::warn!(
                        backend = %addr,
                        service = %route.service,
                        stack = %route.stack,
                        "backend request failed: {}",
                        error_chain(e.error())
                    );
                    return answer(StatusCode::BAD_GATEWAY, BAD_GATEWAY);
                }
            },
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[allow(clippy::too_many_arguments)]
fn respond(
    conn: &Conn,
    route: &HttpRoute,
    backend: &BackendState,
    picked: Picked,
    mut resp: Response<Incoming>,
    guard: InFlight,
    lent: Lent,
    front_upgrade: Option<OnUpgrade>,
) -> Response<ProxyBody> {
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching && front_upgrade.is_none() {
        tracing::warn!(service = %route.service, "backend switched protocols unasked");
        return answer(StatusCode::BAD_GATEWAY, BAD_GATEWAY);
    }
    let back_upgrade = switching.then(|| hyper::upgrade::on(&mut resp));
    let (mut parts, body) = resp.into_parts();
    let upgrade_value = parts.headers.get(header::UPGRADE).cloned();
    remove_hop_by_hop(&mut parts.headers);
    if picked.set_cookie
        && let Some(sticky) = &backend.sticky
    {
        let cookie = if conn.https {
            &sticky.secure
        } else {
            &sticky.plain
        };
        parts.headers.append(header::SET_COOKIE, cookie.clone());
    }
    if let (Some(front), Some(back)) = (front_upgrade, back_upgrade) {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(value) = upgrade_value {
            parts.headers.insert(header::UPGRADE, value);
        }
        let stop = conn.shared.stop.subscribe();
        tokio::spawn(relay(front, back, guard, stop));
        return Response::from_parts(parts, ProxyBody::empty());
    }
    Response::from_parts(
        parts,
        ProxyBody::Upstream {
            body,
            lent,
            _in_flight: guard,
        },
    )
}

/// Copies an upgraded connection both ways until either side closes (the backend counts
/// as in flight meanwhile).
async fn relay(
    front: OnUpgrade,
    back: OnUpgrade,
    _guard: InFlight,
    mut stop: tokio::sync::watch::Receiver<u8>,
) {
    let (front, back) = match tokio::join!(front, back) {
        (Ok(front), Ok(back)) => (front, back),
        (Err(e), _) | (_, Err(e)) => {
            tracing::debug!("upgrade failed: {e}");
            return;
        }
    };
    let (mut front, mut back) = (TokioIo::new(front), TokioIo::new(back));
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut front, &mut back) => {
            if let Err(e) = r {
                tracing::debug!("upgraded connection ended: {e}");
            }
        }
        () = stopping(&mut stop, CLOSED) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports() {
        assert_eq!(without_port("a.test:8080"), "a.test");
        assert_eq!(without_port("a.test"), "a.test");
        assert_eq!(without_port("[::1]:80"), "[::1]");
        assert_eq!(without_port("[::1]"), "[::1]");
        assert!(plain_host("a-b.test") && plain_host("[::1]") && plain_host("10.0.0.1"));
        assert!(!plain_host("a@b.test") && !plain_host("a/b") && !plain_host(""));
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "close"),
            ("proxy", "http://evil"),
            ("x-kept", "yes"),
            ("cookie", "a=1"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        remove_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept", "cookie"]);
    }

    /// The headers made here are `ingress::forwarded_headers`' (which decides them).
    #[test]
    fn forwarding_is_ingress_forwarded_headers() {
        let clients: [SocketAddr; 3] = [
            "192.0.2.7:5000".parse().expect("addr"),
            "[2001:db8::1]:5000".parse().expect("addr"),
            "[::ffff:192.0.2.8]:5000".parse().expect("addr"),
        ];
        let hosts = [
            None,
            Some("shop.test"),
            Some("shop.test:8443"),
            Some("[::1]:80"),
            Some(""),
        ];
        let xffs = [None, Some("203.0.113.9"), Some("203.0.113.9, 10.0.0.1")];
        for client in clients {
            for https in [false, true] {
                for host in hosts {
                    for xff in xffs {
                        let mut headers = HeaderMap::new();
                        if let Some(x) = xff {
                            headers.insert(&X_FORWARDED_FOR, HeaderValue::from_static(x));
                        }
                        headers.insert(&FORWARDED, HeaderValue::from_static("for=spoofed"));
                        headers.insert(&X_FORWARDED_HOST, HeaderValue::from_static("spoofed"));
                        let host_value = host.map(HeaderValue::from_static);
                        add_forwarding(
                            &Client::new(client, https),
                            &mut headers,
                            host_value.as_ref(),
                        );
                        let proto = if https { "https" } else { "http" };
                        let mut want = ingress::forwarded_headers(client, proto, host, xff);
                        want.sort();
                        let mut got: Vec<(&str, String)> = headers
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.to_str().expect("str").to_owned()))
                            .collect();
                        got.sort();
                        let want: Vec<(&str, String)> = want.into_iter().collect();
                        assert_eq!(got, want, "{client} {proto} {host:?} {xff:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn cookies() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; srv=web-2"));
        h.append(header::COOKIE, HeaderValue::from_static("b=\"q\""));
        assert_eq!(cookie(&h, "srv"), Some("web-2"));
        assert_eq!(cookie(&h, "b"), Some("q"));
        assert_eq!(cookie(&h, "sr"), None);
    }

    #[test]
    fn upgrades() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(!wants_upgrade(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(wants_upgrade(&h));
    }
}
