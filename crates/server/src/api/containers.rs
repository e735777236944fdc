//! Containers across stacks (`drover ps`) and their logs, streamed from the host's agent.

use std::sync::Arc;

use api_types::ContainerInfo;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use proto::ServerMsg;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::api::check_env;
use crate::api::stacks::container_infos;
use crate::auth::User;
use crate::error::ApiError;
use crate::state::{AppState, LogEvent};

#[utoipa::path(get, path = "/v1/environments/{env}/containers", responses((status = 200, body = Vec<ContainerInfo>)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
) -> Result<Json<Vec<ContainerInfo>>, ApiError> {
    check_env(&state, &caller, &env)?;
    // Off the async workers: over a million containers this takes a while.
    let infos = state
        .blocking(move |state| container_infos(state, &env, None))
        .await;
    Ok(Json(infos))
}

#[derive(Deserialize)]
pub struct LogsQuery {
    #[serde(default)]
    follow: bool,
    tail: Option<u64>,
}

/// Stops the agent's log stream when the HTTP client goes away.
struct CancelOnDrop {
    state: Arc<AppState>,
    host: String,
    req: u64,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.state
            .log_streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.req);
        self.state
            .send_to(&self.host, ServerMsg::CancelLogs { req: self.req });
    }
}

#[utoipa::path(get, path = "/v1/environments/{env}/containers/{name}/logs",
    params(("follow" = Option<bool>, Query, description = "keep streaming"), ("tail" = Option<u64>, Query, description = "last N lines")),
    responses((status = 200, description = "log text, streamed", content_type = "text/plain")))]
pub async fn logs(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, name)): Path<(String, String)>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    check_env(&state, &caller, &env)?;
    let info = container_infos(&state, &env, None)
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "container '{name}' not found in environment '{env}'"
            ))
        })?;
    let host = info.host.ok_or_else(|| {
        ApiError::unavailable(format!("container '{name}' is not placed on a host yet"))
    })?;
    let req = state.next_id();
    let (tx, rx) = mpsc::channel::<LogEvent>(256);
    state
        .log_streams
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(req, tx);
    let guard = CancelOnDrop {
        state: state.clone(),
        host: host.clone(),
        req,
    };
    if !state.send_to(
        &host,
        ServerMsg::Logs {
            req,
            container: name.clone(),
            follow: q.follow,
            tail: q.tail,
        },
    ) {
        return Err(ApiError::unavailable(format!(
            "host {host} of container '{name}' is not connected"
        )));
    }
    let stream =
        futures_util::stream::unfold((rx, guard, false), |(mut rx, guard, done)| async move {
            if done {
                return None;
            }
            match rx.recv().await {
                Some(LogEvent::Data(d)) => Some((Ok::<_, std::io::Error>(d), (rx, guard, false))),
                Some(LogEvent::End(Some(err))) => Some((
                    Ok(format!("drover: log stream ended: {err}\n")),
                    (rx, guard, true),
                )),
                Some(LogEvent::End(None)) | None => None,
            }
        });
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(stream),
    )
        .into_response())
}
