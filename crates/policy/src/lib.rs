//! Container policy, the pure part: what an environment lets the containers of a project
//! have of their host. No I/O, no clock.
//!
//! By default nothing is allowed: no privileged container, no host namespace (network, PID,
//! IPC), no device, no capability beyond Docker's default set, no security option but
//! `no-new-privileges`, no bind mount. An environment's owners allow some of it
//! (`drover env policy ENV --allow-privileged --allow-host-namespaces --allow-bind PATH
//! --allow-cap CAP`). A bind of the engine's socket (or of a directory holding it) gives
//! control of the engine, so of the host: it needs `allow_privileged` even under an allowed
//! path. [`check`] lists every breach, each naming the service, the key and the rule.
//!
//! Paths are compared lexically (`.` and `..` resolved, no trailing-slash tricks): symbolic
//! links on the host are not followed, so an allowed directory must not hold links that its
//! users can point elsewhere.

use std::fmt;

use compose::{MountKind, Project, Service};
use serde::{Deserialize, Serialize};

/// What an environment allows its containers (stored as JSON per environment). The
/// default allows nothing beyond Docker's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// `privileged`, devices, security options other than `no-new-privileges`, any
    /// capability, and binds of the engine's socket (under an allowed path).
    pub allow_privileged: bool,
    /// `network_mode: host`, `pid: host`, `ipc: host`.
    pub allow_host_namespaces: bool,
    /// Host paths (absolute) under which bind mounts may be made.
    pub allow_binds: Vec<String>,
    /// Capabilities beyond Docker's defaults that `cap_add` may add (`NET_ADMIN`; `ALL`
    /// allows every one).
    pub allow_caps: Vec<String>,
}

/// Docker's default capability set: adding one of these changes nothing.
pub const DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Where container engines listen: a bind of one (or of a directory above it) controls the
/// engine, and so the host.
pub const ENGINE_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/var/run/containerd/containerd.sock",
    "/run/containerd/containerd.sock",
];

/// One thing a project may not have in an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub service: String,
    /// The key below the service: `privileged`, `network_mode`, `pid`, `ipc`,
    /// `devices[0]`, `cap_add[1]`, `security_opt[0]`, `volumes[0]` (the index in the
    /// normalised service, where `tmpfs` entries follow the `volumes` they are listed with).
    pub key: String,
    /// The rule, and how an owner lifts it.
    pub rule: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "service '{}': {}: {}", self.service, self.key, self.rule)
    }
}

/// A capability's name as the engine reads it: upper case, without `CAP_`.
pub fn capability(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    match upper.strip_prefix("CAP_") {
        Some(rest) => rest.to_owned(),
        None => upper,
    }
}

impl Policy {
    /// The policy with its paths normalised and its capabilities named as the engine names
    /// them, or why it cannot be one: a relative path, or a capability that is no name.
    pub fn normalised(&self) -> Result<Policy, String> {
        let mut binds = Vec::new();
        for path in &self.allow_binds {
            let Some(p) = absolute(path) else {
                return Err(format!("allowed bind path '{path}' must be absolute"));
            };
            if !binds.contains(&p) {
                binds.push(p);
            }
        }
        let mut caps = Vec::new();
        for cap in &self.allow_caps {
            let c = capability(cap);
            if c.is_empty() || !c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_') {
                return Err(format!("invalid capability '{cap}'"));
            }
            if !caps.contains(&c) {
                caps.push(c);
            }
        }
        Ok(Policy {
            allow_privileged: self.allow_privileged,
            allow_host_namespaces: self.allow_host_namespaces,
            allow_binds: binds,
            allow_caps: caps,
        })
    }

    fn allows_cap(&self, cap: &str) -> bool {
        self.allow_privileged
            || DEFAULT_CAPS.contains(&cap)
            || self
                .allow_caps
                .iter()
                .map(|c| capability(c))
                .any(|c| c == cap || c == "ALL")
    }

    /// Whether `path` (normalised, absolute) lies under an allowed bind path.
    fn allows_bind(&self, path: &str) -> bool {
        self.allow_binds
            .iter()
            .filter_map(|b| absolute(b))
            .any(|base| under(path, &base))
    }
}

/// `path` lexically normalised, when absolute.
fn absolute(path: &str) -> Option<String> {
    path.starts_with('/')
        .then(|| compose::normalise_path(None, path))
}

/// Whether normalised absolute `path` is `base` or below it (`/srv/data` holds
/// `/srv/data/x`, not `/srv/database`).
fn under(path: &str, base: &str) -> bool {
    base == "/"
        || path == base
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'))
}

const PRIVILEGED: &str = "drover env policy ENV --allow-privileged";
const HOST_NAMESPACES: &str = "drover env policy ENV --allow-host-namespaces";

/// Every breach of `policy` by `project`'s services (sidekicks included), by service name
/// and then key. Empty: the project may run in the environment.
pub fn check(project: &Project, policy: &Policy) -> Vec<Violation> {
    let mut out = Vec::new();
    for (name, service) in &project.services {
        check_service(service, policy, &mut |key: String, rule: String| {
            out.push(Violation {
                service: name.clone(),
                key,
                rule,
            });
        });
    }
    out
}

fn check_service(s: &Service, policy: &Policy, refuse: &mut dyn FnMut(String, String)) {
    if s.privileged && !policy.allow_privileged {
        refuse(
            "privileged".into(),
            format!("privileged containers are not allowed in this environment ({PRIVILEGED})"),
        );
    }
    let namespaces = [
        ("network_mode", s.network_mode.as_deref(), "network"),
        ("pid", s.pid.as_deref(), "process (PID)"),
        ("ipc", s.ipc.as_deref(), "IPC"),
    ];
    for (key, mode, what) in namespaces {
        if mode == Some("host") && !policy.allow_host_namespaces {
            refuse(
                key.into(),
                format!(
                    "the host's {what} namespace is not allowed in this environment \
                     ({HOST_NAMESPACES})"
                ),
            );
        }
    }
    if !policy.allow_privileged {
        for (i, d) in s.devices.iter().enumerate() {
            refuse(
                format!("devices[{i}]"),
                format!(
                    "device {} is not allowed in this environment: a host device needs the \
                     trust a privileged container does ({PRIVILEGED})",
                    d.host
                ),
            );
        }
    }
    for (i, cap) in s.cap_add.iter().enumerate() {
        let c = capability(cap);
        if policy.allows_cap(&c) {
            continue;
        }
        let rule = if c == "ALL" {
            format!(
                "capability ALL (every capability) is not allowed in this environment \
                 ({PRIVILEGED})"
            )
        } else {
            format!(
                "capability {c} is beyond Docker's defaults and not allowed in this \
                 environment (drover env policy ENV --allow-cap {c})"
            )
        };
        refuse(format!("cap_add[{i}]"), rule);
    }
    if !policy.allow_privileged {
        for (i, opt) in s.security_opt.iter().enumerate() {
            if !no_new_privileges(opt) {
                refuse(
                    format!("security_opt[{i}]"),
                    format!(
                        "security option '{opt}' is not allowed in this environment (only \
                         no-new-privileges is; {PRIVILEGED})"
                    ),
                );
            }
        }
    }
    for (i, m) in s.volumes.iter().enumerate() {
        if m.kind != MountKind::Bind {
            continue;
        }
        let key = || format!("volumes[{i}]");
        let source = m.source.as_deref().unwrap_or_default();
        let Some(path) = absolute(source) else {
            refuse(
                key(),
                format!(
                    "bind of '{source}' is not allowed: only absolute host paths can be \
                     allowed (drover env policy ENV --allow-bind PATH)"
                ),
            );
            continue;
        };
        if !policy.allow_privileged
            && let Some(socket) = ENGINE_SOCKETS.iter().find(|sock| under(sock, &path))
        {
            let what = if path == *socket {
                format!("bind of {path}")
            } else {
                format!("bind of {path} (which holds {socket})")
            };
            refuse(
                key(),
                format!(
                    "{what} gives control of the container engine, so of the host: not \
                     allowed in this environment ({PRIVILEGED})"
                ),
            );
        }
        if !policy.allows_bind(&path) {
            let allowed: Vec<String> = policy
                .allow_binds
                .iter()
                .filter_map(|b| absolute(b))
                .collect();
            let allowed = if allowed.is_empty() {
                "none".to_owned()
            } else {
                allowed.join(", ")
            };
            refuse(
                key(),
                format!(
                    "bind of {path} is outside the host paths this environment allows \
                     ({allowed}; drover env policy ENV --allow-bind PATH)"
                ),
            );
        }
    }
}

/// `no-new-privileges` in any of the engine's spellings: it only takes privileges away.
fn no_new_privileges(opt: &str) -> bool {
    let opt = opt.trim();
    opt == "no-new-privileges"
        || ["true", "false"].iter().any(|v| {
            opt == format!("no-new-privileges:{v}") || opt == format!("no-new-privileges={v}")
        })
}

#[cfg(test)]
mod tests;
