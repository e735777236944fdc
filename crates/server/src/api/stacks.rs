//! Stacks: deploy (create or update), list, inspect with live container status, export as a
//! compose file, remove.

use std::collections::HashMap;
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
use crate::model::SlotId;
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

#[utoipa::path(post, path = "/v1/environments/{env}/stacks", request_body = DeployRequest,
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
    compose::validate(&project).map_err(|e| ApiError {
        field: Some("project".into()),
        ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_compose", e.to_string())
    })?;

    let old = state
        .model()
        .stack(&env, &project.name)
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
        let x = proto::x_drover(svc).map_err(|e| ApiError {
            field: Some(format!("project.services.{name}")),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_compose",
                format!("services.{name}.{e}"),
            )
        })?;
        if let Some(a) = x
            .affinity
            .iter()
            .find(|a| !project.services.contains_key(&a.service))
        {
            return Err(ApiError {
                field: Some(format!("project.services.{name}")),
                ..ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_compose",
                    format!(
                        "services.{name}.x-drover.affinity: no service '{}' in this stack",
                        a.service
                    ),
                )
            });
        }
        if let Some(s) = x
            .strategy
            .as_deref()
            .filter(|s| *s != "spread" && *s != "binpack")
        {
            return Err(ApiError {
                field: Some(format!("project.services.{name}")),
                ..ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_compose",
                    format!("services.{name}.x-drover.strategy: '{s}' is not spread or binpack"),
                )
            });
        }
    }
    let placements = {
        let model = state.model();
        let existing: Vec<store::Placement> = model
            .stack(&env, &project.name)
            .map(|e| {
                e.slots
                    .iter()
                    .map(|(slot, host)| {
                        crate::model::placement(&env, &project.name, slot, host.as_ref())
                    })
                    .collect()
            })
            .unwrap_or_default();
        crate::scheduling::deploy_placements(&env, &project, &existing)
    };
    let detail = format!(
        "changed: [{}] unchanged: [{}] removed: [{}]",
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
        env: env.clone(),
        actor: caller.name.clone(),
        kind,
        subject: project.name.clone(),
        detail,
    };
    let p = project.clone();
    state
        .blocking(move |s| s.put_stack(&audit.env, &p, &placements, &audit.event(), now_ms()))
        .await?;
    state.schedule_now().await;
    let stack = summary_of(&state, &env, &project.name)?
        .ok_or_else(|| ApiError::not_found("stack vanished during deploy"))?;
    Ok(Json(DeployResponse {
        stack: stack.stack,
        changed,
        unchanged,
        removed,
        warnings,
    }))
}

#[utoipa::path(get, path = "/v1/environments/{env}/stacks", responses((status = 200, body = Vec<StackSummary>)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
) -> Result<Json<Vec<StackSummary>>, ApiError> {
    check_env(&state, &caller, &env)?;
    let names: Vec<String> = state
        .model()
        .stacks(&env)
        .map(|s| s.row.project.name.clone())
        .collect();
    let mut out = Vec::new();
    for n in names {
        if let Some(d) = summary_of(&state, &env, &n)? {
            out.push(d.stack);
        }
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/v1/environments/{env}/stacks/{name}", responses((status = 200, body = StackDetail), (status = 404, body = api_types::ErrorBody)))]
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

#[utoipa::path(get, path = "/v1/environments/{env}/stacks/{name}/compose", responses((status = 200, description = "the stack as a compose file", content_type = "application/yaml")))]
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

#[utoipa::path(delete, path = "/v1/environments/{env}/stacks/{name}", responses((status = 204), (status = 404, body = api_types::ErrorBody)))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    check_env(&state, &caller, &env)?;
    let audit = Audit {
        env: env.clone(),
        actor: caller.name.clone(),
        kind: "stack.removed",
        subject: name.clone(),
        detail: String::new(),
    };
    let deleted = state
        .blocking(move |s| s.delete_stack(&audit.env, &audit.subject, &audit.event(), now_ms()))
        .await?;
    if !deleted {
        return Err(ApiError::not_found(format!(
            "stack '{name}' not found in environment '{env}'"
        )));
    }
    state.schedule_now().await;
    Ok(StatusCode::NO_CONTENT)
}

/// Desired containers of `env` (optionally one stack) joined with what hosts report.
pub fn container_infos(state: &AppState, env: &str, stack: Option<&str>) -> Vec<ContainerInfo> {
    let model = state.model();
    let slots = model
        .stacks(env)
        .filter(|e| stack.is_none_or(|n| n == e.row.project.name))
        .flat_map(|e| {
            e.slots
                .iter()
                .map(move |(slot, host)| (&e.row.project, slot, host.as_deref()))
        });
    join_reports(state, env, slots)
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
                .map(move |slot| (&e.row.project, slot, Some(host)))
        });
    join_reports(state, env, slots)
}

/// Desired container slots joined with what their hosts report.
fn join_reports<'a>(
    state: &AppState,
    env: &str,
    slots: impl Iterator<Item = (&'a compose::Project, &'a SlotId, Option<&'a str>)>,
) -> Vec<ContainerInfo> {
    let mut reports = ReportCache::default();
    slots
        .map(|(project, slot, host)| container_info(state, &mut reports, env, project, slot, host))
        .collect()
}

/// Reports and connectedness of hosts, looked up once per request.
#[derive(Default)]
struct ReportCache(HashMap<String, (Option<HostReport>, bool)>);

impl ReportCache {
    fn get(&mut self, state: &AppState, host: &str) -> &(Option<HostReport>, bool) {
        self.0
            .entry(host.to_string())
            .or_insert_with(|| (state.report(host), state.is_connected(host)))
    }
}

/// One desired container joined with what its host reports.
fn container_info(
    state: &AppState,
    reports: &mut ReportCache,
    env: &str,
    project: &compose::Project,
    (service, slot): &SlotId,
    host: Option<&str>,
) -> ContainerInfo {
    let name = proto::container_name(&project.name, service, *slot);
    let want_hash = project
        .services
        .get(&**service)
        .map(|s| s.spec_hash())
        .unwrap_or_default();
    let (report, connected) = match host {
        Some(h) => reports.get(state, h).clone(),
        None => (None, false),
    };
    let observed = report.as_ref().and_then(|r| r.container(&name));
    let error = report
        .as_ref()
        .and_then(|r| r.error(&name))
        .map(|e| e.message.clone());
    let waiting = report
        .as_ref()
        .and_then(|r| r.waiting(&name))
        .map(str::to_string);
    let state_str = match (host, observed, connected) {
        (None, _, _) => "pending".to_string(),
        (Some(_), _, false) => "unknown".to_string(),
        (Some(_), None, true) => "pending".to_string(),
        (Some(_), Some(o), true) => serde_json::to_value(o.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
    };
    ContainerInfo {
        env: env.to_string(),
        stack: project.name.clone(),
        service: service.to_string(),
        slot: *slot,
        host: host.map(str::to_string),
        state: state_str,
        health: observed.and_then(|o| o.health).and_then(|h| {
            serde_json::to_value(h)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
        }),
        exit_code: observed.and_then(|o| o.exit_code),
        status: observed.map(|o| o.status.clone()).unwrap_or_default(),
        error: if host.is_none() {
            Some(
                state
                    .pending_reason(env, &name)
                    .unwrap_or_else(|| "waiting to be placed".into()),
            )
        } else {
            error
        },
        waiting,
        up_to_date: observed.is_some_and(|o| o.spec_hash == want_hash),
        id: observed.map(|o| o.id.clone()),
        name,
    }
}

/// A container that is where it should be: running the current spec, or a one-shot
/// (`restart: no`) that completed successfully.
fn is_settled(c: &ContainerInfo, svc: Option<&compose::Service>) -> bool {
    let one_shot = svc.is_some_and(|s| s.restart.is_no());
    c.up_to_date
        && (c.state == "running" && c.health.as_deref() != Some("starting")
            || one_shot && c.state == "exited" && c.exit_code == Some(0))
}

fn summary_of(state: &AppState, env: &str, name: &str) -> Result<Option<StackDetail>, ApiError> {
    let Some(row) = state.model().stack(env, name).map(|e| e.row.clone()) else {
        return Ok(None);
    };
    let containers = container_infos(state, env, Some(name));
    let mut services = Vec::new();
    let mut settled = 0;
    let mut failed = false;
    for (svc_name, svc) in &row.project.services {
        let mine: Vec<ContainerInfo> = containers
            .iter()
            .filter(|c| &c.service == svc_name)
            .cloned()
            .collect();
        settled += mine.iter().filter(|c| is_settled(c, Some(svc))).count();
        failed |= mine.iter().any(|c| {
            c.error.is_some()
                || c.health.as_deref() == Some("unhealthy")
                || (c.up_to_date
                    && c.state == "exited"
                    && !(svc.restart.is_no() && c.exit_code == Some(0)))
        });
        services.push(ServiceStatus {
            name: svc_name.clone(),
            image: svc
                .image
                .clone()
                .unwrap_or_else(|| format!("{name}-{svc_name} (build)")),
            replicas: svc.replicas,
            running: mine.iter().filter(|c| c.state == "running").count(),
            containers: mine,
        });
    }
    let total = containers.len();
    let status = if settled == total {
        "converged"
    } else if failed {
        "degraded"
    } else {
        "deploying"
    };
    Ok(Some(StackDetail {
        stack: StackSummary {
            env: env.to_string(),
            name: name.to_string(),
            revision: row.revision,
            services: row.project.services.len(),
            containers: total,
            running: containers.iter().filter(|c| c.state == "running").count(),
            status: status.to_string(),
            created_ms: row.created_ms,
            updated_ms: row.updated_ms,
        },
        services,
    }))
}
