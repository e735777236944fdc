//! `GET /v1/environments/{env}/containers/{name}/exec`: a command run in a container on
//! whichever host runs it, over a WebSocket (the wire format is in `api_types::exec`).
//!
//! Allowed to callers that may change the environment (`access::Class::Exec`), refused
//! before the upgrade when the container is unknown or its host is not connected, and
//! audited (`container.exec`: the command line, never its output or environment values)
//! before the command is sent to the host's agent.

use std::sync::Arc;
use std::time::Duration;

use api_types::{ExecControl, ExecEvent, ExecRequest};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use proto::ServerMsg;

use crate::api::check_env;
use crate::api::containers::host_of;
use crate::auth::{Caller, User};
use crate::error::ApiError;
use crate::exec::{Event, end_event};
use crate::state::{AppState, Audit, now_ms};

/// Largest message a client may send (the request, a chunk of input).
const MAX_CLIENT_MSG: usize = 256 * 1024;
/// Input goes to the agent in pieces of at most this.
const INPUT_CHUNK: usize = 64 * 1024;
/// How long the client has to send its request, and the agent to start the command.
const START_TIMEOUT: Duration = Duration::from_secs(10);

#[utoipa::path(get, path = "/v1/environments/{env}/containers/{name}/exec",
    params(("env" = String, Path, description = "environment name"), ("name" = String, Path, description = "container name, as `drover ps` shows it")),
    responses(
        (status = 101, description = "WebSocket: first message an ExecRequest (JSON); then binary frames of input (client) and output (server, first byte 1 stdout or 2 stderr), ExecControl text frames from the client, and one ExecEvent text frame last"),
        (status = 403, body = api_types::ErrorBody),
        (status = 404, body = api_types::ErrorBody),
        (status = 503, body = api_types::ErrorBody)))]
pub async fn exec(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, name)): Path<(String, String)>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // Who may, and whether there is anything to run in, before what the request looks like.
    check_env(&state, &caller, &env)?;
    let host = host_of(&state, &env, &name)?;
    if !state.is_connected(&host) {
        return Err(ApiError::unavailable(format!(
            "host {host} of container '{name}' is not connected"
        )));
    }
    let ws = ws.map_err(|e| {
        ApiError::new(
            e.status(),
            "websocket_required",
            format!("this route is a WebSocket: {}", e.body_text()),
        )
    })?;
    let target = Target {
        env,
        name,
        host,
        caller,
    };
    Ok(ws
        // A browser offers this beside its token (`auth::token_of`); it must be selected.
        .protocols([crate::auth::EXEC_PROTOCOL])
        .max_message_size(MAX_CLIENT_MSG)
        .max_frame_size(MAX_CLIENT_MSG)
        .on_upgrade(move |socket| relay(state, target, socket)))
}

struct Target {
    env: String,
    name: String,
    host: String,
    caller: Caller,
}

/// Ends the agent's side when the client's side ends, however it does.
struct CloseOnDrop {
    state: Arc<AppState>,
    host: String,
    req: u64,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.state.execs.close(self.req);
        self.state
            .send_to(&self.host, ServerMsg::ExecClose { req: self.req });
    }
}

fn error(code: &str, message: impl Into<String>) -> ExecEvent {
    ExecEvent::Error {
        code: code.into(),
        message: message.into(),
        field: None,
    }
}

async fn send_event<S>(tx: &mut S, event: &ExecEvent)
where
    S: futures_util::Sink<Message> + Unpin,
{
    if let Ok(text) = serde_json::to_string(event) {
        let _ = tx.send(Message::Text(text.into())).await;
    }
    let _ = tx.close().await;
}

/// The client's first message: a valid request, or the event that says what is wrong.
async fn request(
    rx: &mut futures_util::stream::SplitStream<WebSocket>,
) -> Result<ExecRequest, ExecEvent> {
    let first = match tokio::time::timeout(START_TIMEOUT, rx.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => t,
        Err(_) => return Err(error("invalid_request", "no request within 10 s")),
        _ => {
            return Err(error(
                "invalid_request",
                "the first message must be the request, as JSON text",
            ));
        }
    };
    let req: ExecRequest = serde_json::from_str(&first)
        .map_err(|e| error("invalid_request", format!("invalid request: {e}")))?;
    req.check().map_err(|e| ExecEvent::Error {
        code: "invalid_request".into(),
        message: format!("{}: {}", e.field, e.message),
        field: Some(e.field),
    })?;
    Ok(req)
}

/// What the audit log keeps of a request: the command line and how it ran, never the
/// environment's values (they may be secrets) nor the output.
fn audit_detail(req: &ExecRequest, host: &str) -> String {
    let mut how = Vec::new();
    if req.tty {
        how.push("tty".to_string());
    }
    if req.stdin {
        how.push("stdin".to_string());
    }
    if let Some(u) = &req.user {
        how.push(format!("user {u}"));
    }
    if let Some(w) = &req.workdir {
        how.push(format!("workdir {w}"));
    }
    if !req.env.is_empty() {
        let keys: Vec<&str> = req
            .env
            .iter()
            .map(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k))
            .collect();
        how.push(format!("env {}", keys.join(" ")));
    }
    how.push(format!("on host {host}"));
    format!(
        "{} ({})",
        api_types::exec::command_line(&req.cmd),
        how.join(", ")
    )
}

async fn relay(state: Arc<AppState>, target: Target, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let req = match request(&mut rx).await {
        Ok(r) => r,
        Err(e) => return send_event(&mut tx, &e).await,
    };
    let audit = Audit::by(
        &target.caller,
        &target.env,
        "container.exec",
        &target.name,
        audit_detail(&req, &target.host),
    );
    let recorded = state
        .blocking(move |s| s.store().append_event(now_ms(), &audit.event()))
        .await;
    if let Err(e) = recorded {
        tracing::error!("audit: {e}");
        return send_event(&mut tx, &error("internal", "internal store error")).await;
    }
    let host = target.host.clone();
    let start = |id| {
        ServerMsg::Exec(proto::ExecStart {
            req: id,
            container: target.name.clone(),
            cmd: req.cmd.clone(),
            tty: req.tty,
            stdin: req.stdin,
            user: req.user.clone(),
            workdir: req.workdir.clone(),
            env: req.env.clone(),
            cols: req.cols,
            rows: req.rows,
        })
    };
    let Some(mut reader) = state.open_stream(&state.execs.streams, &host, start) else {
        let e = error(
            "unavailable",
            format!(
                "host {host} of container '{}' is not connected",
                target.name
            ),
        );
        return send_event(&mut tx, &e).await;
    };
    let id = reader.req;
    let window = state.execs.window(&reader);
    let _guard = CloseOnDrop {
        state: state.clone(),
        host: host.clone(),
        req: id,
    };
    let not_started = tokio::time::sleep(START_TIMEOUT);
    tokio::pin!(not_started);
    let mut started = false;
    // Input read from the client and not yet sent: the client is not read meanwhile.
    let mut pending = bytes::Bytes::new();
    loop {
        let want = pending.len().min(INPUT_CHUNK);
        tokio::select! {
            event = reader.recv() => match event {
                Some(Event::Started) => started = true,
                Some(Event::Output(stream, data)) => {
                    let mut frame = Vec::with_capacity(data.len() + 1);
                    frame.push(match stream {
                        proto::ExecStream::Stdout => api_types::exec::STDOUT,
                        proto::ExecStream::Stderr => api_types::exec::STDERR,
                    });
                    frame.extend_from_slice(&data);
                    if tx.send(Message::Binary(frame.into())).await.is_err() {
                        return;
                    }
                }
                Some(Event::End { exit_code, error }) => {
                    return send_event(&mut tx, &end_event(exit_code, error)).await;
                }
                None => {
                    let why = reader.take_reason().unwrap_or_else(|| "the session ended".into());
                    return send_event(&mut tx, &error("ended", format!("exec session ended: {why}"))).await;
                }
            },
            () = &mut not_started, if !started => {
                let e = error(
                    "unavailable",
                    format!("host {host} did not start the command within 10 s (an agent older than the server cannot run commands: upgrade it)"),
                );
                return send_event(&mut tx, &e).await;
            }
            credit = window.acquire_many(want as u32), if want > 0 => {
                let Ok(credit) = credit else { return };
                credit.forget();
                let data = pending.split_to(want).to_vec();
                state.send_to(&host, ServerMsg::ExecInput { req: id, data, eof: false });
            }
            msg = rx.next(), if want == 0 => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if req.stdin {
                        pending = b;
                    }
                }
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<ExecControl>(&t) {
                    Ok(ExecControl::Resize { cols, rows }) => {
                        if req.tty && cols > 0 && rows > 0 {
                            state.send_to(&host, ServerMsg::ExecResize { req: id, cols, rows });
                        }
                    }
                    Ok(ExecControl::Eof) => {
                        if req.stdin {
                            state.send_to(&host, ServerMsg::ExecInput { req: id, data: Vec::new(), eof: true });
                        }
                    }
                    Err(e) => {
                        return send_event(&mut tx, &error("invalid_request", format!("invalid control message: {e}"))).await;
                    }
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_keeps_the_command_line_and_env_keys_not_values() {
        let req = ExecRequest {
            cmd: vec!["sh".into(), "-c".into(), "exit 3".into()],
            tty: true,
            stdin: true,
            user: Some("root".into()),
            env: vec!["TOKEN=secret".into(), "A=1".into()],
            ..Default::default()
        };
        let d = audit_detail(&req, "h1");
        assert_eq!(
            d,
            "sh -c 'exit 3' (tty, stdin, user root, env TOKEN A, on host h1)"
        );
        assert!(!d.contains("secret"));
    }
}
