//! `GET|PUT /v1/environments/{env}/policy`: the environment's container policy (the
//! decision is the `policy` crate; owners change it, everyone in the environment reads it),
//! and `enforce`, which every way a project comes in (deploy, rollback, scale, restart)
//! passes before anything is written.

use std::sync::Arc;

use api_types::EnvPolicy;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::auth::{Caller, User};
use crate::error::{ApiError, JsonBody};
use crate::state::{AppState, Audit, now_ms};

/// The environment's policy as stored (the default when none was set).
pub fn load(state: &AppState, env: &str) -> Result<policy::Policy, ApiError> {
    let json = state.store().policy(env)?.unwrap_or_default();
    if json.is_empty() {
        return Ok(policy::Policy::default());
    }
    serde_json::from_str(&json).map_err(|e| {
        tracing::error!("policy of environment {env}: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "stored policy unreadable",
        )
    })
}

fn dto(p: policy::Policy) -> EnvPolicy {
    EnvPolicy {
        allow_privileged: p.allow_privileged,
        allow_host_namespaces: p.allow_host_namespaces,
        allow_binds: p.allow_binds,
        allow_caps: p.allow_caps,
    }
}

/// Refuses `project` when its caller is bound by the environment's policy and breaks it,
/// naming each service, key and rule.
pub fn enforce(
    state: &Arc<AppState>,
    caller: &Caller,
    env: &str,
    project: &compose::Project,
) -> Result<(), ApiError> {
    let who = crate::auth::identity(state, caller)?;
    if !who.policy_applies(env) {
        return Ok(());
    }
    let breaches = policy::check(project, &load(state, env)?);
    if breaches.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = breaches
        .iter()
        .map(|v| {
            v.to_string()
                .replace("drover env policy ENV", &format!("drover env policy {env}"))
        })
        .collect();
    let why = format!(
        "the container policy of environment '{env}' does not allow this: {}",
        lines.join("; ")
    );
    let route = format!("deploy {}", project.name);
    crate::auth::record_denied(
        state,
        Audit::by(caller, env, "request.denied", &route, why.clone()),
    );
    Err(ApiError::new(StatusCode::FORBIDDEN, "policy", why))
}

#[utoipa::path(get, path = "/v1/environments/{env}/policy", params(("env" = String, Path, description = "environment")),
    responses((status = 200, body = EnvPolicy), (status = 401, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
) -> Result<Json<EnvPolicy>, ApiError> {
    Ok(Json(dto(load(&state, &env)?)))
}

/// Replaces the environment's policy (owners).
#[utoipa::path(put, path = "/v1/environments/{env}/policy", request_body = EnvPolicy, params(("env" = String, Path, description = "environment")),
    responses((status = 200, body = EnvPolicy), (status = 400, body = api_types::ErrorBody), (status = 401, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody)))]
pub async fn set(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
    JsonBody(req): JsonBody<EnvPolicy>,
) -> Result<Json<EnvPolicy>, ApiError> {
    if req.allow_binds.len() > 64 || req.allow_caps.len() > 64 {
        return Err(ApiError::bad_request(
            "allow_binds",
            "at most 64 allowed paths and 64 capabilities",
        ));
    }
    let p = policy::Policy {
        allow_privileged: req.allow_privileged,
        allow_host_namespaces: req.allow_host_namespaces,
        allow_binds: req.allow_binds,
        allow_caps: req.allow_caps,
    }
    .normalised()
    .map_err(|why| ApiError::bad_request("policy", why))?;
    let json =
        serde_json::to_string(&p).map_err(|e| ApiError::bad_request("policy", e.to_string()))?;
    let audit = Audit::by(&caller, &env, "policy.set", &env, json.clone());
    let e = env.clone();
    state
        .blocking(move |s| s.store().set_policy(&e, &json, &audit.event(), now_ms()))
        .await?;
    Ok(Json(dto(p)))
}
