//! The agent's WebSocket session with the server: hello, desired state in, observed state and
//! heartbeats out, log streams and exec sessions (`exec.rs`) on request. Reconnects with exponential backoff (0.5 s doubling
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

/// Where and how to reach the server.
pub struct Link {
    /// `ws://` or `wss://` URL of the agent endpoint.
    pub url: String,
    /// The TLS configuration (trusting the pinned CA only) for `wss://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Where the registered marker is kept.
    pub data_dir: std::path::PathBuf,
    /// The host's credential (the agent made it; the server keeps its hash).
    pub credential: String,
    /// Whether the server has accepted the credential: then it is all the agent uses.
    pub registered: bool,
    /// The registration token, while the agent is not registered.
    pub token: Option<String>,
    /// The server's own agent: a refused credential means register again, not stop.
    pub reclaim: bool,
    /// Not registered, and the credential was refused: register it with the token.
    pub token_turn: bool,
}

/// What to do after the server refused what the agent authenticated with.
enum Next {
    /// Try again at once with the other (the token, after the credential).
    Again,
    End(End),
}

impl Link {
    /// What to authenticate with now: the credential, but the registration token when not
    /// registered and the credential was refused. (An agent not sure it is registered —
    /// its answer lost — tries its credential first: the token then never reaches an
    /// existing host.)
    fn auth(&self) -> &str {
        match &self.token {
            Some(t) if self.token_turn => t,
            _ => &self.credential,
        }
    }

    /// The server refused what `auth` gave: try the token next, or stop.
    fn refused(&mut self) -> Next {
        let with_token = self.token.is_some() && self.token_turn;
        if !with_token {
            if self.token.is_some() && (!self.registered || self.reclaim) {
                if self.registered {
                    self.registered = false;
                    let _ = std::fs::remove_file(self.data_dir.join(crate::REGISTERED_FILE));
                    tracing::warn!("this host's credential was refused; registering again");
                }
                self.token_turn = true;
                return Next::Again;
            }
            if self.registered || self.token.is_none() {
                return Next::End(End::Fatal(
                    "the server refused this host's credential: the host was removed (drover host rm); \
                     to join again, delete the agent's data directory and use a new registration token"
                        .to_string(),
                ));
            }
        }
        Next::End(End::Fatal(
            "the server refused the registration token: it was removed, has expired or is used up"
                .to_string(),
        ))
    }

    /// The server welcomed the agent: its credential is accepted from now on.
    fn welcomed(&mut self) -> Result<(), End> {
        if !self.registered {
            tls::write_private(&self.data_dir.join(crate::REGISTERED_FILE), b"")
                .map_err(|e| End::Fatal(format!("keeping the registration: {e}")))?;
            self.registered = true;
            self.token_turn = false;
            tracing::info!("registered: this host speaks with its own credential from now on");
        }
        Ok(())
    }
}

/// How long the agent waits for any message from the server before it gives up the
/// connection and dials again: three heartbeats (each is answered) and a second.
const SERVER_SILENT: Duration = Duration::from_secs(proto::HEARTBEAT_SECS * 3 + 1);

/// Heartbeats the server may leave unanswered (their send times are kept for the lease)
/// before the agent dials again.
const UNANSWERED_BEATS: usize = 8;

/// How a session ended.
enum End {
    /// Try again after a pause.
    Retry(String),
    /// Stop the agent, for this reason.
    Fatal(String),
}

impl From<String> for End {
    fn from(e: String) -> Self {
        End::Retry(e)
    }
}

/// Runs sessions with the server, reconnecting, until one ends for good; returns why.
pub async fn run(shared: Arc<Shared>, mut link: Link, hello: proto::Hello) -> String {
    let mut backoff = Duration::from_millis(500);
    loop {
        match once(&shared, &mut link, &hello).await {
            Ok(()) => {
                tracing::warn!("server closed the session; reconnecting");
                backoff = Duration::from_millis(500);
            }
            Err(End::Fatal(why)) => return why,
            Err(End::Retry(e)) => tracing::warn!("server session: {e}; retrying in {backoff:?}"),
        }
        tokio::time::sleep(backoff).await;
        // Capped low: after a server restart every agent must be back well within the
        // server's down-after (10 s by default), or its host would be failed over.
        backoff = (backoff * 2).min(Duration::from_secs(4));
    }
}

/// Any byte stream a WebSocket can run over: TCP, or TLS over TCP.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// An agent's WebSocket to the server.
pub type Ws = tokio_tungstenite::WebSocketStream<Box<dyn Io>>;

/// Why the WebSocket could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The server's chain does not hold the pinned CA.
    PinMismatch(String),
    /// The server refused the token or credential (HTTP 401/403).
    Refused,
    /// Anything else (unreachable, timed out...): worth retrying.
    Other(String),
}

/// Opens the agent WebSocket at `url` (`ws://` or `wss://`): TCP, TLS with `tls` (which
/// trusts the pinned CA only) for `wss://`, then the upgrade with `auth` as bearer token.
pub async fn open(
    url: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
    auth: &str,
) -> Result<Ws, OpenError> {
    let mut req = url
        .into_client_request()
        .map_err(|e| OpenError::Other(e.to_string()))?;
    let header = format!("Bearer {auth}")
        .parse()
        .map_err(|_| OpenError::Other("token is not a valid header value".into()))?;
    req.headers_mut().insert("Authorization", header);
    let uri = req.uri().clone();
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri
        .port_u16()
        .unwrap_or(if tls.is_some() { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| OpenError::Other(format!("connect {host}:{port}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = match tls {
        None => Box::new(tcp),
        Some(cfg) => {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| OpenError::Other(format!("server name {host:?}: {e}")))?;
            match tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(name, tcp)
                .await
            {
                Ok(s) => Box::new(s),
                Err(e) if e.to_string().contains(tls::PIN_MISMATCH) => {
                    return Err(OpenError::PinMismatch(format!(
                        "server {host}:{port}: {}: refusing to connect (check --ca-hash)",
                        tls::PIN_MISMATCH
                    )));
                }
                Err(e) => return Err(OpenError::Other(format!("TLS with {host}:{port}: {e}"))),
            }
        }
    };
    match tokio_tungstenite::client_async(req, io).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp))
            if resp.status() == 401 || resp.status() == 403 =>
        {
            Err(OpenError::Refused)
        }
        Err(e) => Err(OpenError::Other(e.to_string())),
    }
}

/// Opens the session's WebSocket; a pin mismatch ends the agent, a refusal may.
async fn connect(link: &mut Link) -> Result<Ws, End> {
    loop {
        match open(&link.url, link.tls.as_ref(), link.auth()).await {
            Ok(ws) => return Ok(ws),
            Err(OpenError::PinMismatch(why)) => return Err(End::Fatal(why)),
            Err(OpenError::Refused) => match link.refused() {
                Next::Again => continue,
                Next::End(end) => return Err(end),
            },
            Err(OpenError::Other(e)) => return Err(End::Retry(e)),
        }
    }
}

async fn once(shared: &Shared, link: &mut Link, hello: &proto::Hello) -> Result<(), End> {
    let ws = tokio::time::timeout(Duration::from_secs(10), connect(link))
        .await
        .map_err(|_| End::Retry("connect timed out".into()))??;
    let (mut sink, mut stream) = ws.split();
    let hello_sent = crate::worker::now_ms();
    send(&mut sink, &AgentMsg::Hello(hello.clone())).await?;
    match next_msg(&mut stream).await? {
        ServerMsg::Welcome {
            cluster_id,
            env,
            lease_ms,
        } => {
            link.welcomed()?;
            tracing::info!(%cluster_id, %env, "connected to server");
            shared
                .lease_ms
                .store(lease_ms, std::sync::atomic::Ordering::Relaxed);
            // No lease yet: it is renewed once this session's desired state has replaced
            // the last one (below).
            shared.cluster.send_replace(Some(cluster_id));
        }
        ServerMsg::Refused { reason } => {
            return Err(End::Retry(format!("server refused: {reason}")));
        }
        ServerMsg::Revoked { reason } => {
            return Err(End::Fatal(format!("server refused: {reason}")));
        }
        _ => return Err(End::Retry("unexpected first message from server".into())),
    }
    // Report what we have right away.
    let mut observed_rx = shared.observed.subscribe();
    observed_rx.mark_changed();
    let (log_tx, mut log_rx) = mpsc::channel::<AgentMsg>(256);
    let sampler = tokio::spawn(crate::stats::run(
        shared.cluster.borrow().clone().unwrap_or_default(),
        log_tx.clone(),
    ));
    let mut logs: HashMap<u64, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut execs = crate::exec::Execs::default();
    let mut heartbeat = tokio::time::interval(Duration::from_secs(proto::HEARTBEAT_SECS));
    let mut last_sent: Option<Observed> = None;
    let mut health_rx = match &shared.mesh {
        Some(m) => m.health.subscribe(),
        None => tokio::sync::watch::channel(Vec::new()).1,
    };
    // Until this session's first desired state arrives, the one kept from an earlier session
    // may be stale (a singleton moved away while this host was cut off): the lease is not
    // renewed before it is replaced, so a fenced agent stays fenced and never starts what
    // the server no longer wants here (found by the chaos suite's `cut` partition: the
    // singleton ran twice on healing).
    let mut synced = false;
    // The lease is renewed only by what proves the server heard this agent, from when the
    // agent sent it: the hello (with the session's first desired state) and each heartbeat
    // (with its answer; the server answers each, in order). A message from the server alone
    // proves nothing: a host whose packets to the server are lost still receives them (found
    // by the chaos suite's `blackhole-out` partition).
    let mut beats = std::collections::VecDeque::new();
    let mut heard = tokio::time::Instant::now();
    let result = loop {
        tokio::select! {
            () = tokio::time::sleep_until(heard + SERVER_SILENT) => {
                // The server answers every heartbeat: silence means packets from it are lost
                // (a one-way partition). A new connection comes back as soon as they flow,
                // where the old one would wait out TCP's retransmission backoff.
                break Err(End::Retry(format!("nothing from the server for {SERVER_SILENT:?}")));
            }
            incoming = stream.next() => {
                heard = tokio::time::Instant::now();
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None => break Ok(()),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break Err(End::Retry(e.to_string())),
                };
                match serde_json::from_str::<ServerMsg>(&text) {
                    Ok(ServerMsg::HeartbeatAck) => {
                        if let Some(sent) = beats.pop_front().filter(|_| synced) {
                            shared.contact(sent);
                        }
                    }
                    Ok(ServerMsg::Desired(d)) => {
                        shared.desired.send_replace(Some(d));
                        if !synced {
                            synced = true;
                            shared.contact(hello_sent);
                        }
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
                        let container = engine_ref(shared, container);
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
                    Ok(ServerMsg::Exec(mut start)) => {
                        start.container = engine_ref(shared, start.container);
                        let cluster = shared.cluster.borrow().clone().unwrap_or_default();
                        execs.start(cluster, start, log_tx.clone());
                    }
                    Ok(ServerMsg::ExecInput { req, data, eof }) => {
                        if let Err(why) = execs.input(req, data, eof) {
                            tracing::warn!("exec session: {why}");
                            // Never waits: the server also ends a session it overfed.
                            let _ = log_tx.try_send(AgentMsg::ExecEnd { req, exit_code: None, error: Some(why) });
                        }
                    }
                    Ok(ServerMsg::ExecResize { req, cols, rows }) => execs.resize(req, cols, rows),
                    Ok(ServerMsg::ExecClose { req }) => execs.close(req),
                    Ok(ServerMsg::Refused { reason }) => break Err(End::Retry(format!("server refused: {reason}"))),
                    Ok(ServerMsg::Revoked { reason }) => break Err(End::Fatal(format!("server: {reason}"))),
                    Ok(ServerMsg::NoMesh { reason }) => {
                        if let Some(mesh) = &shared.mesh {
                            mesh.set_off(&reason);
                            shared.wake.notify_one();
                        }
                    }
                    Ok(ServerMsg::Mesh(m)) => {
                        if let Some(mesh) = &shared.mesh {
                            mesh.set_state(m);
                            shared.wake.notify_one();
                        }
                    }
                    Ok(ServerMsg::Ingress(table)) => {
                        shared.ingress.send_replace(table);
                    }
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
                        break Err(End::Retry(e));
                    }
                    last_sent = Some(o);
                }
            }
            Ok(()) = health_rx.changed() => {
                let h = health_rx.borrow_and_update().clone();
                if let Err(e) = send(&mut sink, &AgentMsg::MeshHealth(h)).await { break Err(End::Retry(e)); }
            }
            Some(msg) = log_rx.recv() => {
                if let Err(e) = send(&mut sink, &msg).await { break Err(End::Retry(e)); }
            }
            _ = heartbeat.tick() => {
                if beats.len() >= UNANSWERED_BEATS {
                    // Heard from, but not answered: no lease, and no reason to keep more.
                    break Err(End::Retry(format!("the server answered none of {UNANSWERED_BEATS} heartbeats")));
                }
                beats.push_back(crate::worker::now_ms());
                if let Err(e) = send(&mut sink, &AgentMsg::Heartbeat).await { break Err(End::Retry(e)); }
            }
        }
    };
    for (_, h) in logs {
        h.abort();
    }
    sampler.abort();
    execs.close_all();
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
            let mut batch = LogBatch::default();
            loop {
                // Lines are sent in batches (see `LogBatch`): up to a tenth of a second late.
                let item = match batch.due() {
                    Some(at) => tokio::select! {
                        item = s.next() => item,
                        () = tokio::time::sleep_until(at) => {
                            if !send_log(&tx, req, batch.take()).await {
                                return;
                            }
                            continue;
                        }
                    },
                    None => s.next().await,
                };
                match item {
                    Some(Ok(data)) => {
                        if let Some(full) = batch.push(&data, tokio::time::Instant::now())
                            && !send_log(&tx, req, full).await
                        {
                            return;
                        }
                    }
                    Some(Err(e)) => {
                        error = Some(e.to_string());
                        break;
                    }
                    None => break,
                }
            }
            if !send_log(&tx, req, batch.take()).await {
                return;
            }
            error
        }
    };
    let _ = tx.send(AgentMsg::LogEnd { req, error }).await;
}

/// Sends a batch of a log stream (nothing when empty); false once the session is gone.
async fn send_log(tx: &mpsc::Sender<AgentMsg>, req: u64, data: String) -> bool {
    data.is_empty() || tx.send(AgentMsg::LogData { req, data }).await.is_ok()
}

/// A log stream's lines gathered into one message: sent when [`LOG_BATCH_BYTES`] are
/// there, or [`LOG_FLUSH`] after the first line waiting (as Nomad's log framer does). A
/// chatty container followed by many clients costs the session, the server and each
/// client's TLS a message per batch, not per line.
#[derive(Default)]
struct LogBatch {
    data: String,
    since: Option<tokio::time::Instant>,
}

const LOG_FLUSH: Duration = Duration::from_millis(100);
const LOG_BATCH_BYTES: usize = 32 * 1024;

impl LogBatch {
    /// Adds `data`, arrived at `now`: the batch to send when it is full.
    fn push(&mut self, data: &str, now: tokio::time::Instant) -> Option<String> {
        self.data.push_str(data);
        self.since.get_or_insert(now);
        (self.data.len() >= LOG_BATCH_BYTES).then(|| self.take())
    }

    /// When the waiting lines must go.
    fn due(&self) -> Option<tokio::time::Instant> {
        self.since.map(|t| t + LOG_FLUSH)
    }

    fn take(&mut self) -> String {
        self.since = None;
        std::mem::take(&mut self.data)
    }
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

/// The engine's id of the container Drover calls `name` (`<stack>-<service>-<slot>`, which
/// is not its engine name when the service sets `container_name`), as last observed; else
/// the name itself.
fn engine_ref(shared: &Shared, name: String) -> String {
    let observed = shared.observed.borrow();
    observed
        .as_ref()
        .and_then(|o| o.containers.iter().find(|c| c.name == name))
        .map_or(name, |c| c.id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(dir: &std::path::Path, registered: bool, token: bool, reclaim: bool) -> Link {
        Link {
            url: "ws://127.0.0.1:1/v1/agent/connect".into(),
            tls: None,
            data_dir: dir.to_path_buf(),
            credential: "drh_cred".into(),
            registered,
            token: token.then(|| "drv_token".to_string()),
            reclaim,
            token_turn: false,
        }
    }

    fn fatal(n: Next) -> Option<String> {
        match n {
            Next::End(End::Fatal(why)) => Some(why),
            _ => None,
        }
    }

    #[test]
    fn log_lines_go_in_batches_when_full_or_a_tenth_of_a_second_after_the_first() {
        let t0 = tokio::time::Instant::now();
        let mut b = LogBatch::default();
        assert_eq!(b.due(), None, "nothing waiting, nothing due");
        assert_eq!(b.push("a\n", t0), None);
        assert_eq!(b.push("b\n", t0 + Duration::from_millis(60)), None);
        assert_eq!(b.due(), Some(t0 + LOG_FLUSH), "due from the first line");
        assert_eq!(b.take(), "a\nb\n");
        assert_eq!(b.due(), None);
        let big = "x".repeat(LOG_BATCH_BYTES - 1);
        assert_eq!(b.push(&big, t0), None);
        assert_eq!(b.push("yz", t0).map(|d| d.len()), Some(LOG_BATCH_BYTES + 1));
        assert_eq!((b.due(), b.take()), (None, String::new()));
    }

    #[test]
    fn a_registered_agent_speaks_with_its_credential_and_stops_when_refused() {
        let dir = std::env::temp_dir().join(format!("drover-link-a-{}", std::process::id()));
        let mut l = link(&dir, true, true, false);
        assert_eq!(l.auth(), "drh_cred");
        let why = fatal(l.refused()).expect("stops");
        assert!(why.contains("host was removed"), "{why}");
    }

    #[test]
    fn a_new_agent_tries_its_credential_then_registers_it_with_the_token() {
        let dir = std::env::temp_dir().join(format!("drover-link-b-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        // The credential first: if an earlier registration went through and only its
        // answer was lost, that is all it takes.
        let mut l = link(&dir, false, true, false);
        assert_eq!(l.auth(), "drh_cred");
        assert!(matches!(l.refused(), Next::Again));
        assert_eq!(l.auth(), "drv_token");
        l.welcomed().map_err(|_| ()).expect("welcomed");
        assert!(l.registered && dir.join(crate::REGISTERED_FILE).exists());
        assert_eq!(l.auth(), "drh_cred");
        // Both refused: the token's refusal is what is reported.
        let mut l = link(&dir, false, true, false);
        assert!(matches!(l.refused(), Next::Again));
        let why = fatal(l.refused()).expect("stops");
        assert!(why.contains("registration token"), "{why}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_servers_own_agent_registers_again_when_its_host_was_removed() {
        let dir = std::env::temp_dir().join(format!("drover-link-c-{}", std::process::id()));
        let mut l = link(&dir, true, true, true);
        assert!(matches!(l.refused(), Next::Again));
        assert_eq!(l.auth(), "drv_token");
    }
}
