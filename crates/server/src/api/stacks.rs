//! Stacks: deploy (create or update), list, inspect with live container status, export as a
//! compose file, remove.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use api_types::{
    ContainerInfo, DeployRequest, DeployResponse, ServiceStatus, StackDetail, StackSummary,
};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::api::check_env;
use crate::auth::User;
use crate::error::{ApiError, JsonBody};
use crate::model::{SlotId, StackEntry};
use crate::state::{AppState, Audit, HostReport, now_ms};

/// Files are not readable on the server: `env_file` must be resolved by the client.
struct NoFiles;

impl compose::Files for NoFiles {
    fn read(&self, path: &str) -> Result<String, String> {
        Err(format!(
            "cannot read {path} on the server: send the normalised project (drover stack deploy does)"
        ))
    }
}

#[utoipa::path(post, path = "/v1/environments/{env}/stacks",
    params(("env" = String, Path, description = "environment name")), request_body = DeployRequest,
    responses((status = 200, body = DeployResponse), (status = 400, body = api_types::ErrorBody)))]
pub async fn deploy(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
    JsonBody(req): JsonBody<DeployRequest>,
) -> Result<Json<DeployResponse>, ApiError> {
    check_env(&state, &caller, &env)?;
    let (mut project, warnings) = match (req.compose, req.project) {
        (Some(text), None) => {
            let name = req.name.clone().unwrap_or_default();
            let loaded = compose::load(&compose::Input {
                file_name: "compose",
                text: &text,
                project_name: req.name.as_deref(),
                default_name: &name,
                variables: &req.environment,
                profiles: &req.profiles,
                base_dir: None,
                files: &NoFiles,
                overrides: &[],
            })
            .map_err(|e| ApiError {
                field: Some("compose".into()),
                ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_compose", e.to_string())
            })?;
            let warnings = loaded.warnings.iter().map(|w| w.to_string()).collect();
            (loaded.project, warnings)
        }
        (None, Some(project)) => (project, Vec::new()),
        _ => {
            return Err(ApiError::bad_request(
                "compose",
                "give exactly one of `compose` (file text) or `project`",
            ));
        }
    };
    if let Some(name) = req.name {
        project.name = name;
    }
    let sent = sent_files(&req.files)?;
    let resp = apply_project(
        &state,
        &caller,
        &env,
        Deploy {
            project,
            warnings,
            sent,
            ..Deploy::default()
        },
    )
    .await?;
    Ok(Json(resp))
}

/// Values of secrets and configs sent with a deploy, decoded and checked for size.
fn sent_files(files: &[api_types::FileValue]) -> Result<Sent, ApiError> {
    if files.len() > 1000 {
        return Err(ApiError::bad_request("files", "at most 1000 files"));
    }
    let mut sent = Sent::new();
    for (i, f) in files.iter().enumerate() {
        let field = format!("files[{i}]");
        let kind = crate::files::kind_of(&f.kind)
            .ok_or_else(|| ApiError::bad_request(&field, "kind must be secret or config"))?;
        let data = crate::api::files::decode(&f.data, &format!("{field}.data"))?;
        sent.insert((kind, f.name.clone()), data);
    }
    Ok(sent)
}

/// `POST .../stacks/{stack}/services/{service}/scale`: a new revision of the stack with the
/// service's replica count changed, placed like any deploy.
#[utoipa::path(post, path = "/v1/environments/{env}/stacks/{stack}/services/{service}/scale",
    params(("env" = String, Path, description = "environment name"), ("stack" = String, Path, description = "stack name"), ("service" = String, Path, description = "service name (a key of the stack's `services`)")), request_body = api_types::ScaleRequest,
    responses((status = 200, body = DeployResponse), (status = 400, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody)))]
pub async fn scale(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, stack, service)): Path<(String, String, String)>,
    JsonBody(req): JsonBody<api_types::ScaleRequest>,
) -> Result<Json<DeployResponse>, ApiError> {
    check_env(&state, &caller, &env)?;
    if req.replicas > MAX_REPLICAS {
        return Err(ApiError::bad_request(
            "replicas",
            format!("at most {MAX_REPLICAS} replicas"),
        ));
    }
    let (mut project, revision) = current_stack(&state, &env, &stack)?;
    let svc = project.services.get_mut(&service).ok_or_else(|| {
        ApiError::not_found(format!("service '{service}' not found in stack '{stack}'"))
    })?;
    if svc.global {
        return Err(ApiError::bad_request(
            "replicas",
            format!("service '{service}' is global: it runs one replica per matching host"),
        ));
    }
    svc.replicas = req.replicas;
    if let Some(primary) = project.primary_of(&service) {
        return Err(ApiError::bad_request(
            "service",
            format!(
                "service '{service}' runs beside each replica of '{primary}' (a sidekick): \
                 scale {stack}/{primary}"
            ),
        ));
    }
    let why = format!("scale {service} to {}", req.replicas);
    let resp = apply_project(
        &state,
        &caller,
        &env,
        Deploy {
            project,
            why: Some(why),
            expected: Some(revision),
            ..Deploy::default()
        },
    )
    .await?;
    Ok(Json(resp))
}

#[utoipa::path(get, path = "/v1/environments/{env}/stacks/{name}/history",
    params(("env" = String, Path, description = "environment name"), ("name" = String, Path, description = "stack name")), responses((status = 200, body = Vec<api_types::Revision>), (status = 404, body = api_types::ErrorBody)))]
pub async fn history(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, name)): Path<(String, String)>,
) -> Result<Json<Vec<api_types::Revision>>, ApiError> {
    check_env(&state, &caller, &env)?;
    let (_, current) = current_stack(&state, &env, &name)?;
    let rows = state
        .blocking(move |s| s.store().revisions(&env, &name))
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| api_types::Revision {
                current: r.revision == current,
                revision: r.revision,
                actor: r.actor,
                time_ms: r.time_ms,
                summary: r.summary,
            })
            .collect(),
    ))
}

/// `POST .../stacks/{name}/rollback`: deploys a kept revision's project again (the one before
/// the current by default), as a new revision.
#[utoipa::path(post, path = "/v1/environments/{env}/stacks/{name}/rollback",
    params(("env" = String, Path, description = "environment name"), ("name" = String, Path, description = "stack name")), request_body = api_types::RollbackRequest,
    responses((status = 200, body = DeployResponse), (status = 400, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody)))]
pub async fn rollback(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, name)): Path<(String, String)>,
    JsonBody(req): JsonBody<api_types::RollbackRequest>,
) -> Result<Json<DeployResponse>, ApiError> {
    check_env(&state, &caller, &env)?;
    let (_, current) = current_stack(&state, &env, &name)?;
    let target = match req.revision {
        Some(r) => r,
        None if current > 1 => current - 1,
        None => {
            return Err(ApiError::bad_request(
                "revision",
                format!("stack '{name}' has only its first revision: nothing to roll back to"),
            ));
        }
    };
    if target == current {
        return Err(ApiError::bad_request(
            "revision",
            format!("revision {target} is the current one"),
        ));
    }
    let (e, n) = (env.clone(), name.clone());
    let project = state
        .blocking(move |s| s.store().revision_project(&e, &n, target))
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(
                "revision",
                format!(
                    "stack '{name}' has no revision {target} (see `drover stack history {name}`)"
                ),
            )
        })?;
    let resp = apply_project(
        &state,
        &caller,
        &env,
        Deploy {
            project,
            why: Some(format!("rollback to revision {target}")),
            expected: Some(current),
            ..Deploy::default()
        },
    )
    .await?;
    Ok(Json(resp))
}

/// `POST .../stacks/{stack}/services/{service}/rollback`: the service as it was in the
/// stack's previous revision (the rest of the stack as it is), as a new revision.
#[utoipa::path(post, path = "/v1/environments/{env}/stacks/{stack}/services/{service}/rollback",
    params(("env" = String, Path, description = "environment name"), ("stack" = String, Path, description = "stack name"), ("service" = String, Path, description = "service name (a key of the stack's `services`)")),
    responses((status = 200, body = DeployResponse), (status = 400, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody), (status = 409, body = api_types::ErrorBody)))]
pub async fn rollback_service(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, stack, service)): Path<(String, String, String)>,
) -> Result<Json<DeployResponse>, ApiError> {
    check_env(&state, &caller, &env)?;
    let (mut project, revision) = current_stack(&state, &env, &stack)?;
    if !project.services.contains_key(&service) {
        return Err(ApiError::not_found(format!(
            "service '{service}' not found in stack '{stack}'"
        )));
    }
    let (e, st) = (env.clone(), stack.clone());
    let previous = match revision.checked_sub(1).filter(|r| *r > 0) {
        Some(r) => {
            state
                .blocking(move |s| s.store().revision_project(&e, &st, r))
                .await?
        }
        None => None,
    };
    let old = previous
        .as_ref()
        .and_then(|p| p.services.get(&service))
        .cloned()
        .ok_or_else(|| {
            ApiError::bad_request(
                "service",
                format!(
                    "service '{service}' has no previous revision in stack '{stack}' to go back to"
                ),
            )
        })?;
    project.services.insert(service.clone(), old);
    let resp = apply_project(
        &state,
        &caller,
        &env,
        Deploy {
            project,
            why: Some(format!(
                "rollback of {service} to revision {}",
                revision - 1
            )),
            expected: Some(revision),
            ..Deploy::default()
        },
    )
    .await?;
    Ok(Json(resp))
}

/// The service label a restart sets: a new spec (so every container is replaced, rolled like
/// any upgrade) that says when and why.
pub const RESTARTED_AT: &str = "io.drover.restarted-at";

/// `POST .../stacks/{stack}/services/{service}/restart`: a new revision whose only change is
/// the service's `io.drover.restarted-at` label, so its containers are replaced by a roll.
#[utoipa::path(post, path = "/v1/environments/{env}/stacks/{stack}/services/{service}/restart",
    params(("env" = String, Path, description = "environment name"), ("stack" = String, Path, description = "stack name"), ("service" = String, Path, description = "service name (a key of the stack's `services`)")),
    responses((status = 200, body = DeployResponse), (status = 404, body = api_types::ErrorBody), (status = 409, body = api_types::ErrorBody)))]
pub async fn restart_service(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, stack, service)): Path<(String, String, String)>,
) -> Result<Json<DeployResponse>, ApiError> {
    check_env(&state, &caller, &env)?;
    let (mut project, revision) = current_stack(&state, &env, &stack)?;
    let svc = project.services.get_mut(&service).ok_or_else(|| {
        ApiError::not_found(format!("service '{service}' not found in stack '{stack}'"))
    })?;
    svc.labels.insert(RESTARTED_AT.into(), now_ms().to_string());
    let resp = apply_project(
        &state,
        &caller,
        &env,
        Deploy {
            project,
            why: Some(format!("restart of {service}")),
            expected: Some(revision),
            ..Deploy::default()
        },
    )
    .await?;
    Ok(Json(resp))
}

/// A stack's project and revision now, or 404.
fn current_stack(
    state: &AppState,
    env: &str,
    name: &str,
) -> Result<(compose::Project, u64), ApiError> {
    state
        .model()
        .stack(env, name)
        .map(|e| (e.row.project.clone(), e.row.revision))
        .ok_or_else(|| {
            ApiError::not_found(format!("stack '{name}' not found in environment '{env}'"))
        })
}

/// The most replicas `service scale` sets.
const MAX_REPLICAS: u32 = 10_000;

/// Validates `project`, writes it as the stack's new revision with its placements, rolls
/// and audit event, and waits for the scheduling pass that follows.
pub(crate) async fn apply_project(
    state: &Arc<AppState>,
    caller: &crate::auth::Caller,
    env: &str,
    mut d: Deploy,
) -> Result<DeployResponse, ApiError> {
    crate::api::policy::enforce(state, caller, env, &d.project)?;
    let name = d.project.name.clone();
    let warnings = d.warnings.clone();
    d.source = caller.source.clone();
    let (e, a) = (env.to_string(), caller.actor());
    let written = state.blocking(move |s| write_project(s, &a, &e, d)).await?;
    state.schedule_now().await;
    let stack = state
        .model()
        .stack(env, &name)
        .map(|e| stack_summary(state, env, e))
        .ok_or_else(|| ApiError::not_found("stack vanished during deploy"))?;
    Ok(DeployResponse {
        stack,
        changed: written.changed,
        unchanged: written.unchanged,
        removed: written.removed,
        warnings,
    })
}

/// What a deploy changed, by service.
pub(crate) struct Written {
    changed: Vec<String>,
    unchanged: Vec<String>,
    removed: Vec<String>,
}

/// Validates `project` and writes it as the stack's new revision (placements, rolls, audit
/// event), without waiting for the scheduler. `rollback`: it undoes a roll that failed for
/// this reason.
pub(crate) fn write_project(
    state: &AppState,
    actor: &str,
    env: &str,
    d: Deploy,
) -> Result<Written, ApiError> {
    let Deploy {
        mut project,
        why,
        expected,
        rollback,
        sent,
        source,
        ..
    } = d;
    let rollback = rollback.as_deref();
    compose::validate(&project).map_err(invalid_project)?;
    check_external_networks(state, env, &project)?;
    let now = now_ms();
    let files = state
        .files
        .prepare(env, &mut project, &sent, now)
        .map_err(|r| ApiError {
            field: Some(format!("project.{}", r.path)),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_compose",
                format!("{}: {}", r.path, r.message),
            )
        })?;

    let old = state
        .model()
        .stack(env, &project.name)
        .map(|e| e.row.clone());
    let (mut changed, mut unchanged, mut removed) = (Vec::new(), Vec::new(), Vec::new());
    let old_services = old.as_ref().map(|o| &o.project.services);
    for (name, svc) in &project.services {
        match old_services.and_then(|s| s.get(name)) {
            Some(o) if o.spec_hash() == svc.spec_hash() && o.replicas == svc.replicas => {
                unchanged.push(name.clone())
            }
            _ => changed.push(name.clone()),
        }
    }
    if let Some(old) = old_services {
        removed.extend(
            old.keys()
                .filter(|k| !project.services.contains_key(*k))
                .cloned(),
        );
    }

    for (name, svc) in &project.services {
        let invalid = |e: String| ApiError {
            field: Some(format!("project.services.{name}")),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_compose",
                format!("services.{name}.{e}"),
            )
        };
        let x = proto::x_drover(svc).map_err(invalid)?;
        ingress::expose::check(&x.expose).map_err(|e| invalid(format!("x-drover.{e}")))?;
        x.probe().map_err(|e| invalid(format!("x-drover.{e}")))?;
        x.drain_ms().map_err(|e| invalid(format!("x-drover.{e}")))?;
        if let Some(a) = x
            .affinity
            .iter()
            .find(|a| !project.services.contains_key(&a.service))
        {
            return Err(invalid(format!(
                "x-drover.affinity: no service '{}' in this stack",
                a.service
            )));
        }
        if let Some(s) = x
            .strategy
            .as_deref()
            .filter(|s| *s != "spread" && *s != "binpack")
        {
            return Err(invalid(format!(
                "x-drover.strategy: '{s}' is not spread or binpack"
            )));
        }
    }
    check_exposed(state, env, &project)?;
    let detail = format!(
        "{}changed: [{}] unchanged: [{}] removed: [{}]",
        why.map(|w| format!("{w}; ")).unwrap_or_default(),
        changed.join(", "),
        unchanged.join(", "),
        removed.join(", ")
    );
    let kind = if old.is_some() {
        "stack.updated"
    } else {
        "stack.created"
    };
    let audit = Audit {
        env: env.to_string(),
        actor: actor.to_string(),
        kind,
        subject: project.name.clone(),
        detail,
        source,
    };
    state.put_stack(
        env,
        &project,
        &files,
        |old| crate::rolls::plan(env, old, &project, rollback, now),
        &audit.event(),
        now,
        expected,
    )?;
    Ok(Written {
        changed,
        unchanged,
        removed,
    })
}

/// No two services of the environment may claim the same host and path, or the same TCP
/// port, on the ingress: `project` is checked against the other stacks.
fn check_exposed(state: &AppState, env: &str, project: &compose::Project) -> Result<(), ApiError> {
    let others: Vec<(String, String, Vec<ingress::Expose>)> = crate::ingress::exposed(state, env)
        .into_iter()
        .filter(|(stack, _, _)| *stack != project.name)
        .collect();
    let mine: Vec<(String, Vec<ingress::Expose>)> = project
        .services
        .iter()
        .filter_map(|(name, svc)| {
            let x = proto::x_drover(svc).ok()?;
            (!x.expose.is_empty()).then(|| (name.clone(), x.expose))
        })
        .collect();
    if mine.is_empty() {
        return Ok(());
    }
    let services: Vec<ingress::table::Service<'_>> = others
        .iter()
        .map(|(stack, service, expose)| ingress::table::Service {
            stack,
            service,
            expose,
        })
        .chain(
            mine.iter()
                .map(|(service, expose)| ingress::table::Service {
                    stack: &project.name,
                    service,
                    expose,
                }),
        )
        .collect();
    match ingress::table::conflicts(&services).into_iter().next() {
        None => Ok(()),
        Some(c) => Err(ApiError::new(StatusCode::CONFLICT, "ingress_conflict", c)),
    }
}

/// Every `external: true` network of `project` must be one made with `drover network create`
/// in `env` (its engine name: `name:` if given, else the key).
fn check_external_networks(
    state: &AppState,
    env: &str,
    project: &compose::Project,
) -> Result<(), ApiError> {
    let external: Vec<(&String, String)> = project
        .networks
        .iter()
        .filter(|(_, n)| n.external)
        .map(|(key, n)| (key, proto::network_name(&project.name, key, Some(n))))
        .collect();
    if external.is_empty() {
        return Ok(());
    }
    let created: HashSet<String> = state
        .store()
        .networks(env)?
        .into_iter()
        .map(|r| r.name)
        .collect();
    match external
        .into_iter()
        .find(|(_, name)| !created.contains(name))
    {
        None => Ok(()),
        Some((key, name)) => Err(ApiError {
            field: Some(format!("project.networks.{key}")),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_compose",
                format!(
                    "networks.{key}: external network '{name}' does not exist in environment \
                     '{env}': create it with `drover network create {name}`"
                ),
            )
        }),
    }
}

/// A project that fails [`compose::validate`]: 400, naming the offending field
/// (`project.services.web.deploy.placement.constraints[0]`).
fn invalid_project(e: compose::Error) -> ApiError {
    let field = if e.path.is_empty() {
        "project".to_string()
    } else {
        format!("project.{}", e.path)
    };
    ApiError {
        field: Some(field),
        ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_compose", e.to_string())
    }
}

#[utoipa::path(get, path = "/v1/environments/{env}/stacks",
    params(("env" = String, Path, description = "environment name")), responses((status = 200, body = Vec<StackSummary>)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
) -> Result<Json<Vec<StackSummary>>, ApiError> {
    check_env(&state, &caller, &env)?;
    // Off the async workers: over a million containers this takes a while.
    let summaries = state
        .blocking(move |state| {
            stack_names(state, &env)
                .iter()
                .filter_map(|n| {
                    let model = state.model();
                    Some(stack_summary(state, &env, model.stack(&env, n)?))
                })
                .collect()
        })
        .await;
    Ok(Json(summaries))
}

/// The stacks of `env`. Work over all stacks takes the model lock per stack, so writers
/// (and the readers queued behind them) never wait for a whole listing.
fn stack_names(state: &AppState, env: &str) -> Vec<String> {
    state
        .model()
        .stacks(env)
        .map(|e| e.row.project.name.clone())
        .collect()
}

#[utoipa::path(get, path = "/v1/environments/{env}/stacks/{name}",
    params(("env" = String, Path, description = "environment name"), ("name" = String, Path, description = "stack name")), responses((status = 200, body = StackDetail), (status = 404, body = api_types::ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, name)): Path<(String, String)>,
) -> Result<Json<StackDetail>, ApiError> {
    check_env(&state, &caller, &env)?;
    summary_of(&state, &env, &name)?.map(Json).ok_or_else(|| {
        ApiError::not_found(format!("stack '{name}' not found in environment '{env}'"))
    })
}

#[utoipa::path(get, path = "/v1/environments/{env}/stacks/{name}/compose",
    params(("env" = String, Path, description = "environment name"), ("name" = String, Path, description = "stack name")), responses((status = 200, description = "the stack as a compose file", content_type = "application/yaml")))]
pub async fn export(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, name)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    check_env(&state, &caller, &env)?;
    let row = state
        .model()
        .stack(&env, &name)
        .map(|e| e.row.clone())
        .ok_or_else(|| {
            ApiError::not_found(format!("stack '{name}' not found in environment '{env}'"))
        })?;
    Ok((
        [(header::CONTENT_TYPE, "application/yaml")],
        compose::to_compose_yaml(&row.project),
    ))
}

/// `DELETE .../stacks/{name}?wait=SECS`: how long to wait for the containers to be gone.
#[derive(serde::Deserialize)]
pub struct RemoveQuery {
    #[serde(default)]
    wait: Option<u64>,
}

/// The longest a removal waits for containers to be gone.
const MAX_REMOVE_WAIT_SECS: u64 = 300;

#[utoipa::path(delete, path = "/v1/environments/{env}/stacks/{name}",
    params(("env" = String, Path, description = "environment name"), ("name" = String, Path, description = "stack name"), ("wait" = Option<u64>, Query, description = "seconds to wait until the connected hosts report the stack's containers gone (at most 300)")),
    responses((status = 204, description = "removed (and, with wait, its containers gone)"), (status = 202, body = api_types::Remaining, description = "removed; containers still there when the wait ended"), (status = 404, body = api_types::ErrorBody)))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, name)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<RemoveQuery>,
) -> Result<axum::response::Response, ApiError> {
    check_env(&state, &caller, &env)?;
    let audit = Audit {
        env: env.clone(),
        actor: caller.actor(),
        source: caller.source.clone(),
        kind: "stack.removed",
        subject: name.clone(),
        detail: String::new(),
    };
    // The stack's own networks, which go with it (not those it joins).
    let networks: Vec<String> = state
        .model()
        .stack(&env, &name)
        .map(|e| {
            let p = &e.row.project;
            p.services
                .values()
                .flat_map(|s| s.networks.keys())
                .filter(|k| !p.networks.get(*k).is_some_and(|n| n.external))
                .map(|k| proto::network_name(&p.name, k, p.networks.get(k)))
                .collect()
        })
        .unwrap_or_default();
    let deleted = state
        .blocking(move |s| s.delete_stack(&audit.env, &audit.subject, &audit.event(), now_ms()))
        .await?;
    if !deleted {
        return Err(ApiError::not_found(format!(
            "stack '{name}' not found in environment '{env}'"
        )));
    }
    state.schedule_now().await;
    let Some(secs) = q.wait.map(|w| w.min(MAX_REMOVE_WAIT_SECS)) else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let remaining = leftovers(&state, &env, &name, &networks);
        if remaining.is_empty() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok((
                StatusCode::ACCEPTED,
                Json(api_types::Remaining {
                    containers: remaining,
                }),
            )
                .into_response());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Containers and networks of a removed stack that connected hosts still report.
fn leftovers(state: &AppState, env: &str, stack: &str, networks: &[String]) -> Vec<String> {
    let mut out: Vec<String> = state
        .connected_hosts(env)
        .iter()
        .filter_map(|h| state.report(h))
        .flat_map(|r| {
            let containers = r
                .containers()
                .filter(|c| c.env == env && c.stack == stack)
                .map(|c| c.name.clone());
            let nets = r
                .networks()
                .iter()
                .filter(|n| networks.contains(&n.name))
                .map(|n| format!("network {}", n.name));
            containers.chain(nets).collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out
}

/// Desired containers of `env` (optionally one stack) joined with what hosts report.
pub fn container_infos(state: &AppState, env: &str, stack: Option<&str>) -> Vec<ContainerInfo> {
    let names = match stack {
        Some(n) => vec![n.to_string()],
        None => stack_names(state, env),
    };
    let mut out = Vec::new();
    for name in names {
        let model = state.model();
        let Some(e) = model.stack(env, &name) else {
            continue;
        };
        let slots = e
            .containers()
            .map(|(slot, host)| (e, slot, host.map(|h| &**h)));
        out.extend(join_reports(state, env, slots));
    }
    out
}

/// The containers placed on host `host`.
pub fn host_containers(state: &AppState, env: &str, host: &str) -> Vec<ContainerInfo> {
    let model = state.model();
    let slots = model
        .slots_on(host)
        .into_iter()
        .flatten()
        .filter(|(key, _)| &*key.0 == env)
        .filter_map(|(key, slots)| Some((model.stack_by_key(key)?, slots)))
        .flat_map(|(e, slots)| {
            slots
                .iter()
                .flat_map(move |slot| e.with_sidekicks(slot).map(move |s| (e, s, Some(host))))
        });
    join_reports(state, env, slots)
}

/// Desired container slots joined with what their hosts report.
fn join_reports<'a>(
    state: &AppState,
    env: &str,
    slots: impl Iterator<Item = (&'a StackEntry, SlotId, Option<&'a str>)>,
) -> Vec<ContainerInfo> {
    let mut reports = ReportCache::default();
    slots
        .map(|(entry, slot, host)| container_info(state, &mut reports, env, entry, &slot, host))
        .collect()
}

/// Reports and connectedness of hosts, looked up once per request.
#[derive(Default)]
struct ReportCache {
    hosts: HashMap<String, (Option<HostReport>, bool)>,
}

impl ReportCache {
    fn get(&mut self, state: &AppState, host: &str) -> &(Option<HostReport>, bool) {
        if !self.hosts.contains_key(host) {
            let seen = (state.report(host), state.is_connected(host));
            self.hosts.insert(host.to_string(), seen);
        }
        &self.hosts[host]
    }

    /// Slot `(service, slot)` of `entry`, placed on `host`, as that host reports it.
    fn slot<'a>(
        &mut self,
        state: &AppState,
        entry: &'a StackEntry,
        (service, slot): &SlotId,
        host: Option<&'a str>,
    ) -> SlotReport<'a> {
        let (report, connected) = match host {
            Some(h) => self.get(state, h).clone(),
            None => (None, false),
        };
        SlotReport {
            name: proto::container_name(&entry.row.project.name, service, *slot),
            entry,
            service: service.clone(),
            host,
            report,
            connected,
        }
    }
}

/// One slot's container as its host reports it.
struct SlotReport<'a> {
    name: String,
    entry: &'a StackEntry,
    service: crate::model::Name,
    host: Option<&'a str>,
    report: Option<HostReport>,
    connected: bool,
}

impl SlotReport<'_> {
    fn observed(&self) -> Option<&proto::ObservedContainer> {
        self.report.as_ref().and_then(|r| r.container(&self.name))
    }

    /// What counts for the stack's status.
    fn seen(&self) -> Seen<'_> {
        let observed = self.observed();
        let want_hash = self.entry.spec_hash(&self.service);
        Seen {
            state: observed_state(self.host, self.connected, observed),
            health: observed.and_then(|o| o.health).map(|h| h.as_str()),
            exit_code: observed.and_then(|o| o.exit_code),
            up_to_date: observed.is_some_and(|o| o.spec_hash == want_hash),
            error: self.host.is_none()
                || self
                    .report
                    .as_ref()
                    .is_some_and(|r| r.error(&self.name).is_some()),
        }
    }
}

/// One desired container joined with what its host reports.
fn container_info(
    state: &AppState,
    reports: &mut ReportCache,
    env: &str,
    entry: &StackEntry,
    slot: &SlotId,
    host: Option<&str>,
) -> ContainerInfo {
    let r = reports.slot(state, entry, slot, host);
    let observed = r.observed();
    let seen = r.seen();
    let error = match (host, &r.report) {
        (None, _) => Some(
            state
                .pending_reason(env, &r.name)
                .unwrap_or_else(|| "waiting to be placed".into()),
        ),
        (Some(_), Some(report)) => report.error(&r.name).map(|e| e.message.clone()),
        (Some(_), None) => None,
    };
    ContainerInfo {
        env: env.to_string(),
        stack: entry.row.project.name.clone(),
        service: slot.0.to_string(),
        slot: slot.1,
        host: host.map(str::to_string),
        state: seen.state.to_string(),
        health: seen.health.map(str::to_string),
        exit_code: seen.exit_code,
        status: observed.map(|o| o.status.clone()).unwrap_or_default(),
        error,
        waiting: r
            .report
            .as_ref()
            .and_then(|rep| rep.waiting(&r.name))
            .map(str::to_string),
        up_to_date: seen.up_to_date,
        id: observed.map(|o| o.id.clone()),
        name: r.name.clone(),
    }
}

/// A stack's container tallies, from which its status follows.
#[derive(Default)]
struct Tally {
    total: usize,
    running: usize,
    settled: usize,
    failed: bool,
}

impl Tally {
    /// Counts one container. Settled: running the current spec (and not still starting), or
    /// a one-shot (`restart: no`) that completed successfully. Failed: an error, unhealthy,
    /// or the current spec exited when it should not have.
    fn add(&mut self, svc: Option<&compose::Service>, c: &Seen<'_>) {
        let one_shot = svc.is_some_and(|s| s.restart.is_no());
        let ok_exit = one_shot && c.state == "exited" && c.exit_code == Some(0);
        self.total += 1;
        self.running += usize::from(c.state == "running");
        if c.up_to_date && (c.state == "running" && c.health != Some("starting") || ok_exit) {
            self.settled += 1;
        }
        self.failed |= c.error
            || c.health == Some("unhealthy")
            || (c.up_to_date && c.state == "exited" && !ok_exit);
    }

    fn status(&self) -> &'static str {
        if self.settled == self.total {
            "converged"
        } else if self.failed {
            "degraded"
        } else {
            "deploying"
        }
    }
}

/// What counts about one container for its stack's status.
struct Seen<'a> {
    state: &'a str,
    health: Option<&'a str>,
    exit_code: Option<i64>,
    up_to_date: bool,
    error: bool,
}

impl<'a> From<&'a ContainerInfo> for Seen<'a> {
    fn from(c: &'a ContainerInfo) -> Self {
        Seen {
            state: &c.state,
            health: c.health.as_deref(),
            exit_code: c.exit_code,
            up_to_date: c.up_to_date,
            error: c.error.is_some(),
        }
    }
}

/// The names of the environment's desired containers that are not settled (as a stack's
/// status counts them): what the reconcile lag is measured on.
pub fn unsettled(state: &AppState, env: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut reports = ReportCache::default();
    for name in stack_names(state, env) {
        let model = state.model();
        let Some(entry) = model.stack(env, &name) else {
            continue;
        };
        for (slot, host) in entry.containers() {
            let r = reports.slot(state, entry, &slot, host.map(|h| &**h));
            let mut one = Tally::default();
            one.add(entry.row.project.services.get(&*slot.0), &r.seen());
            if one.settled == 0 {
                out.push(r.name);
            }
        }
    }
    out
}

/// The stack's summary alone, counted without building each container's record.
fn stack_summary(state: &AppState, env: &str, entry: &StackEntry) -> StackSummary {
    let mut reports = ReportCache::default();
    let mut tally = Tally::default();
    for (slot, host) in entry.containers() {
        let r = reports.slot(state, entry, &slot, host.map(|h| &**h));
        tally.add(entry.row.project.services.get(&*slot.0), &r.seen());
    }
    summary_row(state, env, &entry.row, &tally)
}

fn summary_row(state: &AppState, env: &str, row: &store::StackRow, tally: &Tally) -> StackSummary {
    StackSummary {
        catalog: crate::api::catalog::stack_origin(state, env, &row.project),
        env: env.to_string(),
        name: row.project.name.clone(),
        revision: row.revision,
        services: row.project.services.len(),
        containers: tally.total,
        running: tally.running,
        status: tally.status().to_string(),
        created_ms: row.created_ms,
        updated_ms: row.updated_ms,
    }
}

/// A container's state as shown: pending until placed and reported, unknown while its
/// host is not connected.
fn observed_state(
    host: Option<&str>,
    connected: bool,
    observed: Option<&proto::ObservedContainer>,
) -> &'static str {
    match (host, observed, connected) {
        (None, _, _) | (Some(_), None, true) => "pending",
        (Some(_), _, false) => "unknown",
        (Some(_), Some(o), true) => o.state.as_str(),
    }
}

fn summary_of(state: &AppState, env: &str, name: &str) -> Result<Option<StackDetail>, ApiError> {
    let Some((row, rolls)) = state.model().stack(env, name).map(|e| {
        let rolls: HashMap<String, api_types::RollStatus> = e
            .rolls
            .iter()
            .map(|(svc, r)| (svc.to_string(), roll_status(&e.row.project.name, svc, r)))
            .collect();
        (e.row.clone(), rolls)
    }) else {
        return Ok(None);
    };
    let containers = container_infos(state, env, Some(name));
    let units = row.project.units();
    let mut services = Vec::new();
    let mut tally = Tally::default();
    for (svc_name, svc) in &row.project.services {
        let mine: Vec<ContainerInfo> = containers
            .iter()
            .filter(|c| &c.service == svc_name)
            .cloned()
            .collect();
        for c in &mine {
            tally.add(Some(svc), &c.into());
        }
        services.push(ServiceStatus {
            name: svc_name.clone(),
            image: svc
                .image
                .clone()
                .unwrap_or_else(|| format!("{name}-{svc_name} (build)")),
            // A sidekick has its primary's count.
            replicas: units
                .primary_of(svc_name)
                .and_then(|p| row.project.services.get(p))
                .map_or(svc.replicas, |p| p.replicas),
            running: mine.iter().filter(|c| c.state == "running").count(),
            containers: mine,
            roll: rolls.get(svc_name.as_str()).cloned(),
        });
    }
    Ok(Some(StackDetail {
        stack: summary_row(state, env, &row, &tally),
        services,
    }))
}

fn roll_status(stack: &str, service: &str, r: &roll::Roll) -> api_types::RollStatus {
    let (phase, reason) = match &r.phase {
        roll::Phase::Rolling => ("rolling", None),
        roll::Phase::Done => ("done", None),
        roll::Phase::Paused { reason } => ("paused", Some(reason.clone())),
        roll::Phase::RollingBack { reason } => ("rolling_back", Some(reason.clone())),
    };
    api_types::RollStatus {
        revision: r.target,
        from: r.from,
        phase: phase.into(),
        reason,
        rollback: r.rollback,
        cause: r.cause.clone(),
        updated: r.updated,
        order: r.settings.order.as_str().into(),
        parallelism: r.settings.parallelism,
        draining: r
            .draining
            .keys()
            .map(|id| proto::container_name(stack, service, *id))
            .collect(),
        started_ms: r.started_ms,
        ended_ms: r.ended_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_constraints_in_a_json_project_are_a_400_naming_the_field() {
        let json = r#"{"name": "shop", "services": {"web": {"image": "nginx",
            "placement": {"constraints": ["node.labels.region = eu"]}}}}"#;
        let project: compose::Project = serde_json::from_str(json).expect("project json");
        let err = compose::validate(&project)
            .map_err(invalid_project)
            .expect_err("invalid constraint");
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            err.field.as_deref(),
            Some("project.services.web.deploy.placement.constraints[0]")
        );
        assert!(
            err.message.contains("expected KEY == VALUE"),
            "{}",
            err.message
        );
    }
}

/// Values of secrets and configs sent with a deploy: (kind, top-level key) → bytes.
pub(crate) type Sent = std::collections::BTreeMap<(compose::FileKind, String), Vec<u8>>;

/// A deploy to write: the project and what comes with it.
#[derive(Default)]
pub(crate) struct Deploy {
    pub project: compose::Project,
    pub warnings: Vec<String>,
    /// Why, besides the changes (a scale, a rollback...).
    pub why: Option<String>,
    /// The revision the deploy was made from: refused if the stack changed meanwhile.
    pub expected: Option<u64>,
    /// It undoes a roll that failed for this reason.
    pub rollback: Option<String>,
    pub sent: Sent,
    /// The caller's address, for the audit event.
    pub source: String,
}
