//! Containers across stacks (`drover ps`) and their logs, streamed from the host's agent
//! (commands run in them: `exec.rs`).

use std::sync::Arc;

use api_types::ContainerInfo;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use proto::ServerMsg;
use serde::Deserialize;

use crate::api::check_env;
use crate::api::stacks::container_infos;
use crate::auth::User;
use crate::error::ApiError;
use crate::state::AppState;

#[utoipa::path(get, path = "/v1/environments/{env}/containers",
    params(("env" = String, Path, description = "environment name")), responses((status = 200, body = Vec<ContainerInfo>)))]
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

/// The host container `name` (an engine name, as `drover ps` shows it) of environment `env`
/// is placed on.
pub fn host_of(state: &AppState, env: &str, name: &str) -> Result<String, ApiError> {
    let info = container_infos(state, env, None)
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "container '{name}' not found in environment '{env}'"
            ))
        })?;
    info.host.ok_or_else(|| {
        ApiError::unavailable(format!("container '{name}' is not placed on a host yet"))
    })
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
        self.state.log_streams.end(None, self.req, None);
        self.state
            .send_to(&self.host, ServerMsg::CancelLogs { req: self.req });
    }
}

#[utoipa::path(get, path = "/v1/environments/{env}/containers/{name}/logs",
    params(("env" = String, Path, description = "environment name"), ("name" = String, Path, description = "container name, as `drover ps` shows it"), ("follow" = Option<bool>, Query, description = "keep streaming"), ("tail" = Option<u64>, Query, description = "last N lines")),
    responses((status = 200, description = "log text, streamed", content_type = "text/plain"), (status = 404, body = api_types::ErrorBody, description = "no such container"), (status = 503, body = api_types::ErrorBody, description = "the container's host is not connected")))]
pub async fn logs(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, name)): Path<(String, String)>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    check_env(&state, &caller, &env)?;
    let host = host_of(&state, &env, &name)?;
    let not_connected = || {
        ApiError::unavailable(format!(
            "host {host} of container '{name}' is not connected"
        ))
    };
    let reader = state
        .open_stream(&state.log_streams, &host, |req| ServerMsg::Logs {
            req,
            container: name.clone(),
            follow: q.follow,
            tail: q.tail,
        })
        .ok_or_else(not_connected)?;
    let guard = CancelOnDrop {
        state: state.clone(),
        host: host.clone(),
        req: reader.req,
    };
    let stream = futures_util::stream::unfold(
        (reader, guard, false),
        |(mut reader, guard, done)| async move {
            if done {
                return None;
            }
            match reader.recv().await {
                Some(d) => Some((Ok::<_, std::io::Error>(d), (reader, guard, false))),
                None => {
                    let why = reader.take_reason()?;
                    Some((
                        Ok(format!("drover: log stream ended: {why}\n")),
                        (reader, guard, true),
                    ))
                }
            }
        },
    );
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(stream),
    )
        .into_response())
}
