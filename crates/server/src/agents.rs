//! The server side of an agent's WebSocket session (`GET /v1/agent/connect`).
//!
//! The agent speaks first (`Hello`); the server registers or refreshes the host, answers
//! `Welcome`, places any pending slots, and sends the host its desired state. After that it
//! relays log streams and exec sessions and records every `Observed` report. A newer session for the same
//! host replaces the older one.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use proto::{AgentMsg, PROTOCOL_VERSION, ServerMsg};
use tokio::sync::mpsc;

use crate::auth::{AgentCaller, Caller};
use crate::logs::Delivery;
use crate::state::{AgentConn, AppState, Changes, now_ms};

/// Largest message an agent may send (an Observed report of a big host).
const MAX_AGENT_MSG: usize = 16 * 1024 * 1024;

pub async fn connect(
    State(state): State<Arc<AppState>>,
    AgentCaller(caller): AgentCaller,
    ws: WebSocketUpgrade,
) -> Response {
    // Small buffers: thousands of agents stay connected, mostly idle (the 128 KiB defaults
    // would cost 256 KiB per agent and zeroing on every read).
    ws.max_message_size(MAX_AGENT_MSG)
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .on_upgrade(move |socket| async move {
            // Sessions run on the agents' own runtime: a burst of thousands of desired-state
            // updates must not queue API requests behind it.
            let rt = agent_runtime();
            let _ = rt.spawn(session(state, caller, socket)).await;
        })
}

async fn session(state: Arc<AppState>, caller: Caller, socket: WebSocket) {
    let env = caller.env.clone();
    let (mut sink, mut stream) = socket.split();
    let first = match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => t.to_string(),
        _ => String::new(),
    };
    let Ok(AgentMsg::Hello(hello)) = serde_json::from_str::<AgentMsg>(&first) else {
        let reason = match other_protocol(&first) {
            Some(v) => format!("agent speaks protocol {v}, server speaks {PROTOCOL_VERSION}"),
            None => "expected a hello message first".to_string(),
        };
        let _ = send(&mut sink, &refused(&reason)).await;
        return;
    };
    if hello.protocol != PROTOCOL_VERSION {
        let _ = send(
            &mut sink,
            &refused(&format!(
                "agent speaks protocol {}, server speaks {PROTOCOL_VERSION}",
                hello.protocol
            )),
        )
        .await;
        return;
    }
    let host = hello.host_id.clone();
    let row = store::HostRow {
        id: host.clone(),
        env: env.clone(),
        name: hello.hostname.chars().take(256).collect(),
        labels: hello.labels.clone(),
        last_seen_ms: 0,
    };
    match admit(&state, &caller, &row, hello.credential_hash.as_deref()).await {
        Ok(()) => {}
        Err(Admission::Refused(msg)) => {
            let _ = send(&mut sink, &refused(&msg)).await;
            return;
        }
        Err(Admission::Revoked(msg)) => {
            tracing::warn!(host = %host, "agent refused: {msg}");
            let _ = send(&mut sink, &revoked(&msg)).await;
            return;
        }
    };
    let session_id = state.next_id();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let changes = Arc::new(Changes::default());
    let conn = AgentConn {
        session: session_id,
        env: env.clone(),
        tx,
        changes: changes.clone(),
    };
    // The hello counts as hearing the host, and the session begins between scheduling
    // passes: a pass that judged the host down has written its moves before this session's
    // first desired state is made (so a singleton moved away is not in it), and a later pass
    // sees the host up. Otherwise the host could start a singleton from a desired state made
    // just before the pass moved it (found by the chaos suite's partitions: a singleton on
    // two hosts right after healing).
    let registering = host.clone();
    state
        .blocking(move |s| {
            let _serial = s.serialise_writes();
            s.touch(&registering);
            s.register_agent(&registering, conn);
        })
        .await;
    // A host removed while this session was being admitted: end it like any other.
    if state.model().host(&host).is_none() {
        state.revoke_agent(
            &host,
            "this host was removed from the server (drover host rm)",
        );
    }
    tracing::info!(host = %host, name = %hello.hostname, "agent connected");
    let welcome = ServerMsg::Welcome {
        cluster_id: state.cluster_id.clone(),
        env: env.clone(),
        lease_ms: proto::LEASE_MS,
    };
    if send(&mut sink, &welcome).await.is_err() {
        state.unregister_agent(&host, session_id);
        return;
    }
    changes.all();
    state.ingress.session_started(&host);
    state.schedule_soon();
    if let Some(offer) = hello.mesh.clone() {
        join_mesh(&state, &env, &host, offer).await;
    }

    // The session ends once the agent has been silent for a while, before its host counts
    // as down: a host cut off one way (its packets dropped, ours still arriving) must get
    // nothing from a server that hears nothing from it. Otherwise every message renews its
    // singleton lease, and a desired state written by the failover (its replicas moved
    // away, the singleton started elsewhere) reaches it: found by the chaos suite's
    // `blackhole-out` partition (the singleton ran on two hosts).
    let silence = silence_limit(state.timing.down_after_ms);
    let mut heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(heard + silence) => {
                tracing::warn!(host = %host, "agent silent for {silence:?}, closing session");
                break;
            }
            () = changes.wake.notified() => {
                let Some(pending) = changes.take() else { continue };
                let msg = state.desired_msg(&host, pending);
                if send(&mut sink, &msg).await.is_err() {
                    break;
                }
            }
            out = rx.recv() => {
                let Some(msg) = out else { break };
                let last = matches!(msg, ServerMsg::Revoked { .. });
                if send(&mut sink, &msg).await.is_err() || last {
                    break;
                }
            }
            incoming = stream.next() => {
                heard = tokio::time::Instant::now();
                let msg = match incoming {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_))) => continue,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                };
                match serde_json::from_str::<AgentMsg>(&msg) {
                    Ok(AgentMsg::Observed(mut o)) => {
                        o.containers.retain(|c| c.env == env);
                        state.set_report(&host, o);
                        state.mesh.changed(&env);
                    }
                    Ok(AgentMsg::ObservedChanges(mut p)) => {
                        p.containers.retain(|c| c.env == env);
                        let relevant = !p.containers.is_empty() || !p.gone.is_empty() || p.networks.is_some();
                        let changed = p.containers.clone();
                        if !state.patch_report(&host, p) {
                            tracing::warn!(host = %host, "report changes before a full report");
                        }
                        if relevant {
                            state.mesh.changed(&env);
                        }
                        state.health_changed(&env, &changed);
                    }
                    Ok(AgentMsg::MeshHealth(h)) => state.mesh.set_health(&host, h),
                    Ok(AgentMsg::Stats(mut s)) => {
                        // A host speaks only for its own environment's containers.
                        s.containers.retain(|c| c.env == env);
                        state.monitor.record(&host, s);
                    }
                    Ok(AgentMsg::Heartbeat) => {
                        state.touch(&host);
                        if send(&mut sink, &ServerMsg::HeartbeatAck).await.is_err() {
                            break;
                        }
                    }
                    Ok(AgentMsg::LogData { req, data }) => {
                        if state.log_streams.deliver(&host, req, data) == Delivery::Dropped {
                            tracing::warn!(host = %host, "log reader too slow: stream dropped");
                            if send(&mut sink, &ServerMsg::CancelLogs { req }).await.is_err() {
                                break;
                            }
                        }
                    }
                    Ok(AgentMsg::LogEnd { req, error }) => state.log_streams.end(Some(&host), req, error),
                    Ok(AgentMsg::ExecStarted { req }) => {
                        if !exec_delivered(&state, &host, req, crate::exec::Event::Started)
                            && send(&mut sink, &ServerMsg::ExecClose { req }).await.is_err()
                        {
                            break;
                        }
                    }
                    Ok(AgentMsg::ExecOutput { req, stream, data }) => {
                        if !exec_delivered(&state, &host, req, crate::exec::Event::Output(stream, data))
                            && send(&mut sink, &ServerMsg::ExecClose { req }).await.is_err()
                        {
                            break;
                        }
                    }
                    Ok(AgentMsg::ExecAck { req, bytes }) => state.execs.ack(&host, req, bytes),
                    Ok(AgentMsg::ExecEnd { req, exit_code, error }) => {
                        state.execs.streams.finish(&host, req, crate::exec::Event::End { exit_code, error });
                    }
                    Ok(AgentMsg::Hello(_)) => {}
                    Err(e) => tracing::warn!(host = %host, "bad agent message: {e}"),
                }
            }
        }
    }
    state.unregister_agent(&host, session_id);
    state
        .log_streams
        .end_session(&host, session_id, "agent disconnected");
    state
        .execs
        .streams
        .end_session(&host, session_id, "the host's agent disconnected");
    tracing::info!(host = %host, "agent disconnected");
}

/// How long an agent may be silent before its session is closed: a second less than the
/// down-after time (so that nothing the failover decides reaches it), and never less than
/// a heartbeat and a second.
pub(crate) fn silence_limit(down_after_ms: u64) -> Duration {
    let floor = proto::HEARTBEAT_SECS * 1000 + 1000;
    Duration::from_millis(down_after_ms.saturating_sub(1000).max(floor))
}

/// Delivers an exec session's event to its reader: `false` when the reader was too slow
/// and the session was dropped (the agent should stop it).
fn exec_delivered(state: &AppState, host: &str, req: u64, event: crate::exec::Event) -> bool {
    if state.execs.streams.deliver(host, req, event) == Delivery::Dropped {
        tracing::warn!(host = %host, "exec reader too slow: session dropped");
        return false;
    }
    true
}

/// Gives the host its place on the environment's mesh (its index is kept in the store).
async fn join_mesh(state: &Arc<AppState>, env: &str, host: &str, offer: proto::MeshHello) {
    let (e, h) = (env.to_string(), host.to_string());
    let places = state
        .blocking(move |s| {
            let mut store = s.store();
            let env_index = store.environment_index(&e)?;
            let index = store.mesh_index(&h, mesh::MAX_HOSTS)?;
            Ok::<_, store::Error>((env_index, index))
        })
        .await;
    let joined = match places {
        Ok((Some(env_index), Some(index))) => {
            let still_here = || state.model().host(host).is_some() && state.is_connected(host);
            state
                .mesh
                .join(env, host, env_index, index, offer, still_here)
        }
        Ok((_, None)) => Err(format!(
            "environment {env} has {} hosts on its mesh already",
            mesh::MAX_HOSTS
        )),
        Ok((None, _)) => Err(format!("environment {env} not found")),
        Err(e) => Err(format!("store: {e}")),
    };
    if let Err(e) = joined {
        tracing::warn!(host = %host, "host not on the mesh: {e}");
        state.send_to(
            host,
            ServerMsg::NoMesh {
                reason: format!("no place on the mesh: {e}; this host's networks stay local"),
            },
        );
    }
}

enum Admission {
    /// Try again later.
    Refused(String),
    /// Never with this token or for this host.
    Revoked(String),
}

/// Decides whether `caller` may speak for host `row.id`, registering it when new. A host
/// credential speaks for its own host only; a registration token registers a new host and
/// gets the credential that host uses from then on (returned).
async fn admit(
    state: &Arc<AppState>,
    caller: &Caller,
    row: &store::HostRow,
    offered: Option<&str>,
) -> Result<(), Admission> {
    let store_error = |e: store::Error| {
        tracing::error!("registering host {}: {e}", row.id);
        Admission::Refused("server store error".into())
    };
    let decision = match access::admit(caller, &row.id, offered) {
        Ok(d) => d,
        Err(refused) => {
            if refused.is_impostor() {
                audit_impostor(state, caller, row).await;
            }
            return Err(Admission::Revoked(refused.to_string()));
        }
    };
    // Store work runs off the agents' thread: the store may be busy with a large
    // scheduling write, and no other host's session may wait for it.
    let r = row.clone();
    let outcome = match decision {
        access::Admit::Refresh { credential_hash } => state
            .blocking(move |s| {
                s.refresh_host(&r, &credential_hash, now_ms())
                    .map(|current| current.then_some(()).ok_or(store::Refusal::Removed))
            })
            .await
            .map_err(store_error)?,
        access::Admit::Register {
            credential_hash,
            reclaim,
        } => {
            let via = caller.token_hash.clone();
            state
                .blocking(move |s| {
                    s.register_new_host(&r, via.as_deref(), &credential_hash, reclaim)
                })
                .await
                .map_err(store_error)?
        }
    };
    match outcome {
        Ok(()) => Ok(()),
        Err(store::Refusal::Token) => Err(Admission::Revoked(
            "registration token has been removed, has expired or is used up".into(),
        )),
        Err(store::Refusal::Removed) => Err(Admission::Revoked(format!(
            "host {} was removed from the server (drover host rm): a host joins again only under a new id (a new agent data directory)",
            row.id
        ))),
        Err(store::Refusal::HostExists) => {
            audit_impostor(state, caller, row).await;
            Err(Admission::Revoked(format!(
                "host {} is already registered: only its own agent, with its credential, may speak for it",
                row.id
            )))
        }
    }
}

/// Records an attempt to speak for a host without its credential (off the agents' thread;
/// the first in a minute per host).
async fn audit_impostor(state: &Arc<AppState>, caller: &Caller, row: &store::HostRow) {
    if !state.keys.record_impostor(&row.id, now_ms()) {
        return;
    }
    tracing::warn!(host = %row.id, token = %caller.name, "agent tried to speak for a host it is not");
    let (env, actor, host) = (row.env.clone(), caller.name.clone(), row.id.clone());
    state
        .blocking(move |s| {
            let event = store::NewEvent {
                env: &env,
                actor: &actor,
                kind: "host.impostor",
                subject: &host,
                detail: "hello named an existing host without its credential: refused",
                source: "",
                result: "ok",
            };
            if let Err(e) = s.store().append_event(now_ms(), &event) {
                tracing::error!("audit: {e}");
            }
        })
        .await;
}

/// The protocol version a hello of another protocol version names, wherever it put it.
fn other_protocol(text: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get("protocol")
        .or_else(|| v.get("msg")?.get("protocol"))?
        .as_u64()
        .filter(|p| *p != u64::from(PROTOCOL_VERSION))
}

/// The runtime agent sessions run on: one worker thread of its own, started on first use,
/// living as long as the process.
fn agent_runtime() -> tokio::runtime::Handle {
    static HANDLE: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            let spawned = std::thread::Builder::new()
                .name("drover-agents".into())
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    match rt {
                        Ok(rt) => {
                            let _ = tx.send(Some(rt.handle().clone()));
                            rt.block_on(std::future::pending::<()>());
                        }
                        Err(e) => {
                            tracing::error!("agent runtime: {e}");
                            let _ = tx.send(None);
                        }
                    }
                });
            let handle = spawned.ok().and_then(|_| rx.recv().ok().flatten());
            // Without a runtime of their own, sessions share the server's.
            handle.unwrap_or_else(tokio::runtime::Handle::current)
        })
        .clone()
}

fn revoked(reason: &str) -> ServerMsg {
    ServerMsg::Revoked {
        reason: reason.to_string(),
    }
}

fn refused(reason: &str) -> ServerMsg {
    ServerMsg::Refused {
        reason: reason.to_string(),
    }
}

async fn send<S>(sink: &mut S, msg: &ServerMsg) -> Result<(), ()>
where
    S: futures_util::Sink<Message> + Unpin,
{
    let text = serde_json::to_string(msg).map_err(|_| ())?;
    sink.send(Message::Text(text.into())).await.map_err(|_| ())
}

#[cfg(test)]
mod silence_tests {
    #[test]
    fn a_silent_agent_is_dropped_before_its_host_is_down() {
        use std::time::Duration;
        assert_eq!(super::silence_limit(10_000), Duration::from_secs(9));
        assert_eq!(super::silence_limit(60_000), Duration::from_secs(59));
        // Never below a heartbeat period and a second.
        assert_eq!(super::silence_limit(2_000), Duration::from_secs(4));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellos_of_other_protocols_are_recognised() {
        assert_eq!(
            other_protocol(r#"{"type":"hello","protocol":1,"host_id":"x"}"#),
            Some(1)
        );
        assert_eq!(
            other_protocol(r#"{"type":"hello","msg":{"protocol":99}}"#),
            Some(99)
        );
        let current = format!(r#"{{"type":"hello","msg":{{"protocol":{PROTOCOL_VERSION}}}}}"#);
        assert_eq!(other_protocol(&current), None);
        assert_eq!(other_protocol("not json"), None);
    }
}
