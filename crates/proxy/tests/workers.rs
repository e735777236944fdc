//! `Workers`: the proxy on threads of its own with SO_REUSEPORT listeners.

mod support;

use std::time::Duration;

use proxy::{Config, Workers};
use support::*;

#[tokio::test]
async fn workers_share_the_ports_and_every_one_gets_the_table() {
    init_tracing();
    let (b1, b2) = tokio::join!(EchoBackend::start("web-1"), EchoBackend::start("web-2"));
    let w = Workers::start(
        Config {
            http: (LOCALHOST, 0).into(),
            https: (LOCALHOST, 0).into(),
            tcp_ip: LOCALHOST.into(),
        },
        3,
    )
    .expect("workers start");
    assert_eq!(w.len(), 3);
    let problems = w.update(table(vec![route(
        Some("a.test"),
        "/",
        vec![b1.backend(), b2.backend()],
    )]));
    assert!(problems.is_empty(), "{problems:?}");
    // One connection per request: the kernel spreads them over the workers; each one
    // answers from the table.
    let mut seen = Vec::new();
    for _ in 0..30 {
        let got = get(w.http_addr(), "a.test", "/").await;
        assert_eq!(got.status, 200, "{}", got.text());
        seen.push(got.backend());
    }
    assert!(seen.contains(&"web-1".to_owned()) && seen.contains(&"web-2".to_owned()));

    let problems = w.update(table(vec![route(Some("b.test"), "/", vec![b2.backend()])]));
    assert!(problems.is_empty(), "{problems:?}");
    for _ in 0..30 {
        assert_eq!(get(w.http_addr(), "a.test", "/").await.status, 404);
        assert_eq!(get(w.http_addr(), "b.test", "/").await.backend(), "web-2");
    }
    let addr = w.http_addr();
    w.shutdown(Duration::from_secs(1)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
