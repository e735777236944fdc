//! HTTP and HTTPS: accept, serve a connection, and each request: ACME challenge, route,
//! redirect, balance, forward (with one retry), relay the answer or the upgrade.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Scheme, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::{Body, Incoming};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use ingress::{ACME_CHALLENGE_PREFIX, Tls};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::body::{InFlight, ProxyBody};
use crate::routing::{self, Picked};
use crate::table::{Compiled, Route};
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
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

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
    client: SocketAddr,
    https: bool,
    /// The client's address as an `X-Forwarded-For` entry.
    client_ip: HeaderValue,
}

impl Conn {
    fn proto(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }
}

/// Serves one connection (HTTP/1.1 with upgrades, or HTTP/2) until it closes or the proxy
/// stops.
async fn serve<I>(shared: Arc<Shared>, io: I, client: SocketAddr, https: bool)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut stop = shared.stop.subscribe();
    let client_ip = HeaderValue::from_str(&client.ip().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    let conn = Arc::new(Conn {
        shared: shared.clone(),
        client,
        https,
        client_ip,
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
    if !conn.https
        && (req.method() == Method::GET || req.method() == Method::HEAD)
        && let Some(token) = path.strip_prefix(ACME_CHALLENGE_PREFIX)
    {
        return challenge(&table, token);
    }
    if req.method() == Method::CONNECT {
        return answer(StatusCode::METHOD_NOT_ALLOWED, NO_CONNECT);
    }
    let host = request_host(&req);
    let Some(index) = table.router.route(host.unwrap_or(""), path) else {
        return answer(StatusCode::NOT_FOUND, NO_ROUTE);
    };
    let route = &table.routes[index];
    if !conn.https && matches!(route.route.tls, Tls::Cert(_)) {
        return redirect(conn, host, req.uri());
    }
    if route.backends.is_empty() {
        return answer(StatusCode::SERVICE_UNAVAILABLE, NO_BACKEND);
    }
    forward(conn, route, req).await
}

fn challenge(table: &Compiled, token: &str) -> Response<ProxyBody> {
    match table.challenges.get(token) {
        Some(key_authorization) => {
            let mut resp = Response::new(ProxyBody::Full(Some(Bytes::copy_from_slice(
                key_authorization.as_bytes(),
            ))));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            resp
        }
        None => answer(StatusCode::NOT_FOUND, NO_CHALLENGE),
    }
}

/// The request's host without its port: the URI's authority (HTTP/2, absolute form), else
/// the `Host` header.
fn request_host<B>(req: &Request<B>) -> Option<&str> {
    if let Some(authority) = req.uri().authority() {
        return Some(authority.host());
    }
    let host = req.headers().get(header::HOST)?.to_str().ok()?;
    Some(without_port(host))
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

fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
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

/// The value of the request's cookie `name`.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            (n == name).then(|| v.trim_matches('"'))
        })
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
    debug_assert!(!headers.contains_key(&PROXY_CONNECTION));
}

/// Every value of `name` joined by `, `, then `last`.
fn appended(headers: &HeaderMap, name: &HeaderName, last: &[u8]) -> Option<HeaderValue> {
    let mut out = BytesMut::new();
    for v in headers.get_all(name) {
        out.put_slice(v.as_bytes());
        out.put_slice(b", ");
    }
    out.put_slice(last);
    HeaderValue::from_maybe_shared(out.freeze()).ok()
}

/// `X-Forwarded-For` (appended), `-Proto`, `-Host` and `Forwarded` (RFC 7239, appended).
fn add_forwarding(conn: &Conn, headers: &mut HeaderMap, host: Option<&HeaderValue>) {
    let xff = if headers.contains_key(&X_FORWARDED_FOR) {
        appended(headers, &X_FORWARDED_FOR, conn.client_ip.as_bytes())
    } else {
        Some(conn.client_ip.clone())
    };
    if let Some(xff) = xff {
        headers.insert(X_FORWARDED_FOR.clone(), xff);
    }
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(conn.proto()),
    );
    match host {
        Some(h) => headers.insert(X_FORWARDED_HOST.clone(), h.clone()),
        None => headers.remove(&X_FORWARDED_HOST),
    };
    let element = routing::forwarded_element(
        conn.client.ip(),
        conn.proto(),
        host.and_then(|h| h.to_str().ok()),
    );
    if let Some(forwarded) = appended(headers, &FORWARDED, element.as_bytes()) {
        headers.insert(FORWARDED.clone(), forwarded);
    }
}

/// The request for a backend: origin-form path, HTTP/1.1, the backend's authority (the
/// pool key; the `Host` header stays the client's).
fn upstream(
    method: Method,
    route: &Route,
    picked: Picked,
    pq: &PathAndQuery,
    headers: HeaderMap,
    body: ProxyBody,
) -> Request<ProxyBody> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(route.backends[picked.index].authority.clone());
    parts.path_and_query = Some(pq.clone());
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.version_mut() = Version::HTTP_11;
    // Scheme, authority and path are all set: from_parts cannot fail.
    *req.uri_mut() = Uri::from_parts(parts).unwrap_or_default();
    *req.headers_mut() = headers;
    req
}

async fn forward(conn: &Conn, route: &Route, mut req: Request<Incoming>) -> Response<ProxyBody> {
    let upgrade = req.version() == Version::HTTP_11 && wants_upgrade(req.headers());
    let front_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();

    let rr = route.rr.fetch_add(1, Ordering::Relaxed);
    let in_flight = |i: usize| route.backends[i].in_flight.load(Ordering::Relaxed);
    let sticky = route
        .route
        .sticky
        .as_deref()
        .and_then(|name| cookie(&parts.headers, name));
    let Some(mut picked) = routing::pick(&route.route, rr, in_flight, sticky, None) else {
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
    add_forwarding(conn, &mut parts.headers, host.as_ref());
    let pq = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));

    // A request that may go to a second backend: idempotent, without a body, and with
    // somewhere else to go.
    let mut spare = (route.backends.len() > 1 && idempotent(&parts.method) && body.is_end_stream())
        .then(|| (parts.method.clone(), parts.headers.clone()));

    let mut req = upstream(
        parts.method,
        route,
        picked,
        &pq,
        parts.headers,
        ProxyBody::Incoming(body),
    );
    loop {
        let backend = &route.backends[picked.index];
        let guard = InFlight::new(&backend.in_flight);
        let err = match conn.shared.client.request(req).await {
            Ok(resp) => return respond(conn, route, picked, resp, guard, front_upgrade),
            Err(e) => e,
        };
        let addr = &route.route.backends[picked.index].addr;
        tracing::warn!(
            backend = %addr,
            service = %route.route.service,
            stack = %route.route.stack,
            "backend request failed: {}",
            error_chain(&err)
        );
        if err.is_connect()
            && let Some((method, headers)) = spare.take()
            && let Some(next) = routing::pick(&route.route, rr, in_flight, None, Some(picked.index))
        {
            picked = next;
            req = upstream(method, route, picked, &pq, headers, ProxyBody::empty());
            continue;
        }
        return answer(StatusCode::BAD_GATEWAY, BAD_GATEWAY);
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

fn respond(
    conn: &Conn,
    route: &Route,
    picked: Picked,
    mut resp: Response<Incoming>,
    guard: InFlight,
    front_upgrade: Option<OnUpgrade>,
) -> Response<ProxyBody> {
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching && front_upgrade.is_none() {
        tracing::warn!(service = %route.route.service, "backend switched protocols unasked");
        return answer(StatusCode::BAD_GATEWAY, BAD_GATEWAY);
    }
    let back_upgrade = switching.then(|| hyper::upgrade::on(&mut resp));
    let (mut parts, body) = resp.into_parts();
    let upgrade_value = parts.headers.get(header::UPGRADE).cloned();
    remove_hop_by_hop(&mut parts.headers);
    if picked.set_cookie
        && let Some((plain, secure)) = &route.backends[picked.index].cookie
    {
        let cookie = if conn.https { secure } else { plain };
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
