//! TCP routes: relayed both ways, balanced, the PROXY v2 header, listeners following the
//! table.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use ingress::{Backend, TcpRoute};
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A TCP backend: reads a PROXY v2 header first when `proxy_protocol`, then writes one line
/// (`name src dst`, or `name` alone) and echoes whatever it gets.
async fn tcp_backend(name: &'static str, proxy_protocol: bool) -> Backend {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut line = name.to_owned();
                if proxy_protocol {
                    let mut head = [0u8; 16];
                    if stream.read_exact(&mut head).await.is_err() {
                        return;
                    }
                    let len = u16::from_be_bytes([head[14], head[15]]) as usize;
                    let mut header = head.to_vec();
                    header.resize(16 + len, 0);
                    if stream.read_exact(&mut header[16..]).await.is_err() {
                        return;
                    }
                    match ppp::v2::Header::try_from(header.as_slice()) {
                        Ok(h) => match h.addresses {
                            ppp::v2::Addresses::IPv4(a) => {
                                let src = SocketAddr::from((a.source_address, a.source_port));
                                let dst =
                                    SocketAddr::from((a.destination_address, a.destination_port));
                                line = format!("{name} {src} {dst}");
                            }
                            other => line = format!("{name} unexpected {other:?}"),
                        },
                        Err(e) => line = format!("{name} bad header {e}"),
                    }
                }
                line.push('\n');
                if stream.write_all(line.as_bytes()).await.is_err() {
                    return;
                }
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Backend {
        container: name.into(),
        host: "h1".into(),
        addr,
    }
}

/// A loopback port free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind((LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn tcp_route(listen: u16, proxy_protocol: bool, backends: Vec<Backend>) -> TcpRoute {
    TcpRoute {
        listen,
        stack: "db".into(),
        service: "pg".into(),
        proxy_protocol,
        backends,
    }
}

struct Session {
    lines: BufReader<TcpStream>,
}

impl Session {
    async fn open(port: u16) -> std::io::Result<(Session, String, SocketAddr)> {
        let stream = TcpStream::connect((LOCALHOST, port)).await?;
        let local = stream.local_addr()?;
        let mut s = Session {
            lines: BufReader::new(stream),
        };
        let first = s.line().await;
        Ok((s, first, local))
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(5), self.lines.read_line(&mut line))
            .await
            .expect("in time")
            .expect("read");
        line.trim_end().to_owned()
    }

    async fn echo(&mut self, text: &str) -> String {
        self.lines
            .get_mut()
            .write_all(format!("{text}\n").as_bytes())
            .await
            .expect("write");
        self.line().await
    }
}

#[tokio::test]
async fn tcp_with_proxy_protocol_v2() {
    let pg = tcp_backend("pg-1", true).await;
    let port = free_port();
    let mut t = table(vec![]);
    t.tcp = vec![tcp_route(port, true, vec![pg])];
    let p = proxy(t).await;
    assert_eq!(p.tcp_ports(), [port]);

    let (mut s, first, local) = Session::open(port).await.expect("connect");
    // The client's address and the one it connected to.
    assert_eq!(first, format!("pg-1 {local} 127.0.0.1:{port}"));
    assert_eq!(s.echo("select 1").await, "select 1");
    let big = "y".repeat(100_000);
    assert_eq!(s.echo(&big).await, big);
}

#[tokio::test]
async fn tcp_balances_skips_refusing_backends_and_follows_the_table() {
    let (b1, b2) = tokio::join!(tcp_backend("redis-1", false), tcp_backend("redis-2", false));
    let dead = dead_port().await;
    let dead = Backend {
        container: "redis-0".into(),
        host: "h1".into(),
        addr: dead,
    };
    let port = free_port();
    let mut t = table(vec![]);
    t.tcp = vec![tcp_route(port, false, vec![dead, b1.clone(), b2.clone()])];
    let p = proxy(t).await;

    let mut names = Vec::new();
    let mut open = Vec::new();
    for _ in 0..6 {
        let (s, name, _) = Session::open(port).await.expect("connect");
        names.push(name);
        open.push(s);
    }
    // Round-robin over three, the refusing one passed over to the next.
    assert_eq!(
        names,
        [
            "redis-1", "redis-1", "redis-2", "redis-1", "redis-1", "redis-2"
        ]
    );

    // The route goes: its listener closes, connections open go on.
    let other = free_port();
    let mut t = table(vec![]);
    t.tcp = vec![tcp_route(other, false, vec![b2])];
    assert!(p.update(t).is_empty());
    assert_eq!(p.tcp_ports(), [other]);
    // The listener's task ends when the runtime next runs it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(Session::open(port).await.is_err(), "old port still open");
    assert_eq!(open[0].echo("still").await, "still");
    let (_, name, _) = Session::open(other).await.expect("new port");
    assert_eq!(name, "redis-2");
}

#[tokio::test]
async fn a_tcp_port_that_cannot_be_bound_is_reported_and_tried_again() {
    let b = tcp_backend("pg-1", false).await;
    let taken = std::net::TcpListener::bind((LOCALHOST, 0)).expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let mut t = table(vec![]);
    t.tcp = vec![tcp_route(port, false, vec![b])];
    let p = proxy(table(vec![])).await;
    let problems = p.update(t.clone());
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0]
            .to_string()
            .starts_with(&format!("cannot listen on 127.0.0.1:{port}")),
        "{}",
        problems[0]
    );
    assert!(p.tcp_ports().is_empty());
    drop(taken);
    assert!(p.update(t).is_empty());
    let (_, name, _) = Session::open(port).await.expect("connect");
    assert_eq!(name, "pg-1");
}
