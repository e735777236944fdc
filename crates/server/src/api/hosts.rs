//! Hosts, environments and the audit log.

use std::sync::Arc;

use api_types::{Environment, Event, HostInfo};
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use crate::api::check_env;
use crate::auth::User;
use crate::error::ApiError;
use crate::state::AppState;

#[utoipa::path(get, path = "/v1/environments", responses((status = 200, body = Vec<Environment>)))]
pub async fn environments(
    State(state): State<Arc<AppState>>,
    User(caller): User,
) -> Result<Json<Vec<Environment>>, ApiError> {
    let names = state.store().environments()?;
    Ok(Json(
        names
            .into_iter()
            .filter(|n| caller.may_use_env(n).is_ok())
            .map(|name| Environment { name })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/v1/environments/{env}/hosts", responses((status = 200, body = Vec<HostInfo>)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
) -> Result<Json<Vec<HostInfo>>, ApiError> {
    check_env(&state, &caller, &env)?;
    let hosts = state.store().hosts(&env)?;
    let placements = state.store().placements()?;
    let reports = state.reports();
    let out = hosts
        .into_iter()
        .map(|h| {
            let report = reports.get(&h.id);
            let engine = report
                .map(|r| r.observed.engine.clone())
                .unwrap_or_default();
            let connected = state.is_connected(&h.id);
            let host_state = match (connected, report.is_some(), engine.up) {
                (false, _, _) => "down",
                (true, false, _) => "connecting",
                (true, true, false) => "engine_down",
                (true, true, true) => "up",
            };
            HostInfo {
                containers: placements
                    .iter()
                    .filter(|p| p.host.as_deref() == Some(h.id.as_str()))
                    .count(),
                state: host_state.to_string(),
                engine_version: engine.version,
                engine_error: engine.error,
                cpus: engine.cpus,
                memory: engine.memory,
                last_seen_ms: Some(report.map(|r| r.last_seen_ms).unwrap_or(h.last_seen_ms)),
                id: h.id,
                name: h.name,
                env: h.env,
                labels: h.labels,
            }
        })
        .collect();
    Ok(Json(out))
}

#[derive(Deserialize)]
pub struct EventsQuery {
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/environments/{env}/events", responses((status = 200, body = Vec<Event>)))]
pub async fn events(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Vec<Event>>, ApiError> {
    check_env(&state, &caller, &env)?;
    let rows = state
        .store()
        .events(&env, q.limit.unwrap_or(100).min(1000))?;
    Ok(Json(
        rows.into_iter()
            .map(|e| Event {
                id: e.id,
                time_ms: e.time_ms,
                env: e.env,
                actor: e.actor,
                kind: e.kind,
                subject: e.subject,
                detail: e.detail,
            })
            .collect(),
    ))
}
