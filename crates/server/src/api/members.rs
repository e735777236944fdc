//! An environment's members (`/v1/environments/{env}/members`) and the audit log
//! (`/v1/audit` for admins, `/v1/environments/{env}/audit` for an environment's owners and
//! members), with filters and pages.

use std::sync::Arc;

use api_types::{Event, Member};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::auth::User;
use crate::error::{ApiError, JsonBody};
use crate::state::{AppState, Audit, now_ms};

/// A member subject: a user name, or `group:` and a directory group's DN.
fn check_subject(state: &AppState, subject: &str) -> Result<(), ApiError> {
    if let Some(dn) = subject.strip_prefix("group:") {
        if dn.is_empty() || dn.chars().count() > 512 || dn.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "subject",
                "subject: group:DN with a DN of at most 512 characters",
            ));
        }
        return Ok(());
    }
    // Directory users may be named before their first sign-in.
    if state.directory.config().is_none() && state.store().user(subject)?.is_none() {
        return Err(ApiError::bad_request(
            "subject",
            format!(
                "subject: no user '{subject}' (create it with `drover user create`, or \
                 configure a directory with `drover auth ldap set`)"
            ),
        ));
    }
    Ok(())
}

#[utoipa::path(get, path = "/v1/environments/{env}/members", params(("env" = String, Path, description = "environment")),
    responses((status = 200, body = Vec<Member>), (status = 401, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
) -> Result<Json<Vec<Member>>, ApiError> {
    Ok(Json(
        state
            .store()
            .members()?
            .into_iter()
            .filter(|m| m.env == env)
            .map(|m| Member {
                subject: m.subject,
                role: m.role,
            })
            .collect(),
    ))
}

/// Adds a member, or changes its role.
#[utoipa::path(put, path = "/v1/environments/{env}/members", request_body = Member, params(("env" = String, Path, description = "environment")),
    responses((status = 200, body = Member), (status = 400, body = api_types::ErrorBody), (status = 401, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody)))]
pub async fn set(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
    JsonBody(m): JsonBody<Member>,
) -> Result<Json<Member>, ApiError> {
    let Some(role) = access::Role::parse(&m.role) else {
        return Err(ApiError::bad_request(
            "role",
            format!(
                "role: unknown role '{}' (owner, member, restricted or read-only)",
                m.role
            ),
        ));
    };
    check_subject(&state, &m.subject)?;
    let row = store::MemberRow {
        env: env.clone(),
        subject: m.subject.clone(),
        role: role.as_str().to_string(),
    };
    let audit = Audit::by(&caller, &env, "member.set", &m.subject, role.as_str());
    state
        .blocking(move |s| s.change_accounts(|st| st.set_member(&row, &audit.event(), now_ms())))
        .await?;
    Ok(Json(Member {
        subject: m.subject,
        role: role.as_str().to_string(),
    }))
}

#[utoipa::path(delete, path = "/v1/environments/{env}/members/{subject}",
    params(("env" = String, Path, description = "environment"), ("subject" = String, Path, description = "user name or group:DN")),
    responses((status = 204), (status = 401, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody)))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, subject)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let audit = Audit::by(&caller, &env, "member.removed", &subject, "");
    let (e, s2) = (env.clone(), subject.clone());
    let removed = state
        .blocking(move |s| {
            s.change_accounts(|st| st.remove_member(&e, &s2, &audit.event(), now_ms()))
        })
        .await?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "'{subject}' is not a member of environment '{env}'"
        )))
    }
}

/// Audit-log filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this environment (`/v1/audit`).
    env: Option<String>,
    /// Only this actor (a user's name matches their API keys too).
    user: Option<String>,
    /// Only actions starting with this, e.g. `stack.` or `user.login`.
    action: Option<String>,
    /// Only events from the last this many seconds.
    since_s: Option<u64>,
    /// The next page: events older than this id.
    before: Option<i64>,
    /// At most this many (default 100, at most 1000).
    limit: Option<u32>,
}

fn audit_rows(
    state: &AppState,
    envs: Option<Vec<String>>,
    q: AuditQuery,
) -> Result<Vec<Event>, ApiError> {
    let filter = store::AuditFilter {
        envs,
        actor: q.user,
        action: q.action,
        since_ms: q
            .since_s
            .map(|s| now_ms().saturating_sub(s.saturating_mul(1000))),
        before_id: q.before,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    Ok(state
        .store()
        .audit(&filter)?
        .into_iter()
        .map(crate::api::hosts::event_of)
        .collect())
}

/// The whole audit log (admins), newest first; `before` pages.
#[utoipa::path(get, path = "/v1/audit", params(AuditQuery),
    responses((status = 200, body = Vec<Event>), (status = 401, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody)))]
pub async fn all(
    State(state): State<Arc<AppState>>,
    Query(mut q): Query<AuditQuery>,
) -> Result<Json<Vec<Event>>, ApiError> {
    let envs = q.env.take().map(|e| vec![e]);
    Ok(Json(audit_rows(&state, envs, q)?))
}

/// One environment's audit log, newest first; `before` pages.
#[utoipa::path(get, path = "/v1/environments/{env}/audit", params(("env" = String, Path, description = "environment"), AuditQuery),
    responses((status = 200, body = Vec<Event>), (status = 401, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody)))]
pub async fn of_env(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<Event>>, ApiError> {
    Ok(Json(audit_rows(&state, Some(vec![env]), q)?))
}
