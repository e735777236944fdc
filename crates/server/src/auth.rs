//! Bearer tokens and the API edge. A token is `drv_` + 64 hex chars of OS randomness; only
//! its SHA-256 is stored. [`edge`] runs before every route's handler: it finds the route's
//! action in `access::ROUTES` (a route missing there is refused), authenticates the token
//! (an API key, a session, or a token from before users), and asks `access::authorize`
//! whether the caller's identity may do that in the route's environment. An environment the
//! caller may not see is answered as one that does not exist. Agents hold a registration
//! token only until their first connection, which exchanges it for a credential bound to
//! their host.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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
    /// Refused user requests, recorded once in a while.
    denied: Mutex<access::Throttle>,
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

    /// Whether a refused request (`key`: actor and route) at `now` should be recorded.
    pub fn record_denied(&self, key: &str, now: u64, every_ms: u64) -> bool {
        self.denied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .allow(key, now, every_ms)
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

fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')
        // The scheme is case-insensitive (RFC 9110).
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// The one route that may carry its token in `Sec-WebSocket-Protocol`.
pub const EXEC_ROUTE: &str = "/v1/environments/{env}/containers/{name}/exec";

/// The subprotocol a browser offers beside its token (`bearer.<token>`) on [`EXEC_ROUTE`],
/// which the server selects: browsers cannot set `Authorization` on a WebSocket.
pub const EXEC_PROTOCOL: &str = "drover.exec";

/// A request's token: `Authorization: Bearer`, or — only on a WebSocket upgrade of
/// [`EXEC_ROUTE`] without that header — a `bearer.<token>` entry of `Sec-WebSocket-Protocol`.
fn token_of<'a>(headers: &'a axum::http::HeaderMap, template: &str) -> Option<&'a str> {
    if let Some(t) = bearer(headers) {
        return Some(t);
    }
    if template != EXEC_ROUTE || headers.contains_key(axum::http::header::AUTHORIZATION) {
        return None;
    }
    let upgrade = headers
        .get(axum::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        return None;
    }
    headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix("bearer."))
        .filter(|t| !t.is_empty())
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
        user: t.user,
    });
    Ok(access::authenticate(token, &hash, found)?)
}

/// A user request the edge let through: who called, and as whom they act.
#[derive(Clone)]
pub struct Authorized {
    pub caller: Caller,
    pub identity: access::Identity,
}

/// The caller of a user route (put there by [`edge`]).
pub struct User(pub Caller);

/// The identity of a user route's caller (put there by [`edge`]).
pub struct Who(pub access::Identity);

fn authorized(parts: &Parts) -> Result<&Authorized, ApiError> {
    parts
        .extensions
        .get::<Authorized>()
        .ok_or_else(|| ApiError::unauthorized("this route needs a signed-in caller"))
}

impl FromRequestParts<Arc<AppState>> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &Arc<AppState>) -> Result<Self, ApiError> {
        Ok(User(authorized(parts)?.caller.clone()))
    }
}

impl FromRequestParts<Arc<AppState>> for Who {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &Arc<AppState>) -> Result<Self, ApiError> {
        Ok(Who(authorized(parts)?.identity.clone()))
    }
}

/// Denied attempts of one actor on one route are recorded at most this often.
const DENIED_RECORD_EVERY_MS: u64 = 10_000;

/// The one check at the API edge: the route's action (from `access::ROUTES`; a route
/// missing there is refused) against the caller's identity in the route's environment.
pub async fn edge(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(template): Option<String> = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
    else {
        return next.run(req).await;
    };
    let method = if req.method() == axum::http::Method::HEAD {
        "GET"
    } else {
        req.method().as_str()
    };
    let Some(action) = access::action_of(method, &template) else {
        // Never the handler: a method the table does not list for this path is not allowed,
        // whatever the router holds (405 with the methods the table does list).
        return not_allowed(method, &template);
    };
    if action == access::Action::Agent {
        return next.run(req).await;
    }
    let started = std::time::Instant::now();
    let method_owned = method.to_string();
    let response = guarded(
        state.clone(),
        req,
        next,
        template.clone(),
        method_owned.clone(),
        action,
    )
    .await;
    state
        .monitor
        .observe(&method_owned, &template, started.elapsed().as_secs_f64());
    response
}

/// A user route: open ones go straight to their handler; the others only once
/// `access::authorize` allowed the caller (refusals answered and audited here).
async fn guarded(
    state: Arc<AppState>,
    mut req: Request,
    next: Next,
    template: String,
    method: String,
    action: access::Action,
) -> Response {
    let public = action == access::Action::Public
        || (action == access::Action::Metrics
            && state
                .monitor
                .public
                .load(std::sync::atomic::Ordering::Relaxed));
    if public {
        return next.run(req).await;
    }
    let source = source_of(&req);
    match check(&state, &req, &template, action, source.clone()) {
        Ok(a) => {
            if let Some(hash) = a.caller.token_hash.clone() {
                let now = now_ms();
                if state.accounts.should_touch(&hash, now) {
                    let st = state.clone();
                    tokio::task::spawn_blocking(move || st.store().touch_token(&hash, now));
                }
            }
            req.extensions_mut().insert(a);
            next.run(req).await
        }
        Err((e, denied)) => {
            let route = format!("{method} {template}");
            let audit = match denied {
                Some(d) => {
                    let (caller, env) = *d;
                    Some(crate::state::Audit::by(
                        &caller,
                        &env,
                        "request.denied",
                        &route,
                        e.message.clone(),
                    ))
                }
                // Attempts without a valid token: by address.
                None if e.status == axum::http::StatusCode::UNAUTHORIZED => {
                    Some(crate::state::Audit {
                        env: String::new(),
                        actor: "unauthenticated".into(),
                        kind: "request.denied",
                        subject: route,
                        detail: e.message.clone(),
                        source,
                    })
                }
                None => None,
            };
            if let Some(a) = audit {
                record_denied(&state, a);
            }
            e.into_response()
        }
    }
}

/// The answer to a method `access::ROUTES` does not list for a route: 405, with `Allow`
/// naming the methods it does list (a GET route answers HEAD too).
fn not_allowed(method: &str, template: &str) -> Response {
    let mut methods: Vec<&str> = access::ROUTES
        .iter()
        .filter(|(_, p, _)| *p == template)
        .map(|(m, _, _)| *m)
        .collect();
    if methods.contains(&"GET") {
        methods.push("HEAD");
    }
    let allow = methods.join(",");
    let mut response = ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {template} (allowed: {allow})"),
    )
    .into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&allow) {
        response.headers_mut().insert(axum::http::header::ALLOW, v);
    }
    response
}

/// The caller's address.
pub fn source_of(req: &Request) -> String {
    address(req.extensions())
}

fn address(ext: &axum::http::Extensions) -> String {
    ext.get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default()
}

/// The address a request came from (empty when the server does not know it).
pub struct Source(pub String);

impl FromRequestParts<Arc<AppState>> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Source(address(&parts.extensions)))
    }
}

type Refusal = (ApiError, Option<Box<(Caller, String)>>);

fn check(
    state: &AppState,
    req: &Request,
    template: &str,
    action: access::Action,
    source: String,
) -> Result<Authorized, Refusal> {
    let plain = |e: ApiError| (e, None);
    let mut caller = authenticate(state, token_of(req.headers(), template)).map_err(plain)?;
    caller
        .may_use(access::Routes::User)
        .map_err(|e| plain(e.into()))?;
    caller.source = source;
    let account = caller
        .user
        .as_deref()
        .and_then(|u| state.accounts.account(u));
    let identity = caller.identity(account).map_err(|e| plain(e.into()))?;
    let env = access::env_of(template, req.uri().path());
    let exists = match env {
        Some(e) => state.environment_exists(e).map_err(|e| plain(e.into()))?,
        None => true,
    };
    match access::authorize(&identity, action, env, exists) {
        access::Decision::Allow => Ok(Authorized { caller, identity }),
        access::Decision::Hidden => Err(plain(ApiError::not_found(format!(
            "environment '{}' does not exist",
            env.unwrap_or_default()
        )))),
        access::Decision::Deny(m) => Err((
            ApiError::forbidden(m),
            Some(Box::new((caller, env.unwrap_or_default().to_string()))),
        )),
    }
}

/// The identity `caller` acts as now (its user's admin flag and roles).
pub fn identity(state: &AppState, caller: &Caller) -> Result<access::Identity, ApiError> {
    let account = caller
        .user
        .as_deref()
        .and_then(|u| state.accounts.account(u));
    Ok(caller.identity(account)?)
}

/// Records a refused attempt in the audit log (once in a while per actor and route).
pub fn record_denied(state: &Arc<AppState>, audit: crate::state::Audit) {
    let key = format!("{} {} {}", audit.actor, audit.source, audit.subject);
    if !state
        .keys
        .record_denied(&key, now_ms(), DENIED_RECORD_EVERY_MS)
    {
        return;
    }
    let st = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut e = audit.event();
        e.result = "denied";
        if let Err(err) = st.store().append_event(now_ms(), &e) {
            tracing::warn!("audit: {err}");
        }
    });
}

/// An agent: a registration token or a host credential (for `/v1/agent/*`).
pub struct AgentCaller(pub Caller);

impl FromRequestParts<Arc<AppState>> for AgentCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let caller = authenticate(state, bearer(&parts.headers))?;
        caller.may_use(access::Routes::Agent)?;
        Ok(AgentCaller(caller))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue, header};

    fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_websocket_protocol_token_counts_only_on_the_exec_upgrade() {
        let ws = headers(&[
            (header::UPGRADE, "websocket"),
            (
                header::SEC_WEBSOCKET_PROTOCOL,
                "drover.exec, bearer.drv_abc",
            ),
        ]);
        assert_eq!(token_of(&ws, EXEC_ROUTE), Some("drv_abc"));
        // Any other route: not a token.
        assert_eq!(token_of(&ws, "/v1/environments/{env}/stacks"), None);
        assert_eq!(token_of(&ws, "/v1/agent/connect"), None);
        // Not an upgrade: not a token.
        let plain = headers(&[(header::SEC_WEBSOCKET_PROTOCOL, "bearer.drv_abc")]);
        assert_eq!(token_of(&plain, EXEC_ROUTE), None);
        // An Authorization header wins, even a malformed one (never two tokens).
        let both = headers(&[
            (header::AUTHORIZATION, "Bearer drv_header"),
            (header::UPGRADE, "websocket"),
            (header::SEC_WEBSOCKET_PROTOCOL, "bearer.drv_abc"),
        ]);
        assert_eq!(token_of(&both, EXEC_ROUTE), Some("drv_header"));
        let bad = headers(&[
            (header::AUTHORIZATION, "Basic x"),
            (header::UPGRADE, "websocket"),
            (header::SEC_WEBSOCKET_PROTOCOL, "bearer.drv_abc"),
        ]);
        assert_eq!(token_of(&bad, EXEC_ROUTE), None);
        let empty = headers(&[
            (header::UPGRADE, "websocket"),
            (header::SEC_WEBSOCKET_PROTOCOL, "drover.exec, bearer."),
        ]);
        assert_eq!(token_of(&empty, EXEC_ROUTE), None);
    }
}
