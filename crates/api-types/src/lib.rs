//! REST DTOs under `/v1`: the one wire contract shared by the server, the CLI and the web UI.
//! Every resource lives in an environment: `/v1/environments/{env}/...`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// JSON Schema's `integer` takes `42.0` as well as `42` (a number with no fraction): the
/// request fields documented as integers read both, as the document promises.
mod integer {
    use serde::{Deserialize, Deserializer, de::Error};

    fn whole<'de, D: Deserializer<'de>>(n: serde_json::Number) -> Result<u64, D::Error> {
        if let Some(u) = n.as_u64() {
            return Ok(u);
        }
        match n.as_f64() {
            Some(f) if f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&f) => Ok(f as u64),
            _ => Err(D::Error::custom(format!(
                "invalid value: {n}, expected a non-negative integer"
            ))),
        }
    }

    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        whole::<D>(serde_json::Number::deserialize(d)?)
    }

    pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Option::<serde_json::Number>::deserialize(d)? {
            Some(n) => whole::<D>(n).map(Some),
            None => Ok(None),
        }
    }

    pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let n = u64(d)?;
        u32::try_from(n).map_err(|_| D::Error::custom(format!("{n} is out of range")))
    }
}

/// Every error response: `{"error": {"code": "...", "message": "...", "field": "..."}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: `unauthorized`, `not_found`, `invalid_compose`, `invalid_request`...
    pub code: String,
    /// One readable line: what is wrong and where.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `POST /v1/environments/{env}/stacks`: give either `compose` (file text, parsed and
/// interpolated on the server with `environment`) or `project` (already normalised, as
/// `drover stack deploy` sends it after parsing locally).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Default)]
pub struct DeployRequest {
    /// Stack name; defaults to the project's `name:`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub compose: Option<String>,
    /// Variables for interpolating `compose`.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub profiles: Vec<String>,
    /// The normalised project (as `drover stack config --json` prints it): `name` and
    /// `services` are required, the rest is compose's model.
    #[serde(default)]
    #[schema(schema_with = project_schema)]
    pub project: Option<compose::Project>,
    /// Values of the project's own secrets and configs (`file:` and `environment:`
    /// entries), which the client reads; never stored in the project.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileValue>,
}

/// The schema of a normalised `compose::Project` (or null): what its deserialiser requires,
/// with every other key of compose's model left open.
fn project_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::SchemaType;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let object = || ObjectBuilder::new().schema_type(Type::Object);
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .description(Some(
            "the normalised project; `name` (the stack's name unless the request gives one) and \
             `services` (each a service of compose's model) are required",
        ))
        .property(
            "name",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[a-z0-9][a-z0-9_-]*$")),
        )
        .required("name")
        .property("services", object().additional_properties(Some(object())))
        .required("services")
        .property("networks", object())
        .property("volumes", object())
        .property("secrets", object())
        .property("configs", object())
        .property("extensions", object())
        .build()
}

/// The value of a stack's secret or config, sent with its deploy.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileValue {
    /// `secret` or `config`.
    #[schema(pattern = "^(secret|config)$")]
    pub kind: String,
    /// The top-level key in the compose file.
    pub name: String,
    /// The value, base64 (at most 500 KiB decoded).
    #[schema(
        pattern = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$",
        max_length = 682672
    )]
    pub data: String,
}

impl std::fmt::Debug for FileValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileValue")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("data", &"<redacted>")
            .finish()
    }
}

/// `POST /v1/environments/{env}/secrets` (or `configs`): a new one; `PUT .../{name}`: a new
/// value for one (`name` then ignored).
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFile {
    /// 1 to 64 letters, digits, `_`, `-` and `.`, starting with a letter or digit (required to
    /// create one; ignored by `PUT`, whose body is [`NewFileValue`]).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", required = true)]
    pub name: String,
    /// The value, base64 (at most 500 KiB decoded).
    #[schema(
        pattern = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$",
        max_length = 682672
    )]
    pub data: String,
}

/// `PUT /v1/environments/{env}/secrets/{name}` (or `configs`): a new value. The same body as
/// [`NewFile`], read as one; the path names the secret or config, and a `name` sent is
/// ignored. (Only the API document uses this type.)
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFileValue {
    /// Ignored.
    #[serde(default)]
    pub name: String,
    /// The value, base64 (at most 500 KiB decoded).
    #[schema(
        pattern = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$",
        max_length = 682672
    )]
    pub data: String,
}

impl std::fmt::Debug for NewFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewFile")
            .field("name", &self.name)
            .field("data", &"<redacted>")
            .finish()
    }
}

/// A secret or config as listed: never a secret's value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FileInfo {
    pub name: String,
    /// The stack it belongs to (made by its deploy, removed with it); none when made with
    /// `drover secret create`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// Bumped by each new value.
    pub version: u64,
    pub size: usize,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// `stack/service` of every service that uses it.
    pub used_by: Vec<String>,
    /// A config's value, base64 (only when one config is asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeployResponse {
    pub stack: StackSummary,
    /// Services whose containers change with this revision.
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StackSummary {
    pub env: String,
    pub name: String,
    pub revision: u64,
    pub services: usize,
    /// Desired container count.
    pub containers: usize,
    pub running: usize,
    /// `converged`, `deploying`, `degraded` (some container failed).
    pub status: String,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// Where it was installed from, when from a catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<StackOrigin>,
}

/// The catalog template a stack was installed from.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct StackOrigin {
    pub catalog: String,
    pub template: String,
    pub version: String,
    /// The newest version the catalog has, when newer than `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer: Option<String>,
}

/// `GET /v1/environments/{env}/catalogs`: a catalog and how its last fetch went.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CatalogInfo {
    pub name: String,
    /// `built in`, a directory on the server, or a git URL.
    pub source: String,
    #[serde(default)]
    pub branch: Option<String>,
    pub templates: usize,
    /// Templates or versions that could not be read, each with its file and reason.
    pub problems: Vec<String>,
    /// Why the last fetch failed (the previous index is kept).
    #[serde(default)]
    pub error: Option<String>,
    pub refreshed_ms: u64,
}

/// `POST /v1/environments/{env}/catalogs`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCatalog {
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    pub name: String,
    /// A git URL, or (admins) a directory on the server.
    pub source: String,
    #[serde(default)]
    pub branch: Option<String>,
}

/// A template as search lists it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TemplateSummary {
    pub catalog: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub categories: Vec<String>,
    /// Oldest first.
    pub versions: Vec<String>,
}

/// A question of a template version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuestionInfo {
    pub variable: String,
    pub label: String,
    #[serde(default)]
    pub description: Option<String>,
    /// string, int, boolean, enum, password, multiline, hostname, service, certificate.
    #[serde(rename = "type")]
    pub kind: String,
    pub required: bool,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default)]
    pub min: Option<i64>,
    #[serde(default)]
    pub max: Option<i64>,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub show_if: Option<String>,
    pub generate: bool,
}

/// `GET /v1/environments/{env}/templates/{catalog}/{template}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TemplateDetail {
    pub template: TemplateSummary,
    #[serde(default)]
    pub maintainer: Option<String>,
    #[serde(default)]
    pub homepage: Option<String>,
    /// The version shown (`?version=`, else the latest).
    pub version: String,
    pub questions: Vec<QuestionInfo>,
    #[serde(default)]
    pub readme: Option<String>,
}

/// `POST .../templates/{catalog}/{template}/install`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    /// The stack to make [default: the template's name].
    #[serde(default)]
    pub stack: Option<String>,
    /// [default: the latest]
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub answers: std::collections::BTreeMap<String, String>,
    /// Render and check only: nothing is made.
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /v1/environments/{env}/stacks/{name}/upgrade`: the stack's template at `version`
/// [default: the latest] with its stored answers, changed by `answers`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRequest {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub answers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub dry_run: bool,
}

/// `GET /v1/environments/{env}/stacks/{name}/upgrade`: what an upgrade would do.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpgradePlan {
    pub from: String,
    pub to: String,
    /// Questions the stored answers do not answer: asked before upgrading.
    pub questions: Vec<QuestionInfo>,
}

/// What an install or upgrade rendered, and (unless a dry run) what it deployed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstallResponse {
    pub stack: String,
    pub version: String,
    /// The compose file rendered.
    pub compose: String,
    pub warnings: Vec<String>,
    /// The answers used (secret ones shown as `<redacted>`).
    pub answers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub deployed: Option<DeployResponse>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StackDetail {
    pub stack: StackSummary,
    pub services: Vec<ServiceStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServiceStatus {
    pub name: String,
    pub image: String,
    pub replicas: u32,
    pub running: usize,
    pub containers: Vec<ContainerInfo>,
    /// The service's rolling upgrade, running or last finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roll: Option<RollStatus>,
}

/// A rolling upgrade of one service.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct RollStatus {
    /// The stack revision rolled to.
    pub revision: u64,
    /// The revision it started from.
    pub from: u64,
    /// `rolling`, `paused`, `done` or `rolling_back` (failed; a rollback follows).
    pub phase: String,
    /// Why it paused or is rolling back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// This roll undoes a failed one (`cause`: why that one failed).
    pub rollback: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Replicas brought to the new spec so far.
    pub updated: u32,
    /// `start-first` or `stop-first`.
    pub order: String,
    pub parallelism: u32,
    /// Containers leaving (out of the names, waiting their drain time).
    pub draining: Vec<String>,
    pub started_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ContainerInfo {
    pub name: String,
    pub env: String,
    pub stack: String,
    pub service: String,
    pub slot: u32,
    /// Host id, `None` while unplaced.
    pub host: Option<String>,
    /// `pending` (not placed or not created yet), `created`, `running`, `restarting`,
    /// `exited`, `paused`, `dead`, `unknown` (host not reporting).
    pub state: String,
    pub health: Option<String>,
    pub exit_code: Option<i64>,
    /// Engine status line, e.g. "Up 2 minutes (healthy)".
    pub status: String,
    /// Why the last create/start failed.
    pub error: Option<String>,
    /// Why it is held back (dependency, backoff).
    pub waiting: Option<String>,
    /// The running container matches the current spec.
    pub up_to_date: bool,
    pub id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HostInfo {
    pub id: String,
    pub name: String,
    pub env: String,
    /// `up`; `connecting` (connected, nothing reported yet); `engine_down` (agent up, engine
    /// unreachable); `disconnected` (agent gone less than the down-after time); `down`.
    pub state: String,
    pub engine_version: Option<String>,
    pub engine_error: Option<String>,
    pub cpus: Option<u64>,
    pub memory: Option<u64>,
    pub labels: BTreeMap<String, String>,
    /// Labels set through the API (`drover host label`), included in `labels`.
    pub user_labels: BTreeMap<String, String>,
    /// Marked to run nothing: its containers are moved away.
    pub draining: bool,
    pub containers: usize,
    /// CPU (millicores) and memory (bytes) reserved by the containers placed here.
    pub reserved_cpu_milli: u64,
    pub reserved_memory: u64,
    /// Capacity minus reservations, when the host has reported its capacity.
    pub free_cpu_milli: Option<u64>,
    pub free_memory: Option<u64>,
    pub last_seen_ms: Option<u64>,
    /// The host's part of the environment's mesh; absent when its agent runs without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<HostMesh>,
}

/// How a host sits on the mesh, and how its probes of each peer go.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HostMesh {
    /// Its address on the mesh (its tunnel, its DNS).
    pub address: String,
    /// Where its peers send tunnel traffic.
    pub endpoint: String,
    /// Peers answering its probes, of all the peers it should have.
    pub reachable: usize,
    pub peers: usize,
    pub links: Vec<MeshLink>,
}

/// One pair of hosts as the first one's probes see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MeshLink {
    pub peer: String,
    pub peer_name: String,
    pub ok: bool,
    /// Round trip of the last answered probe, microseconds.
    pub rtt_us: Option<u64>,
    /// When a probe was last answered (ms since the epoch).
    pub last_ok_ms: Option<u64>,
    /// Since when the pair is in its state (ms since the epoch).
    pub since_ms: u64,
    /// Why it may be broken, when there is a likely reason.
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HostDetail {
    pub host: HostInfo,
    pub containers: Vec<ContainerInfo>,
}

/// `PUT /v1/environments/{env}/hosts/{id}/labels`: the API-set labels, replaced whole.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Default)]
pub struct HostLabels {
    /// At most 64; keys 1 to 128 letters, digits and `. _ - /`, values at most 256 characters
    /// and no control characters.
    #[schema(schema_with = labels_schema)]
    pub labels: BTreeMap<String, String>,
}

fn labels_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .max_properties(Some(64))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[A-Za-z0-9._/-]{1,128}$")),
        ))
        .additional_properties(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(256))
                .pattern(Some("^[^\\u0000-\\u001f\\u007f-\\u009f]*$")),
        ))
        .build()
}

/// `POST /v1/environments/{env}/hosts/{id}/drain`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DrainRequest {
    /// false to make the host schedulable again.
    pub drain: bool,
}

/// `POST /v1/environments/{env}/hosts/tokens` body: limits of a new registration token.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHostToken {
    /// Seconds until the token is refused (at most 10 years); none: never expires.
    #[serde(default, deserialize_with = "integer::opt_u64")]
    #[schema(minimum = 1, maximum = 315_360_000)]
    pub ttl_secs: Option<u64>,
    /// How many hosts may register with it; none: any number.
    #[serde(default, deserialize_with = "integer::opt_u64")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub uses: Option<u64>,
}

/// `POST /v1/environments/{env}/hosts/tokens`: a registration token for agents. An agent
/// uses it once, to exchange it for its host's own credential.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HostToken {
    /// The token's id (for `host token rm`).
    pub id: String,
    /// Shown once; only its hash is stored.
    pub token: String,
    pub env: String,
    /// `sha256:HEX` of the server's CA certificate, for `drover agent --ca-hash` (none when
    /// the server speaks plain HTTP on loopback).
    #[serde(default)]
    pub ca_hash: Option<String>,
    /// The URL agents should use, when the server knows it (`--advertise`).
    #[serde(default)]
    pub server: Option<String>,
    #[serde(default)]
    pub expires_ms: Option<u64>,
    #[serde(default)]
    pub uses: Option<u64>,
}

/// `GET /v1/environments/{env}/hosts/tokens`: a registration token, never its secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HostTokenInfo {
    pub id: String,
    pub created_ms: u64,
    pub expires_ms: Option<u64>,
    /// None: no limit.
    pub uses_left: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Environment {
    pub name: String,
}

/// `POST /v1/environments`: a new, empty environment (admins only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEnvironment {
    /// 1 to 63 lowercase letters, digits, `-` and `_`, starting with a letter or digit.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    pub name: String,
}

/// One audit-log entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub id: i64,
    pub time_ms: u64,
    pub env: String,
    pub actor: String,
    pub kind: String,
    pub subject: String,
    pub detail: String,
    /// The caller's address, for changes made through the API.
    #[serde(default)]
    pub source: String,
    /// `ok`, or `denied` for a refused attempt.
    #[serde(default = "ok")]
    pub result: String,
}

fn ok() -> String {
    "ok".into()
}

/// `POST /v1/sessions`: sign in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub username: String,
    pub password: String,
}

/// A new session or API key: the token is shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewSecretToken {
    pub id: String,
    pub token: String,
    pub user: String,
    pub expires_ms: Option<u64>,
}

/// A session or API key as listed (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub user: String,
    /// For API keys: the environment it is limited to, if any.
    pub env: Option<String>,
    pub created_ms: u64,
    pub expires_ms: Option<u64>,
    pub last_used_ms: Option<u64>,
}

/// `POST /v1/apikeys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// A name to tell keys apart (letters, digits, '-', '_', '.'; at most 64).
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub name: Option<String>,
    /// Limit the key to this environment.
    pub env: Option<String>,
    /// Seconds until the key expires (at most 100 years); none: never.
    #[serde(default, deserialize_with = "integer::opt_u64")]
    #[schema(minimum = 1, maximum = 3_153_600_000_u64)]
    pub expires_in_s: Option<u64>,
    /// A key that may only read `/metrics` (for a Prometheus scraper; admins; not with
    /// `env`).
    #[serde(default)]
    pub metrics: bool,
}

/// A user as listed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserInfo {
    pub name: String,
    pub admin: bool,
    /// `local` or `ldap`.
    pub source: String,
    pub created_ms: u64,
}

/// `POST /v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// 1 to 64 letters, digits, `-`, `_`, `.` or `@`.
    #[schema(pattern = "^[A-Za-z0-9_.@-]{1,64}$")]
    pub name: String,
    /// 8 to 1024 bytes.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    #[serde(default)]
    pub admin: bool,
}

/// `PUT /v1/users/{user}/password` (admins) and `PUT /v1/password` (one's own, with the
/// current one).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// 8 to 1024 bytes.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    /// One's own password: the current one.
    pub current: Option<String>,
}

/// `GET /v1/whoami`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    pub user: String,
    pub admin: bool,
    /// The caller's role in each environment it sees.
    pub roles: std::collections::BTreeMap<String, String>,
    /// An API key limited to one environment.
    pub scope: Option<String>,
}

/// A member of an environment: a user name or `group:DN`, and its role (`owner`, `member`,
/// `restricted`, `read-only`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// A user's name, or `group:` and a directory group's DN (at most 512 characters).
    #[schema(pattern = "^([A-Za-z0-9_.@-]{1,64}|group:[^\\u0000-\\u001f\\u007f-\\u009f]{1,512})$")]
    pub subject: String,
    #[schema(pattern = "^(owner|member|restricted|read-only|readonly)$")]
    pub role: String,
}

/// `GET|PUT /v1/environments/{env}/policy`: what the environment lets the containers of
/// its members and restricted users have of their hosts (owners and admins are not bound).
/// The default allows nothing beyond Docker's defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvPolicy {
    /// `privileged`, devices, security options other than `no-new-privileges`, any
    /// capability, and binds of the engine's socket.
    #[serde(default)]
    pub allow_privileged: bool,
    /// `network_mode: host`, `pid: host`, `ipc: host`.
    #[serde(default)]
    pub allow_host_namespaces: bool,
    /// Absolute host paths under which bind mounts may be made.
    #[serde(default)]
    pub allow_binds: Vec<String>,
    /// Capabilities beyond Docker's defaults that `cap_add` may add (`ALL`: any).
    #[serde(default)]
    pub allow_caps: Vec<String>,
}

/// `GET|PUT /v1/auth/ldap`: the LDAP / Active Directory users sign in with. The bind
/// password is written, never read back.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LdapSettings {
    /// `ldap://HOST:PORT` or `ldaps://HOST:PORT`.
    pub url: String,
    #[serde(default)]
    pub starttls: bool,
    /// CA certificate (PEM) to trust for ldaps or StartTLS.
    #[serde(default)]
    pub ca_pem: Option<String>,
    pub bind_dn: String,
    /// Required to set; never returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_password: Option<String>,
    pub user_base: String,
    /// With `{username}`, e.g. `(uid={username})`.
    pub user_filter: String,
    #[serde(default)]
    pub group_base: Option<String>,
    /// With `{dn}` or `{username}`, e.g. `(member={dn})`.
    #[serde(default)]
    pub group_filter: Option<String>,
}

/// `POST /v1/auth/ldap/test`: look a user up (and with a password, sign in as them).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LdapTest {
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
}

/// What the directory says of a user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LdapUser {
    pub dn: String,
    pub groups: Vec<String>,
}

/// A network of an environment. Each spans every host of the environment: a host has its
/// own subnet of it (made when a container there first joins it), and the mesh joins them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NetworkInfo {
    /// The engine name (what `external: true` with `name:` or the key refers to).
    pub name: String,
    /// `external`: made with `drover network create`, joined by stacks with `external: true`;
    /// `stack`: a stack's own network, which goes with the stack.
    pub kind: String,
    /// The stacks that join it (for `stack`, the stack it belongs to).
    pub stacks: Vec<String>,
    /// The hosts that have it, with their subnet of it.
    pub hosts: Vec<NetworkHost>,
    /// When it was made with `drover network create` (ms since the epoch); none for a stack's
    /// own network.
    #[serde(default)]
    pub created_ms: Option<u64>,
}

/// A network on one host.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NetworkHost {
    pub host: String,
    pub host_name: String,
    /// The host's subnet of the network, as its agent reports it.
    #[serde(default)]
    pub subnet: Option<String>,
    /// Containers of the environment on the host that have an address on the network.
    pub containers: usize,
}

/// `GET /v1/environments/{env}/networks/{name}`: a network and the containers on it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NetworkDetail {
    pub network: NetworkInfo,
    pub containers: Vec<NetworkMember>,
}

/// A placed container that joins a network.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NetworkMember {
    pub container: String,
    pub stack: String,
    pub service: String,
    pub host: String,
    pub host_name: String,
    /// Its address on the network, once its host reports one.
    #[serde(default)]
    pub address: Option<String>,
}

/// `POST /v1/environments/{env}/networks` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNetwork {
    /// 1-64 characters: letters, digits, `_`, `.`, `-`, starting with a letter or digit; not
    /// one of the engine's own (`host`, `bridge`, `none`, `default`, `ingress`).
    #[schema(pattern = "^(?!(host|bridge|none|default|ingress)$)[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub name: String,
}

/// `DELETE .../stacks/{name}?wait=SECS` when the wait ended first: what is still there.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Remaining {
    pub containers: Vec<String>,
}

/// `POST /v1/environments/{env}/registries`: a login for a private registry (replaces the
/// registry's login if there is one). The password is never returned.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRegistry {
    /// `HOST[:PORT]` as images name it, e.g. `ghcr.io` or `10.0.0.5:5000`.
    #[schema(
        pattern = "^[A-Za-z0-9.-]+(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?$",
        max_length = 253
    )]
    pub host: String,
    /// 1 to 256 bytes.
    #[schema(min_length = 1, max_length = 256)]
    pub username: String,
    /// 1 to 4096 bytes.
    #[schema(min_length = 1, max_length = 4096)]
    pub password: String,
}

impl std::fmt::Debug for NewRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewRegistry")
            .field("host", &self.host)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegistryInfo {
    pub host: String,
    pub username: String,
    pub created_ms: u64,
}

/// `POST /v1/environments/{env}/stacks/{stack}/services/{service}/scale`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    #[serde(deserialize_with = "integer::u32")]
    #[schema(maximum = 10_000)]
    pub replicas: u32,
}

/// One deploy of a stack, as `drover stack history` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Revision {
    pub revision: u64,
    pub actor: String,
    pub time_ms: u64,
    /// What changed: services changed, unchanged, removed.
    pub summary: String,
    /// The revision the stack runs now.
    pub current: bool,
}

/// `POST /v1/environments/{env}/stacks/{name}/rollback`
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The revision to go back to [default: the one before the current].
    #[serde(default, deserialize_with = "integer::opt_u64")]
    pub revision: Option<u64>,
}

pub mod exec;
pub use exec::{ExecControl, ExecEvent, ExecRequest};

/// `POST /v1/environments/{env}/certs`: a certificate for the ingress, chosen by SNI. The
/// key goes in once and is never returned.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCert {
    /// What routes name it by (`tls: NAME`): a lowercase letter or digit, then letters,
    /// digits, `_`, `.` or `-`, at most 63.
    #[schema(pattern = "^[a-z0-9][a-z0-9_.-]{0,62}$")]
    pub name: String,
    /// The chain, PEM, leaf first (at most 64 KiB).
    #[schema(min_length = 1, max_length = 65536)]
    pub cert_pem: String,
    /// The leaf's private key, PEM (at most 16 KiB).
    #[schema(min_length = 1, max_length = 16384)]
    pub key_pem: String,
}

impl std::fmt::Debug for NewCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCert")
            .field("name", &self.name)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A certificate as listed: never its key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CertInfo {
    pub name: String,
    /// The names it is valid for.
    pub domains: Vec<String>,
    /// Expiry, ms since the epoch.
    pub expires_ms: u64,
    /// `file` (added with `drover cert add`) or `acme` (obtained for `tls: auto`).
    pub source: String,
    pub created_ms: u64,
}

/// One container behind an ingress route, and whether it gets requests.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IngressBackend {
    pub container: String,
    pub host: Option<String>,
    /// `IP:PORT` the ingress reaches it at (none while it has no address).
    pub addr: Option<String>,
    /// As `drover stack ps` shows it (running, exited, pending...).
    pub state: String,
    pub health: Option<String>,
    /// Running, not unhealthy, its slot's current copy: it gets requests.
    pub in_rotation: bool,
}

/// One route of the environment's ingress.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IngressRoute {
    /// `http` or `tcp`.
    pub kind: String,
    /// HTTP: the host name (none: any host).
    pub host: Option<String>,
    /// HTTP: the path prefix.
    pub path: Option<String>,
    /// TCP: the port the ingress hosts listen on.
    pub listen: Option<u16>,
    pub stack: String,
    pub service: String,
    /// The container port.
    pub port: u16,
    /// HTTP: `none`, `auto` or a certificate's name, and whether it is served now.
    pub tls: Option<String>,
    /// Why the route is not (fully) served, e.g. a missing certificate.
    pub problem: Option<String>,
    pub backends: Vec<IngressBackend>,
}

/// `GET /v1/environments/{env}/ingress`: the ingress hosts and every route.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IngressView {
    /// Hosts labelled `drover.ingress=true`, with whether their agent is connected.
    pub hosts: Vec<IngressHost>,
    pub routes: Vec<IngressRoute>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IngressHost {
    pub name: String,
    pub state: String,
}
