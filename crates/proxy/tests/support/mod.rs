//! Test backends (small hyper servers that echo what they received and say who they are),
//! a one-connection-per-request client, table builders. Everything on 127.0.0.1.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ingress::{Backend, Balance, HttpRoute, Table, TcpRoute, Tls};
use proxy::{Config, Proxy};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

pub const LOCALHOST: std::net::Ipv4Addr = std::net::Ipv4Addr::LOCALHOST;

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "proxy=debug".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A proxy on ephemeral loopback ports serving `table`.
pub async fn proxy(table: Table) -> Proxy {
    init_tracing();
    let p = Proxy::start(Config {
        http: (LOCALHOST, 0).into(),
        https: (LOCALHOST, 0).into(),
        tcp_ip: LOCALHOST.into(),
    })
    .await
    .expect("proxy starts");
    let problems = p.update(table);
    assert!(problems.is_empty(), "{problems:?}");
    p
}

/// An HTTP/1.1 backend answering every request with JSON: its name, the method, URI,
/// headers (in order) and body it got. `/slow/MS` answers after MS milliseconds.
pub struct EchoBackend {
    pub name: String,
    pub addr: SocketAddr,
    /// Requests answered.
    pub hits: Arc<AtomicUsize>,
}

impl EchoBackend {
    pub async fn start(name: &str) -> EchoBackend {
        let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let (n, h) = (name.to_owned(), hits.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (n, h) = (n.clone(), h.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (n, h) = (n.clone(), h.clone());
                        async move { Ok::<_, hyper::Error>(echo(&n, &h, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        EchoBackend {
            name: name.to_owned(),
            addr,
            hits,
        }
    }

    pub fn backend(&self) -> Backend {
        Backend {
            container: self.name.clone(),
            host: "h1".into(),
            addr: self.addr,
        }
    }
}

async fn echo(name: &str, hits: &AtomicUsize, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if let Some(ms) = req.uri().path().strip_prefix("/slow/") {
        let ms: u64 = ms.parse().unwrap_or(100);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    hits.fetch_add(1, Ordering::SeqCst);
    let answer = json!({
        "backend": name,
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut resp = Response::new(Full::new(Bytes::from(answer.to_string())));
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// A port on 127.0.0.1 with nothing listening (refuses connections).
pub async fn dead_port() -> SocketAddr {
    let l = TcpListener::bind((LOCALHOST, 0)).await.expect("bind");
    l.local_addr().expect("addr")
}

pub fn dead_backend(addr: SocketAddr) -> Backend {
    Backend {
        container: "dead-1".into(),
        host: "h1".into(),
        addr,
    }
}

pub fn route(host: Option<&str>, path: &str, backends: Vec<Backend>) -> HttpRoute {
    HttpRoute {
        host: host.map(str::to_owned),
        path: path.into(),
        stack: "shop".into(),
        service: "web".into(),
        tls: Tls::None,
        balance: Balance::RoundRobin,
        sticky: None,
        backends,
    }
}

pub fn table(http: Vec<HttpRoute>) -> Table {
    Table {
        http,
        tcp: Vec::<TcpRoute>::new(),
        certs: vec![],
        challenges: BTreeMap::new(),
    }
}

/// What a client got.
pub struct Got {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The echo backend's answer.
    pub fn echo(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not an echo ({e}): {} {}", self.status, self.text()))
    }

    pub fn backend(&self) -> String {
        self.echo()["backend"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Every value the backend got for header `name`.
    pub fn got_header(&self, name: &str) -> Vec<String> {
        self.echo()["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|kv| kv[0] == name)
            .map(|kv| kv[1].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends one request on a new HTTP/1.1 connection to `addr`.
pub async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Got {
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to the proxy");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.expect("response");
    collect(resp).await
}

pub async fn collect(resp: Response<Incoming>) -> Got {
    let (parts, body) = resp.into_parts();
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.collect().await.expect("body").to_bytes(),
    }
}

/// `GET path` with `Host: host`.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Got {
    send(addr, request("GET", host, path, &[], "")).await
}

pub fn request(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(body.to_owned())))
        .expect("request")
}
