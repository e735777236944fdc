//! Bearer tokens. A token is `drv_` + 64 hex chars of OS randomness; only its SHA-256 is
//! stored. Every route but none is open: the caller must present a token, and a route under
//! `/v1/environments/{env}` checks the token may act in that environment.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    // The OS random source failing is not recoverable for a security token.
    if let Err(e) = getrandom::fill(&mut bytes) {
        panic!("OS random source unavailable: {e}");
    }
    format!("drv_{}", hex::encode(bytes))
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    /// `admin` (any environment) or `agent` (agent protocol only).
    pub kind: String,
    pub env: String,
}

impl Caller {
    pub fn may_use_env(&self, env: &str) -> Result<(), ApiError> {
        if self.kind == "admin" || (self.kind == "member" && self.env == env) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "token '{}' may not act in environment '{env}'",
                self.name
            )))
        }
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

pub fn authenticate(state: &AppState, token: Option<&str>) -> Result<Caller, ApiError> {
    let Some(token) = token else {
        return Err(ApiError::unauthorized(
            "missing bearer token (Authorization: Bearer <token>)",
        ));
    };
    if token.len() > 256 {
        return Err(ApiError::unauthorized("invalid token"));
    }
    let hash = hash_token(token);
    if state.is_ephemeral_agent_token(&hash) {
        return Ok(Caller {
            name: "local-agent".into(),
            kind: "agent".into(),
            env: "default".into(),
        });
    }
    match state.token(&hash)? {
        Some(t) => Ok(Caller {
            name: t.name,
            kind: t.kind,
            env: t.env,
        }),
        None => Err(ApiError::unauthorized("invalid token")),
    }
}

/// An authenticated API user (agent tokens are refused here).
pub struct User(pub Caller);

impl FromRequestParts<Arc<AppState>> for User {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let caller = authenticate(state, bearer(parts))?;
        if caller.kind == "agent" {
            return Err(ApiError::forbidden("agent tokens may only connect agents"));
        }
        Ok(User(caller))
    }
}

/// Any valid token: admin or agent (for `/v1/agent/connect`).
pub struct AgentCaller(pub Caller);

impl FromRequestParts<Arc<AppState>> for AgentCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        Ok(AgentCaller(authenticate(state, bearer(parts))?))
    }
}
