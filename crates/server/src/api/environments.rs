//! `POST /v1/environments`, `DELETE /v1/environments/{env}`: environments (tenants) made and
//! removed by admins. Each has its own hosts, tokens, stacks, networks, secrets and registry
//! logins; one is removed only once it holds none of them (`default` stays).

use std::sync::Arc;

use api_types::{Environment, NewEnvironment};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::auth::User;
use crate::error::{ApiError, JsonBody};
use crate::state::{AppState, Audit, now_ms};

/// An environment name: 1 to 63 lowercase letters, digits, '-' and '_', starting with a
/// letter or digit (it becomes part of engine labels and network names).
fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = name.len() <= 63 && compose::is_valid_project_name(name);
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "name",
            format!(
                "invalid environment name {name:?}: 1 to 63 lowercase letters, digits, '-' and \
                 '_', starting with a letter or digit"
            ),
        ))
    }
}

#[utoipa::path(post, path = "/v1/environments", request_body = NewEnvironment,
    responses((status = 201, body = Environment), (status = 400, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody), (status = 409, body = api_types::ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    JsonBody(req): JsonBody<NewEnvironment>,
) -> Result<(StatusCode, Json<Environment>), ApiError> {
    check_name(&req.name)?;
    let name = req.name.clone();
    let audit = Audit {
        env: name.clone(),
        actor: caller.actor(),
        source: caller.source.clone(),
        kind: "environment.created",
        subject: name.clone(),
        detail: String::new(),
    };
    let created = state
        .blocking(move |s| {
            s.store()
                .create_environment(&name, &audit.event(), now_ms())
        })
        .await?;
    if !created {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "exists",
            format!("environment '{}' exists", req.name),
        ));
    }
    Ok((StatusCode::CREATED, Json(Environment { name: req.name })))
}

#[utoipa::path(delete, path = "/v1/environments/{env}",
    params(("env" = String, Path, description = "environment name")),
    responses((status = 204), (status = 400, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody), (status = 409, body = api_types::ErrorBody)))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
) -> Result<StatusCode, ApiError> {
    if env == "default" {
        return Err(ApiError::bad_request(
            "env",
            "the default environment cannot be removed",
        ));
    }
    let audit = Audit {
        env: env.clone(),
        actor: caller.actor(),
        source: caller.source.clone(),
        kind: "environment.removed",
        subject: env.clone(),
        detail: String::new(),
    };
    let e = env.clone();
    let removed = state
        .blocking(move |s| s.delete_environment(&e, &audit.event(), now_ms()))
        .await?;
    if !removed {
        return Err(ApiError::not_found(format!(
            "environment '{env}' does not exist"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
