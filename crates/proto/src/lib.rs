//! The versioned protocol between `drover server` and `drover agent`.
//!
//! The agent connects OUT to the server over a WebSocket (`GET /v1/agent/connect`) and both
//! sides exchange JSON text frames holding one [`AgentMsg`] or [`ServerMsg`] each. The agent
//! speaks first with [`Hello`]; the server answers with [`ServerMsg::Welcome`] and then sends
//! the full desired state for that host whenever it changes ([`ServerMsg::Desired`]). The
//! agent reports what it observes ([`AgentMsg::Observed`]) on every change and at least every
//! heartbeat interval.
//!
//! Also here: the labels Drover puts on every engine object it owns, and the naming rules that
//! turn a stack's services into engine objects. Both sides must agree on these.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change of the messages below.
pub const PROTOCOL_VERSION: u32 = 7;
/// How often an agent sends at least a heartbeat.
pub const HEARTBEAT_SECS: u64 = 3;

/// Owner label: the id of the Drover cluster (server store) that owns the object. Drover never
/// touches an engine object without its own cluster id here.
pub const LABEL_CLUSTER: &str = "io.drover.cluster";
pub const LABEL_ENV: &str = "io.drover.env";
pub const LABEL_STACK: &str = "io.drover.stack";
pub const LABEL_SERVICE: &str = "io.drover.service";
pub const LABEL_SLOT: &str = "io.drover.slot";
pub const LABEL_HASH: &str = "io.drover.spec-hash";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    /// Stable id the agent keeps in its data directory.
    pub host_id: String,
    pub hostname: String,
    pub agent_version: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Registering with a token: hex SHA-256 of the credential the agent made for its host
    /// (kept in its data directory); from then on the agent authenticates with that
    /// credential. Offering the same hash again makes a retried registration harmless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_hash: Option<String>,
    /// The host's tunnel, when the agent runs the mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<MeshHello>,
}

/// What a host offers the mesh: its public key and where peers reach its tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshHello {
    pub public_key: String,
    pub endpoint: std::net::SocketAddr,
}

/// The mesh as one host needs it: its place, its peers, the subnets of the environment's
/// networks, and the directory names are answered from. Sent whole on every change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeshState {
    /// The host this state is for.
    pub host: String,
    pub place: mesh::Place,
    pub peers: Vec<mesh::Peer>,
    pub subnets: Vec<mesh::Subnet>,
    pub names: Vec<mesh::Entry>,
    /// Besides what `mesh::allows` decides: traffic from the tunnel this host forwards for
    /// the ingress (from an ingress host's mesh address to a backend here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<mesh::Allow>,
}

/// How one peer answers this host's probes through the tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerHealth {
    pub host: String,
    pub ok: bool,
    /// Round trip of the last answered probe.
    #[serde(default)]
    pub rtt_us: Option<u64>,
    /// How long ago the last probe was answered (none yet: never).
    #[serde(default)]
    pub last_ok_ms_ago: Option<u64>,
    /// How long the pair has been in its current state.
    pub for_ms: u64,
}

/// Adjacently tagged (`{"type": ..., "msg": ...}`, the tag first) so that big messages are
/// parsed in one pass rather than buffered to find their tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "msg", rename_all = "snake_case")]
pub enum AgentMsg {
    Hello(Hello),
    /// Everything the agent sees; the first report of a session.
    Observed(Observed),
    /// What changed since the previous report of the same session.
    ObservedChanges(ObservedPatch),
    Heartbeat,
    /// A chunk of a log stream the server asked for.
    LogData {
        req: u64,
        data: String,
    },
    /// End of a log stream (`error` set when it failed).
    LogEnd {
        req: u64,
        error: Option<String>,
    },
    /// Every peer's probe results, on every change of a pair's state and every few seconds.
    MeshHealth(Vec<PeerHealth>),
    /// Resource use of the host and its running containers, sampled every few seconds.
    Stats(Stats),
    /// The command of exec session `req` runs (sent before any of its output).
    ExecStarted {
        req: u64,
    },
    /// Output of exec session `req`.
    ExecOutput {
        req: u64,
        stream: ExecStream,
        #[serde(with = "bytes_b64")]
        data: Vec<u8>,
    },
    /// `bytes` of the session's input were written to the command: the server may send
    /// that much more.
    ExecAck {
        req: u64,
        bytes: u64,
    },
    /// Exec session `req` ended: the command exited with `exit_code`, or `error` says why it
    /// could not run (or could not be followed to its end).
    ExecEnd {
        req: u64,
        exit_code: Option<i64>,
        error: Option<String>,
    },
}

/// Which output of a command a chunk is (with a TTY everything is `Stdout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecStream {
    Stdout,
    Stderr,
}

/// A command to run in one of the host's containers (`drover exec`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecStart {
    pub req: u64,
    /// Engine container name; the agent runs commands only in its cluster's containers.
    pub container: String,
    pub cmd: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub env: Vec<String>,
    pub cols: Option<u16>,
    pub rows: Option<u16>,
}

/// Unacknowledged input bytes the server may have in flight to one exec session; an agent
/// ends a session that is sent more.
pub const EXEC_WINDOW: usize = 1024 * 1024;

/// Bytes as base64 text: binary-safe inside JSON frames.
mod bytes_b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(data))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// Tagged like [`AgentMsg`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "msg", rename_all = "snake_case")]
pub enum ServerMsg {
    Welcome {
        cluster_id: String,
        env: String,
        /// How long the agent may keep singleton containers running without hearing from the
        /// server; after that it removes them (fencing), because the server may be starting
        /// them elsewhere.
        #[serde(default = "default_lease_ms")]
        lease_ms: u64,
    },
    /// Answer to every heartbeat: proof of contact for the agent's lease.
    HeartbeatAck,
    /// Refused for now (wrong protocol, a store error): the agent logs it and retries
    /// with backoff.
    Refused {
        reason: String,
    },
    /// Refused for good: the host was removed (its credential revoked), or the hello names
    /// a host this connection may not speak for. The agent fences its singletons and exits.
    Revoked {
        reason: String,
    },
    Desired(Desired),
    /// The mesh for this host (only to agents that offered one in their hello).
    Mesh(MeshState),
    /// The host offered a mesh but gets no place on it (its environment is full, say): its
    /// networks stay local until a later session gives it one.
    NoMesh {
        reason: String,
    },
    /// Replaces the part of the last `Desired` that belongs to the listed stacks (sent after
    /// a full `Desired` in the same session, when only some stacks changed on this host).
    DesiredStacks(DesiredPatch),
    Logs {
        req: u64,
        container: String,
        follow: bool,
        tail: Option<u64>,
    },
    CancelLogs {
        req: u64,
    },
    /// Run a command in a container: an exec session, answered with `ExecStarted`, then
    /// `ExecOutput`s and one `ExecEnd`. (An agent older than this message ignores it; the
    /// server gives up when `ExecStarted` does not come.)
    Exec(ExecStart),
    /// Input for exec session `req`; `eof`: then close the command's standard input (not
    /// with a TTY: the engine would end the output with it; a TTY ends with its command).
    ExecInput {
        req: u64,
        #[serde(with = "bytes_b64")]
        data: Vec<u8>,
        #[serde(default)]
        eof: bool,
    },
    /// The client's terminal changed size.
    ExecResize {
        req: u64,
        cols: u16,
        rows: u16,
    },
    /// The client went away: stop following the session (with a TTY the command gets a
    /// hangup).
    ExecClose {
        req: u64,
    },
    /// The routes this host's ingress serves (it is labelled `drover.ingress=true`); `None`:
    /// it runs no ingress (any running one stops). Sent whole on every change.
    Ingress(Option<ingress::Table>),
}

/// Everything that should exist on one host. Level-triggered: each message replaces the
/// previous one entirely (a `DesiredStacks` patch replaces some stacks' share of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Desired {
    /// Increases with every change; echoed in [`Observed::generation`].
    pub generation: u64,
    pub containers: Vec<DesiredContainer>,
    pub networks: Vec<DesiredNetwork>,
    pub volumes: Vec<DesiredVolume>,
}

/// Everything of some stacks that should exist on one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DesiredPatch {
    pub generation: u64,
    pub stacks: Vec<StackPart>,
}

/// One stack's share of a host's desired state; empty when the stack has nothing there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StackPart {
    pub env: String,
    pub stack: String,
    pub containers: Vec<DesiredContainer>,
    pub networks: Vec<DesiredNetwork>,
    pub volumes: Vec<DesiredVolume>,
}

impl StackPart {
    /// Adds `other`'s containers, and its networks and volumes this part lacks (both of one
    /// stack: slots of two revisions during a roll).
    pub fn merge(&mut self, other: StackPart) {
        if self.stack.is_empty() {
            self.env = other.env;
            self.stack = other.stack;
        }
        self.containers.extend(other.containers);
        for n in other.networks {
            if !self.networks.iter().any(|m| m.name == n.name) {
                self.networks.push(n);
            }
        }
        for v in other.volumes {
            if !self.volumes.iter().any(|w| w.name == v.name) {
                self.volumes.push(v);
            }
        }
    }
}

impl Desired {
    /// The desired state made of these parts.
    pub fn from_parts(generation: u64, parts: Vec<StackPart>) -> Desired {
        let mut d = Desired {
            generation,
            ..Default::default()
        };
        for p in parts {
            d.containers.extend(p.containers);
            d.networks.extend(p.networks);
            d.volumes.extend(p.volumes);
        }
        d
    }

    /// Replaces everything of the patch's stacks by what the patch gives.
    pub fn apply(&mut self, patch: DesiredPatch) {
        let replaced: std::collections::BTreeSet<(String, String)> = patch
            .stacks
            .iter()
            .map(|p| (p.env.clone(), p.stack.clone()))
            .collect();
        let kept = |env: &String, stack: &String| !replaced.contains(&(env.clone(), stack.clone()));
        self.containers.retain(|c| kept(&c.env, &c.stack));
        self.networks.retain(|n| kept(&n.env, &n.stack));
        self.volumes.retain(|v| kept(&v.env, &v.stack));
        let rest = Desired::from_parts(patch.generation, patch.stacks);
        self.generation = patch.generation;
        self.containers.extend(rest.containers);
        self.networks.extend(rest.networks);
        self.volumes.extend(rest.volumes);
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredContainer {
    /// Engine container name, unique per host: `<stack>-<service>-<slot>`.
    pub name: String,
    pub env: String,
    pub stack: String,
    pub service: String,
    pub slot: u32,
    pub spec_hash: String,
    pub spec: compose::Service,
    /// Engine network names to join, with aliases (service name always among them).
    pub networks: Vec<NetworkAttachment>,
    /// Engine volume name for each named volume source used by `spec.volumes`.
    pub volume_names: BTreeMap<String, String>,
    /// Name servers the container asks (set by the agent: its mesh DNS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// Replace the container when its health check says unhealthy (its service's
    /// `on_unhealthy` policy, as the server judges it now).
    #[serde(default)]
    pub replace_unhealthy: bool,
    /// Credentials for the registry of its image (`drover registry add`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_auth: Option<RegistryAuth>,
    /// Its secrets and configs, with their values (sent only to the host that runs it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileMount>,
    /// Where the agent keeps those files (`HOST_PATH:CONTAINER_PATH:ro` binds), set by the
    /// agent: never sent.
    #[serde(skip)]
    pub file_binds: Vec<String>,
}

/// A secret or config file of a container, with its value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMount {
    /// Absolute path in the container.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    pub mode: u32,
    #[serde(with = "bytes_b64")]
    pub data: Vec<u8>,
}

impl std::fmt::Debug for FileMount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileMount")
            .field("path", &self.path)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("data", &"<redacted>")
            .finish()
    }
}

/// A registry login, sent only to the hosts that pull from that registry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryAuth {
    pub server: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The registry an image reference names, as the engine reads it: the first path part when
/// it has a dot or a port or is `localhost`, else Docker Hub (`docker.io`).
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    pub network: String,
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredNetwork {
    /// Engine name.
    pub name: String,
    pub env: String,
    pub stack: String,
    pub driver: Option<String>,
    pub internal: bool,
    pub external: bool,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredVolume {
    pub name: String,
    pub env: String,
    pub stack: String,
    pub driver: Option<String>,
    pub external: bool,
    pub labels: BTreeMap<String, String>,
}

/// What an agent sees on its engine (only objects carrying its cluster label).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Observed {
    /// The [`Desired::generation`] the agent has applied last.
    pub generation: u64,
    pub engine: EngineStatus,
    pub containers: Vec<ObservedContainer>,
    /// Containers the agent failed to create or start, with why (image not found...).
    #[serde(default)]
    pub errors: Vec<ContainerError>,
    /// Containers waiting before start, with why (dependency not healthy yet...).
    #[serde(default)]
    pub waiting: Vec<ContainerError>,
    /// This cluster's networks on the engine, with their subnets.
    #[serde(default)]
    pub networks: Vec<ObservedNetwork>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedNetwork {
    pub name: String,
    #[serde(default)]
    pub subnet: Option<mesh::Ipv4Net>,
}

/// The difference between two `Observed` reports: containers new or changed, containers
/// gone; engine status, errors and waits (short lists) in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ObservedPatch {
    pub generation: u64,
    pub engine: EngineStatus,
    pub containers: Vec<ObservedContainer>,
    /// Names of containers no longer there.
    pub gone: Vec<String>,
    pub errors: Vec<ContainerError>,
    pub waiting: Vec<ContainerError>,
    /// All networks (a short list), when they changed.
    #[serde(default)]
    pub networks: Option<Vec<ObservedNetwork>>,
}

impl Observed {
    /// What changed from `prev` to `self`.
    pub fn changes_since(&self, prev: &Observed) -> ObservedPatch {
        let before: std::collections::HashMap<&str, &ObservedContainer> = prev
            .containers
            .iter()
            .map(|c| (c.name.as_str(), c))
            .collect();
        let now: std::collections::HashSet<&str> =
            self.containers.iter().map(|c| c.name.as_str()).collect();
        ObservedPatch {
            generation: self.generation,
            engine: self.engine.clone(),
            containers: self
                .containers
                .iter()
                .filter(|c| before.get(c.name.as_str()) != Some(c))
                .cloned()
                .collect(),
            gone: prev
                .containers
                .iter()
                .filter(|c| !now.contains(c.name.as_str()))
                .map(|c| c.name.clone())
                .collect(),
            errors: self.errors.clone(),
            waiting: self.waiting.clone(),
            networks: (self.networks != prev.networks).then(|| self.networks.clone()),
        }
    }

    /// `self` brought up to date by `patch` (container order aside).
    pub fn apply(&mut self, patch: ObservedPatch) {
        let replaced: std::collections::HashSet<&str> = patch
            .containers
            .iter()
            .map(|c| c.name.as_str())
            .chain(patch.gone.iter().map(String::as_str))
            .collect();
        self.containers
            .retain(|c| !replaced.contains(c.name.as_str()));
        self.containers.extend(patch.containers);
        self.generation = patch.generation;
        self.engine = patch.engine;
        self.errors = patch.errors;
        self.waiting = patch.waiting;
        if let Some(n) = patch.networks {
            self.networks = n;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EngineStatus {
    pub up: bool,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub cpus: Option<u64>,
    #[serde(default)]
    pub memory: Option<u64>,
    /// `linux`, `windows`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// As images name it: `amd64`, `arm64`, `arm`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Why the engine is unreachable, when `up` is false.
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    Created,
    Running,
    Restarting,
    Paused,
    Exited,
    Removing,
    Dead,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl ContainerState {
    /// The name as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Restarting => "restarting",
            ContainerState::Paused => "paused",
            ContainerState::Exited => "exited",
            ContainerState::Removing => "removing",
            ContainerState::Dead => "dead",
        }
    }
}

impl Health {
    /// The name as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub env: String,
    pub stack: String,
    pub service: String,
    pub slot: u32,
    pub spec_hash: String,
    pub state: ContainerState,
    #[serde(default)]
    pub health: Option<Health>,
    #[serde(default)]
    pub exit_code: Option<i64>,
    pub image: String,
    /// Human status from the engine, e.g. "Up 3 minutes (healthy)".
    #[serde(default)]
    pub status: String,
    /// Engine networks the container is joined to → its IPv4 address there (0.0.0.0 while it
    /// has none: not running).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub addrs: BTreeMap<String, std::net::Ipv4Addr>,
    /// The id of the container whose network this one shares (`network_mode: service:X`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_of: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerError {
    pub name: String,
    pub message: String,
    /// Consecutive failures so far (for errors); 0 for waits.
    #[serde(default)]
    pub count: u32,
}

/// The default singleton lease.
pub const LEASE_MS: u64 = 10_000;

fn default_lease_ms() -> u64 {
    LEASE_MS
}

/// Drover's own settings for a service, from its `x-drover` extension key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XDrover {
    /// Never run two of this service's containers at once, even across a partition.
    /// Default: true for services with a bind mount or a named local volume.
    #[serde(default)]
    pub singleton: Option<bool>,
    /// Affinity to other services of the stack.
    #[serde(default)]
    pub affinity: Vec<AffinityRule>,
    /// `spread` (default) or `binpack`.
    #[serde(default)]
    pub strategy: Option<String>,
    #[serde(default)]
    pub health: Option<HealthPolicy>,
    /// How long a container leaving its service in a roll stays out of the names before it
    /// stops, like `5s` [default: 2s].
    #[serde(default)]
    pub drain: Option<String>,
    /// Run beside this service's containers, replica by replica (see `compose::sidekick`).
    #[serde(default)]
    pub sidekick_of: Option<String>,
    /// Reachable through the ingress hosts: HTTP routes by host and path, and TCP ports.
    #[serde(default)]
    pub expose: Vec<ingress::Expose>,
}

/// The drain time when `x-drover.drain` is not given: two DNS answer lifetimes.
pub const DEFAULT_DRAIN_MS: u64 = 2_000;

/// `x-drover: {health: {...}}`: a check the agent runs from outside the container (`http`
/// path or `tcp` port; for containers without a compose `healthcheck`), and what happens to
/// a container that turns unhealthy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthPolicy {
    /// `GET` this path on `port`; healthy when the status is in `expect`.
    #[serde(default)]
    pub http: Option<String>,
    /// Healthy when this port accepts a connection.
    #[serde(default)]
    pub tcp: Option<u16>,
    #[serde(default)]
    pub port: Option<u16>,
    /// Status codes that mean healthy, `LOW-HIGH` or one code [default: 200-399].
    #[serde(default)]
    pub expect: Option<String>,
    /// Durations like `5s` [defaults: interval 5s, timeout 2s, start_period 0s].
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub start_period: Option<String>,
    /// Failures in a row that make it unhealthy [default: 3].
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub on_unhealthy: Option<OnUnhealthy>,
}

/// An agent-run check, checked and with its defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub kind: ProbeKind,
    pub port: u16,
    pub expect: (u16, u16),
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub start_period_ms: u64,
    pub retries: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeKind {
    Http { path: String },
    Tcp,
}

impl HealthPolicy {
    /// The check this policy asks the agent to run, if any; an error names the field.
    pub fn probe(&self) -> Result<Option<Probe>, String> {
        let ms = |field: &str, v: &Option<String>, default: u64| -> Result<u64, String> {
            match v {
                None => Ok(default),
                Some(text) => compose::parse_duration(text)
                    .map(|ns| ns / 1_000_000)
                    .map_err(|e| format!("health.{field}: {e}")),
            }
        };
        let kind = match (&self.http, self.tcp) {
            (Some(_), Some(_)) => return Err("health: give http or tcp, not both".into()),
            (None, None) => return Ok(None),
            (Some(path), None) => {
                if !path.starts_with('/') || path.len() > 1024 || path.contains(char::is_whitespace)
                {
                    return Err(format!("health.http: {path:?} is not a path like /healthz"));
                }
                ProbeKind::Http { path: path.clone() }
            }
            (None, Some(_)) => ProbeKind::Tcp,
        };
        let port = match (&kind, self.port, self.tcp) {
            (ProbeKind::Tcp, _, Some(p)) => p,
            (ProbeKind::Http { .. }, Some(p), _) => p,
            (ProbeKind::Http { .. }, None, _) => {
                return Err("health.port: an http check needs the container's port".into());
            }
            (ProbeKind::Tcp, _, None) => return Err("health.tcp: a port".into()),
        };
        let expect = match self.expect.as_deref() {
            None => (200, 399),
            Some(e) => {
                let (lo, hi) = e.split_once('-').unwrap_or((e, e));
                match (lo.trim().parse::<u16>(), hi.trim().parse::<u16>()) {
                    (Ok(lo), Ok(hi)) if (100..=599).contains(&lo) && lo <= hi && hi <= 599 => {
                        (lo, hi)
                    }
                    _ => {
                        return Err(format!(
                            "health.expect: {e:?} is not a status or LOW-HIGH, like 200-399"
                        ));
                    }
                }
            }
        };
        let interval_ms = ms("interval", &self.interval, 5_000)?;
        let timeout_ms = ms("timeout", &self.timeout, 2_000)?;
        if interval_ms < 100 || timeout_ms < 10 {
            return Err("health: interval at least 100ms, timeout at least 10ms".into());
        }
        Ok(Some(Probe {
            kind,
            port,
            expect,
            interval_ms,
            // A check never outlasts its interval.
            timeout_ms: timeout_ms.min(interval_ms),
            start_period_ms: ms("start_period", &self.start_period, 0)?,
            retries: self.retries.unwrap_or(3).max(1),
        }))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnhealthy {
    /// Replace it (the default).
    Recreate,
    /// Leave it: it only leaves the names.
    None,
    /// Replace it only while more than half of its service is healthy, so that an outage
    /// of something they all depend on does not restart them all, over and over.
    RecreateOnQuorum,
}

impl XDrover {
    /// The agent-run check of the service, if it has one.
    pub fn probe(&self) -> Result<Option<Probe>, String> {
        match &self.health {
            Some(h) => h.probe(),
            None => Ok(None),
        }
    }

    /// `drain` in milliseconds; `Err` names what is wrong.
    pub fn drain_ms(&self) -> Result<u64, String> {
        match &self.drain {
            None => Ok(DEFAULT_DRAIN_MS),
            Some(d) => compose::parse_duration(d)
                .map(|ns| ns / 1_000_000)
                .map_err(|e| format!("drain: {e}")),
        }
    }

    pub fn on_unhealthy(&self) -> OnUnhealthy {
        self.health
            .as_ref()
            .and_then(|h| h.on_unhealthy)
            .unwrap_or(OnUnhealthy::Recreate)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AffinityRule {
    /// A service of the same stack.
    pub service: String,
    /// Keep away from it rather than near it.
    #[serde(default)]
    pub anti: bool,
    /// A hard rule filters hosts; a soft one (default) only prefers.
    #[serde(default)]
    pub hard: bool,
}

/// Reads `x-drover`; `Err` names what is wrong.
pub fn x_drover(service: &compose::Service) -> Result<XDrover, String> {
    match service.extensions.get("x-drover") {
        None => Ok(XDrover::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("x-drover: {e}")),
    }
}

/// Whether a service is a singleton: `x-drover.singleton`, else true when it mounts a bind
/// or a named volume (its data lives on one host).
pub fn is_singleton(service: &compose::Service) -> bool {
    let explicit = x_drover(service).ok().and_then(|x| x.singleton);
    explicit.unwrap_or_else(|| {
        service.volumes.iter().any(|m| {
            m.kind == compose::MountKind::Bind
                || (m.kind == compose::MountKind::Volume && m.source.is_some())
        })
    })
}

/// Engine name of a stack's network or volume: the explicit `name:` if given, else
/// `<stack>_<key>` (the compose convention).
pub fn scoped_name(stack: &str, key: &str, explicit: Option<&str>) -> String {
    match explicit {
        Some(n) => n.to_string(),
        None => format!("{stack}_{key}"),
    }
}

/// Engine name of a stack's network `key`: the explicit `name:` if given; else the key itself
/// for an `external` one (a network made with `drover network create`, as compose names
/// external networks); else `<stack>_<key>`.
pub fn network_name(stack: &str, key: &str, net: Option<&compose::Network>) -> String {
    match net {
        Some(n) if n.external && n.name.is_none() => key.to_string(),
        _ => scoped_name(stack, key, net.and_then(|n| n.name.as_deref())),
    }
}

/// Engine name of a container: `<stack>-<service>-<slot>` (the compose v2 convention).
pub fn container_name(stack: &str, service: &str, slot: u32) -> String {
    format!("{stack}-{service}-{slot}")
}

/// Build the desired state of one stack's containers placed on a host, ready to ship.
/// `slots` lists the (service, slot) pairs placed on this host.
pub fn desired_for_stack(
    env: &str,
    project: &compose::Project,
    slots: &[(String, u32)],
) -> StackPart {
    let stack = project.name.as_str();
    let mut containers = Vec::new();
    let mut used_networks = std::collections::BTreeSet::new();
    let mut used_volumes = std::collections::BTreeSet::new();
    // Each slot of a primary runs its sidekicks too; a slot of a sidekick (left from
    // before it became one) runs nothing.
    let sidekicks = project.units();
    let units = slots.iter().flat_map(|(service, slot)| {
        let own = !sidekicks.is_sidekick(service);
        let with = if own {
            sidekicks.sidekicks_of(service)
        } else {
            &[]
        };
        own.then_some((service.as_str(), *slot))
            .into_iter()
            .chain(with.iter().map(move |s| (*s, *slot)))
    });
    for (service_name, slot) in units {
        let Some(spec) = project.services.get(service_name) else {
            continue;
        };
        let networks = spec
            .networks
            .iter()
            .map(|(key, att)| {
                used_networks.insert(key.clone());
                let mut aliases = vec![service_name.to_string()];
                aliases.extend(att.aliases.iter().cloned());
                NetworkAttachment {
                    network: network_name(stack, key, project.networks.get(key)),
                    aliases,
                }
            })
            .collect();
        let mut volume_names = BTreeMap::new();
        for m in &spec.volumes {
            if m.kind == compose::MountKind::Volume
                && let Some(src) = &m.source
            {
                let explicit = project.volumes.get(src).and_then(|v| v.name.as_deref());
                volume_names.insert(src.clone(), scoped_name(stack, src, explicit));
                used_volumes.insert(src.clone());
            }
        }
        containers.push(DesiredContainer {
            name: container_name(stack, service_name, slot),
            env: env.to_string(),
            stack: stack.to_string(),
            service: service_name.to_string(),
            slot,
            spec_hash: spec.spec_hash(),
            spec: spec.clone(),
            networks,
            volume_names,
            dns: Vec::new(),
            replace_unhealthy: x_drover(spec)
                .map(|x| x.on_unhealthy() != OnUnhealthy::None)
                .unwrap_or(true),
            registry_auth: None,
            files: Vec::new(),
            file_binds: Vec::new(),
        });
    }
    let networks = used_networks
        .iter()
        .map(|key| {
            let n = project.networks.get(key).cloned().unwrap_or_default();
            DesiredNetwork {
                name: network_name(stack, key, Some(&n)),
                env: env.to_string(),
                stack: stack.to_string(),
                driver: n.driver,
                internal: n.internal,
                external: n.external,
                labels: n.labels,
            }
        })
        .collect();
    let volumes = used_volumes
        .iter()
        .map(|key| {
            let v = project.volumes.get(key).cloned().unwrap_or_default();
            DesiredVolume {
                name: scoped_name(stack, key, v.name.as_deref()),
                env: env.to_string(),
                stack: stack.to_string(),
                driver: v.driver,
                external: v.external,
                labels: v.labels,
            }
        })
        .collect();
    StackPart {
        env: env.to_string(),
        stack: stack.to_string(),
        containers,
        networks,
        volumes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_bytes_survive_the_json_frames() {
        let all: Vec<u8> = (0..=255).collect();
        let msg = AgentMsg::ExecOutput {
            req: 7,
            stream: ExecStream::Stderr,
            data: all.clone(),
        };
        let text = serde_json::to_string(&msg).expect("json");
        assert!(text.contains(r#""stream":"stderr""#), "{text}");
        assert_eq!(serde_json::from_str::<AgentMsg>(&text).ok(), Some(msg));
        let input = ServerMsg::ExecInput {
            req: 7,
            data: vec![0, 0xff, b'\n'],
            eof: true,
        };
        let text = serde_json::to_string(&input).expect("json");
        assert_eq!(serde_json::from_str::<ServerMsg>(&text).ok(), Some(input));
        let bad = r#"{"type":"exec_input","msg":{"req":1,"data":"!!"}}"#;
        assert!(serde_json::from_str::<ServerMsg>(bad).is_err());
    }

    #[test]
    fn agent_checks_are_read_with_defaults_and_clear_errors() {
        let policy = |json: &str| -> Result<Option<Probe>, String> {
            let h: HealthPolicy = serde_json::from_str(json).map_err(|e| e.to_string())?;
            h.probe()
        };
        assert_eq!(policy(r#"{"on_unhealthy":"none"}"#), Ok(None));
        assert_eq!(
            policy(r#"{"http":"/healthz","port":8080}"#),
            Ok(Some(Probe {
                kind: ProbeKind::Http {
                    path: "/healthz".into()
                },
                port: 8080,
                expect: (200, 399),
                interval_ms: 5_000,
                timeout_ms: 2_000,
                start_period_ms: 0,
                retries: 3,
            }))
        );
        let tcp = policy(r#"{"tcp":5432,"interval":"1s","retries":1,"expect":"200"}"#);
        assert!(
            matches!(&tcp, Ok(Some(p)) if p.kind == ProbeKind::Tcp && p.port == 5432 && p.interval_ms == 1000)
        );
        for (bad, says) in [
            (r#"{"http":"/h"}"#, "health.port"),
            (r#"{"http":"h","port":1}"#, "health.http"),
            (r#"{"http":"/h","tcp":1,"port":1}"#, "not both"),
            (r#"{"tcp":1,"interval":"soon"}"#, "health.interval"),
            (
                r#"{"http":"/h","port":1,"expect":"300-200"}"#,
                "health.expect",
            ),
            (r#"{"tcp":1,"interval":"1ms"}"#, "at least 100ms"),
        ] {
            let e = policy(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn images_name_their_registry() {
        for (image, registry) in [
            ("nginx", "docker.io"),
            ("nginx:1.25", "docker.io"),
            ("library/nginx", "docker.io"),
            ("acme/api:2", "docker.io"),
            ("ghcr.io/acme/api:2", "ghcr.io"),
            ("127.0.0.1:5000/app:1", "127.0.0.1:5000"),
            ("localhost/app", "localhost"),
            (
                "registry.example.com:8443/team/app@sha256:ab",
                "registry.example.com:8443",
            ),
        ] {
            assert_eq!(registry_of(image), registry, "{image}");
        }
        let auth = RegistryAuth {
            server: "r".into(),
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }

    fn part(stack: &str, containers: &[&str]) -> StackPart {
        let mut project = compose::Project {
            name: stack.into(),
            ..Default::default()
        };
        for c in containers {
            project.services.insert(
                (*c).to_string(),
                compose::Service {
                    image: Some("img".into()),
                    ..Default::default()
                },
            );
        }
        let slots: Vec<(String, u32)> = containers.iter().map(|c| (c.to_string(), 1)).collect();
        desired_for_stack("default", &project, &slots)
    }

    fn names(d: &Desired) -> Vec<String> {
        let mut v: Vec<String> = d.containers.iter().map(|c| c.name.clone()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_patch_replaces_only_its_stacks() {
        let mut d = Desired::from_parts(1, vec![part("a", &["web", "db"]), part("b", &["x"])]);
        assert_eq!(names(&d), ["a-db-1", "a-web-1", "b-x-1"]);
        d.apply(DesiredPatch {
            generation: 2,
            stacks: vec![
                part("a", &["web"]),
                part("c", &["y"]),
                StackPart {
                    env: "default".into(),
                    stack: "b".into(),
                    ..Default::default()
                },
            ],
        });
        assert_eq!(d.generation, 2);
        assert_eq!(names(&d), ["a-web-1", "c-y-1"]);
    }

    fn seen(name: &str, state: ContainerState) -> ObservedContainer {
        ObservedContainer {
            id: format!("id-{name}"),
            name: name.into(),
            env: "default".into(),
            stack: "s".into(),
            service: "web".into(),
            slot: 1,
            spec_hash: "h".into(),
            state,
            health: None,
            exit_code: None,
            image: "img".into(),
            status: String::new(),
            addrs: BTreeMap::new(),
            network_of: None,
        }
    }

    #[test]
    fn a_report_patch_carries_only_changes_and_rebuilds_the_report() {
        use ContainerState::*;
        let prev = Observed {
            generation: 1,
            containers: vec![seen("a", Running), seen("b", Running), seen("c", Running)],
            ..Default::default()
        };
        let next = Observed {
            generation: 2,
            containers: vec![seen("a", Running), seen("b", Exited), seen("d", Created)],
            errors: vec![ContainerError {
                name: "b".into(),
                message: "boom".into(),
                count: 1,
            }],
            ..Default::default()
        };
        let patch = next.changes_since(&prev);
        let names: Vec<&str> = patch.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["b", "d"]);
        assert_eq!(patch.gone, ["c"]);
        let mut rebuilt = prev.clone();
        rebuilt.apply(patch);
        rebuilt.containers.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(rebuilt, next);
    }

    #[test]
    fn external_networks_keep_their_key_as_engine_name() {
        let mut project = compose::Project {
            name: "shop".into(),
            ..Default::default()
        };
        let net = |external: bool, name: Option<&str>| compose::Network {
            external,
            name: name.map(str::to_string),
            ..Default::default()
        };
        project.networks.insert("back".into(), net(false, None));
        project.networks.insert("shared".into(), net(true, None));
        project
            .networks
            .insert("other".into(), net(true, Some("common")));
        project
            .networks
            .insert("fixed".into(), net(false, Some("fixed-net")));
        let mut svc = compose::Service {
            image: Some("img".into()),
            ..Default::default()
        };
        for key in project.networks.keys() {
            svc.networks.insert(key.clone(), Default::default());
        }
        project.services.insert("web".into(), svc);
        let part = desired_for_stack("default", &project, &[("web".into(), 1)]);
        let mut made: Vec<&str> = part.networks.iter().map(|n| n.name.as_str()).collect();
        made.sort_unstable();
        assert_eq!(made, ["common", "fixed-net", "shared", "shop_back"]);
        let mut joined: Vec<&str> = part.containers[0]
            .networks
            .iter()
            .map(|a| a.network.as_str())
            .collect();
        joined.sort_unstable();
        assert_eq!(joined, made);
        assert_eq!(network_name("shop", "x", None), "shop_x");
    }

    #[test]
    fn host_network_services_join_no_network_and_carry_their_privileges() {
        let mut project = compose::Project {
            name: "mon".into(),
            ..Default::default()
        };
        project
            .networks
            .insert("default".into(), Default::default());
        let svc = compose::Service {
            image: Some("img".into()),
            network_mode: Some(compose::NETWORK_HOST.into()),
            privileged: true,
            pid: Some("host".into()),
            devices: vec![compose::Device {
                host: "/dev/null".into(),
                container: "/dev/xnull".into(),
                permissions: "rwm".into(),
            }],
            ..Default::default()
        };
        project.services.insert("agent".into(), svc.clone());
        let part = desired_for_stack("default", &project, &[("agent".into(), 1)]);
        assert!(part.networks.is_empty());
        assert!(part.containers[0].networks.is_empty());
        // The agent gets the service as it is, through the wire format.
        let wire = serde_json::to_string(&part.containers[0]).expect("json");
        let back: DesiredContainer = serde_json::from_str(&wire).expect("json");
        assert_eq!(back.spec, svc);
        assert_eq!(back.spec_hash, svc.spec_hash());
    }

    #[test]
    fn state_names_are_the_serialised_names() {
        use ContainerState::*;
        for s in [Created, Running, Restarting, Paused, Exited, Removing, Dead] {
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::Value::from(s.as_str()))
            );
        }
        for h in [Health::Starting, Health::Healthy, Health::Unhealthy] {
            assert_eq!(
                serde_json::to_value(h).ok(),
                Some(serde_json::Value::from(h.as_str()))
            );
        }
    }
}

/// Resource use of a host and of its running containers at one moment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Stats {
    pub at_ms: u64,
    pub host: HostStats,
    pub containers: Vec<ContainerStats>,
}

/// The whole host: CPU busy (percent of all its CPUs) and memory.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HostStats {
    pub cpu_percent: f64,
    pub mem_used: u64,
    pub mem_total: u64,
}

/// One container (by engine name): CPU (percent of one CPU, like `docker stats`), memory,
/// and its network and block I/O counters since it started.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ContainerStats {
    pub name: String,
    #[serde(default)]
    pub env: String,
    #[serde(default)]
    pub stack: String,
    #[serde(default)]
    pub service: String,
    pub cpu_percent: f64,
    pub mem_bytes: u64,
    pub mem_limit: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub blk_read: u64,
    pub blk_write: u64,
}
