//! The normalised compose project: what `drover stack config` prints, what the server stores
//! as a stack's desired state, and what `drover stack export` writes back out.
//!
//! Every field here is already interpolated, defaulted and validated. Maps are `BTreeMap` so
//! that serialisation (and therefore [`Service::spec_hash`]) is deterministic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most services a project may have. A service takes about 1.5 KB once read, however
/// short its text (`"s1":{}`): without a bound, an 8 MiB request body of empty services
/// would take 300 MB. (A compose file's node budget already stops near 25,000.)
pub const MAX_SERVICES: usize = 10_000;

fn bounded_services<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Service>, D::Error> {
    struct Bounded;
    impl<'de> serde::de::Visitor<'de> for Bounded {
        type Value = BTreeMap<String, Service>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a map of at most {MAX_SERVICES} services")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                if out.len() == MAX_SERVICES {
                    return Err(serde::de::Error::custom(format!(
                        "more than {MAX_SERVICES} services"
                    )));
                }
                let service = map.next_value::<Service>()?;
                out.insert(name, service);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Bounded)
}

/// A whole compose project after parsing, interpolation, profile selection and validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Project {
    /// Project (stack) name.
    pub name: String,
    /// At most [`MAX_SERVICES`]: a project read as JSON is refused past them while it is
    /// read, before they take memory.
    #[serde(deserialize_with = "bounded_services")]
    pub services: BTreeMap<String, Service>,
    /// Top-level networks. Always contains `default` when any service uses it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Network>,
    /// Top-level named volumes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Volume>,
    /// Top-level `secrets:` (values are never here: only where they come from).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, FileSource>,
    /// Top-level `configs:`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, FileSource>,
    /// Top-level `x-*` extension keys, kept verbatim.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Service {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `environment` merged over the contents of every `env_file` (environment wins).
    /// A `None` value means "declared without value and not set in the environment".
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, Option<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Mount>,
    /// Networks this service joins, with aliases. Defaults to `{default: {}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, ServiceNetwork>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, Dependency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "RestartPolicy::is_no")]
    pub restart: RestartPolicy,
    /// `pull_policy` (absent: `missing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `deploy.replicas`, or `scale`; 1 when neither is given.
    #[serde(default = "one")]
    pub replicas: u32,
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub limits: Resources,
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub reservations: Resources,
    /// `deploy.mode: global`: one container on every host that matches the placement.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub global: bool,
    /// `deploy.placement`.
    #[serde(default, skip_serializing_if = "Placement::is_empty")]
    pub placement: Placement,
    /// `deploy.update_config`: how a changed service is rolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdateConfig>,
    /// `deploy.rollback_config`: how a failed roll is rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// `privileged`: every capability and device of the host (an environment's container
    /// policy decides who may).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// `pid`: `host` (the host's process namespace), the only mode accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// `ipc`: `host`, `private`, `shareable` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    /// `devices`: host devices mapped into the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// `security_opt`, as the engine takes them (`no-new-privileges:true`,
    /// `seccomp=unconfined`, `label=disable`...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// `host:ip` entries, as the engine takes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// `links:` as `service:alias` (the alias is the service's name when none is given):
    /// the alias resolves, for this service's containers, to the linked service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// `secrets:` the service's containers get as files (default `/run/secrets/NAME`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileUse>,
    /// `configs:` the service's containers get as files (default `/NAME`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<FileUse>,
    /// `network_mode`: `none`, `host` (the host's network: no Drover network, no mesh), or
    /// `service:NAME` (share that service's network, replica by replica: this service is a
    /// sidekick of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// `volumes_from`: `SERVICE` or `SERVICE:ro` (mount that service's volumes, replica by
    /// replica: this service is a sidekick of it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period_ns: Option<u64>,
    /// `platform`: `OS[/ARCH[/VARIANT]]`, e.g. `linux/arm64`: placed only on hosts whose
    /// engine reports that OS and architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// `annotations`: OCI annotations of the container (engines from API 1.43).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `container_name`: a fixed engine name (one replica only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// `expose`: ports open to other containers only, as `PORT/PROTO`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdin_open: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// `shm_size` in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_opt: BTreeMap<String, String>,
    /// Service-level `x-*` keys, kept verbatim (including `x-drover`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, serde_json::Value>,
}

/// `deploy.update_config` / `deploy.rollback_config`, as written (unset keys stay unset:
/// the roller applies the defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct UpdateConfig {
    /// Containers replaced at a time (0: all at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_action: Option<FailureAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failure_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<UpdateOrder>,
}

impl UpdateConfig {
    pub fn is_empty(&self) -> bool {
        *self == UpdateConfig::default()
    }
}

/// `update_config.order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    StopFirst,
    StartFirst,
}

impl UpdateOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateOrder::StopFirst => "stop-first",
            UpdateOrder::StartFirst => "start-first",
        }
    }
}

/// `update_config.failure_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureAction {
    Continue,
    Pause,
    Rollback,
}

impl FailureAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureAction::Continue => "continue",
            FailureAction::Pause => "pause",
            FailureAction::Rollback => "rollback",
        }
    }
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Build {
    /// Context directory, as written (relative to the compose file's directory).
    pub context: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// SHA-256 of the build context tarball uploaded to the server (set by the client that
    /// deploys, not part of compose syntax: never written back by `to_compose_yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_digest: Option<String>,
}

impl Service {
    /// The image the service's containers run: `image:` if given, else for a `build:`
    /// service `<stack>-<service>:<first 12 hex of the context digest>` (`latest` before upload).
    pub fn image_ref(&self, stack: &str, service: &str) -> Option<String> {
        if let Some(i) = &self.image {
            return Some(i.clone());
        }
        let b = self.build.as_ref()?;
        let tag = b
            .context_digest
            .as_deref()
            .map(|d| d.chars().take(12).collect::<String>())
            .unwrap_or_else(|| "latest".into());
        Some(format!("{stack}-{service}:{tag}"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// Container port.
    pub target: u16,
    /// Host port; `None` means the engine picks one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// `tcp` or `udp`.
    pub protocol: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Volume,
    Bind,
    Tmpfs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: MountKind,
    /// Volume name (project-local name for named volumes), host path for binds (absolute after
    /// normalisation, or relative to the compose file as written if the caller gave no base
    /// directory), `None` for anonymous volumes and tmpfs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub target: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ServiceNetwork {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    #[default]
    ServiceStarted,
    ServiceHealthy,
    ServiceCompletedSuccessfully,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub condition: Condition,
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// Durations are nanoseconds, like the Engine API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Healthcheck {
    /// Engine form: `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]` (disabled).
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period_ns: Option<u64>,
}

/// When the image of a service is pulled (compose `pull_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullPolicy {
    /// Pulled every time a container is made.
    Always,
    /// Pulled when the host does not have it (the default; compose's `if_not_present`).
    Missing,
    /// Never pulled: the host must have it.
    Never,
    /// Built from the service's `build:` section.
    Build,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "always",
            PullPolicy::Missing => "missing",
            PullPolicy::Never => "never",
            PullPolicy::Build => "build",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", tag = "policy")]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    OnFailure {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_retries: Option<u32>,
    },
    UnlessStopped,
}

impl RestartPolicy {
    pub fn is_no(&self) -> bool {
        matches!(self, RestartPolicy::No)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Resources {
    /// CPUs, e.g. 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        self.cpus.is_none() && self.memory.is_none() && self.pids.is_none()
    }
}

/// `deploy.placement`: where containers may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Placement {
    /// Swarm-style constraints, validated: `node.labels.region == eu`, `node.hostname != a`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas_per_node: Option<u32>,
}

impl Placement {
    pub fn is_empty(&self) -> bool {
        self.constraints.is_empty() && self.max_replicas_per_node.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Network {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// Engine-level name when set explicitly (`name:`); otherwise `<project>_<key>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A `platform` as (OS, architecture): `linux/amd64` → (linux, amd64); `linux` → (linux,
/// none).
pub fn platform_parts(p: &str) -> (Option<&str>, Option<&str>) {
    let mut parts = p.split('/');
    let os = parts.next().filter(|s| !s.is_empty());
    let arch = parts.next().filter(|s| !s.is_empty());
    (os, arch)
}

/// One `devices` entry: `HOST[:CONTAINER[:PERMISSIONS]]`, or `{source, target,
/// permissions}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Absolute path of the device on the host.
    pub host: String,
    /// Absolute path in the container (the host path when not given).
    pub container: String,
    /// cgroup permissions, some of `r`, `w`, `m` [default: `rwm`].
    #[serde(default = "rwm", skip_serializing_if = "is_rwm")]
    pub permissions: String,
}

fn rwm() -> String {
    "rwm".to_owned()
}

fn is_rwm(p: &String) -> bool {
    p == "rwm"
}

/// `pid` modes Drover accepts.
pub const PID_MODES: &[&str] = &["host"];
/// `ipc` modes Drover accepts (not `service:`/`container:`: another container's namespace).
pub const IPC_MODES: &[&str] = &["host", "private", "shareable", "none"];

/// Why `pid: mode` is refused, if it is.
pub fn check_pid(mode: &str) -> Result<(), String> {
    if PID_MODES.contains(&mode) {
        return Ok(());
    }
    Err(format!("unsupported pid '{mode}' (expected host)"))
}

/// Why `ipc: mode` is refused, if it is.
pub fn check_ipc(mode: &str) -> Result<(), String> {
    if IPC_MODES.contains(&mode) {
        return Ok(());
    }
    if mode.starts_with("service:") || mode.starts_with("container:") {
        return Err(format!(
            "ipc '{mode}' is not supported: Drover does not share one container's IPC \
             namespace with another (expected host, private, shareable or none)"
        ));
    }
    Err(format!(
        "unsupported ipc '{mode}' (expected host, private, shareable or none)"
    ))
}

impl Device {
    /// Why this device entry is refused, if it is.
    pub fn check(&self) -> Result<(), String> {
        for (what, p) in [("host", &self.host), ("container", &self.container)] {
            if !p.starts_with('/') {
                return Err(format!("device {what} path '{p}' must be absolute"));
            }
        }
        let p = &self.permissions;
        let valid = !p.is_empty()
            && p.len() <= 3
            && p.chars().all(|c| "rwm".contains(c))
            && p.chars().enumerate().all(|(i, c)| !p[..i].contains(c));
        if !valid {
            return Err(format!(
                "invalid device permissions '{p}' (some of r, w and m)"
            ));
        }
        Ok(())
    }

    /// The engine's short form, `HOST:CONTAINER:PERMISSIONS`.
    pub fn short(&self) -> String {
        format!("{}:{}:{}", self.host, self.container, self.permissions)
    }
}

/// One `ulimits` entry (a single number sets both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    pub soft: i64,
    pub hard: i64,
}

/// `logging`: the engine's log driver and its options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Logging {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// A top-level secret or config: where its value comes from. Values read by the client
/// (`file`, `environment`) travel beside the project, never in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FileSource {
    /// A file, relative to the compose file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A variable of the deploying client's environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Inline content (configs only), interpolated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Made beforehand (`drover secret create` / `drover config create`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// The external object's name, when not the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A service's use of a secret or config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FileUse {
    /// The top-level key.
    pub source: String,
    /// Path in the container (relative: under `/run/secrets` for secrets, `/` for configs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// File mode, e.g. 0o440 [default: 0o444].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// The version of the value this revision runs (set by the server, not compose syntax):
    /// a new value is a new spec, so the services that use it roll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// Secrets and configs are read and mounted alike; they differ in where files go by
/// default, whether a value may be written inline, and whether the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Secret,
    Config,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Secret => "secret",
            FileKind::Config => "config",
        }
    }

    /// The top-level key that declares them.
    pub fn top_key(self) -> &'static str {
        match self {
            FileKind::Secret => "secrets",
            FileKind::Config => "configs",
        }
    }

    /// Where a relative target (or the source's name) goes in the container.
    pub fn base_dir(self) -> &'static str {
        match self {
            FileKind::Secret => "/run/secrets/",
            FileKind::Config => "/",
        }
    }
}

impl FileUse {
    /// The absolute path of the file in the container.
    pub fn path(&self, kind: FileKind) -> String {
        let target = self.target.as_deref().unwrap_or(&self.source);
        if target.starts_with('/') {
            target.to_owned()
        } else {
            format!("{}{target}", kind.base_dir())
        }
    }

    /// The file's mode [default: 0o444].
    pub fn file_mode(&self) -> u32 {
        self.mode.unwrap_or(0o444)
    }
}

impl Project {
    /// The top-level secrets or configs.
    pub fn files(&self, kind: FileKind) -> &BTreeMap<String, FileSource> {
        match kind {
            FileKind::Secret => &self.secrets,
            FileKind::Config => &self.configs,
        }
    }
}

impl Service {
    /// The service's uses of secrets or configs.
    pub fn file_uses(&self, kind: FileKind) -> &[FileUse] {
        match kind {
            FileKind::Secret => &self.secrets,
            FileKind::Config => &self.configs,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Volume {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Service {
    /// A stable digest of everything that defines this service's containers. Two services
    /// with the same hash need no container change on redeploy (whatever their replica count).
    pub fn spec_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        // Serialising our own types to JSON cannot fail (no non-string map keys, no NaN from
        // the parser: cpus is validated finite).
        // The replica count is not part of a container's spec: scaling touches no
        // existing container.
        // Nor is how it is rolled.
        let spec = Service {
            replicas: 1,
            update_config: None,
            rollback_config: None,
            ..self.clone()
        };
        let bytes = serde_json::to_vec(&spec).unwrap_or_default();
        hex::encode(&Sha256::digest(&bytes)[..12])
    }
}

/// Where in the source a problem is: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Location {
    pub line: usize,
    pub column: usize,
    /// Which of the files read it is in (0: the main one; `-f` overrides, `include`d and
    /// `extends` files follow). Errors and warnings name that file.
    #[serde(skip)]
    pub file: u16,
}

/// A non-fatal finding: an unsupported key, say. Never silently dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub file: String,
    pub location: Location,
    /// Dotted path of the key, e.g. `services.web.secrets`.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.location.line, self.location.column, self.path, self.message
        )
    }
}
