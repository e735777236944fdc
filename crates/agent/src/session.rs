//! The agent's WebSocket session with the server: hello, desired state in, observed state and
//! heartbeats out, log streams on request. Reconnects with exponential backoff (0.5 s doubling
//! to 4 s, reset after a successful welcome).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use proto::{AgentMsg, Observed, ServerMsg};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::Shared;

pub async fn run(shared: Arc<Shared>, url: String, token: String, hello: proto::Hello) {
    let mut backoff = Duration::from_millis(500);
    loop {
        match once(&shared, &url, &token, &hello).await {
            Ok(()) => {
                tracing::warn!("server closed the session; reconnecting");
                backoff = Duration::from_millis(500);
            }
            Err(e) => tracing::warn!("server session: {e}; retrying in {backoff:?}"),
        }
        tokio::time::sleep(backoff).await;
        // Capped low: after a server restart every agent must be back well within the
        // server's down-after (10 s by default), or its host would be failed over.
        backoff = (backoff * 2).min(Duration::from_secs(4));
    }
}

async fn once(shared: &Shared, url: &str, token: &str, hello: &proto::Hello) -> Result<(), String> {
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    let auth = format!("Bearer {token}")
        .parse()
        .map_err(|_| "token is not a valid header value".to_string())?;
    req.headers_mut().insert("Authorization", auth);
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let (mut sink, mut stream) = ws.split();
    send(&mut sink, &AgentMsg::Hello(hello.clone())).await?;
    match next_msg(&mut stream).await? {
        ServerMsg::Welcome {
            cluster_id,
            env,
            lease_ms,
        } => {
            tracing::info!(%cluster_id, %env, "connected to server");
            shared
                .lease_ms
                .store(lease_ms, std::sync::atomic::Ordering::Relaxed);
            shared.contact();
            shared.cluster.send_replace(Some(cluster_id));
        }
        ServerMsg::Refused { reason } => return Err(format!("server refused: {reason}")),
        _ => return Err("unexpected first message from server".into()),
    }
    // Report what we have right away.
    let mut observed_rx = shared.observed.subscribe();
    observed_rx.mark_changed();
    let (log_tx, mut log_rx) = mpsc::channel::<AgentMsg>(256);
    let mut logs: HashMap<u64, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut heartbeat = tokio::time::interval(Duration::from_secs(proto::HEARTBEAT_SECS));
    let mut last_sent: Option<Observed> = None;
    let result = loop {
        tokio::select! {
            incoming = stream.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None => break Ok(()),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break Err(e.to_string()),
                };
                shared.contact();
                match serde_json::from_str::<ServerMsg>(&text) {
                    Ok(ServerMsg::HeartbeatAck) => {}
                    Ok(ServerMsg::Desired(d)) => {
                        shared.desired.send_replace(Some(d));
                        shared.wake.notify_one();
                    }
                    Ok(ServerMsg::DesiredStacks(patch)) => {
                        // Patches follow a full state within the session, so there is one.
                        shared.desired.send_modify(|d| {
                            if let Some(d) = d {
                                d.apply(patch);
                            }
                        });
                        shared.wake.notify_one();
                    }
                    Ok(ServerMsg::Logs { req, container, follow, tail }) => {
                        let tx = log_tx.clone();
                        let cluster = shared.cluster.borrow().clone().unwrap_or_default();
                        logs.retain(|_, h| !h.is_finished());
                        logs.insert(req, tokio::spawn(stream_logs(cluster, req, container, follow, tail, tx)));
                    }
                    Ok(ServerMsg::CancelLogs { req }) => {
                        if let Some(h) = logs.remove(&req) {
                            h.abort();
                        }
                    }
                    Ok(ServerMsg::Refused { reason }) => break Err(format!("server refused: {reason}")),
                    Ok(ServerMsg::Welcome { .. }) => {}
                    Err(e) => tracing::warn!("bad server message: {e}"),
                }
            }
            changed = observed_rx.changed() => {
                if changed.is_err() { break Ok(()); }
                let o = observed_rx.borrow_and_update().clone();
                if let Some(o) = o {
                    // The first report of a session is whole; later ones carry changes.
                    let msg = match &last_sent {
                        Some(prev) => AgentMsg::ObservedChanges(o.changes_since(prev)),
                        None => AgentMsg::Observed(o.clone()),
                    };
                    if let Err(e) = send(&mut sink, &msg).await {
                        break Err(e);
                    }
                    last_sent = Some(o);
                }
            }
            Some(msg) = log_rx.recv() => {
                if let Err(e) = send(&mut sink, &msg).await { break Err(e); }
            }
            _ = heartbeat.tick() => {
                if let Err(e) = send(&mut sink, &AgentMsg::Heartbeat).await { break Err(e); }
            }
        }
    };
    for (_, h) in logs {
        h.abort();
    }
    result
}

async fn stream_logs(
    cluster: String,
    req: u64,
    container: String,
    follow: bool,
    tail: Option<u64>,
    tx: mpsc::Sender<AgentMsg>,
) {
    let error = match engine::Engine::connect(&cluster).await {
        Err(e) => Some(e.to_string()),
        Ok(engine) => {
            let mut s = std::pin::pin!(engine.logs(&container, follow, tail));
            let mut error = None;
            while let Some(item) = s.next().await {
                match item {
                    Ok(data) => {
                        if tx.send(AgentMsg::LogData { req, data }).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        error = Some(e.to_string());
                        break;
                    }
                }
            }
            error
        }
    };
    let _ = tx.send(AgentMsg::LogEnd { req, error }).await;
}

async fn next_msg<S>(stream: &mut S) -> Result<ServerMsg, String>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
            Err(_) => return Err("server did not answer hello".into()),
            Ok(None) => return Err("server closed the connection".into()),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(Message::Text(t)))) => {
                return serde_json::from_str(&t).map_err(|e| format!("bad server message: {e}"));
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

async fn send<S>(sink: &mut S, msg: &AgentMsg) -> Result<(), String>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    let text = serde_json::to_string(msg).map_err(|e| e.to_string())?;
    sink.send(Message::Text(text.into()))
        .await
        .map_err(|e| e.to_string())
}
