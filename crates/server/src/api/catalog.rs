//! The app catalog over the API: catalogs of an environment (`/catalogs`), their templates
//! (`/templates`: search, show, install) and upgrades of installed stacks
//! (`/stacks/{name}/upgrade`). Rendering is the pure `catalog` crate; a deploy goes through
//! the same path as a compose file (validation, the container policy, rolls).
//!
//! A stack made from a template carries where it came from in its project, as the
//! top-level extension `x-drover-catalog`: catalog, template, version, its answers sealed
//! with the server's key, and the digest of the template's copy in the store. Every
//! revision keeps it, so a rollback returns to the version with its answers, and a stack
//! stays upgradable when its catalog is gone.

use std::collections::BTreeMap;
use std::sync::Arc;

use api_types::{
    CatalogInfo, DeployResponse, InstallRequest, InstallResponse, NewCatalog, QuestionInfo,
    StackOrigin, TemplateDetail, TemplateSummary, UpgradePlan, UpgradeRequest,
};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::stacks::{Deploy, apply_project};
use crate::auth::{User, Who};
use crate::catalogs::{BUILTIN, is_local};
use crate::error::{ApiError, JsonBody};
use crate::state::{AppState, Audit, now_ms};

/// The project extension that says where a stack came from.
pub const ORIGIN_KEY: &str = "x-drover-catalog";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Origin {
    catalog: String,
    template: String,
    version: String,
    /// The answers (JSON), sealed under `answers/{env}/{stack}`.
    answers: String,
    /// The digest of the template's copy in the store.
    copy: String,
}

fn origin(project: &compose::Project) -> Option<Origin> {
    serde_json::from_value(project.extensions.get(ORIGIN_KEY)?.clone()).ok()
}

/// What `stack ls` shows of a stack's origin, with a newer version when its catalog has one.
pub fn stack_origin(
    state: &AppState,
    env: &str,
    project: &compose::Project,
) -> Option<StackOrigin> {
    let o = origin(project)?;
    let newer = state
        .catalogs
        .index(env, &o.catalog)
        .and_then(|i| {
            i.templates
                .get(&o.template)?
                .latest()
                .map(|v| v.version.clone())
        })
        .filter(|latest| catalog::compare_versions(latest, &o.version).is_gt());
    Some(StackOrigin {
        catalog: o.catalog,
        template: o.template,
        version: o.version,
        newer,
    })
}

fn question_info(q: &catalog::Question) -> QuestionInfo {
    QuestionInfo {
        variable: q.variable.clone(),
        label: q.label.clone(),
        description: q.description.clone(),
        kind: serde_json::to_value(q.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        required: q.required,
        default: q.default.clone(),
        options: q.options.clone(),
        min: q.min,
        max: q.max,
        pattern: q.pattern.clone(),
        group: q.group.clone(),
        show_if: q.show_if.clone(),
        generate: q.generate,
    }
}

fn summary(catalog: &str, t: &catalog::Template) -> TemplateSummary {
    TemplateSummary {
        catalog: catalog.to_string(),
        name: t.name.clone(),
        display_name: t.display_name.clone(),
        description: t.description.clone(),
        categories: t.categories.clone(),
        versions: t.versions.iter().map(|v| v.version.clone()).collect(),
    }
}

/// A template of a catalog of `env`.
fn template(
    state: &AppState,
    env: &str,
    cat: &str,
    name: &str,
) -> Result<catalog::Template, ApiError> {
    let index = state
        .catalogs
        .index(env, cat)
        .ok_or_else(|| ApiError::not_found(format!("no catalog '{cat}' (drover catalog ls)")))?;
    index
        .templates
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("catalog '{cat}' has no template '{name}'")))
}

fn version<'a>(
    t: &'a catalog::Template,
    v: Option<&str>,
) -> Result<&'a catalog::Version, ApiError> {
    match v {
        Some(v) => t.version(v).ok_or_else(|| {
            let known: Vec<&str> = t.versions.iter().map(|v| v.version.as_str()).collect();
            ApiError::bad_request(
                "version",
                format!(
                    "template '{}' has no version '{v}' (it has {})",
                    t.name,
                    known.join(", ")
                ),
            )
        }),
        None => t.latest().ok_or_else(|| {
            ApiError::bad_request("version", format!("template '{}' has no version", t.name))
        }),
    }
}

fn answers_error(errors: Vec<catalog::AnswerError>) -> ApiError {
    let first = errors
        .first()
        .map(|e| e.question.clone())
        .unwrap_or_default();
    let message: Vec<String> = errors.iter().map(ToString::to_string).collect();
    ApiError::bad_request(&format!("answers.{first}"), message.join("; "))
}

fn render_error(e: catalog::RenderError) -> ApiError {
    match e {
        catalog::RenderError::Answers(errors) => answers_error(errors),
        other => ApiError::bad_request("template", other.to_string()),
    }
}

/// Running services of the environment (`STACK/SERVICE`), for `service` questions.
fn services(state: &AppState, env: &str) -> Vec<String> {
    state
        .model()
        .stacks(env)
        .flat_map(|e| {
            let stack = e.row.project.name.clone();
            e.row
                .project
                .services
                .keys()
                .map(move |s| format!("{stack}/{s}"))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn random(buf: &mut [u8]) {
    // The OS random source failing is not recoverable for a generated password.
    if let Err(e) = getrandom::fill(buf) {
        panic!("OS random source unavailable: {e}");
    }
}

fn sealed_name(env: &str, stack: &str) -> String {
    format!("answers/{env}/{stack}")
}

/// Renders `t` at `v` with `answers` as `stack`, and marks the project with its origin
/// (answers sealed, the template's copy kept).
async fn prepare(
    state: &Arc<AppState>,
    env: &str,
    cat: &str,
    t: &catalog::Template,
    v: &str,
    answers: &catalog::Answers,
    stack: &str,
) -> Result<catalog::Rendered, ApiError> {
    let mut rendered = catalog::render(t, v, answers, stack).map_err(render_error)?;
    let json =
        serde_json::to_vec(answers).map_err(|e| ApiError::bad_request("answers", e.to_string()))?;
    let sealed = state
        .vault
        .seal(&sealed_name(env, stack), &json)
        .map_err(|e| ApiError::bad_request("answers", e.to_string()))?;
    let copy =
        serde_json::to_string(t).map_err(|e| ApiError::bad_request("template", e.to_string()))?;
    let digest = hex::encode(Sha256::digest(copy.as_bytes()));
    let d = digest.clone();
    state
        .blocking(move |s| s.store().put_template_copy(&d, &copy))
        .await?;
    let o = Origin {
        catalog: cat.to_string(),
        template: t.name.clone(),
        version: v.to_string(),
        answers: sealed,
        copy: digest,
    };
    rendered.project.extensions.insert(
        ORIGIN_KEY.to_string(),
        serde_json::to_value(o).map_err(|e| ApiError::bad_request("template", e.to_string()))?,
    );
    Ok(rendered)
}

fn response(
    stack: &str,
    version: &str,
    rendered: &catalog::Rendered,
    answers: &catalog::Answers,
    deployed: Option<DeployResponse>,
) -> InstallResponse {
    InstallResponse {
        stack: stack.to_string(),
        version: version.to_string(),
        compose: rendered.compose_yaml.clone(),
        warnings: rendered.warnings.clone(),
        answers: answers.redacted(),
        deployed,
    }
}

#[utoipa::path(get, path = "/v1/environments/{env}/catalogs", tag = "catalog",
    params(("env" = String, Path, description = "environment")),
    responses((status = 200, body = Vec<CatalogInfo>)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
) -> Json<Vec<CatalogInfo>> {
    Json(
        state
            .catalogs
            .list(&env)
            .into_iter()
            .map(|(name, l)| CatalogInfo {
                templates: l.index.as_ref().map_or(0, |i| i.templates.len()),
                problems: l
                    .index
                    .as_ref()
                    .map(|i| {
                        i.problems
                            .iter()
                            .map(|p| format!("{}: {}: {}", p.template, p.file, p.reason))
                            .collect()
                    })
                    .unwrap_or_default(),
                name,
                source: l.source,
                branch: l.branch,
                error: l.error,
                refreshed_ms: l.refreshed_ms,
            })
            .collect(),
    )
}

/// A catalog name: like an environment's.
fn check_name(name: &str) -> Result<(), ApiError> {
    if name == BUILTIN || !(name.len() <= 63 && compose::is_valid_project_name(name)) {
        return Err(ApiError::bad_request(
            "name",
            format!(
                "invalid catalog name {name:?}: 1 to 63 lowercase letters, digits, '-' and '_' \
                 (and not '{BUILTIN}', the built-in one)"
            ),
        ));
    }
    Ok(())
}

/// Adds a catalog and fetches it; refused (and not kept) when it cannot be fetched.
#[utoipa::path(post, path = "/v1/environments/{env}/catalogs", tag = "catalog", request_body = NewCatalog,
    params(("env" = String, Path, description = "environment")),
    responses((status = 201, body = CatalogInfo), (status = 400, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody), (status = 409, body = api_types::ErrorBody)))]
pub async fn add(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Who(who): Who,
    Path(env): Path<String>,
    JsonBody(req): JsonBody<NewCatalog>,
) -> Result<(StatusCode, Json<CatalogInfo>), ApiError> {
    check_name(&req.name)?;
    if req.source.is_empty() || req.source.len() > 2048 || req.source.starts_with('-') {
        return Err(ApiError::bad_request(
            "source",
            "source: a git URL or a directory",
        ));
    }
    if let Some(b) = &req.branch
        && (b.is_empty() || b.starts_with('-') || b.len() > 255)
    {
        return Err(ApiError::bad_request(
            "branch",
            "branch: a branch or tag name",
        ));
    }
    if is_local(&req.source) && !who.admin {
        return Err(ApiError::forbidden(
            "a catalog read from the server's own files (a directory or file:// URL) needs an admin",
        ));
    }
    if state.catalogs.index(&env, &req.name).is_some() {
        return Err(ApiError::conflict(format!("catalog '{}' exists", req.name)));
    }
    let loaded = state
        .catalogs
        .fetch(&env, &req.name, &req.source, req.branch.as_deref())
        .await;
    if let Some(why) = loaded.error {
        state.catalogs.remove(&env, &req.name);
        return Err(ApiError::bad_request(
            "source",
            format!("catalog '{}': {why}", req.name),
        ));
    }
    let row = store::CatalogRow {
        env: env.clone(),
        name: req.name.clone(),
        source: req.source.clone(),
        branch: req.branch.clone(),
        created_ms: now_ms(),
    };
    let audit = Audit::by(
        &caller,
        &env,
        "catalog.added",
        &req.name,
        req.source.clone(),
    );
    let added = state
        .blocking(move |s| s.store().add_catalog(&row, &audit.event(), now_ms()))
        .await?;
    if !added {
        return Err(ApiError::conflict(format!("catalog '{}' exists", req.name)));
    }
    let info = list(State(state), Path(env))
        .await
        .0
        .into_iter()
        .find(|c| c.name == req.name)
        .ok_or_else(|| ApiError::not_found("catalog vanished"))?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// Removes a catalog; stacks installed from it keep running and stay upgradable from their
/// copy.
#[utoipa::path(delete, path = "/v1/environments/{env}/catalogs/{name}", tag = "catalog",
    params(("env" = String, Path, description = "environment"), ("name" = String, Path, description = "catalog")),
    responses((status = 204), (status = 404, body = api_types::ErrorBody)))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let audit = Audit::by(&caller, &env, "catalog.removed", &name, "");
    let (e, n) = (env.clone(), name.clone());
    let removed = state
        .blocking(move |s| s.store().remove_catalog(&e, &n, &audit.event(), now_ms()))
        .await?;
    if !removed {
        return Err(ApiError::not_found(format!("no catalog '{name}'")));
    }
    state.catalogs.remove(&env, &name);
    Ok(StatusCode::NO_CONTENT)
}

/// Fetches a catalog again now.
#[utoipa::path(post, path = "/v1/environments/{env}/catalogs/{name}/refresh", tag = "catalog",
    params(("env" = String, Path, description = "environment"), ("name" = String, Path, description = "catalog")),
    responses((status = 200, body = CatalogInfo), (status = 404, body = api_types::ErrorBody)))]
pub async fn refresh(
    State(state): State<Arc<AppState>>,
    Path((env, name)): Path<(String, String)>,
) -> Result<Json<CatalogInfo>, ApiError> {
    if name != BUILTIN {
        let row = state
            .store()
            .catalogs()?
            .into_iter()
            .find(|c| c.env == env && c.name == name)
            .ok_or_else(|| ApiError::not_found(format!("no catalog '{name}'")))?;
        state
            .catalogs
            .fetch(&env, &name, &row.source, row.branch.as_deref())
            .await;
    }
    list(State(state), Path(env))
        .await
        .0
        .into_iter()
        .find(|c| c.name == name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no catalog '{name}'")))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words found in the name, display name or description.
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    category: Option<String>,
}

#[utoipa::path(get, path = "/v1/environments/{env}/templates", tag = "catalog",
    params(("env" = String, Path, description = "environment"), SearchQuery),
    responses((status = 200, body = Vec<TemplateSummary>)))]
pub async fn search(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    Query(q): Query<SearchQuery>,
) -> Json<Vec<TemplateSummary>> {
    let text = q.q.unwrap_or_default().to_lowercase();
    let category = q.category.map(|c| c.to_lowercase());
    let mut out = Vec::new();
    for (name, l) in state.catalogs.list(&env) {
        let Some(index) = l.index else { continue };
        for t in index.templates.values() {
            let hay = format!("{} {} {}", t.name, t.display_name, t.description).to_lowercase();
            let text_ok = text.split_whitespace().all(|w| hay.contains(w));
            let cat_ok = category
                .as_ref()
                .is_none_or(|c| t.categories.iter().any(|tc| tc.to_lowercase() == *c));
            if text_ok && cat_ok && !t.versions.is_empty() {
                out.push(summary(&name, t));
            }
        }
    }
    Json(out)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// [default: the latest]
    #[serde(default)]
    version: Option<String>,
}

#[utoipa::path(get, path = "/v1/environments/{env}/templates/{catalog}/{template}", tag = "catalog",
    params(("env" = String, Path, description = "environment"), ("catalog" = String, Path, description = "catalog"),
        ("template" = String, Path, description = "template"), VersionQuery),
    responses((status = 200, body = TemplateDetail), (status = 400, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody)))]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Path((env, cat, name)): Path<(String, String, String)>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<TemplateDetail>, ApiError> {
    let t = template(&state, &env, &cat, &name)?;
    let v = version(&t, q.version.as_deref())?;
    Ok(Json(TemplateDetail {
        template: summary(&cat, &t),
        maintainer: t.maintainer.clone(),
        homepage: t.homepage.clone(),
        version: v.version.clone(),
        questions: v.questions.iter().map(question_info).collect(),
        readme: v.readme.clone().or_else(|| t.readme.clone()),
    }))
}

/// Installs a template as a new stack: answers checked (each error naming its question)
/// before anything is made; `dry_run` renders only.
#[utoipa::path(post, path = "/v1/environments/{env}/templates/{catalog}/{template}/install", tag = "catalog",
    request_body = InstallRequest,
    params(("env" = String, Path, description = "environment"), ("catalog" = String, Path, description = "catalog"),
        ("template" = String, Path, description = "template")),
    responses((status = 200, body = InstallResponse), (status = 201, body = InstallResponse), (status = 400, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody), (status = 409, body = api_types::ErrorBody)))]
pub async fn install(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, cat, name)): Path<(String, String, String)>,
    JsonBody(req): JsonBody<InstallRequest>,
) -> Result<(StatusCode, Json<InstallResponse>), ApiError> {
    let t = template(&state, &env, &cat, &name)?;
    let v = version(&t, req.version.as_deref())?.clone();
    let stack = req.stack.clone().unwrap_or_else(|| t.name.clone());
    if !(stack.len() <= 63 && compose::is_valid_project_name(&stack)) {
        return Err(ApiError::bad_request(
            "stack",
            format!("invalid stack name {stack:?}: lowercase letters, digits, '-' and '_'"),
        ));
    }
    let answers = catalog::resolve_answers(
        &v.questions,
        &req.answers,
        &BTreeMap::new(),
        &services(&state, &env),
        &mut random,
    )
    .map_err(answers_error)?;
    if req.dry_run {
        let rendered = catalog::render(&t, &v.version, &answers, &stack).map_err(render_error)?;
        return Ok((
            StatusCode::OK,
            Json(response(&stack, &v.version, &rendered, &answers, None)),
        ));
    }
    if state.model().stack(&env, &stack).is_some() {
        return Err(ApiError::conflict(format!(
            "stack '{stack}' exists: `drover stack upgrade {stack}` changes it"
        )));
    }
    let rendered = prepare(&state, &env, &cat, &t, &v.version, &answers, &stack).await?;
    let deployed = apply_project(
        &state,
        &caller,
        &env,
        Deploy {
            project: rendered.project.clone(),
            warnings: rendered.warnings.clone(),
            why: Some(format!("install {cat}/{name}:{}", v.version)),
            ..Deploy::default()
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(response(
            &stack,
            &v.version,
            &rendered,
            &answers,
            Some(deployed),
        )),
    ))
}

/// The installed stack's template (its catalog's, else the stored copy), version and
/// answers.
struct Installed {
    origin: Origin,
    /// The template as installed.
    copy: catalog::Template,
    /// The template as its catalog has it now (the copy when the catalog is gone).
    current: catalog::Template,
    answers: catalog::Answers,
}

fn installed(state: &AppState, env: &str, stack: &str) -> Result<Installed, ApiError> {
    let project = state
        .model()
        .stack(env, stack)
        .map(|e| e.row.project.clone())
        .ok_or_else(|| ApiError::not_found(format!("no stack '{stack}' in environment '{env}'")))?;
    let o = origin(&project).ok_or_else(|| {
        ApiError::conflict(format!(
            "stack '{stack}' was not installed from a catalog: deploy its compose file"
        ))
    })?;
    let unreadable = |what: &str| {
        ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("stack '{stack}': its {what} cannot be read"),
        )
    };
    let copy: catalog::Template = state
        .store()
        .template_copy(&o.copy)?
        .and_then(|j| serde_json::from_str(&j).ok())
        .ok_or_else(|| unreadable("template copy"))?;
    let json = state
        .vault
        .unseal(&sealed_name(env, stack), &o.answers)
        .map_err(|_| unreadable("answers"))?;
    let answers: catalog::Answers =
        serde_json::from_slice(&json).map_err(|_| unreadable("answers"))?;
    let current = state
        .catalogs
        .index(env, &o.catalog)
        .and_then(|i| i.templates.get(&o.template).cloned())
        .unwrap_or_else(|| copy.clone());
    Ok(Installed {
        origin: o,
        copy,
        current,
        answers,
    })
}

/// The versions an upgrade goes from and to, and the questions it must ask.
fn plan(
    i: &Installed,
    to: Option<&str>,
) -> Result<(catalog::Version, catalog::Version, Vec<catalog::Question>), ApiError> {
    let from = i
        .copy
        .version(&i.origin.version)
        .cloned()
        .ok_or_else(|| ApiError::conflict("the installed version is missing from its copy"))?;
    let to = version(&i.current, to)?.clone();
    let ask = catalog::new_questions(&from, &to, &i.answers.values);
    Ok((from, to, ask))
}

#[utoipa::path(get, path = "/v1/environments/{env}/stacks/{name}/upgrade", tag = "catalog",
    params(("env" = String, Path, description = "environment"), ("name" = String, Path, description = "stack"), VersionQuery),
    responses((status = 200, body = UpgradePlan), (status = 400, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody), (status = 409, body = api_types::ErrorBody)))]
pub async fn upgrade_plan(
    State(state): State<Arc<AppState>>,
    Path((env, stack)): Path<(String, String)>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<UpgradePlan>, ApiError> {
    let i = installed(&state, &env, &stack)?;
    let (from, to, ask) = plan(&i, q.version.as_deref())?;
    Ok(Json(UpgradePlan {
        from: from.version,
        to: to.version,
        questions: ask.iter().map(question_info).collect(),
    }))
}

/// Upgrades an installed stack to a version (the latest by default) with its stored answers
/// changed by the given ones, or changes its answers on the same version; rolled like any
/// deploy.
#[utoipa::path(post, path = "/v1/environments/{env}/stacks/{name}/upgrade", tag = "catalog",
    request_body = UpgradeRequest,
    params(("env" = String, Path, description = "environment"), ("name" = String, Path, description = "stack")),
    responses((status = 200, body = InstallResponse), (status = 400, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody), (status = 409, body = api_types::ErrorBody)))]
pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, stack)): Path<(String, String)>,
    JsonBody(req): JsonBody<UpgradeRequest>,
) -> Result<Json<InstallResponse>, ApiError> {
    let i = installed(&state, &env, &stack)?;
    let (from, to, _) = plan(&i, req.version.as_deref())?;
    if from.version == to.version && req.answers.is_empty() {
        return Err(ApiError::bad_request(
            "version",
            format!(
                "stack '{stack}' runs version {} already (--set KEY=VALUE changes answers)",
                to.version
            ),
        ));
    }
    let answers = catalog::resolve_answers(
        &to.questions,
        &req.answers,
        &i.answers.values,
        &services(&state, &env),
        &mut random,
    )
    .map_err(answers_error)?;
    if req.dry_run {
        let rendered =
            catalog::render(&i.current, &to.version, &answers, &stack).map_err(render_error)?;
        return Ok(Json(response(
            &stack,
            &to.version,
            &rendered,
            &answers,
            None,
        )));
    }
    let rendered = prepare(
        &state,
        &env,
        &i.origin.catalog,
        &i.current,
        &to.version,
        &answers,
        &stack,
    )
    .await?;
    let why = if from.version == to.version {
        format!(
            "answers changed ({})",
            req.answers.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    } else {
        format!(
            "upgrade {} {} -> {}",
            i.origin.template, from.version, to.version
        )
    };
    let deployed = apply_project(
        &state,
        &caller,
        &env,
        Deploy {
            project: rendered.project.clone(),
            warnings: rendered.warnings.clone(),
            why: Some(why),
            ..Deploy::default()
        },
    )
    .await?;
    Ok(Json(response(
        &stack,
        &to.version,
        &rendered,
        &answers,
        Some(deployed),
    )))
}
