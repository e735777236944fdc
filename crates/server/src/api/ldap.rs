//! `/v1/auth/ldap`: the directory users sign in with (admins). The bind password is sealed
//! at rest and never returned; `test` looks a user up as sign-in would.

use std::sync::Arc;

use api_types::{LdapSettings, LdapTest, LdapUser};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::auth::User;
use crate::error::{ApiError, JsonBody};
use crate::state::{AppState, Audit, now_ms};

fn dto(c: ldap::Config) -> LdapSettings {
    LdapSettings {
        url: c.url,
        starttls: c.starttls,
        ca_pem: c.ca_pem,
        bind_dn: c.bind_dn,
        bind_password: None,
        user_base: c.user_base,
        user_filter: c.user_filter,
        group_base: c.group_base,
        group_filter: c.group_filter,
    }
}

fn configured(state: &AppState) -> Result<ldap::Config, ApiError> {
    state
        .directory
        .config()
        .ok_or_else(|| ApiError::not_found("no directory is configured (drover auth ldap set)"))
}

fn directory_error(e: ldap::Error) -> ApiError {
    match e {
        ldap::Error::Config { field, reason } => {
            ApiError::bad_request(field, format!("{field}: {reason}"))
        }
        ldap::Error::InvalidCredentials => ApiError::bad_request("password", e.to_string()),
        other => ApiError::unavailable(other.to_string()),
    }
}

#[utoipa::path(get, path = "/v1/auth/ldap",
    responses((status = 200, body = LdapSettings), (status = 401, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody)))]
pub async fn get(State(state): State<Arc<AppState>>) -> Result<Json<LdapSettings>, ApiError> {
    Ok(Json(dto(configured(&state)?)))
}

#[utoipa::path(put, path = "/v1/auth/ldap", request_body = LdapSettings,
    responses((status = 200, body = LdapSettings), (status = 400, body = api_types::ErrorBody), (status = 401, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody)))]
pub async fn set(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    JsonBody(req): JsonBody<LdapSettings>,
) -> Result<Json<LdapSettings>, ApiError> {
    let Some(bind_password) = req.bind_password else {
        return Err(ApiError::bad_request(
            "bind_password",
            "bind_password: required (drover auth ldap set --bind-password-stdin)",
        ));
    };
    let cfg = ldap::Config {
        url: req.url,
        starttls: req.starttls,
        ca_pem: req.ca_pem,
        bind_dn: req.bind_dn,
        bind_password,
        user_base: req.user_base,
        user_filter: req.user_filter,
        group_base: req.group_base,
        group_filter: req.group_filter,
    };
    cfg.check().map_err(directory_error)?;
    let audit = Audit::by(&caller, "", "ldap.set", &cfg.url, "");
    let c = cfg.clone();
    state
        .blocking(move |s| {
            s.directory
                .put(&mut s.store(), Some(c), &audit.event(), now_ms())
        })
        .await?;
    Ok(Json(dto(cfg)))
}

#[utoipa::path(delete, path = "/v1/auth/ldap",
    responses((status = 204), (status = 401, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody)))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    User(caller): User,
) -> Result<StatusCode, ApiError> {
    configured(&state)?;
    let audit = Audit::by(&caller, "", "ldap.removed", "", "");
    state
        .blocking(move |s| {
            s.directory
                .put(&mut s.store(), None, &audit.event(), now_ms())
        })
        .await?;
    // Directory users lose access now, not at the next refresh.
    crate::directory::refresh_once(&state).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Looks a user up as sign-in does (with a password: binds as them too).
#[utoipa::path(post, path = "/v1/auth/ldap/test", request_body = LdapTest,
    responses((status = 200, body = LdapUser), (status = 400, body = api_types::ErrorBody), (status = 401, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody), (status = 503, body = api_types::ErrorBody)))]
pub async fn test(
    State(state): State<Arc<AppState>>,
    JsonBody(req): JsonBody<LdapTest>,
) -> Result<Json<LdapUser>, ApiError> {
    let cfg = configured(&state)?;
    let id = match &req.password {
        Some(p) => ldap::authenticate(&cfg, &req.username, p)
            .await
            .map_err(directory_error)?,
        None => ldap::lookup(&cfg, &req.username)
            .await
            .map_err(directory_error)?
            .ok_or_else(|| {
                ApiError::not_found(format!("the directory has no user '{}'", req.username))
            })?,
    };
    Ok(Json(LdapUser {
        dn: id.dn,
        groups: id.groups,
    }))
}
