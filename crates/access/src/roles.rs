//! Users' rights: roles per environment, the actions of the API's routes, and the one table
//! that joins them. [`authorize`] is the only decision; the server's HTTP edge finds the
//! route's [`Action`] in [`ROUTES`], gathers the caller's [`Identity`] and calls it.

use std::collections::BTreeMap;

/// A user's role in one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads and logs; no exec, no changes.
    ReadOnly,
    /// Stacks only: no hosts, no registration tokens, no members.
    Restricted,
    /// Stacks, hosts, networks, registries and registration tokens.
    Member,
    /// Everything in the environment, members and policy included.
    Owner,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Member, Role::Restricted, Role::ReadOnly];

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "member" => Some(Role::Member),
            "restricted" => Some(Role::Restricted),
            "read-only" | "readonly" => Some(Role::ReadOnly),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Member => "member",
            Role::Restricted => "restricted",
            Role::ReadOnly => "read-only",
        }
    }
}

/// The scope of an API key that may only read `/metrics`.
pub const METRICS_SCOPE: &str = "#metrics";

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Open to anyone: signing in, the API document.
    Public,
    /// An agent's route: its own checks (registration token or host credential) apply.
    Agent,
    /// Anything a signed-in user does to their own account: API keys, sessions, password.
    Own,
    /// Global administration: environments, users, the directory, the whole audit log.
    Admin,
    /// Reading `/metrics`: admins, and API keys made for it.
    Metrics,
    /// Reading an environment's stacks, containers, networks, files, events, logs.
    Read,
    /// Reading its hosts.
    ReadHosts,
    /// Deploying, scaling, restarting, rolling back and removing stacks; secrets, configs
    /// and build contexts.
    Deploy,
    /// Running a command in a container.
    Exec,
    /// Labelling, draining and removing hosts.
    Hosts,
    /// Registration tokens.
    Tokens,
    /// Making and removing networks.
    Networks,
    /// Private registry logins.
    Registries,
    /// The ingress's TLS certificates.
    Certs,
    /// Reading the environment's members and audit log.
    Members,
    /// Adding and removing members; changing the container policy; adding, refreshing and
    /// removing catalogs.
    Govern,
}

impl Action {
    /// What the action is, for a refusal: "may not {what}".
    fn what(self) -> &'static str {
        match self {
            Action::Public | Action::Agent | Action::Own => "do this",
            Action::Admin => "administer Drover",
            Action::Metrics => "read metrics",
            Action::Read => "read",
            Action::ReadHosts => "see hosts",
            Action::Deploy => "change stacks",
            Action::Exec => "run commands in containers",
            Action::Hosts => "manage hosts",
            Action::Tokens => "manage registration tokens",
            Action::Networks => "manage networks",
            Action::Registries => "manage registry logins",
            Action::Certs => "manage certificates",
            Action::Members => "see members or the audit log",
            Action::Govern => "change members or the container policy",
        }
    }
}

/// The table: whether `role` may do `action` in its environment.
pub fn role_allows(role: Role, action: Action) -> bool {
    use Action::*;
    match action {
        Public | Own => true,
        Agent | Admin | Metrics => false,
        Read => true,
        ReadHosts => role != Role::Restricted,
        Deploy | Exec => role >= Role::Restricted,
        Hosts | Tokens | Networks | Registries | Certs | Members => role >= Role::Member,
        Govern => role == Role::Owner,
    }
}

/// Who a user request comes from, with everything the decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user's name (or a legacy token's).
    pub user: String,
    /// A global admin: every environment, as owner.
    pub admin: bool,
    /// The user's role in each environment it is a member of (directly or by a group).
    pub roles: BTreeMap<String, Role>,
    /// An API key limited to one environment.
    pub scope: Option<String>,
}

impl Identity {
    /// The role in `env`, if the identity may see it at all.
    pub fn role(&self, env: &str) -> Option<Role> {
        if self.scope.as_deref().is_some_and(|s| s != env) {
            return None;
        }
        if self.admin {
            return Some(Role::Owner);
        }
        self.roles.get(env).copied()
    }

    /// Whether the identity sees environment `env` (listing environments).
    pub fn sees(&self, env: &str) -> bool {
        self.role(env).is_some()
    }

    /// Whether the environment's container policy binds this identity's deploys (owners and
    /// admins decide the policy, so it does not bind them).
    pub fn policy_applies(&self, env: &str) -> bool {
        self.role(env) != Some(Role::Owner)
    }
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Forbidden, with the reason (HTTP 403).
    Deny(String),
    /// The environment does not exist, or the caller may not know that it does: both are
    /// answered alike (HTTP 404).
    Hidden,
}

/// Whether `who` may do `action`; `env` is the route's environment (`None` for routes
/// outside one) and `env_exists` whether the store has it.
pub fn authorize(who: &Identity, action: Action, env: Option<&str>, env_exists: bool) -> Decision {
    match action {
        Action::Public | Action::Own => return Decision::Allow,
        Action::Agent => {
            return Decision::Deny("this route is for agents".into());
        }
        Action::Metrics => {
            return if who.scope.as_deref() == Some(METRICS_SCOPE)
                || (who.admin && who.scope.is_none())
            {
                Decision::Allow
            } else {
                Decision::Deny(format!(
                    "'{}' may not read metrics: that needs an admin or an API key made with \
                     `drover apikey create --metrics`",
                    who.user
                ))
            };
        }
        Action::Admin => {
            return match (&who.scope, who.admin) {
                (Some(scope), true) => Decision::Deny(format!(
                    "this API key is limited to environment '{scope}': \
                     administering Drover needs an unlimited one"
                )),
                (None, true) => Decision::Allow,
                (_, false) => Decision::Deny(format!(
                    "user '{}' may not administer Drover: that needs an admin",
                    who.user
                )),
            };
        }
        _ => {}
    }
    let Some(env) = env else {
        return Decision::Deny("this route names no environment".into());
    };
    if !env_exists {
        return Decision::Hidden;
    }
    let Some(role) = who.role(env) else {
        return Decision::Hidden;
    };
    if role_allows(role, action) {
        Decision::Allow
    } else {
        let may: Vec<&str> = Role::ALL
            .iter()
            .filter(|r| role_allows(**r, action))
            .map(|r| r.as_str())
            .collect();
        Decision::Deny(format!(
            "user '{}' is {} in environment '{env}' and may not {}: that needs {}",
            who.user,
            role.as_str(),
            action.what(),
            may.join(" or ")
        ))
    }
}

/// Every route of the API: method, path template (as the router names it) and action. The
/// server refuses a route that is not here, and the route walk test checks the two agree.
pub const ROUTES: &[(&str, &str, Action)] = &[
    ("GET", "/v1/openapi.json", Action::Public),
    ("GET", "/metrics", Action::Metrics),
    ("GET", "/v1/environments/{env}/stats", Action::Read),
    ("POST", "/v1/sessions", Action::Public),
    ("GET", "/v1/sessions", Action::Own),
    ("DELETE", "/v1/sessions/{id}", Action::Own),
    ("GET", "/v1/whoami", Action::Own),
    ("PUT", "/v1/password", Action::Own),
    ("GET", "/v1/apikeys", Action::Own),
    ("POST", "/v1/apikeys", Action::Own),
    ("DELETE", "/v1/apikeys/{id}", Action::Own),
    ("GET", "/v1/users", Action::Admin),
    ("POST", "/v1/users", Action::Admin),
    ("DELETE", "/v1/users/{user}", Action::Admin),
    ("PUT", "/v1/users/{user}/password", Action::Admin),
    ("GET", "/v1/audit", Action::Admin),
    ("GET", "/v1/auth/ldap", Action::Admin),
    ("PUT", "/v1/auth/ldap", Action::Admin),
    ("DELETE", "/v1/auth/ldap", Action::Admin),
    ("POST", "/v1/auth/ldap/test", Action::Admin),
    ("GET", "/v1/environments", Action::Own),
    ("POST", "/v1/environments", Action::Admin),
    ("DELETE", "/v1/environments/{env}", Action::Admin),
    ("GET", "/v1/environments/{env}/members", Action::Members),
    ("PUT", "/v1/environments/{env}/members", Action::Govern),
    (
        "DELETE",
        "/v1/environments/{env}/members/{subject}",
        Action::Govern,
    ),
    ("GET", "/v1/environments/{env}/policy", Action::Read),
    ("PUT", "/v1/environments/{env}/policy", Action::Govern),
    ("GET", "/v1/environments/{env}/audit", Action::Members),
    ("GET", "/v1/environments/{env}/catalogs", Action::Read),
    ("POST", "/v1/environments/{env}/catalogs", Action::Govern),
    (
        "DELETE",
        "/v1/environments/{env}/catalogs/{name}",
        Action::Govern,
    ),
    (
        "POST",
        "/v1/environments/{env}/catalogs/{name}/refresh",
        Action::Govern,
    ),
    ("GET", "/v1/environments/{env}/templates", Action::Read),
    (
        "GET",
        "/v1/environments/{env}/templates/{catalog}/{template}",
        Action::Read,
    ),
    (
        "POST",
        "/v1/environments/{env}/templates/{catalog}/{template}/install",
        Action::Deploy,
    ),
    (
        "GET",
        "/v1/environments/{env}/stacks/{name}/upgrade",
        Action::Read,
    ),
    (
        "POST",
        "/v1/environments/{env}/stacks/{name}/upgrade",
        Action::Deploy,
    ),
    ("GET", "/v1/environments/{env}/stacks", Action::Read),
    ("POST", "/v1/environments/{env}/stacks", Action::Deploy),
    ("GET", "/v1/environments/{env}/stacks/{name}", Action::Read),
    (
        "DELETE",
        "/v1/environments/{env}/stacks/{name}",
        Action::Deploy,
    ),
    (
        "GET",
        "/v1/environments/{env}/stacks/{name}/compose",
        Action::Read,
    ),
    (
        "GET",
        "/v1/environments/{env}/stacks/{name}/history",
        Action::Read,
    ),
    (
        "POST",
        "/v1/environments/{env}/stacks/{name}/rollback",
        Action::Deploy,
    ),
    (
        "POST",
        "/v1/environments/{env}/stacks/{stack}/services/{service}/scale",
        Action::Deploy,
    ),
    (
        "POST",
        "/v1/environments/{env}/stacks/{stack}/services/{service}/rollback",
        Action::Deploy,
    ),
    (
        "POST",
        "/v1/environments/{env}/stacks/{stack}/services/{service}/restart",
        Action::Deploy,
    ),
    ("GET", "/v1/environments/{env}/containers", Action::Read),
    (
        "GET",
        "/v1/environments/{env}/containers/{name}/logs",
        Action::Read,
    ),
    (
        "GET",
        "/v1/environments/{env}/containers/{name}/exec",
        Action::Exec,
    ),
    ("GET", "/v1/environments/{env}/hosts", Action::ReadHosts),
    (
        "GET",
        "/v1/environments/{env}/hosts/{id}",
        Action::ReadHosts,
    ),
    ("DELETE", "/v1/environments/{env}/hosts/{id}", Action::Hosts),
    (
        "PUT",
        "/v1/environments/{env}/hosts/{id}/labels",
        Action::Hosts,
    ),
    (
        "POST",
        "/v1/environments/{env}/hosts/{id}/drain",
        Action::Hosts,
    ),
    ("GET", "/v1/environments/{env}/hosts/tokens", Action::Tokens),
    (
        "POST",
        "/v1/environments/{env}/hosts/tokens",
        Action::Tokens,
    ),
    (
        "DELETE",
        "/v1/environments/{env}/hosts/tokens/{id}",
        Action::Tokens,
    ),
    ("GET", "/v1/environments/{env}/networks", Action::Read),
    ("POST", "/v1/environments/{env}/networks", Action::Networks),
    (
        "GET",
        "/v1/environments/{env}/networks/{name}",
        Action::Read,
    ),
    (
        "DELETE",
        "/v1/environments/{env}/networks/{name}",
        Action::Networks,
    ),
    ("GET", "/v1/environments/{env}/secrets", Action::Read),
    ("POST", "/v1/environments/{env}/secrets", Action::Deploy),
    (
        "PUT",
        "/v1/environments/{env}/secrets/{name}",
        Action::Deploy,
    ),
    (
        "DELETE",
        "/v1/environments/{env}/secrets/{name}",
        Action::Deploy,
    ),
    ("GET", "/v1/environments/{env}/configs", Action::Read),
    ("POST", "/v1/environments/{env}/configs", Action::Deploy),
    ("GET", "/v1/environments/{env}/configs/{name}", Action::Read),
    (
        "PUT",
        "/v1/environments/{env}/configs/{name}",
        Action::Deploy,
    ),
    (
        "DELETE",
        "/v1/environments/{env}/configs/{name}",
        Action::Deploy,
    ),
    ("GET", "/v1/environments/{env}/registries", Action::Read),
    (
        "POST",
        "/v1/environments/{env}/registries",
        Action::Registries,
    ),
    (
        "DELETE",
        "/v1/environments/{env}/registries/{host}",
        Action::Registries,
    ),
    ("GET", "/v1/environments/{env}/certs", Action::Read),
    ("POST", "/v1/environments/{env}/certs", Action::Certs),
    (
        "DELETE",
        "/v1/environments/{env}/certs/{name}",
        Action::Certs,
    ),
    ("GET", "/v1/environments/{env}/ingress", Action::Read),
    ("GET", "/v1/environments/{env}/events", Action::Read),
    ("GET", "/v1/environments/{env}/watch", Action::Read),
    ("POST", "/v1/environments/{env}/blobs", Action::Deploy),
    ("GET", "/v1/agent/connect", Action::Agent),
    ("GET", "/v1/agent/blobs/{digest}", Action::Agent),
];

/// Why an API key cannot be made as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRefusal {
    /// A metrics key: only from an admin's unlimited token, and for no environment.
    Metrics,
    /// The environment asked for does not exist, or the caller may not see it.
    Hidden(String),
}

/// The scope (`tokens.env`) of a new API key `who` asks for: narrowed to `env` (which must
/// exist, `env_exists`, and be one `who` sees), a metrics key, or else as far as the token
/// that makes it reaches — never further.
pub fn key_scope(
    who: &Identity,
    env: Option<&str>,
    metrics: bool,
    env_exists: bool,
) -> Result<String, KeyRefusal> {
    if metrics {
        return if env.is_none() && who.admin && who.scope.is_none() {
            Ok(METRICS_SCOPE.to_string())
        } else {
            Err(KeyRefusal::Metrics)
        };
    }
    match (env, &who.scope) {
        (Some(e), _) if !(env_exists && who.sees(e)) => Err(KeyRefusal::Hidden(e.to_string())),
        (Some(e), _) => Ok(e.to_string()),
        (None, Some(scope)) => Ok(scope.clone()),
        (None, None) => Ok(crate::ANY_ENV.to_string()),
    }
}

/// The action of the route `method` `template`, if it is in the table.
pub fn action_of(method: &str, template: &str) -> Option<Action> {
    ROUTES
        .iter()
        .find(|(m, p, _)| *m == method && *p == template)
        .map(|(_, _, a)| *a)
}

/// The environment a request's path names, for routes under `/v1/environments/{env}`.
pub fn env_of<'a>(template: &str, path: &'a str) -> Option<&'a str> {
    if !template.starts_with("/v1/environments/{env}") {
        return None;
    }
    path.strip_prefix("/v1/environments/")?.split('/').next()
}
