//! Bearer tokens. A token is `drv_` + 64 hex chars of OS randomness; only its SHA-256 is
//! stored. Every route but none is open: the caller must present a token, and a route under
//! `/v1/environments/{env}` checks the token may act in that environment. Agents hold a
//! registration token only until their first connection, which exchanges it for a
//! credential bound to their host.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::{AppState, now_ms};

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

pub use access::Caller;

impl From<access::Denied> for ApiError {
    fn from(d: access::Denied) -> Self {
        match d {
            access::Denied::Unauthenticated(m) => ApiError::unauthorized(m),
            access::Denied::Forbidden(m) => ApiError::forbidden(m),
        }
    }
}

/// The tokens the server knows, by hash: the store's (cached so requests do not wait for
/// the store while it writes; entries are forgotten the moment a token is removed or
/// used) and the local agent's, which live only in memory.
#[derive(Default)]
pub struct Keys {
    ephemeral: RwLock<HashSet<String>>,
    known: RwLock<HashMap<String, store::TokenRow>>,
    /// Attempts to speak for a host without its credential, recorded once in a while.
    impostors: Mutex<access::Throttle>,
}

/// Attempts on one host id are recorded at most this often: a token holder retrying in a
/// loop cannot churn the size-bounded audit log or the server's log.
pub const IMPOSTOR_RECORD_EVERY_MS: u64 = 60_000;

impl Keys {
    /// A token for an agent in this same process (`drover up`), valid until exit, never stored.
    pub fn issue_ephemeral(&self) -> String {
        let token = new_token();
        lock_write(&self.ephemeral).insert(hash_token(&token));
        token
    }

    pub fn is_ephemeral(&self, hash: &str) -> bool {
        lock_read(&self.ephemeral).contains(hash)
    }

    /// The token with this hash.
    pub fn lookup(
        &self,
        store: &Mutex<store::Store>,
        hash: &str,
    ) -> Result<Option<store::TokenRow>, store::Error> {
        if let Some(t) = lock_read(&self.known).get(hash) {
            return Ok(Some(t.clone()));
        }
        // Cached while the store is still held: a removal commits under the same lock and
        // forgets the token after, so a removed token can never be cached again.
        let store = store.lock().unwrap_or_else(|p| p.into_inner());
        let found = store.token(hash)?;
        if let Some(t) = &found {
            lock_write(&self.known).insert(hash.to_string(), t.clone());
        }
        drop(store);
        Ok(found)
    }

    /// Whether an attempt on `host` at `now` should be recorded (the first in a while).
    pub fn record_impostor(&self, host: &str, now: u64) -> bool {
        self.impostors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .allow(host, now, IMPOSTOR_RECORD_EVERY_MS)
    }

    /// Forgets a token (removed, or its uses changed).
    pub fn forget(&self, hash: &str) {
        lock_write(&self.known).remove(hash);
    }

    /// Forgets the tokens of an environment that was removed.
    pub fn forget_env(&self, env: &str) {
        lock_write(&self.known).retain(|_, t| t.env != env);
    }

    /// Forgets a host's credential (the host was removed or registered again).
    pub fn forget_host(&self, host: &str) {
        lock_write(&self.known).retain(|_, t| t.host.as_deref() != Some(host));
    }
}

fn lock_read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn lock_write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')
        // The scheme is case-insensitive (RFC 9110).
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// The caller a request's token stands for (the decision is [`access::authenticate`]).
pub fn authenticate(state: &AppState, token: Option<&str>) -> Result<Caller, ApiError> {
    let hash = token.map(hash_token).unwrap_or_default();
    if token.is_some() && state.keys.is_ephemeral(&hash) {
        return Ok(access::local_agent());
    }
    let found = match token {
        Some(t) if t.len() <= access::MAX_TOKEN_LEN => state.token(&hash)?,
        _ => None,
    };
    let now = now_ms();
    let found = found.map(|t| access::Token {
        usable: t.usable(now),
        name: t.name,
        kind: t.kind,
        env: t.env,
        host: t.host,
    });
    Ok(access::authenticate(token, &hash, found)?)
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
        caller.may_use(access::Routes::User)?;
        Ok(User(caller))
    }
}

/// An agent: a registration token or a host credential (for `/v1/agent/*`).
pub struct AgentCaller(pub Caller);

impl FromRequestParts<Arc<AppState>> for AgentCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let caller = authenticate(state, bearer(parts))?;
        caller.may_use(access::Routes::Agent)?;
        Ok(AgentCaller(caller))
    }
}
