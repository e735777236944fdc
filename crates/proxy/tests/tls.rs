//! HTTPS: certificates by SNI, HTTP/1.1 and HTTP/2 over TLS.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ingress::{Cert, Tls};
use proxy::Error;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, ServerName};
use support::*;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

struct Issued {
    cert: Cert,
    der: CertificateDer<'static>,
}

fn issue(name: &str, domains: &[&str]) -> Issued {
    let domains: Vec<String> = domains.iter().map(|d| d.to_string()).collect();
    let ck = rcgen::generate_simple_self_signed(domains.clone()).expect("rcgen");
    Issued {
        cert: Cert {
            name: name.into(),
            domains,
            chain_pem: ck.cert.pem(),
            key_pem: ck.signing_key.serialize_pem(),
        },
        der: ck.cert.der().clone(),
    }
}

/// A client trusting `roots`, offering `alpn`.
fn connector(roots: &[&Issued], alpn: &[&[u8]]) -> TlsConnector {
    let mut store = RootCertStore::empty();
    for r in roots {
        store.add(r.der.clone()).expect("root");
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(store)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(cfg))
}

async fn handshake(
    connector: &TlsConnector,
    addr: SocketAddr,
    sni: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned()).expect("server name");
    connector.connect(name, tcp).await
}

fn served_cert(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("a certificate")
        .clone()
        .into_owned()
}

/// The server ended the handshake (not the client's own verification).
fn assert_refused(r: std::io::Result<TlsStream<TcpStream>>) {
    let Err(e) = r else {
        panic!("the handshake succeeded");
    };
    let tls = e
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .unwrap_or_else(|| panic!("not a TLS error: {e}"));
    assert!(
        matches!(tls, rustls::Error::AlertReceived(_)),
        "refused by the client, not the server: {tls}"
    );
}

#[tokio::test]
async fn the_certificate_is_chosen_by_sni() {
    let a = issue("a", &["a.test"]);
    let b = issue("b-wild", &["*.b.test", "b.test"]);
    let web = EchoBackend::start("web-1").await;
    let mut t = table(vec![
        route(Some("a.test"), "/", vec![web.backend()]),
        route(Some("*.b.test"), "/", vec![web.backend()]),
    ]);
    t.certs = vec![a.cert.clone(), b.cert.clone()];
    let p = proxy(t).await;
    let client = connector(&[&a, &b], &[b"http/1.1"]);
    let addr = p.https_addr();

    let s = handshake(&client, addr, "a.test").await.expect("a.test");
    assert_eq!(served_cert(&s), a.der);
    let s = handshake(&client, addr, "www.b.test")
        .await
        .expect("www.b.test");
    assert_eq!(served_cert(&s), b.der);
    let s = handshake(&client, addr, "b.test").await.expect("b.test");
    assert_eq!(served_cert(&s), b.der);
    // A name no certificate serves: the server refuses the handshake.
    assert_refused(handshake(&client, addr, "c.test").await);
    assert_refused(handshake(&client, addr, "x.y.b.test").await);
    // Without SNI (a client asking for an IP address sends none): refused too.
    assert_refused(handshake(&client, addr, "127.0.0.1").await);

    // A certificate that does not parse, or whose key is another's, is skipped and
    // reported without its key; the others are still served.
    let mut broken = issue("broken", &["c.test"]).cert;
    broken.key_pem = a.cert.key_pem.clone();
    let garbage = Cert {
        name: "garbage".into(),
        domains: vec!["d.test".into()],
        chain_pem: "not a pem".into(),
        key_pem: "-----BEGIN PRIVATE KEY-----\nsecretsecret\n-----END PRIVATE KEY-----\n".into(),
    };
    let mut t = table(vec![route(Some("a.test"), "/", vec![web.backend()])]);
    t.certs = vec![broken, garbage, a.cert.clone()];
    let problems = p.update(t);
    let names: Vec<String> = problems
        .iter()
        .map(|e| match e {
            Error::Cert { name, .. } => name.clone(),
            other => panic!("unexpected {other}"),
        })
        .collect();
    assert_eq!(names, ["broken", "garbage"]);
    for e in &problems {
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(!e.to_string().contains("PRIVATE"), "{e}");
    }
    let s = handshake(&client, addr, "a.test").await.expect("a.test");
    assert_eq!(served_cert(&s), a.der);
    assert_refused(handshake(&client, addr, "www.b.test").await);
}

#[tokio::test]
async fn https_requests_reach_the_backend_over_http1_and_http2() {
    let shop = issue("shop", &["shop.test"]);
    let web = EchoBackend::start("web-1").await;
    let mut r = route(Some("shop.test"), "/", vec![web.backend()]);
    r.tls = Tls::Cert("shop".into());
    r.sticky = Some("srv".into());
    let mut t = table(vec![r]);
    t.certs = vec![shop.cert.clone()];
    let p = proxy(t).await;

    // HTTP/1.1.
    let client = connector(&[&shop], &[b"http/1.1"]);
    let s = handshake(&client, p.https_addr(), "shop.test")
        .await
        .expect("tls");
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .expect("http1");
    tokio::spawn(conn);
    let got = collect(
        sender
            .send_request(request("GET", "shop.test", "/secure?x=1", &[], ""))
            .await
            .expect("response"),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.got_header("x-forwarded-proto"), ["https"]);
    assert_eq!(
        got.got_header("forwarded"),
        ["for=127.0.0.1;proto=https;host=shop.test"]
    );
    // Over HTTPS the sticky cookie is Secure.
    let value = ingress::router::sticky_value(&web.backend());
    assert_eq!(
        got.header("set-cookie"),
        Some(format!("srv={value}; Path=/; HttpOnly; SameSite=Lax; Secure").as_str())
    );

    // HTTP/2, chosen by ALPN.
    let client = connector(&[&shop], &[b"h2", b"http/1.1"]);
    let s = handshake(&client, p.https_addr(), "shop.test")
        .await
        .expect("tls");
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .expect("h2");
    tokio::spawn(conn);
    let mut answers = Vec::new();
    // Several streams at once on the one connection.
    let mut pending = Vec::new();
    for i in 0..5 {
        let req = Request::builder()
            .method("POST")
            .uri(format!("https://shop.test/h2/{i}"))
            .body(Full::new(Bytes::from(format!("body {i}"))))
            .expect("request");
        pending.push(sender.send_request(req));
    }
    for f in pending {
        answers.push(collect(f.await.expect("response")).await);
    }
    for (i, got) in answers.iter().enumerate() {
        assert_eq!(got.status, 200);
        assert_eq!(got.echo()["uri"], format!("/h2/{i}"));
        assert_eq!(got.echo()["body"], format!("body {i}"));
        assert_eq!(got.echo()["version"], "HTTP/1.1");
        assert_eq!(got.got_header("host"), ["shop.test"]);
        assert_eq!(got.got_header("x-forwarded-proto"), ["https"]);
    }

    // ACME challenges are a plain-HTTP matter: on HTTPS the path is routed.
    let client = connector(&[&shop], &[b"http/1.1"]);
    let s = handshake(&client, p.https_addr(), "shop.test")
        .await
        .expect("tls");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .expect("http1");
    tokio::spawn(conn);
    let got = collect(
        sender
            .send_request(request(
                "GET",
                "shop.test",
                "/.well-known/acme-challenge/x",
                &[],
                "",
            ))
            .await
            .expect("response"),
    )
    .await;
    assert_eq!(got.backend(), "web-1");
}
