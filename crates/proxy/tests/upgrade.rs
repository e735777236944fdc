//! WebSocket (an HTTP/1.1 upgrade) relayed both ways.

mod support;

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// A WebSocket backend echoing every message with its name in front, reporting each
/// handshake's `X-Forwarded-For`.
// tungstenite's handshake callback returns its large error response by value.
#[allow(clippy::result_large_err)]
async fn ws_backend(name: &'static str) -> (SocketAddr, mpsc::UnboundedReceiver<Option<String>>) {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let cb = |req: &Request, resp: Response| {
                    let xff = req
                        .headers()
                        .get("x-forwarded-for")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let _ = tx.send(xff);
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, cb).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let reply = match msg {
                        Message::Text(t) => Message::text(format!("{name}: {}", t.as_str())),
                        Message::Binary(b) => Message::binary(b),
                        Message::Close(_) => break,
                        _ => continue,
                    };
                    if ws.send(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn websocket_is_relayed_both_ways() {
    let (addr, mut seen) = ws_backend("ws-1").await;
    let backend = ingress::Backend {
        container: "ws-1".into(),
        host: "h1".into(),
        addr,
    };
    let p = proxy(table(vec![route(Some("chat.test"), "/", vec![backend])])).await;

    let stream = TcpStream::connect(p.http_addr()).await.expect("connect");
    let (mut ws, resp) = tokio_tungstenite::client_async("ws://chat.test/socket", stream)
        .await
        .expect("websocket handshake through the proxy");
    assert_eq!(resp.status(), 101);
    assert_eq!(seen.recv().await.flatten().as_deref(), Some("127.0.0.1"));

    for i in 0..3 {
        ws.send(Message::text(format!("hello {i}")))
            .await
            .expect("send");
        let got = ws.next().await.expect("a message").expect("ok");
        assert_eq!(got.to_text().expect("text"), format!("ws-1: hello {i}"));
    }
    let blob: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    ws.send(Message::binary(blob.clone())).await.expect("send");
    let got = ws.next().await.expect("a message").expect("ok");
    assert_eq!(got.into_data().as_ref(), blob.as_slice());
    ws.close(None).await.expect("close");

    // The upgraded connection outlives a table without its route.
    let stream = TcpStream::connect(p.http_addr()).await.expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async("ws://chat.test/socket", stream)
        .await
        .expect("handshake");
    p.update(table(vec![]));
    ws.send(Message::text("still here")).await.expect("send");
    let got = ws.next().await.expect("a message").expect("ok");
    assert_eq!(got.to_text().expect("text"), "ws-1: still here");
}
