//! Users, sessions and API keys: `POST /v1/sessions` (sign in), `/v1/sessions`,
//! `/v1/apikeys`, `/v1/users` (admins), `/v1/whoami`, `/v1/password`. Passwords are
//! argon2id hashes; sessions and keys are tokens stored as hashes, shown once.

use std::sync::Arc;

use api_types::{
    Login, NewApiKey, NewPassword, NewSecretToken, NewUser, TokenInfo, UserInfo, WhoAmI,
};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::accounts::{self, SESSION_TTL_MS};
use crate::auth::{Source, User, Who, hash_token, new_token};
use crate::error::{ApiError, JsonBody};
use crate::state::{AppState, Audit, now_ms};

/// A short public id for a key or session: `PREFIX` + 8 hex chars.
fn public_id(prefix: &str) -> String {
    format!("{prefix}{}", &new_token()[4..12])
}

fn token_info(t: store::TokenRow) -> TokenInfo {
    TokenInfo {
        id: t.name,
        user: t.user.unwrap_or_default(),
        env: (t.env != access::ANY_ENV && t.kind == "apikey").then_some(t.env),
        created_ms: t.created_ms,
        expires_ms: t.expires_ms,
        last_used_ms: t.last_used_ms,
    }
}

fn check_password(field: &str, password: &str) -> Result<(), ApiError> {
    accounts::check_password(password)
        .map_err(|why| ApiError::bad_request(field, format!("{field}: {why}")))
}

fn too_many(e: access::Limited) -> Response {
    let mut r =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", e.to_string()).into_response();
    if let Ok(v) = HeaderValue::from_str(&e.retry_after_s.to_string()) {
        r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    r
}

/// Sign in: a session token for a local (or directory) user's name and password.
#[utoipa::path(post, path = "/v1/sessions", request_body = Login,
    responses((status = 201, body = NewSecretToken), (status = 400, body = api_types::ErrorBody),
        (status = 401, body = api_types::ErrorBody), (status = 429, body = api_types::ErrorBody)))]
pub async fn login(
    State(state): State<Arc<AppState>>,
    Source(address): Source,
    JsonBody(req): JsonBody<Login>,
) -> Result<Response, ApiError> {
    if req.username.len() > 256 || req.password.len() > accounts::MAX_PASSWORD_LEN {
        return Err(ApiError::unauthorized("wrong user name or password"));
    }
    if let Err(e) = state
        .accounts
        .may_try_login(&req.username, &address, now_ms())
    {
        return Ok(too_many(e));
    }
    let user = req.username.clone();
    let found = state.store().user(&user)?;
    let password = req.password;
    let directory = state.directory.config();
    let ok = match (&found, directory) {
        // A local user, or no directory: the stored hash (a fixed one for unknown users).
        (Some(u), _) if u.source == "local" => {
            let phc = u.password_hash.clone();
            state
                .blocking(move |_| accounts::verify_password(phc.as_deref(), &password))
                .await
        }
        (_, None) => {
            state
                .blocking(move |_| accounts::verify_password(None, &password))
                .await
        }
        (_, Some(cfg)) => match ldap::authenticate(&cfg, &user, &password).await {
            Ok(id) => {
                let groups = id
                    .groups
                    .iter()
                    .map(|g| crate::directory::group_subject(g))
                    .collect();
                let u = user.clone();
                state
                    .blocking(move |s| {
                        s.change_accounts(|st| st.ensure_directory_user(&u, now_ms()))
                    })
                    .await?;
                state.accounts.set_groups(&user, Some(groups));
                true
            }
            Err(ldap::Error::InvalidCredentials) => false,
            Err(e) => {
                tracing::warn!("directory sign-in: {e}");
                return Err(ApiError::unavailable(format!(
                    "the directory could not be asked: {e}"
                )));
            }
        },
    };
    let now = now_ms();
    let audit = Audit {
        env: String::new(),
        actor: user.clone(),
        kind: "user.login",
        subject: user.clone(),
        detail: String::new(),
        source: address.clone(),
    };
    if !ok {
        state.accounts.login_failed(&user, &address, now);
        let st = state.clone();
        state
            .blocking(move |_| {
                let mut e = audit.event();
                e.result = "denied";
                e.detail = "wrong user name or password";
                st.store().append_event(now, &e)
            })
            .await?;
        return Err(ApiError::unauthorized("wrong user name or password"));
    }
    state.accounts.login_succeeded(&user);
    let expires = now + SESSION_TTL_MS;
    let session = issue(
        &state,
        "session",
        public_id("ses_"),
        user,
        access::ANY_ENV.to_string(),
        Some(expires),
        audit,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AllQuery {
    /// Admins: every user's, not only one's own.
    #[serde(default)]
    all: bool,
}

/// Whose tokens a listing shows: one's own, or everyone's for an admin asking for all.
fn owner_filter(
    caller: &crate::auth::Caller,
    who: &access::Identity,
    all: bool,
) -> Result<Option<String>, ApiError> {
    if all && !who.admin {
        return Err(ApiError::forbidden(
            "only admins list every user's sessions and keys",
        ));
    }
    if all {
        return Ok(None);
    }
    caller.user.clone().map(Some).ok_or_else(|| {
        ApiError::bad_request(
            "token",
            "this token belongs to no user: sign in with `drover login`",
        )
    })
}

#[utoipa::path(get, path = "/v1/sessions", params(AllQuery), responses((status = 200, body = Vec<TokenInfo>), (status = 400, body = api_types::ErrorBody), (status = 401, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody)))]
pub async fn list_sessions(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Who(who): Who,
    Query(q): Query<AllQuery>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    list(&state, &caller, &who, q.all, "session")
}

#[utoipa::path(get, path = "/v1/apikeys", params(AllQuery), responses((status = 200, body = Vec<TokenInfo>), (status = 400, body = api_types::ErrorBody), (status = 401, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody)))]
pub async fn list_keys(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Who(who): Who,
    Query(q): Query<AllQuery>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    list(&state, &caller, &who, q.all, "apikey")
}

fn list(
    state: &AppState,
    caller: &crate::auth::Caller,
    who: &access::Identity,
    all: bool,
    kind: &str,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    let user = owner_filter(caller, who, all)?;
    let now = now_ms();
    let rows = state.store().user_tokens(user.as_deref(), kind)?;
    Ok(Json(
        rows.into_iter()
            .filter(|t| t.usable(now))
            .map(token_info)
            .collect(),
    ))
}

/// Ends a session: one's own (`current`: the calling one), or anyone's for an admin.
#[utoipa::path(delete, path = "/v1/sessions/{id}", params(("id" = String, Path, description = "session id, or `current`")),
    responses((status = 204), (status = 401, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody)))]
pub async fn end_session(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Who(who): Who,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = if id == "current" && caller.kind == access::Kind::Session {
        caller.name.clone()
    } else {
        id
    };
    remove(&state, &caller, &who, "session", &id, "session.ended").await
}

#[utoipa::path(delete, path = "/v1/apikeys/{id}", params(("id" = String, Path, description = "API key id")),
    responses((status = 204), (status = 401, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody)))]
pub async fn remove_key(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Who(who): Who,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    remove(&state, &caller, &who, "apikey", &id, "apikey.removed").await
}

async fn remove(
    state: &Arc<AppState>,
    caller: &crate::auth::Caller,
    who: &access::Identity,
    kind: &'static str,
    id: &str,
    event: &'static str,
) -> Result<StatusCode, ApiError> {
    let owner = if who.admin && who.scope.is_none() {
        None
    } else {
        Some(caller.user.clone().unwrap_or_default())
    };
    let audit = Audit::by(caller, "", event, id, "");
    let i = id.to_string();
    let removed = state
        .blocking(move |s| {
            let mut store = s.store();
            let hash = store.delete_user_token(
                kind,
                &i,
                owner.as_deref(),
                Some(&audit.event()),
                now_ms(),
            )?;
            if let Some(h) = &hash {
                s.keys.forget(h);
            }
            Ok::<_, store::Error>(hash)
        })
        .await?;
    match removed {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(ApiError::not_found(format!("no {kind} '{id}'"))),
    }
}

/// Longest API key lifetime accepted (100 years).
const MAX_EXPIRY_S: u64 = 100 * 365 * 86_400;

/// A new API key acting with the caller's rights, narrowed to `env` when given.
#[utoipa::path(post, path = "/v1/apikeys", request_body = NewApiKey,
    responses((status = 201, body = NewSecretToken), (status = 400, body = api_types::ErrorBody), (status = 401, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody)))]
pub async fn create_key(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Who(who): Who,
    JsonBody(req): JsonBody<NewApiKey>,
) -> Result<(StatusCode, Json<NewSecretToken>), ApiError> {
    let user = caller.user.clone().ok_or_else(|| {
        ApiError::bad_request(
            "token",
            "this token belongs to no user: sign in with `drover login`",
        )
    })?;
    if let Some(n) = &req.name
        && !(n.len() <= 64 && access::valid_host_id(n))
    {
        return Err(ApiError::bad_request(
            "name",
            "name: 1 to 64 letters, digits, '-', '_' or '.'",
        ));
    }
    let exists = match &req.env {
        Some(e) => state.environment_exists(e)?,
        None => true,
    };
    let env =
        access::key_scope(&who, req.env.as_deref(), req.metrics, exists).map_err(|r| match r {
            access::KeyRefusal::Metrics => ApiError::bad_request(
                "metrics",
                "metrics: a metrics key is made by an admin's unlimited token, without env",
            ),
            access::KeyRefusal::Hidden(e) => {
                ApiError::not_found(format!("environment '{e}' does not exist"))
            }
        })?;
    let now = now_ms();
    let expires_ms = match req.expires_in_s {
        Some(s) if s == 0 || s > MAX_EXPIRY_S => {
            return Err(ApiError::bad_request(
                "expires_in_s",
                format!("expires_in_s: 1 to {MAX_EXPIRY_S} seconds"),
            ));
        }
        Some(s) => Some(now + s * 1000),
        None => None,
    };
    let id = match &req.name {
        Some(n) => format!("key_{}_{n}", &new_token()[4..10]),
        None => public_id("key_"),
    };
    let audit = Audit::by(
        &caller,
        if env == access::ANY_ENV { "" } else { &env },
        "apikey.created",
        &id,
        "",
    );
    let key = issue(&state, "apikey", id, user, env, expires_ms, audit).await?;
    Ok((StatusCode::CREATED, Json(key)))
}

/// Makes a session or API key (`kind`) for `user`: the token, shown this once, and its hash
/// stored with `audit` in one transaction.
async fn issue(
    state: &Arc<AppState>,
    kind: &'static str,
    id: String,
    user: String,
    env: String,
    expires_ms: Option<u64>,
    audit: Audit,
) -> Result<NewSecretToken, ApiError> {
    let token = new_token();
    let (hash, u, i) = (hash_token(&token), user.clone(), id.clone());
    state
        .blocking(move |s| {
            s.store().create_user_token(
                &store::NewUserToken {
                    hash: &hash,
                    name: &i,
                    kind,
                    user: &u,
                    env: &env,
                    expires_ms,
                },
                Some(&audit.event()),
                now_ms(),
            )
        })
        .await?;
    Ok(NewSecretToken {
        id,
        token,
        user,
        expires_ms,
    })
}

#[utoipa::path(get, path = "/v1/whoami", responses((status = 200, body = WhoAmI), (status = 401, body = api_types::ErrorBody)))]
pub async fn whoami(
    State(state): State<Arc<AppState>>,
    Who(who): Who,
) -> Result<Json<WhoAmI>, ApiError> {
    let envs = state.store().environments()?;
    Ok(Json(WhoAmI {
        roles: envs
            .iter()
            .filter_map(|e| who.role(e).map(|r| (e.clone(), r.as_str().to_string())))
            .collect(),
        user: who.user,
        admin: who.admin,
        scope: who.scope,
    }))
}

#[utoipa::path(get, path = "/v1/users", responses((status = 200, body = Vec<UserInfo>), (status = 401, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody)))]
pub async fn list_users(
    State(state): State<Arc<AppState>>,
) -> Result<Json<Vec<UserInfo>>, ApiError> {
    Ok(Json(
        state
            .store()
            .users()?
            .into_iter()
            .map(|u| UserInfo {
                name: u.name,
                admin: u.admin,
                source: u.source,
                created_ms: u.created_ms,
            })
            .collect(),
    ))
}

#[utoipa::path(post, path = "/v1/users", request_body = NewUser,
    responses((status = 201, body = UserInfo), (status = 400, body = api_types::ErrorBody), (status = 401, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody), (status = 409, body = api_types::ErrorBody)))]
pub async fn create_user(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    JsonBody(req): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<UserInfo>), ApiError> {
    if !accounts::valid_user_name(&req.name) {
        return Err(ApiError::bad_request(
            "name",
            format!(
                "invalid user name {:?}: 1 to 64 letters, digits, '-', '_', '.' or '@'",
                req.name
            ),
        ));
    }
    check_password("password", &req.password)?;
    let password = req.password;
    let phc = state
        .blocking(move |_| accounts::hash_password(&password))
        .await
        .map_err(|e| ApiError::bad_request("password", e))?;
    let now = now_ms();
    let row = store::UserRow {
        name: req.name.clone(),
        password_hash: Some(phc),
        admin: req.admin,
        source: "local".into(),
        created_ms: now,
    };
    let audit = Audit::by(
        &caller,
        "",
        "user.created",
        &req.name,
        if req.admin { "admin" } else { "" },
    );
    let r = row.clone();
    let created = state
        .blocking(move |s| s.change_accounts(|st| st.create_user(&r, None, &audit.event(), now)))
        .await?;
    if !created {
        return Err(ApiError::conflict(format!("user '{}' exists", req.name)));
    }
    Ok((
        StatusCode::CREATED,
        Json(UserInfo {
            name: row.name,
            admin: row.admin,
            source: row.source,
            created_ms: now,
        }),
    ))
}

#[utoipa::path(delete, path = "/v1/users/{user}", params(("user" = String, Path, description = "user name")),
    responses((status = 204), (status = 401, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody), (status = 409, body = api_types::ErrorBody)))]
pub async fn remove_user(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(user): Path<String>,
) -> Result<StatusCode, ApiError> {
    let audit = Audit::by(&caller, "", "user.removed", &user, "");
    let u = user.clone();
    let removed = state
        .blocking(move |s| {
            let hashes = s.change_accounts(|st| st.delete_user(&u, &audit.event(), now_ms()))?;
            for h in hashes.iter().flatten() {
                s.keys.forget(h);
            }
            Ok::<_, store::Error>(hashes.is_some())
        })
        .await?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no user '{user}'")))
    }
}

/// An admin sets a local user's password; the user's sessions end.
#[utoipa::path(put, path = "/v1/users/{user}/password", request_body = NewPassword, params(("user" = String, Path, description = "user name")),
    responses((status = 204), (status = 400, body = api_types::ErrorBody), (status = 401, body = api_types::ErrorBody), (status = 403, body = api_types::ErrorBody), (status = 404, body = api_types::ErrorBody)))]
pub async fn set_password(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(user): Path<String>,
    JsonBody(req): JsonBody<NewPassword>,
) -> Result<StatusCode, ApiError> {
    change_password(&state, &caller, &user, req.password).await
}

/// One's own password, with the current one; one's sessions end (sign in again).
#[utoipa::path(put, path = "/v1/password", request_body = NewPassword,
    responses((status = 204), (status = 400, body = api_types::ErrorBody), (status = 401, body = api_types::ErrorBody)))]
pub async fn own_password(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    JsonBody(req): JsonBody<NewPassword>,
) -> Result<StatusCode, ApiError> {
    let user = caller.user.clone().ok_or_else(|| {
        ApiError::bad_request(
            "token",
            "this token belongs to no user: sign in with `drover login`",
        )
    })?;
    let current = req.current.unwrap_or_default();
    let phc = state.store().user(&user)?.and_then(|u| u.password_hash);
    let ok = state
        .blocking(move |_| accounts::verify_password(phc.as_deref(), &current))
        .await;
    if !ok {
        return Err(ApiError::bad_request("current", "current: wrong password"));
    }
    change_password(&state, &caller, &user, req.password).await
}

async fn change_password(
    state: &Arc<AppState>,
    caller: &crate::auth::Caller,
    user: &str,
    password: String,
) -> Result<StatusCode, ApiError> {
    check_password("password", &password)?;
    let phc = state
        .blocking(move |_| accounts::hash_password(&password))
        .await
        .map_err(|e| ApiError::bad_request("password", e))?;
    let audit = Audit::by(caller, "", "user.password", user, "");
    let u = user.to_string();
    let changed = state
        .blocking(move |s| {
            let mut store = s.store();
            let ended = store.set_password(&u, &phc, &audit.event(), now_ms())?;
            for h in ended.iter().flatten() {
                s.keys.forget(h);
            }
            Ok::<_, store::Error>(ended.is_some())
        })
        .await?;
    if changed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no local user '{user}'")))
    }
}
