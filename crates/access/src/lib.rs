//! Who may do what: the authorisation decisions of the server, pure (no I/O, no clock: the
//! caller passes `now`). The server's shell looks tokens up, calls these, and turns a
//! [`Denied`] into an HTTP answer or a refused agent session.
//!
//! A token stands for a user (an API key or a session; the admin and member tokens made
//! before users existed act as an admin and as a member of one environment), a
//! registration token (may only register a new host) or a host credential (may only speak
//! for its own host). User routes take the first, agent routes the last two. What a user
//! may do is [`authorize`]: the route's [`Action`] against the user's [`Role`] in the
//! route's environment, one table ([`role_allows`], [`ROUTES`]).

use std::collections::{BTreeMap, HashMap};

mod limit;
mod roles;

pub use limit::{Limited, LoginLimiter};
pub use roles::{
    Action, Decision, Identity, KeyRefusal, METRICS_SCOPE, ROUTES, Role, action_of, authorize,
    env_of, key_scope, role_allows,
};

/// What kind of token a caller presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The admin token made before users existed: the `admin` user's key.
    Admin,
    /// A token of one environment made before users existed: a member there.
    Member,
    /// A user's API key.
    ApiKey,
    /// A user's session (`drover login`).
    Session,
    /// A registration token (stored as kind `agent`).
    Registration,
    /// One host's credential (stored as kind `host`).
    Host,
}

impl Kind {
    /// The kind a stored token names.
    pub fn parse(stored: &str) -> Option<Kind> {
        match stored {
            "admin" => Some(Kind::Admin),
            "member" => Some(Kind::Member),
            "apikey" => Some(Kind::ApiKey),
            "session" => Some(Kind::Session),
            "agent" => Some(Kind::Registration),
            "host" => Some(Kind::Host),
            _ => None,
        }
    }

    /// An agent-side kind: a registration token or a host credential.
    pub fn is_agent(self) -> bool {
        matches!(self, Kind::Registration | Kind::Host)
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The token's public name (never the secret).
    pub name: String,
    pub kind: Kind,
    pub env: String,
    /// For host credentials: the host it belongs to.
    pub host: Option<String>,
    /// The hash of the presented token; `None` for the server's own in-process agent.
    pub token_hash: Option<String>,
    /// For API keys and sessions: the user they act for.
    pub user: Option<String>,
    /// Where the request came from (the peer's address; empty when unknown).
    pub source: String,
}

/// Why a caller may not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// Not authenticated (HTTP 401).
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, not allowed (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
}

/// A stored token as the decision needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub name: String,
    pub kind: String,
    pub env: String,
    pub host: Option<String>,
    pub user: Option<String>,
    /// Not expired (and for registration tokens not used up) at the time asked.
    pub usable: bool,
}

/// The environment column of an API key that is not narrowed to one.
pub const ANY_ENV: &str = "*";

/// Longest token accepted; longer ones are refused unseen.
pub const MAX_TOKEN_LEN: usize = 256;

/// The caller a presented token (`presented`, its `hash` and what the store holds for it,
/// `found`) stands for.
pub fn authenticate(
    presented: Option<&str>,
    hash: &str,
    found: Option<Token>,
) -> Result<Caller, Denied> {
    let Some(token) = presented else {
        return Err(Denied::Unauthenticated(
            "missing bearer token (Authorization: Bearer <token>)".into(),
        ));
    };
    let invalid = || Denied::Unauthenticated("invalid token".into());
    if token.len() > MAX_TOKEN_LEN {
        return Err(invalid());
    }
    let t = found.ok_or_else(invalid)?;
    let kind = Kind::parse(&t.kind).ok_or_else(invalid)?;
    if !t.usable {
        return Err(Denied::Unauthenticated(match kind {
            Kind::Registration => {
                format!("registration token '{}' has expired or is used up", t.name)
            }
            Kind::Session => "session expired: run `drover login`".into(),
            _ => format!("token '{}' has expired", t.name),
        }));
    }
    if matches!(kind, Kind::ApiKey | Kind::Session) && t.user.is_none() {
        return Err(invalid());
    }
    Ok(Caller {
        name: t.name,
        kind,
        env: t.env,
        host: t.host,
        token_hash: Some(hash.to_string()),
        user: t.user,
        source: String::new(),
    })
}

/// The server's own in-process agent (`drover up`): a registration caller of the default
/// environment with no stored token.
pub fn local_agent() -> Caller {
    Caller {
        name: "local-agent".into(),
        kind: Kind::Registration,
        env: "default".into(),
        host: None,
        token_hash: None,
        user: None,
        source: String::new(),
    }
}

/// The two sets of routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routes {
    /// The REST API for users (`/v1/environments/...`).
    User,
    /// `/v1/agent/...`.
    Agent,
}

impl Caller {
    /// Who the audit log says acted: the user (with the API key's id when one was used), a
    /// token from before users by its name, or the host an agent speaks for.
    pub fn actor(&self) -> String {
        match (self.kind, &self.user) {
            (Kind::Session, Some(u)) => u.clone(),
            (Kind::ApiKey, Some(u)) => format!("{u} (key {})", self.name),
            (Kind::Host, _) => format!("host {}", self.host.as_deref().unwrap_or(&self.name)),
            _ => self.name.clone(),
        }
    }

    /// Whether the caller may use this set of routes at all.
    pub fn may_use(&self, routes: Routes) -> Result<(), Denied> {
        match (routes, self.kind.is_agent()) {
            (Routes::User, true) => Err(Denied::Forbidden(
                "agent tokens and host credentials may not use the API".into(),
            )),
            (Routes::Agent, false) => Err(Denied::Forbidden(
                "only agents may use /v1/agent routes (use a registration token)".into(),
            )),
            _ => Ok(()),
        }
    }

    /// The identity a user caller acts as. Tokens from before users carry it themselves
    /// (the admin token: an admin; a member token: a member of its environment); API keys
    /// and sessions act for their user, whose `account` (admin flag and roles, or `None`
    /// when the user is gone or disabled) the shell looks up. An API key made for one
    /// environment is narrowed to it.
    pub fn identity(
        &self,
        account: Option<(bool, BTreeMap<String, Role>)>,
    ) -> Result<Identity, Denied> {
        match self.kind {
            Kind::Admin => Ok(Identity {
                user: self.name.clone(),
                admin: true,
                roles: BTreeMap::new(),
                scope: None,
            }),
            Kind::Member => Ok(Identity {
                user: self.name.clone(),
                admin: false,
                roles: BTreeMap::from([(self.env.clone(), Role::Member)]),
                scope: Some(self.env.clone()),
            }),
            Kind::ApiKey | Kind::Session => {
                let user = self.user.clone().unwrap_or_default();
                let Some((admin, roles)) = account else {
                    return Err(Denied::Unauthenticated(format!(
                        "user '{user}' no longer exists or is disabled"
                    )));
                };
                let scope =
                    (self.kind == Kind::ApiKey && self.env != ANY_ENV).then(|| self.env.clone());
                Ok(Identity {
                    user,
                    admin,
                    roles,
                    scope,
                })
            }
            Kind::Registration | Kind::Host => Err(Denied::Forbidden(
                "agent tokens and host credentials may not use the API".into(),
            )),
        }
    }

    /// Whether the caller may fetch its environment's build contexts: a host credential of a
    /// host the server still knows (`host_known`).
    pub fn may_fetch_blobs(&self, host_known: bool) -> Result<(), Denied> {
        if self.kind == Kind::Host && host_known {
            Ok(())
        } else {
            Err(Denied::Forbidden(
                "build contexts are for registered hosts: use the host's credential".into(),
            ))
        }
    }
}

/// Host ids: what an agent makes (hex) and what an operator might (names), nothing that
/// could confuse a path, a label or a log line.
pub fn valid_host_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// What an agent's hello may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// A host credential for its own host: refresh the host, if the credential is still
    /// its own.
    Refresh { credential_hash: String },
    /// A registration token: register the host with the offered credential hash (the
    /// store refuses an existing host id); `reclaim` for the server's own agent, which may
    /// take its host back.
    Register {
        credential_hash: String,
        reclaim: bool,
    },
}

/// Why a hello is refused for good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("invalid host id: 1-128 letters, digits, '-', '_' or '.'")]
    HostId,
    #[error("this credential belongs to another host, not {0}")]
    OtherHost(String),
    #[error("registering needs the hash of the agent's credential in its hello: upgrade the agent")]
    NoCredentialHash,
    #[error("only agents may connect")]
    NotAnAgent,
}

impl Refused {
    /// Whether the refusal is an attempt to speak for a host without its credential (it is
    /// audited).
    pub fn is_impostor(&self) -> bool {
        matches!(self, Refused::OtherHost(_))
    }
}

/// Decides what the hello of `caller` naming host `host_id`, offering the credential hash
/// `offered`, may do.
pub fn admit(caller: &Caller, host_id: &str, offered: Option<&str>) -> Result<Admit, Refused> {
    if !valid_host_id(host_id) {
        return Err(Refused::HostId);
    }
    match caller.kind {
        Kind::Host => match &caller.host {
            Some(h) if h == host_id => Ok(Admit::Refresh {
                credential_hash: caller.token_hash.clone().unwrap_or_default(),
            }),
            _ => Err(Refused::OtherHost(host_id.to_string())),
        },
        Kind::Registration => {
            let hash = offered
                .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or(Refused::NoCredentialHash)?;
            Ok(Admit::Register {
                credential_hash: hash.to_ascii_lowercase(),
                reclaim: caller.token_hash.is_none(),
            })
        }
        Kind::Admin | Kind::Member | Kind::ApiKey | Kind::Session => Err(Refused::NotAnAgent),
    }
}

/// Lets one event per key through per period: a caller retrying in a loop cannot flood
/// the audit log.
#[derive(Debug, Default)]
pub struct Throttle {
    last: HashMap<String, u64>,
}

/// Keys remembered before old ones are forgotten.
const THROTTLE_KEYS: usize = 10_000;

impl Throttle {
    /// Whether an event for `key` at `now` passes (none passed within `every_ms`).
    pub fn allow(&mut self, key: &str, now: u64, every_ms: u64) -> bool {
        if self.last.len() > THROTTLE_KEYS {
            self.last.retain(|_, at| now.saturating_sub(*at) < every_ms);
        }
        match self.last.get(key) {
            Some(at) if now.saturating_sub(*at) < every_ms => false,
            _ => {
                self.last.insert(key.to_string(), now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests;
