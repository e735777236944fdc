//! Hosts, environments and the audit log.

use std::sync::Arc;

use std::collections::BTreeMap;

use api_types::{
    DrainRequest, Environment, Event, HostDetail, HostInfo, HostLabels, HostToken, HostTokenInfo,
    NewHostToken,
};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::api::check_env;
use crate::auth::{User, Who, new_token};
use crate::error::{ApiError, JsonBody};
use crate::scheduling::{self, Liveness};
use crate::state::{AppState, Audit, now_ms};

#[utoipa::path(get, path = "/v1/environments", responses((status = 200, body = Vec<Environment>)))]
pub async fn environments(
    State(state): State<Arc<AppState>>,
    Who(who): Who,
) -> Result<Json<Vec<Environment>>, ApiError> {
    let names = state.store().environments()?;
    Ok(Json(
        names
            .into_iter()
            .filter(|n| who.sees(n))
            .map(|name| Environment { name })
            .collect(),
    ))
}

/// A host as the API shows it: liveness, capacity and what is reserved on it.
pub fn host_info(state: &AppState, h: store::HostRecord) -> HostInfo {
    let report = state.report(&h.id);
    let engine = report
        .as_ref()
        .map(|r| r.engine().clone())
        .unwrap_or_default();
    let live = scheduling::liveness(state, &h, &state.timing, now_ms());
    let host_state = match live {
        Liveness::Up => "up",
        Liveness::Unready if report.is_some() => "engine_down",
        Liveness::Unready => "connecting",
        Liveness::Silent => "disconnected",
        Liveness::Down => "down",
    };
    let load = state.model().host_load(&h.id).cloned().unwrap_or_default();
    let mesh = crate::mesh::host_view(state, &h.id, &h.env);
    let (cpu, mem) = (load.cpu_milli, load.memory);
    HostInfo {
        containers: load.containers as usize,
        state: host_state.to_string(),
        free_cpu_milli: engine
            .cpus
            .map(|c| scheduling::cpu_milli(c).saturating_sub(cpu)),
        free_memory: engine.memory.map(|m| m.saturating_sub(mem)),
        reserved_cpu_milli: cpu,
        reserved_memory: mem,
        engine_version: engine.version,
        engine_error: engine.error,
        cpus: engine.cpus,
        memory: engine.memory,
        last_seen_ms: Some(report.map(|r| r.last_seen_ms).unwrap_or(h.last_seen_ms)),
        draining: h.draining,
        mesh,
        id: h.id,
        name: h.name,
        env: h.env,
        labels: h.labels,
        user_labels: h.user_labels,
    }
}

#[utoipa::path(get, path = "/v1/environments/{env}/hosts",
    params(("env" = String, Path, description = "environment name")), responses((status = 200, body = Vec<HostInfo>)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
) -> Result<Json<Vec<HostInfo>>, ApiError> {
    check_env(&state, &caller, &env)?;
    let hosts: Vec<store::HostRecord> = state.model().hosts(&env).into_iter().cloned().collect();
    Ok(Json(
        hosts.into_iter().map(|h| host_info(&state, h)).collect(),
    ))
}

/// The host `id` of `env`, or 404.
fn find_host(state: &AppState, env: &str, id: &str) -> Result<store::HostRecord, ApiError> {
    state
        .model()
        .host(id)
        .filter(|h| h.env == env)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("host '{id}' not found in environment '{env}'")))
}

#[utoipa::path(get, path = "/v1/environments/{env}/hosts/{id}",
    params(("env" = String, Path, description = "environment name"), ("id" = String, Path, description = "host id")), responses((status = 200, body = HostDetail), (status = 404, body = api_types::ErrorBody)))]
pub async fn inspect(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, id)): Path<(String, String)>,
) -> Result<Json<HostDetail>, ApiError> {
    check_env(&state, &caller, &env)?;
    let h = find_host(&state, &env, &id)?;
    let containers = crate::api::stacks::host_containers(&state, &env, &id);
    Ok(Json(HostDetail {
        host: host_info(&state, h),
        containers,
    }))
}

/// Applies a change to host `id` (store and model) and waits for the scheduling pass
/// that follows it.
async fn change_host(
    state: &Arc<AppState>,
    id: &str,
    audit: Audit,
    write: impl FnOnce(&mut store::Store, &store::NewEvent<'_>) -> Result<bool, store::Error>
    + Send
    + 'static,
) -> Result<(), ApiError> {
    let host = id.to_string();
    state
        .blocking(move |s| s.change_host(&host, |st| write(st, &audit.event())))
        .await?;
    state.schedule_now().await;
    Ok(())
}

/// Label keys and values: what the scheduler's constraints can match.
fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if labels.len() > 64 {
        return Err(ApiError::bad_request("labels", "at most 64 labels"));
    }
    for (k, v) in labels {
        let key_ok = !k.is_empty()
            && k.len() <= 128
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
        if !key_ok {
            return Err(ApiError::bad_request(
                "labels",
                format!("invalid label key {k:?}: letters, digits and . _ - / only, at most 128"),
            ));
        }
        if v.chars().count() > 256 || v.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "labels",
                format!("invalid value for label {k:?}: at most 256 printable characters"),
            ));
        }
    }
    Ok(())
}

#[utoipa::path(put, path = "/v1/environments/{env}/hosts/{id}/labels",
    params(("env" = String, Path, description = "environment name"), ("id" = String, Path, description = "host id")), request_body = HostLabels, responses((status = 200, body = HostInfo), (status = 400, body = api_types::ErrorBody)))]
pub async fn set_labels(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<HostLabels>,
) -> Result<Json<HostInfo>, ApiError> {
    check_env(&state, &caller, &env)?;
    check_labels(&body.labels)?;
    let h = find_host(&state, &env, &id)?;
    let detail = format!("{:?}", body.labels);
    let audit = Audit {
        env: env.clone(),
        actor: caller.actor(),
        source: caller.source.clone(),
        kind: "host.labelled",
        subject: h.name,
        detail,
    };
    let (host, labels) = (id.clone(), body.labels);
    change_host(&state, &id, audit, move |s, e| {
        s.set_host_labels(&host, &labels, e, now_ms())
    })
    .await?;
    // `drover.ingress=true` makes (or stops) an ingress there.
    state.mesh.changed(&env);
    Ok(Json(host_info(&state, find_host(&state, &env, &id)?)))
}

#[utoipa::path(post, path = "/v1/environments/{env}/hosts/{id}/drain",
    params(("env" = String, Path, description = "environment name"), ("id" = String, Path, description = "host id")), request_body = DrainRequest, responses((status = 200, body = HostInfo)))]
pub async fn drain(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<DrainRequest>,
) -> Result<Json<HostInfo>, ApiError> {
    check_env(&state, &caller, &env)?;
    let h = find_host(&state, &env, &id)?;
    let audit = Audit {
        env: env.clone(),
        actor: caller.actor(),
        source: caller.source.clone(),
        kind: if body.drain {
            "host.drained"
        } else {
            "host.undrained"
        },
        subject: h.name,
        detail: h.id,
    };
    let (host, drain) = (id.clone(), body.drain);
    change_host(&state, &id, audit, move |s, e| {
        s.set_draining(&host, drain, e, now_ms())
    })
    .await?;
    Ok(Json(host_info(&state, find_host(&state, &env, &id)?)))
}

/// Removes a host, connected or not: its credential is revoked, its session closed (the
/// agent stops its singletons and exits), its containers are placed elsewhere. `?force=`
/// is accepted and ignored (it was once needed for connected hosts).
#[utoipa::path(delete, path = "/v1/environments/{env}/hosts/{id}",
    params(("env" = String, Path, description = "environment name"), ("id" = String, Path, description = "host id")), responses((status = 204), (status = 404, body = api_types::ErrorBody)))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    check_env(&state, &caller, &env)?;
    let h = find_host(&state, &env, &id)?;
    let audit = Audit {
        env: env.clone(),
        actor: caller.actor(),
        source: caller.source.clone(),
        kind: "host.removed",
        subject: h.name,
        detail: h.id,
    };
    // The store forgets the host and its credential first, so its agent cannot come back;
    // then the live session is told and closed, before any rescheduling.
    let host = id.clone();
    state
        .blocking(move |s| {
            s.change_host(&host, |st| st.delete_host(&host, &audit.event(), now_ms()))
        })
        .await?;
    state.keys.forget_host(&id);
    state.revoke_agent(
        &id,
        "this host was removed from the server (drover host rm)",
    );
    state.schedule_now().await;
    Ok(StatusCode::NO_CONTENT)
}

/// Longest registration-token lifetime and most uses accepted.
const MAX_TOKEN_TTL_SECS: u64 = 10 * 365 * 24 * 3600;
const MAX_TOKEN_USES: u64 = 1_000_000;

#[utoipa::path(post, path = "/v1/environments/{env}/hosts/tokens",
    params(("env" = String, Path, description = "environment name")), request_body = NewHostToken, responses((status = 200, body = HostToken), (status = 400, body = api_types::ErrorBody)))]
pub async fn create_token(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
    JsonBody(req): JsonBody<NewHostToken>,
) -> Result<Json<HostToken>, ApiError> {
    check_env(&state, &caller, &env)?;
    if req
        .ttl_secs
        .is_some_and(|t| t == 0 || t > MAX_TOKEN_TTL_SECS)
    {
        return Err(ApiError::bad_request(
            "ttl_secs",
            format!("must be between 1 and {MAX_TOKEN_TTL_SECS} seconds"),
        ));
    }
    if req.uses.is_some_and(|u| u == 0 || u > MAX_TOKEN_USES) {
        return Err(ApiError::bad_request(
            "uses",
            format!("must be between 1 and {MAX_TOKEN_USES}"),
        ));
    }
    let token = new_token();
    let hash = crate::auth::hash_token(&token);
    let id = format!("agent-{}", &hash[..12]);
    let now = now_ms();
    let expires_ms = req.ttl_secs.map(|t| now + t * 1000);
    let (h, i, e, actor, uses) = (hash, id.clone(), env.clone(), caller.name.clone(), req.uses);
    state
        .blocking(move |s| {
            let t = store::NewToken {
                hash: &h,
                name: &i,
                kind: "agent",
                env: &e,
                expires_ms,
                uses,
            };
            s.store().create_token(&t, &actor, now)
        })
        .await?;
    let join = state.join_info();
    Ok(Json(HostToken {
        id,
        token,
        env,
        ca_hash: join.ca_hash.clone(),
        server: join.url.clone(),
        expires_ms,
        uses: req.uses,
    }))
}

#[utoipa::path(get, path = "/v1/environments/{env}/hosts/tokens",
    params(("env" = String, Path, description = "environment name")), responses((status = 200, body = Vec<HostTokenInfo>)))]
pub async fn list_tokens(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
) -> Result<Json<Vec<HostTokenInfo>>, ApiError> {
    check_env(&state, &caller, &env)?;
    let e = env.clone();
    let rows = state
        .blocking(move |s| s.store().tokens(&e, "agent"))
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|t| HostTokenInfo {
                id: t.name,
                created_ms: t.created_ms,
                expires_ms: t.expires_ms,
                uses_left: t.uses_left,
            })
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/v1/environments/{env}/hosts/tokens/{id}",
    params(("env" = String, Path, description = "environment name"), ("id" = String, Path, description = "registration token id")), responses((status = 204), (status = 404, body = api_types::ErrorBody)))]
pub async fn remove_token(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    check_env(&state, &caller, &env)?;
    let (e, actor, name) = (env.clone(), caller.name.clone(), id.clone());
    let removed = state
        .blocking(move |s| {
            let event = store::NewEvent {
                env: &e,
                actor: &actor,
                kind: "token.removed",
                subject: &name,
                detail: "agent",
                source: "",
                result: "ok",
            };
            s.store().delete_token(&e, "agent", &name, &event, now_ms())
        })
        .await?;
    match removed {
        Some(hash) => {
            state.keys.forget(&hash);
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(ApiError::not_found(format!(
            "no registration token '{id}' in environment '{env}'"
        ))),
    }
}

#[derive(Deserialize)]
pub struct EventsQuery {
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/environments/{env}/events",
    params(("env" = String, Path, description = "environment name"), ("limit" = Option<u32>, Query, description = "at most this many, newest first (default 100, at most 1000)")), responses((status = 200, body = Vec<Event>)))]
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
    Ok(Json(rows.into_iter().map(event_of).collect()))
}

/// An audit event as the API shows it.
pub fn event_of(e: store::EventRow) -> Event {
    Event {
        id: e.id,
        time_ms: e.time_ms,
        env: e.env,
        actor: e.actor,
        kind: e.kind,
        subject: e.subject,
        detail: e.detail,
        source: e.source,
        result: e.result,
    }
}
