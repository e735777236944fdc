//! `/v1/environments/{env}/secrets` and `/configs`: values made beforehand, which stacks
//! use as `external: true`. A secret's value goes in and never comes out (not in answers,
//! audit entries or logs); a config's can be read back. A new value (`PUT`) rolls every
//! service that uses it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use api_types::{FileInfo, NewFile};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use compose::FileKind;

use crate::api::check_env;
use crate::auth::User;
use crate::error::{ApiError, JsonBody};
use crate::state::{AppState, Audit, now_ms};

/// Decodes a base64 value of at most [`crate::files::MAX_BYTES`].
pub fn decode(data: &str, field: &str) -> Result<Vec<u8>, ApiError> {
    if data.len() > crate::files::MAX_BYTES / 3 * 4 + 4 {
        return Err(ApiError::bad_request(field, "at most 500 KiB"));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| ApiError::bad_request(field, format!("not base64: {e}")))?;
    if bytes.len() > crate::files::MAX_BYTES {
        return Err(ApiError::bad_request(field, "at most 500 KiB"));
    }
    Ok(bytes)
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "name",
            "a name is 1 to 64 letters, digits, '_', '-' and '.', starting with a letter or digit",
        ))
    }
}

/// Who uses each secret or config of `env`: `stack/service`, by (kind, name).
fn used_by(state: &AppState, env: &str) -> BTreeMap<secrets::Key, BTreeSet<String>> {
    let mut out: BTreeMap<secrets::Key, BTreeSet<String>> = BTreeMap::new();
    for entry in state.model().stacks(env) {
        for (k, by) in secrets::used_by(&entry.row.project) {
            out.entry(k).or_default().extend(by);
        }
    }
    out
}

fn info(
    name: &str,
    e: &crate::files::Entry,
    used: Option<&BTreeSet<String>>,
    data: Option<String>,
) -> FileInfo {
    FileInfo {
        name: name.to_string(),
        stack: e.stack.clone(),
        version: e.version,
        size: e.value.len(),
        created_ms: e.created_ms,
        updated_ms: e.updated_ms,
        used_by: used.into_iter().flatten().cloned().collect(),
        data,
    }
}

/// The audit event of a change to a secret or config: `secret.created`, `config.removed`...
fn event_kind(kind: FileKind, change: &str) -> &'static str {
    match (kind, change) {
        (FileKind::Secret, "created") => "secret.created",
        (FileKind::Secret, "updated") => "secret.updated",
        (FileKind::Secret, _) => "secret.removed",
        (FileKind::Config, "created") => "config.created",
        (FileKind::Config, "updated") => "config.updated",
        (FileKind::Config, _) => "config.removed",
    }
}

fn not_found(kind: FileKind, name: &str) -> ApiError {
    ApiError::not_found(format!("{} '{name}' not found", kind.as_str()))
}

async fn list(
    state: Arc<AppState>,
    caller: crate::auth::Caller,
    env: String,
    kind: FileKind,
) -> Result<Json<Vec<FileInfo>>, ApiError> {
    check_env(&state, &caller, &env)?;
    let used = used_by(&state, &env);
    let out = state
        .files
        .list(&env, kind)
        .iter()
        .map(|(n, e)| info(n, e, used.get(&(kind, n.clone())), None))
        .collect();
    Ok(Json(out))
}

async fn create(
    state: Arc<AppState>,
    caller: crate::auth::Caller,
    env: String,
    kind: FileKind,
    req: NewFile,
) -> Result<(StatusCode, Json<FileInfo>), ApiError> {
    check_env(&state, &caller, &env)?;
    check_name(&req.name)?;
    let value = decode(&req.data, "data")?;
    let what = kind.as_str();
    let audit = Audit {
        env: env.clone(),
        actor: caller.actor(),
        source: caller.source.clone(),
        kind: event_kind(kind, "created"),
        subject: req.name.clone(),
        detail: format!("{} bytes", value.len()),
    };
    let name = req.name.clone();
    let e = env.clone();
    state
        .blocking(move |s| -> Result<(), ApiError> {
            let _serial = s.serialise_writes();
            if s.files.get(&e, kind, &name).is_some() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "exists",
                    format!(
                        "{what} '{name}' exists: drover {what} update {name} gives it a new value"
                    ),
                ));
            }
            let row = s
                .files
                .row(&e, kind, &name, None, 1, &value, now_ms())
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?;
            s.store()
                .put_files(std::slice::from_ref(&row), &audit.event(), now_ms())?;
            s.files.remember(&[(row, value)]);
            Ok(())
        })
        .await?;
    let e = state
        .files
        .get(&env, kind, &req.name)
        .ok_or_else(|| not_found(kind, &req.name))?;
    Ok((StatusCode::CREATED, Json(info(&req.name, &e, None, None))))
}

async fn update(
    state: Arc<AppState>,
    caller: crate::auth::Caller,
    env: String,
    kind: FileKind,
    name: String,
    req: NewFile,
) -> Result<Json<FileInfo>, ApiError> {
    check_env(&state, &caller, &env)?;
    let value = decode(&req.data, "data")?;
    let what = kind.as_str();
    let audit = Audit {
        env: env.clone(),
        actor: caller.actor(),
        source: caller.source.clone(),
        kind: event_kind(kind, "updated"),
        subject: name.clone(),
        detail: format!("{} bytes", value.len()),
    };
    let (e, n, actor) = (env.clone(), name.clone(), caller.name.clone());
    state
        .blocking(move |s| -> Result<(), ApiError> {
            {
                let _serial = s.serialise_writes();
                let old = s.files.get(&e, kind, &n).ok_or_else(|| not_found(kind, &n))?;
                if let Some(stack) = &old.stack {
                    return Err(ApiError::bad_request(
                        "name",
                        format!("{what} '{n}' belongs to stack '{stack}': change it where the compose file takes it from and deploy"),
                    ));
                }
                if *old.value == *value {
                    return Ok(());
                }
                let row = s
                    .files
                    .row(&e, kind, &n, None, old.version + 1, &value, now_ms())
                    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?;
                s.store().put_files(std::slice::from_ref(&row), &audit.event(), now_ms())?;
                s.files.remember(&[(row, value)]);
            }
            // Every stack that uses it gets a revision running the new value: a roll.
            let users: Vec<compose::Project> = s
                .model()
                .stacks(&e)
                .filter(|entry| secrets::used_by(&entry.row.project).contains_key(&(kind, n.clone())))
                .map(|entry| entry.row.project.clone())
                .collect();
            for project in users {
                crate::api::stacks::write_project(
                    s,
                    &actor,
                    &e,
                    crate::api::stacks::Deploy {
                        project,
                        why: Some(format!("new value of {what} {n}")),
                        ..Default::default()
                    },
                )?;
            }
            Ok(())
        })
        .await?;
    state.schedule_now().await;
    let used = used_by(&state, &env);
    let e = state
        .files
        .get(&env, kind, &name)
        .ok_or_else(|| not_found(kind, &name))?;
    Ok(Json(info(&name, &e, used.get(&(kind, name.clone())), None)))
}

async fn remove(
    state: Arc<AppState>,
    caller: crate::auth::Caller,
    env: String,
    kind: FileKind,
    name: String,
) -> Result<StatusCode, ApiError> {
    check_env(&state, &caller, &env)?;
    let what = kind.as_str();
    let audit = Audit {
        env: env.clone(),
        actor: caller.actor(),
        source: caller.source.clone(),
        kind: event_kind(kind, "removed"),
        subject: name.clone(),
        detail: String::new(),
    };
    let e = env.clone();
    state
        .blocking(move |s| -> Result<(), ApiError> {
            let _serial = s.serialise_writes();
            let old = s
                .files
                .get(&e, kind, &name)
                .ok_or_else(|| not_found(kind, &name))?;
            if let Some(stack) = &old.stack {
                return Err(ApiError::bad_request(
                    "name",
                    format!("{what} '{name}' belongs to stack '{stack}' and goes with it"),
                ));
            }
            if let Some(by) = used_by(s, &e).get(&(kind, name.clone())) {
                let by: Vec<&str> = by.iter().map(String::as_str).collect();
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "in_use",
                    format!("{what} '{name}' is in use by {}", by.join(", ")),
                ));
            }
            s.store()
                .delete_file(&e, what, &name, &audit.event(), now_ms())?;
            s.files.forget(&e, kind, &name);
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/environments/{env}/secrets",
    params(("env" = String, Path, description = "environment name")), responses((status = 200, body = Vec<FileInfo>)))]
pub async fn list_secrets(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
) -> Result<Json<Vec<FileInfo>>, ApiError> {
    list(state, caller, env, FileKind::Secret).await
}

#[utoipa::path(post, path = "/v1/environments/{env}/secrets",
    params(("env" = String, Path, description = "environment name")), request_body = NewFile,
    responses((status = 201, body = FileInfo), (status = 400, body = api_types::ErrorBody), (status = 409, body = api_types::ErrorBody)))]
pub async fn create_secret(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
    JsonBody(req): JsonBody<NewFile>,
) -> Result<(StatusCode, Json<FileInfo>), ApiError> {
    create(state, caller, env, FileKind::Secret, req).await
}

#[utoipa::path(put, path = "/v1/environments/{env}/secrets/{name}",
    params(("env" = String, Path, description = "environment name"), ("name" = String, Path, description = "secret name")), request_body = api_types::NewFileValue,
    responses((status = 200, body = FileInfo), (status = 400, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody)))]
pub async fn update_secret(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, name)): Path<(String, String)>,
    JsonBody(req): JsonBody<NewFile>,
) -> Result<Json<FileInfo>, ApiError> {
    update(state, caller, env, FileKind::Secret, name, req).await
}

#[utoipa::path(delete, path = "/v1/environments/{env}/secrets/{name}",
    params(("env" = String, Path, description = "environment name"), ("name" = String, Path, description = "secret name")), responses((status = 204), (status = 404, body = api_types::ErrorBody), (status = 409, body = api_types::ErrorBody)))]
pub async fn remove_secret(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    remove(state, caller, env, FileKind::Secret, name).await
}

#[utoipa::path(get, path = "/v1/environments/{env}/configs",
    params(("env" = String, Path, description = "environment name")), responses((status = 200, body = Vec<FileInfo>)))]
pub async fn list_configs(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
) -> Result<Json<Vec<FileInfo>>, ApiError> {
    list(state, caller, env, FileKind::Config).await
}

#[utoipa::path(post, path = "/v1/environments/{env}/configs",
    params(("env" = String, Path, description = "environment name")), request_body = NewFile,
    responses((status = 201, body = FileInfo), (status = 400, body = api_types::ErrorBody), (status = 409, body = api_types::ErrorBody)))]
pub async fn create_config(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
    JsonBody(req): JsonBody<NewFile>,
) -> Result<(StatusCode, Json<FileInfo>), ApiError> {
    create(state, caller, env, FileKind::Config, req).await
}

/// A config with its value (base64).
#[utoipa::path(get, path = "/v1/environments/{env}/configs/{name}",
    params(("env" = String, Path, description = "environment name"), ("name" = String, Path, description = "config name")), responses((status = 200, body = FileInfo), (status = 404, body = api_types::ErrorBody)))]
pub async fn get_config(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, name)): Path<(String, String)>,
) -> Result<Json<FileInfo>, ApiError> {
    check_env(&state, &caller, &env)?;
    let kind = FileKind::Config;
    let e = state
        .files
        .get(&env, kind, &name)
        .ok_or_else(|| not_found(kind, &name))?;
    let used = used_by(&state, &env);
    let data = base64::engine::general_purpose::STANDARD.encode(&e.value);
    Ok(Json(info(
        &name,
        &e,
        used.get(&(kind, name.clone())),
        Some(data),
    )))
}

#[utoipa::path(put, path = "/v1/environments/{env}/configs/{name}",
    params(("env" = String, Path, description = "environment name"), ("name" = String, Path, description = "config name")), request_body = api_types::NewFileValue,
    responses((status = 200, body = FileInfo), (status = 400, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody)))]
pub async fn update_config(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, name)): Path<(String, String)>,
    JsonBody(req): JsonBody<NewFile>,
) -> Result<Json<FileInfo>, ApiError> {
    update(state, caller, env, FileKind::Config, name, req).await
}

#[utoipa::path(delete, path = "/v1/environments/{env}/configs/{name}",
    params(("env" = String, Path, description = "environment name"), ("name" = String, Path, description = "config name")), responses((status = 204), (status = 404, body = api_types::ErrorBody), (status = 409, body = api_types::ErrorBody)))]
pub async fn remove_config(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    remove(state, caller, env, FileKind::Config, name).await
}
