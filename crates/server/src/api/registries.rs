//! `/v1/environments/{env}/registries`: private registry logins. The password goes in once
//! and never comes out (not in answers, audit entries or logs).

use std::sync::Arc;

use api_types::{NewRegistry, RegistryInfo};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::api::check_env;
use crate::auth::User;
use crate::error::{ApiError, JsonBody};
use crate::state::{AppState, Audit, now_ms};

/// What a registry host may look like: `HOST[:PORT]`, at most 253 characters.
pub fn check_host(host: &str) -> Result<(), String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    if name.is_empty() || host.len() > 253 {
        return Err("a registry is HOST or HOST:PORT, 1 to 253 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(format!(
            "invalid registry {host:?}: letters, digits, '.' and '-' only (then :PORT)"
        ));
    }
    if let Some(p) = port
        && p.parse::<u16>().is_err()
    {
        return Err(format!(
            "invalid registry {host:?}: port {p:?} is not a number"
        ));
    }
    Ok(())
}

fn check(req: &NewRegistry) -> Result<(), ApiError> {
    check_host(&req.host).map_err(|e| ApiError::bad_request("host", e))?;
    // Characters, as the API document counts them.
    if req.username.is_empty() || req.username.chars().count() > 256 {
        return Err(ApiError::bad_request(
            "username",
            "a username is 1 to 256 characters",
        ));
    }
    if req.password.is_empty() || req.password.chars().count() > 4096 {
        return Err(ApiError::bad_request(
            "password",
            "a password is 1 to 4096 characters",
        ));
    }
    Ok(())
}

fn info(r: &store::RegistryRow) -> RegistryInfo {
    RegistryInfo {
        host: r.host.clone(),
        username: r.username.clone(),
        created_ms: r.created_ms,
    }
}

#[utoipa::path(get, path = "/v1/environments/{env}/registries",
    params(("env" = String, Path, description = "environment name")), responses((status = 200, body = Vec<RegistryInfo>)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
) -> Result<Json<Vec<RegistryInfo>>, ApiError> {
    check_env(&state, &caller, &env)?;
    let rows = state.blocking(|s| s.store().registries()).await?;
    Ok(Json(
        rows.iter().filter(|r| r.env == env).map(info).collect(),
    ))
}

#[utoipa::path(post, path = "/v1/environments/{env}/registries",
    params(("env" = String, Path, description = "environment name")), request_body = NewRegistry,
    responses((status = 201, body = RegistryInfo), (status = 400, body = api_types::ErrorBody)))]
pub async fn add(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
    JsonBody(req): JsonBody<NewRegistry>,
) -> Result<(StatusCode, Json<RegistryInfo>), ApiError> {
    check_env(&state, &caller, &env)?;
    check(&req)?;
    let audit = Audit {
        env: env.clone(),
        actor: caller.actor(),
        source: caller.source.clone(),
        kind: "registry.add",
        subject: req.host.clone(),
        detail: format!("as {}", req.username),
    };
    let row = state
        .blocking(move |s| -> Result<store::RegistryRow, ApiError> {
            let row = s
                .registries
                .row(&env, &req.host, &req.username, &req.password, now_ms())
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?;
            s.store().put_registry(&row, &audit.event())?;
            s.registries
                .remember(&env, &req.host, &req.username, &req.password);
            // Containers waiting for an image from there pull with the login now.
            s.touch_environment(&env);
            Ok(row)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(info(&row))))
}

#[utoipa::path(delete, path = "/v1/environments/{env}/registries/{host}",
    params(("env" = String, Path, description = "environment name"), ("host" = String, Path, description = "registry host, `HOST[:PORT]` as images name it")), responses((status = 204), (status = 404, body = api_types::ErrorBody)))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, host)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    check_env(&state, &caller, &env)?;
    let audit = Audit {
        env: env.clone(),
        actor: caller.actor(),
        source: caller.source.clone(),
        kind: "registry.rm",
        subject: host.clone(),
        detail: String::new(),
    };
    state
        .blocking(move |s| -> Result<(), ApiError> {
            if !s
                .store()
                .delete_registry(&env, &host, &audit.event(), now_ms())?
            {
                return Err(ApiError::not_found(format!(
                    "no login for registry '{host}' in environment '{env}'"
                )));
            }
            s.registries.forget(&env, &host);
            s.touch_environment(&env);
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts() {
        for ok in [
            "ghcr.io",
            "127.0.0.1:5000",
            "localhost",
            "registry.example.com:8443",
        ] {
            assert!(check_host(ok).is_ok(), "{ok}");
        }
        for bad in ["", ":5000", "a/b", "host:port", "x y", "h:99999"] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
    }
}
