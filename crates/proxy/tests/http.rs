//! Plain HTTP through the proxy to echo backends on loopback.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ingress::{Balance, Tls};
use support::*;
use tokio::net::TcpStream;

#[tokio::test]
async fn routes_by_host_then_longest_path() {
    let (api, web, wild, any) = tokio::join!(
        EchoBackend::start("api-1"),
        EchoBackend::start("web-1"),
        EchoBackend::start("wild-1"),
        EchoBackend::start("any-1"),
    );
    let p = proxy(table(vec![
        route(Some("shop.test"), "/", vec![web.backend()]),
        route(Some("shop.test"), "/api", vec![api.backend()]),
        route(Some("*.shop.test"), "/", vec![wild.backend()]),
        route(None, "/fallback", vec![any.backend()]),
    ]))
    .await;
    let a = p.http_addr();

    let cases = [
        ("shop.test", "/", "web-1"),
        ("shop.test", "/apix", "web-1"),
        ("shop.test", "/api", "api-1"),
        ("SHOP.test:8080", "/api/v1/items?x=1", "api-1"),
        ("eu.shop.test", "/api", "wild-1"),
        ("other.test", "/fallback/x", "any-1"),
    ];
    for (host, path, want) in cases {
        let got = get(a, host, path).await;
        assert_eq!(got.status, 200, "{host}{path}: {}", got.text());
        assert_eq!(got.backend(), want, "{host}{path}");
        // The backend gets the path and query as sent, and the client's Host.
        assert_eq!(got.echo()["uri"], path, "{host}{path}");
        assert_eq!(got.got_header("host"), [host]);
    }
}

#[tokio::test]
async fn unknown_hosts_are_404_and_routes_without_backends_503() {
    let web = EchoBackend::start("web-1").await;
    let p = proxy(table(vec![
        route(Some("shop.test"), "/app", vec![web.backend()]),
        route(Some("empty.test"), "/", vec![]),
        route(Some("*.test"), "/", vec![web.backend()]),
    ]))
    .await;
    let a = p.http_addr();
    let got = get(a, "nobody.example", "/").await;
    assert_eq!(got.status, 404);
    assert_eq!(got.text(), "drover: no route for this host and path\n");
    // The most specific host with routes decides alone: not the wildcard's catch-all.
    let got = get(a, "shop.test", "/other").await;
    assert_eq!(got.status, 404);
    let got = get(a, "empty.test", "/x").await;
    assert_eq!(got.status, 503);
    assert_eq!(got.text(), "drover: no backend of this service is ready\n");
    assert_eq!(web.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn round_robin_spreads_requests() {
    let (b1, b2, b3) = tokio::join!(
        EchoBackend::start("web-1"),
        EchoBackend::start("web-2"),
        EchoBackend::start("web-3"),
    );
    let p = proxy(table(vec![route(
        None,
        "/",
        vec![b1.backend(), b2.backend(), b3.backend()],
    )]))
    .await;
    let mut order = Vec::new();
    for _ in 0..9 {
        order.push(get(p.http_addr(), "a.test", "/").await.backend());
    }
    // In turn, each once per round.
    assert_eq!(order[0..3], order[3..6]);
    assert_eq!(order[0..3], order[6..9]);
    let mut round = order[0..3].to_vec();
    round.sort();
    assert_eq!(round, ["web-1", "web-2", "web-3"]);
}

#[tokio::test]
async fn least_conn_avoids_the_busy_backend() {
    let (b1, b2) = tokio::join!(EchoBackend::start("web-1"), EchoBackend::start("web-2"));
    let mut r = route(None, "/", vec![b1.backend(), b2.backend()]);
    r.balance = Balance::LeastConn;
    let p = proxy(table(vec![r])).await;
    let a = p.http_addr();
    let slow = tokio::spawn(async move { get(a, "a.test", "/slow/800").await });
    // The first request goes to the first backend (both idle, round-robin start).
    b1.wait_started(1).await;
    let mut quick = Vec::new();
    for _ in 0..6 {
        quick.push(get(a, "a.test", "/").await.backend());
    }
    let slow = slow.await.expect("slow request");
    assert_eq!(slow.status, 200);
    let busy = slow.backend();
    assert!(
        quick.iter().all(|b| *b != busy),
        "least_conn sent quick requests to the busy {busy}: {quick:?}"
    );
    // Once it is done, both take requests again.
    let mut after = Vec::new();
    for _ in 0..4 {
        after.push(get(a, "a.test", "/").await.backend());
    }
    assert!(after.contains(&busy), "{after:?}");
}

#[tokio::test]
async fn sticky_cookie_keeps_a_client_on_its_backend() {
    let (b1, b2, b3) = tokio::join!(
        EchoBackend::start("web-1"),
        EchoBackend::start("web-2"),
        EchoBackend::start("web-3"),
    );
    let mut r = route(None, "/", vec![b1.backend(), b2.backend(), b3.backend()]);
    r.sticky = Some("drover_srv".into());
    let p = proxy(table(vec![r])).await;
    let a = p.http_addr();
    // The cookie names a backend by a hash of its container's name.
    let value = |name: &str| {
        let b = [&b1, &b2, &b3]
            .into_iter()
            .find(|b| b.name == name)
            .expect("a backend");
        ingress::router::sticky_value(&b.backend())
    };

    let first = get(a, "a.test", "/").await;
    let chosen = first.backend();
    let v = value(&chosen);
    assert_eq!(
        first.header("set-cookie"),
        Some(format!("drover_srv={v}; Path=/; HttpOnly; SameSite=Lax").as_str())
    );
    let cookie = format!("theme=dark; drover_srv={v}");
    for _ in 0..6 {
        let got = send(a, request("GET", "a.test", "/", &[("cookie", &cookie)], "")).await;
        assert_eq!(got.backend(), chosen);
        assert_eq!(
            got.header("set-cookie"),
            None,
            "no new cookie while it holds"
        );
    }
    // A cookie naming a backend that is gone: another one, and a new cookie.
    let got = send(
        a,
        request("GET", "a.test", "/", &[("cookie", "drover_srv=web-9")], ""),
    )
    .await;
    let again = value(&got.backend());
    assert_eq!(
        got.header("set-cookie"),
        Some(format!("drover_srv={again}; Path=/; HttpOnly; SameSite=Lax").as_str())
    );
    // Without stickiness, requests with the cookie are spread.
    let p2 = proxy(table(vec![route(
        None,
        "/",
        vec![b1.backend(), b2.backend()],
    )]))
    .await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let got = send(
            p2.http_addr(),
            request("GET", "a.test", "/", &[("cookie", &cookie)], ""),
        )
        .await;
        assert_eq!(got.header("set-cookie"), None);
        seen.insert(got.backend());
    }
    assert_eq!(seen.len(), 2);
}

#[tokio::test]
async fn forwarding_headers_reach_the_backend_and_hop_by_hop_ones_do_not() {
    let web = EchoBackend::start("web-1").await;
    let p = proxy(table(vec![route(None, "/", vec![web.backend()])])).await;
    let got = send(
        p.http_addr(),
        request(
            "GET",
            "shop.test",
            "/",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
                ("forwarded", "for=203.0.113.9"),
                ("connection", "keep-alive, x-hop"),
                ("x-hop", "1"),
                ("keep-alive", "timeout=5"),
                ("proxy-authorization", "Basic eDp5"),
                ("te", "trailers"),
                ("x-end-to-end", "kept"),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.got_header("x-forwarded-for"),
        ["203.0.113.9, 127.0.0.1"]
    );
    assert_eq!(got.got_header("x-forwarded-proto"), ["http"]);
    assert_eq!(got.got_header("x-forwarded-host"), ["shop.test"]);
    // Forwarded holds this hop's element only (a client's own is not vouched for).
    assert_eq!(
        got.got_header("forwarded"),
        ["for=127.0.0.1;proto=http;host=shop.test"]
    );
    assert_eq!(got.got_header("x-end-to-end"), ["kept"]);
    for hop in ["x-hop", "keep-alive", "proxy-authorization", "te"] {
        assert!(got.got_header(hop).is_empty(), "{hop} was forwarded");
    }
    // The connection header the backend sees is the proxy's own (keep-alive) if any.
    assert!(
        got.got_header("connection")
            .iter()
            .all(|v| !v.contains("x-hop")),
        "{:?}",
        got.got_header("connection")
    );

    // A first client without any: the proxy's alone.
    let got = get(p.http_addr(), "shop.test:8080", "/").await;
    assert_eq!(got.got_header("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(got.got_header("x-forwarded-host"), ["shop.test:8080"]);
    assert_eq!(
        got.got_header("forwarded"),
        ["for=127.0.0.1;proto=http;host=\"shop.test:8080\""]
    );
}

#[tokio::test]
async fn idempotent_requests_are_retried_on_another_backend() {
    let web = EchoBackend::start("web-1").await;
    let dead = dead_port().await;
    // The dead backend first: round-robin starts there.
    let p = proxy(table(vec![route(
        None,
        "/",
        vec![dead_backend(dead), web.backend()],
    )]))
    .await;
    let a = p.http_addr();
    for method in [
        "GET", "GET", "HEAD", "DELETE", "GET", "OPTIONS", "GET", "PUT",
    ] {
        let got = send(a, request(method, "a.test", "/", &[], "")).await;
        assert_eq!(got.status, 200, "{method}: {}", got.text());
        if method != "HEAD" {
            assert_eq!(got.backend(), "web-1");
        }
    }
    // Not idempotent, or with a body: no second try. Every other request meets the dead one.
    let mut statuses = Vec::new();
    for (method, body) in [
        ("POST", "x"),
        ("POST", "x"),
        ("PUT", "x"),
        ("PUT", "x"),
        ("PATCH", ""),
        ("PATCH", ""),
    ] {
        let got = send(a, request(method, "a.test", "/", &[], body)).await;
        if got.status == 502 {
            assert_eq!(got.text(), "drover: the backend did not answer\n");
        } else {
            assert_eq!(got.backend(), "web-1");
        }
        statuses.push(got.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 502).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );

    // No backend answering at all: 502.
    p.update(table(vec![route(None, "/", vec![dead_backend(dead)])]));
    assert_eq!(get(a, "a.test", "/").await.status, 502);
}

#[tokio::test]
async fn an_update_lets_requests_in_flight_finish() {
    let (old, new) = tokio::join!(EchoBackend::start("old-1"), EchoBackend::start("new-1"));
    let p = proxy(table(vec![route(None, "/", vec![old.backend()])])).await;
    let a = p.http_addr();
    // A keep-alive connection opened before the update too.
    let stream = TcpStream::connect(a).await.expect("connect");
    let (mut kept, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let got = collect(
        kept.send_request(request("GET", "a.test", "/", &[], ""))
            .await
            .expect("response"),
    )
    .await;
    assert_eq!(got.backend(), "old-1");

    let slow = tokio::spawn(async move { get(a, "a.test", "/slow/600").await });
    old.wait_started(2).await;
    assert!(
        p.update(table(vec![route(None, "/", vec![new.backend()])]))
            .is_empty()
    );

    let next = get(a, "a.test", "/").await;
    assert_eq!(next.backend(), "new-1");
    let slow = slow.await.expect("slow");
    assert_eq!(slow.status, 200);
    assert_eq!(
        slow.backend(),
        "old-1",
        "the request in flight finished where it was"
    );
    // The connection open across the update goes on, to the new backend.
    let got = collect(
        kept.send_request(request("GET", "a.test", "/", &[], ""))
            .await
            .expect("response"),
    )
    .await;
    assert_eq!(got.backend(), "new-1");
}

#[tokio::test]
async fn plain_http_to_a_tls_route_is_redirected() {
    let web = EchoBackend::start("web-1").await;
    let mut r = route(Some("shop.test"), "/", vec![web.backend()]);
    r.tls = Tls::Cert("shop".into());
    let p = proxy(table(vec![
        r,
        route(Some("plain.test"), "/", vec![web.backend()]),
    ]))
    .await;
    let got = get(p.http_addr(), "shop.test:8080", "/cart?id=7&x=%20").await;
    assert_eq!(got.status, 308);
    let port = p.https_addr().port();
    assert_eq!(
        got.header("location"),
        Some(format!("https://shop.test:{port}/cart?id=7&x=%20").as_str())
    );
    assert_eq!(web.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    // A route without TLS is served on plain HTTP.
    assert_eq!(
        get(p.http_addr(), "plain.test", "/").await.backend(),
        "web-1"
    );
}

#[tokio::test]
async fn acme_challenges_are_answered_without_any_route() {
    let mut t = table(vec![]);
    t.challenges
        .insert("tok-123".into(), "tok-123.thumbprint".into());
    let p = proxy(t.clone()).await;
    let got = get(
        p.http_addr(),
        "any.test",
        "/.well-known/acme-challenge/tok-123",
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "tok-123.thumbprint");
    assert_eq!(got.header("content-type"), Some("text/plain"));
    let got = get(
        p.http_addr(),
        "any.test",
        "/.well-known/acme-challenge/other",
    )
    .await;
    assert_eq!(got.status, 404);

    // Before a route's redirect too.
    let web = EchoBackend::start("web-1").await;
    let mut r = route(Some("shop.test"), "/", vec![web.backend()]);
    r.tls = Tls::Cert("shop".into());
    t.http = vec![r];
    p.update(t);
    let got = get(
        p.http_addr(),
        "shop.test",
        "/.well-known/acme-challenge/tok-123",
    )
    .await;
    assert_eq!(
        (got.status, got.text().as_str()),
        (200, "tok-123.thumbprint")
    );
}

#[tokio::test]
async fn h2c_with_prior_knowledge() {
    let web = EchoBackend::start("web-1").await;
    let p = proxy(table(vec![route(
        Some("shop.test"),
        "/",
        vec![web.backend()],
    )]))
    .await;
    let stream = TcpStream::connect(p.http_addr()).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = Request::builder()
        .uri("http://shop.test/h2?q=1")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let got = collect(sender.send_request(req).await.expect("response")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.backend(), "web-1");
    assert_eq!(got.echo()["uri"], "/h2?q=1");
    // The backend speaks HTTP/1.1 and gets the authority as Host.
    assert_eq!(got.echo()["version"], "HTTP/1.1");
    assert_eq!(got.got_header("host"), ["shop.test"]);
    // HTTP/2's cookie fields become the one header HTTP/1.1 has.
    assert_eq!(got.got_header("cookie"), ["a=1; b=2"]);
}

#[tokio::test]
async fn a_request_body_is_relayed() {
    let web = EchoBackend::start("web-1").await;
    let p = proxy(table(vec![route(None, "/", vec![web.backend()])])).await;
    let body = "x".repeat(300_000);
    let got = send(
        p.http_addr(),
        request("POST", "a.test", "/upload", &[], &body),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.echo()["body"].as_str().map(str::len), Some(300_000));
}

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish() {
    let web = EchoBackend::start("web-1").await;
    let p = proxy(table(vec![route(None, "/", vec![web.backend()])])).await;
    let a = p.http_addr();
    let slow = tokio::spawn(async move { get(a, "a.test", "/slow/400").await });
    web.wait_started(1).await;
    let started = std::time::Instant::now();
    p.shutdown(Duration::from_secs(5)).await;
    let waited = started.elapsed();
    let slow = slow.await.expect("slow");
    assert_eq!(slow.status, 200);
    assert_eq!(slow.backend(), "web-1");
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    assert!(waited < Duration::from_secs(4), "{waited:?}");
    assert!(TcpStream::connect(a).await.is_err(), "still listening");
}

#[tokio::test]
async fn backend_connections_are_kept_alive_and_reused() {
    let web = EchoBackend::start("web-1").await;
    let p = proxy(table(vec![route(None, "/", vec![web.backend()])])).await;
    for i in 0..20 {
        let got = if i % 2 == 0 {
            get(p.http_addr(), "a.test", "/").await
        } else {
            send(p.http_addr(), request("POST", "a.test", "/", &[], "body")).await
        };
        assert_eq!(got.status, 200);
    }
    // HEAD and 0-length answers give their connection back too.
    for _ in 0..3 {
        let got = send(p.http_addr(), request("HEAD", "a.test", "/", &[], "")).await;
        assert_eq!(got.status, 200);
    }
    let got = get(p.http_addr(), "a.test", "/").await;
    assert_eq!(got.status, 200);
    assert_eq!(web.connections.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A backend that answers one request per connection and closes it, without saying so.
async fn one_shot_backend() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind((LOCALHOST, 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn kept_alive_connections_the_backend_closed_are_not_a_failure() {
    let addr = one_shot_backend().await;
    let p = proxy(table(vec![route(None, "/", vec![dead_backend(addr)])])).await;
    for i in 0..30 {
        let (method, body) = if i % 3 == 0 {
            ("POST", "x")
        } else {
            ("GET", "")
        };
        let got = send(p.http_addr(), request(method, "a.test", "/", &[], body)).await;
        assert_eq!(
            (got.status, got.text().as_str()),
            (200, "ok"),
            "request {i}"
        );
    }
}
