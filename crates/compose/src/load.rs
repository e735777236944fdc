//! Typed conversion of the interpolated YAML tree into a [`Project`].

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use crate::interpolate::{PathSeg, TreeInterp};
use crate::units::{
    check_protocol, expand_ports, normalise_path, parse_bytes, parse_duration, parse_port_range,
    parse_port_spec, split_shell,
};
use crate::validate::{
    MAX_REPLICAS, find_cycle, is_valid_name, is_valid_project_name, normalise_project_name,
};
use crate::yaml::{self, Kind, Node, ScalarType};
use crate::{
    Build, Condition, Dependency, Error, FailureAction, FileKind, FileSource, FileUse, Healthcheck,
    Input, Loaded, Location, Mount, MountKind, Network, Placement, Port, Project, Resources,
    RestartPolicy, Service, ServiceNetwork, UpdateConfig, UpdateOrder, Volume, Warning,
};

type Entries = [(Rc<Node>, Rc<Node>)];
/// Key, value (`None` when absent or null), position of the entry and its path.
type KeyValue = (String, Option<String>, Location, String);

const TOP_KEYS: &[&str] = &[
    "version", "name", "services", "networks", "volumes", "secrets", "configs",
];
const TOP_UNSUPPORTED: &[&str] = &["models"];
const FILE_SOURCE_KEYS: &[&str] = &["file", "environment", "content", "external", "name"];
const FILE_SOURCE_UNSUPPORTED: &[&str] = &["driver", "driver_opts", "template_driver", "labels"];
const FILE_USE_KEYS: &[&str] = &["source", "target", "uid", "gid", "mode"];

const SERVICE_KEYS: &[&str] = &[
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "volumes",
    "tmpfs",
    "networks",
    "depends_on",
    "healthcheck",
    "restart",
    "labels",
    "deploy",
    "scale",
    "user",
    "working_dir",
    "hostname",
    "cap_add",
    "cap_drop",
    "extra_hosts",
    "links",
    "network_mode",
    "volumes_from",
    "secrets",
    "configs",
    "pull_policy",
    "profiles",
    "stop_grace_period",
    "container_name",
    "platform",
    "annotations",
    "expose",
    "stop_signal",
    "sysctls",
    "ulimits",
    "tty",
    "stdin_open",
    "init",
    "shm_size",
    "read_only",
    "dns",
    "dns_search",
    "dns_opt",
    "runtime",
    "logging",
    "group_add",
    "oom_score_adj",
    "storage_opt",
    "privileged",
    "pid",
    "ipc",
    "devices",
    "security_opt",
    "cpus",
    "mem_limit",
    "mem_reservation",
    "pids_limit",
];

/// Service keys of the compose specification that Drover does not implement (yet).
const SERVICE_UNSUPPORTED: &[&str] = &[
    "attach",
    "blkio_config",
    "cgroup",
    "cgroup_parent",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpuset",
    "credential_spec",
    "develop",
    "device_cgroup_rules",
    "domainname",
    "driver_opts",
    "external_links",
    "gpus",
    "isolation",
    "label_file",
    "mac_address",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "oom_kill_disable",
    "post_start",
    "pre_stop",
    "provider",
    "use_api_socket",
    "userns_mode",
    "uts",
];

/// Whether `key` is a service key `load` knows: one it reads, or one of the compose
/// specification it warns about and ignores (anything else is refused as unknown).
pub fn is_service_key(key: &str) -> bool {
    SERVICE_KEYS.contains(&key) || SERVICE_UNSUPPORTED.contains(&key) || key.starts_with("x-")
}

const BUILD_KEYS: &[&str] = &["context", "dockerfile", "args", "target"];
const BUILD_UNSUPPORTED: &[&str] = &[
    "additional_contexts",
    "cache_from",
    "cache_to",
    "dockerfile_inline",
    "entitlements",
    "extra_hosts",
    "isolation",
    "labels",
    "network",
    "no_cache",
    "platforms",
    "privileged",
    "provenance",
    "pull",
    "sbom",
    "secrets",
    "shm_size",
    "ssh",
    "tags",
    "ulimits",
];

const DEPLOY_KEYS: &[&str] = &[
    "replicas",
    "resources",
    "restart_policy",
    "mode",
    "placement",
    "update_config",
    "rollback_config",
];
const UPDATE_KEYS: &[&str] = &[
    "parallelism",
    "delay",
    "failure_action",
    "monitor",
    "max_failure_ratio",
    "order",
];
const PLACEMENT_KEYS: &[&str] = &["constraints", "max_replicas_per_node"];
const PLACEMENT_UNSUPPORTED: &[&str] = &["preferences"];
const DEPLOY_UNSUPPORTED: &[&str] = &["endpoint_mode", "labels"];
const RESOURCE_KEYS: &[&str] = &["cpus", "memory", "pids"];
const RESOURCE_UNSUPPORTED: &[&str] = &["devices", "generic_resources"];
const HEALTH_KEYS: &[&str] = &[
    "test",
    "interval",
    "timeout",
    "retries",
    "start_period",
    "disable",
];
const HEALTH_UNSUPPORTED: &[&str] = &["start_interval"];
const PORT_KEYS: &[&str] = &["target", "published", "host_ip", "protocol", "mode"];
const PORT_UNSUPPORTED: &[&str] = &["name", "app_protocol"];
const MOUNT_KEYS: &[&str] = &["type", "source", "target", "read_only"];
const MOUNT_UNSUPPORTED: &[&str] = &["bind", "volume", "tmpfs", "consistency", "image"];
const SERVICE_NETWORK_KEYS: &[&str] = &["aliases"];
/// Keys ignored for a reason other than "not yet": what to tell the user.
const WHY_IGNORED: &[(&str, &str)] = &[
    (
        "ipv4_address",
        "ignored: on a cluster, addresses come from each host's share of the network (reach \
         the container by its name)",
    ),
    (
        "ipv6_address",
        "ignored: on a cluster, addresses come from each host's share of the network (reach \
         the container by its name)",
    ),
    (
        "ipam",
        "ignored: on a cluster, Drover gives each host its own subnet of the network",
    ),
    (
        "mac_address",
        "ignored: a fixed MAC address cannot follow a container from host to host",
    ),
];

const SERVICE_NETWORK_UNSUPPORTED: &[&str] = &[
    "ipv4_address",
    "ipv6_address",
    "link_local_ips",
    "mac_address",
    "driver_opts",
    "priority",
    "gw_priority",
    "interface_name",
];
const DEPENDS_KEYS: &[&str] = &["condition", "required", "restart"];
const NETWORK_KEYS: &[&str] = &["driver", "external", "name", "internal", "labels"];
const NETWORK_UNSUPPORTED: &[&str] = &[
    "attachable",
    "driver_opts",
    "enable_ipv4",
    "enable_ipv6",
    "ipam",
];
const VOLUME_KEYS: &[&str] = &["driver", "external", "name", "labels"];
const VOLUME_UNSUPPORTED: &[&str] = &["driver_opts"];
const ENV_FILE_KEYS: &[&str] = &["path", "required", "format"];
const RESTART_POLICY_KEYS: &[&str] = &["condition", "max_attempts", "delay", "window"];

/// What a key turned out to be.
enum KeyClass {
    Known,
    Extension,
    Unsupported,
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn suggestion(key: &str, known: &[&str]) -> String {
    if key.chars().count() > 64 {
        return String::new();
    }
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| format!(" (did you mean '{k}'?)"))
        .unwrap_or_default()
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Reference from a service to something declared elsewhere, checked once all is read.
struct Ref {
    service: String,
    target: String,
    loc: Location,
    path: String,
}

#[derive(Default)]
struct Refs {
    networks: Vec<Ref>,
    volumes: Vec<Ref>,
    depends: Vec<Ref>,
    links: Vec<Ref>,
    /// Where each key of a service is (`service` and `target` = the key below it, e.g.
    /// `network_mode`, `volumes_from[0]`, `x-drover.sidekick_of`), for sidekick errors.
    keys: Vec<Ref>,
    /// Services that set their replica count or mode (`target`: the key that does).
    counts: Vec<Ref>,
    /// Secrets and configs services use (`target`: the top-level key).
    files: Vec<(FileKind, Ref)>,
}

struct Cx<'a> {
    file: &'a str,
    /// Names of the files read, by `Location::file`.
    names: Vec<String>,
    input: &'a Input<'a>,
    warnings: Vec<Warning>,
    refs: Refs,
    /// Ports created so far: ranges can expand a short string into many ports.
    ports: usize,
    /// `env_file` bytes read so far: aliases can name the same file many times.
    env_file_bytes: usize,
}

/// Most ports a project may publish or expose, after expanding ranges.
const MAX_PORTS: usize = 65_536;
/// Most `env_file` content read for one project, counting repeated reads.
const MAX_ENV_FILE_BYTES: usize = 4 * crate::MAX_FILE_BYTES;

pub(crate) fn load(input: &Input) -> Result<Loaded, Error> {
    let file = input.file_name;
    let root = yaml::parse(file, input.text)?;
    let Some(root) = root else {
        return Err(Error::new(
            file,
            Location {
                line: 1,
                column: 1,
                file: 0,
            },
            "",
            "the file is empty: no services defined",
        ));
    };
    let mut sources = Sources {
        names: vec![file.to_owned()],
        files: input.files,
    };
    let mut root = root;
    for (name, text) in input.overrides {
        if let Some(over) = sources.parse(name, text)? {
            root = crate::merge::merge_documents(&root, &over);
        }
    }
    let root = sources.includes(&root, 0)?;
    let root = sources.extends(&root)?;
    let mut interp = TreeInterp::new(file, input.variables);
    interp.names = sources.names.clone();
    let root = interp.node(&root, &PathSeg::Root)?;
    let mut cx = Cx {
        file,
        names: sources.names,
        input,
        warnings: interp.warnings,
        refs: Refs::default(),
        ports: 0,
        env_file_bytes: 0,
    };
    let project = cx.project(&root)?;
    if let Err(e) = crate::validate(&project) {
        // Everything validate() checks is checked above with positions; this is a safety net.
        return Err(Error::new(file, e.location, e.path, e.message));
    }
    cx.warnings
        .sort_by_key(|w| (w.location.line, w.location.column));
    Ok(Loaded {
        project,
        warnings: cx.warnings,
    })
}

/// Most files one project may be read from (`-f` files, `include`, `extends`).
const MAX_FILES: usize = 32;
/// Deepest chain of `include`s or `extends`.
const MAX_CHAIN: usize = 8;

/// The files a project is read from, by `Location::file`, and where more come from.
struct Sources<'a> {
    names: Vec<String>,
    files: &'a dyn crate::Files,
}

impl Sources<'_> {
    fn err(&self, node: &Node, path: &str, message: impl Into<String>) -> Error {
        let file = self
            .names
            .get(usize::from(node.loc.file))
            .map_or("", String::as_str);
        Error::new(file, node.loc, path, message)
    }

    /// Parses another file, numbering its nodes.
    fn parse(&mut self, name: &str, text: &str) -> Result<Option<Rc<Node>>, Error> {
        if self.names.len() >= MAX_FILES {
            return Err(Error::new(
                name,
                Location::default(),
                "",
                format!("more than {MAX_FILES} files make up this project"),
            ));
        }
        let index = self.names.len() as u16;
        self.names.push(name.to_owned());
        yaml::parse_indexed(name, text, index)
    }

    /// Reads and parses the file `path` names (relative to the compose file's directory).
    fn read(&mut self, at: &Node, key_path: &str, path: &str) -> Result<Rc<Node>, Error> {
        let text = self
            .files
            .read(path)
            .map_err(|why| self.err(at, key_path, format!("{path}: {why}")))?;
        self.parse(path, &text)?
            .ok_or_else(|| self.err(at, key_path, format!("{path} is empty")))
    }

    /// `include: [FILE, {path: FILE | [FILE...]}]`: each file's services, networks, volumes,
    /// secrets and configs join the project (a service defined twice is an error); the key
    /// itself goes.
    fn includes(&mut self, root: &Rc<Node>, depth: usize) -> Result<Rc<Node>, Error> {
        let Kind::Map(entries) = &root.kind else {
            return Ok(Rc::clone(root));
        };
        let Some((key, list)) = entries
            .iter()
            .find(|(k, _)| k.as_scalar() == Some("include"))
        else {
            return Ok(Rc::clone(root));
        };
        if depth >= MAX_CHAIN {
            return Err(self.err(
                key,
                "include",
                format!("includes nest deeper than {MAX_CHAIN}"),
            ));
        }
        let mut paths: Vec<(Rc<Node>, String)> = Vec::new();
        let items: Vec<Rc<Node>> = match &list.kind {
            Kind::Seq(items) => items.clone(),
            _ => return Err(self.err(list, "include", "expected a sequence of files")),
        };
        for (i, item) in items.iter().enumerate() {
            let p = format!("include[{i}]");
            match &item.kind {
                Kind::Scalar { text, .. } => paths.push((Rc::clone(item), text.clone())),
                Kind::Map(fields) => {
                    for (k, v) in fields {
                        match (k.as_scalar(), &v.kind) {
                            (Some("path"), Kind::Scalar { text, .. }) => {
                                paths.push((Rc::clone(v), text.clone()));
                            }
                            (Some("path"), Kind::Seq(files)) => {
                                for f in files {
                                    let t = f.as_scalar().unwrap_or_default().to_owned();
                                    paths.push((Rc::clone(f), t));
                                }
                            }
                            (Some("path"), _) => {
                                return Err(self.err(
                                    v,
                                    &format!("{p}.path"),
                                    "expected a file or a list of files",
                                ));
                            }
                            (Some(other), _) => {
                                return Err(self.err(
                                    k,
                                    &format!("{p}.{other}"),
                                    format!("include.{other} is not supported (path is)"),
                                ));
                            }
                            (None, _) => {}
                        }
                    }
                }
                _ => return Err(self.err(item, &p, "expected a file or {path: ...}")),
            }
        }
        let mut out: Vec<(Rc<Node>, Rc<Node>)> = entries
            .iter()
            .filter(|(k, _)| k.as_scalar() != Some("include"))
            .cloned()
            .collect();
        for (at, path) in paths {
            let included = self.read(&at, "include", &path)?;
            let included = self.includes(&included, depth + 1)?;
            let Kind::Map(inc) = &included.kind else {
                return Err(self.err(&included, "", "expected a mapping at the top level"));
            };
            for (k, v) in inc {
                let Some(name) = k.as_scalar() else { continue };
                if !matches!(
                    name,
                    "services" | "networks" | "volumes" | "secrets" | "configs"
                ) {
                    continue;
                }
                let Some(slot) = out.iter_mut().find(|(ok, _)| ok.as_scalar() == Some(name)) else {
                    out.push((Rc::clone(k), Rc::clone(v)));
                    continue;
                };
                let (Kind::Map(have), Kind::Map(add)) = (&slot.1.kind, &v.kind) else {
                    continue;
                };
                let mut merged = have.clone();
                for (ak, av) in add {
                    let an = ak.as_scalar().unwrap_or_default();
                    match merged.iter().find(|(hk, _)| hk.as_scalar() == Some(an)) {
                        Some(_) if name == "services" => {
                            return Err(self.err(
                                ak,
                                &format!("services.{an}"),
                                format!(
                                    "service '{an}' is defined both here and in the including file"
                                ),
                            ));
                        }
                        Some(_) => {}
                        None => merged.push((Rc::clone(ak), Rc::clone(av))),
                    }
                }
                slot.1 = crate::merge::map_node(slot.1.loc, merged);
            }
        }
        Ok(crate::merge::map_node(root.loc, out))
    }

    /// Every service's `extends: NAME` or `extends: {service: NAME, file: FILE}` resolved:
    /// the service is its base's definition merged with its own.
    fn extends(&mut self, root: &Rc<Node>) -> Result<Rc<Node>, Error> {
        let Kind::Map(entries) = &root.kind else {
            return Ok(Rc::clone(root));
        };
        let Some(services) = entries
            .iter()
            .find(|(k, _)| k.as_scalar() == Some("services"))
            .map(|(_, v)| Rc::clone(v))
        else {
            return Ok(Rc::clone(root));
        };
        let Kind::Map(list) = &services.kind else {
            return Ok(Rc::clone(root));
        };
        let mut resolved = Vec::new();
        for (k, v) in list {
            let name = k.as_scalar().unwrap_or_default();
            let svc = self.resolve(&services, name, v, &mut Vec::new())?;
            resolved.push((Rc::clone(k), svc));
        }
        let out = entries
            .iter()
            .map(|(k, v)| match k.as_scalar() {
                Some("services") => (
                    Rc::clone(k),
                    crate::merge::map_node(v.loc, resolved.clone()),
                ),
                _ => (Rc::clone(k), Rc::clone(v)),
            })
            .collect();
        Ok(crate::merge::map_node(root.loc, out))
    }

    fn resolve(
        &mut self,
        services: &Rc<Node>,
        name: &str,
        svc: &Rc<Node>,
        chain: &mut Vec<String>,
    ) -> Result<Rc<Node>, Error> {
        let Kind::Map(fields) = &svc.kind else {
            return Ok(Rc::clone(svc));
        };
        let Some((key, ext)) = fields
            .iter()
            .find(|(k, _)| k.as_scalar() == Some("extends"))
        else {
            return Ok(Rc::clone(svc));
        };
        let path = format!("services.{name}.extends");
        let (base_name, file) = match &ext.kind {
            Kind::Scalar { text, .. } => (text.clone(), None),
            Kind::Map(m) => {
                let get = |k: &str| {
                    m.iter()
                        .find(|(mk, _)| mk.as_scalar() == Some(k))
                        .and_then(|(_, v)| v.as_scalar().map(str::to_owned))
                };
                if let Some((bad, _)) = m
                    .iter()
                    .find(|(mk, _)| !matches!(mk.as_scalar(), Some("service" | "file")))
                {
                    return Err(self.err(bad, &path, "extends takes service and file"));
                }
                let Some(s) = get("service") else {
                    return Err(self.err(ext, &path, "extends needs a service"));
                };
                (s, get("file"))
            }
            Kind::Seq(_) => {
                return Err(self.err(ext, &path, "expected a service or {service, file}"));
            }
        };
        let here = format!("{}:{name}", svc.loc.file);
        if chain.contains(&here) || chain.len() >= MAX_CHAIN {
            return Err(self.err(
                key,
                &path,
                format!("extends cycle through service '{name}'"),
            ));
        }
        chain.push(here);
        let base_services = match &file {
            Some(f) => {
                let doc = self.read(ext, &path, f)?;
                let Kind::Map(top) = &doc.kind else {
                    return Err(self.err(ext, &path, format!("{f}: expected a mapping")));
                };
                top.iter()
                    .find(|(k, _)| k.as_scalar() == Some("services"))
                    .map(|(_, v)| Rc::clone(v))
                    .ok_or_else(|| self.err(ext, &path, format!("{f} has no services")))?
            }
            None => Rc::clone(services),
        };
        let base = match &base_services.kind {
            Kind::Map(m) => m
                .iter()
                .find(|(k, _)| k.as_scalar() == Some(base_name.as_str()))
                .map(|(_, v)| Rc::clone(v)),
            _ => None,
        };
        let Some(base) = base else {
            let where_ = file.map(|f| format!(" in {f}")).unwrap_or_default();
            return Err(self.err(
                ext,
                &path,
                format!("extends: no service '{base_name}'{where_}"),
            ));
        };
        let base = self.resolve(&base_services, &base_name, &base, chain)?;
        chain.pop();
        let own: Vec<(Rc<Node>, Rc<Node>)> = fields
            .iter()
            .filter(|(k, _)| k.as_scalar() != Some("extends"))
            .cloned()
            .collect();
        let own = crate::merge::map_node(svc.loc, own);
        Ok(crate::merge::merge_service(&base, &own))
    }
}

impl Cx<'_> {
    fn err(&self, node: &Node, path: &str, message: impl Into<String>) -> Error {
        Error::new(self.fname(node.loc), node.loc, path, message)
    }

    /// The name of the file `loc` is in.
    fn fname(&self, loc: Location) -> &str {
        self.names
            .get(usize::from(loc.file))
            .map_or(self.file, String::as_str)
    }

    fn warn(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        self.warnings.push(Warning {
            file: self.fname(node.loc).to_owned(),
            location: node.loc,
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn expected(&self, node: &Node, path: &str, what: &str) -> Error {
        self.err(
            node,
            path,
            format!("expected {what}, found {}", node.describe()),
        )
    }

    // ---- generic accessors -------------------------------------------------------------

    fn map<'n>(&self, node: &'n Node, path: &str) -> Result<&'n Entries, Error> {
        match &node.kind {
            Kind::Map(entries) => Ok(entries),
            _ => Err(self.expected(node, path, "a mapping")),
        }
    }

    fn seq<'n>(&self, node: &'n Node, path: &str) -> Result<&'n [Rc<Node>], Error> {
        match &node.kind {
            Kind::Seq(items) => Ok(items),
            _ => Err(self.expected(node, path, "a sequence")),
        }
    }

    /// Any non-null scalar, as its text.
    fn scalar(&self, node: &Node, path: &str, what: &str) -> Result<String, Error> {
        match node.scalar_type() {
            Some(ScalarType::Null) | None => Err(self.expected(node, path, what)),
            Some(_) => Ok(node.as_scalar().unwrap_or_default().to_owned()),
        }
    }

    fn string(&self, node: &Node, path: &str) -> Result<String, Error> {
        self.scalar(node, path, "a string")
    }

    fn non_empty_string(&self, node: &Node, path: &str) -> Result<String, Error> {
        let s = self.string(node, path)?;
        if s.is_empty() {
            return Err(self.err(node, path, "must not be empty"));
        }
        Ok(s)
    }

    fn bool(&self, node: &Node, path: &str) -> Result<bool, Error> {
        match node.scalar_type() {
            Some(ScalarType::Bool(b)) => Ok(b),
            Some(ScalarType::Str) => match node.as_scalar().unwrap_or_default() {
                "true" | "True" | "TRUE" => Ok(true),
                "false" | "False" | "FALSE" => Ok(false),
                other => Err(self.err(
                    node,
                    path,
                    format!("expected a boolean (true or false), found '{other}'"),
                )),
            },
            _ => Err(self.expected(node, path, "a boolean (true or false)")),
        }
    }

    fn integer<T: TryFrom<i128>>(&self, node: &Node, path: &str, what: &str) -> Result<T, Error> {
        let bad = |text: &str| self.err(node, path, format!("expected {what}, found '{text}'"));
        match node.scalar_type() {
            Some(ScalarType::Int | ScalarType::Str) => {
                let text = node.as_scalar().unwrap_or_default().trim();
                let parsed = if let Some(hex) = text.strip_prefix("0x") {
                    i128::from_str_radix(hex, 16)
                } else if let Some(oct) = text.strip_prefix("0o") {
                    i128::from_str_radix(oct, 8)
                } else {
                    text.parse::<i128>()
                };
                parsed
                    .ok()
                    .and_then(|n| T::try_from(n).ok())
                    .ok_or_else(|| bad(text))
            }
            Some(ScalarType::Float) => Err(bad(node.as_scalar().unwrap_or_default())),
            _ => Err(self.expected(node, path, what)),
        }
    }

    fn string_list(&self, node: &Node, path: &str) -> Result<Vec<String>, Error> {
        self.seq(node, path)?
            .iter()
            .enumerate()
            .map(|(i, item)| self.scalar(item, &format!("{path}[{i}]"), "a string"))
            .collect()
    }

    fn duration(&self, node: &Node, path: &str) -> Result<u64, Error> {
        let text = self.scalar(node, path, "a duration like '30s' or '1m30s'")?;
        parse_duration(&text).map_err(|m| self.err(node, path, m))
    }

    /// Checks a key of a mapping against the allowed keys of that mapping. Unsupported keys
    /// get a warning; unknown keys an error. `x-*` keys are reported as extensions.
    fn classify(
        &mut self,
        key: &Node,
        key_text: &str,
        path: &str,
        known: &[&str],
        unsupported: &[&str],
        context: &str,
    ) -> Result<KeyClass, Error> {
        if known.contains(&key_text) {
            return Ok(KeyClass::Known);
        }
        if key_text.starts_with("x-") {
            return Ok(KeyClass::Extension);
        }
        if unsupported.contains(&key_text) {
            let why = WHY_IGNORED
                .iter()
                .find(|(k, _)| *k == key_text)
                .map_or("not supported yet, ignored", |(_, why)| why);
            self.warn(key, path, why);
            return Ok(KeyClass::Unsupported);
        }
        let mut all: Vec<&str> = known.to_vec();
        all.extend_from_slice(unsupported);
        Err(self.err(
            key,
            path,
            format!(
                "unknown key '{key_text}' in {context}{}",
                suggestion(key_text, &all)
            ),
        ))
    }

    /// Iterates a mapping's entries with their key text and path, rejecting unknown keys,
    /// warning about unsupported ones and skipping null values. `x-*` keys are passed on
    /// only when `extensions` is true, else they are warned about.
    fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        known: &[&str],
        unsupported: &[&str],
        context: &str,
        extensions: bool,
    ) -> Result<Vec<(&'n Node, String, &'n Node, String)>, Error> {
        let entries = self.map(node, path)?;
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let key = k.as_scalar().unwrap_or_default().to_owned();
            let p = join(path, &key);
            match self.classify(k, &key, &p, known, unsupported, context)? {
                KeyClass::Known => {
                    if !v.is_null() {
                        out.push((&**k, key, &**v, p));
                    }
                }
                KeyClass::Extension if extensions => out.push((&**k, key, &**v, p)),
                KeyClass::Extension => self.warn(k, &p, "extension ignored here"),
                KeyClass::Unsupported => {}
            }
        }
        Ok(out)
    }

    /// `["K=V", "K"]` or `{K: V}`; `None` for a key without value (or a null value).
    fn key_values(&self, node: &Node, path: &str, separator: char) -> Result<Vec<KeyValue>, Error> {
        let mut out = Vec::new();
        match &node.kind {
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    let text = self.scalar(item, &p, "a string")?;
                    let (k, v) = match text.split_once(separator) {
                        Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                        None => (text, None),
                    };
                    if k.is_empty() {
                        return Err(self.err(item, &p, "empty key"));
                    }
                    out.push((k, v, item.loc, p));
                }
            }
            Kind::Map(entries) => {
                for (k, v) in entries {
                    let key = k.as_scalar().unwrap_or_default().to_owned();
                    let p = join(path, &key);
                    if key.is_empty() {
                        return Err(self.err(k, &p, "empty key"));
                    }
                    let value = match v.kind {
                        Kind::Scalar { .. } if v.is_null() => None,
                        Kind::Scalar { .. } => Some(v.as_scalar().unwrap_or_default().to_owned()),
                        _ => return Err(self.expected(v, &p, "a string, number or boolean")),
                    };
                    out.push((key, value, k.loc, p));
                }
            }
            Kind::Scalar { .. } => {
                return Err(self.expected(node, path, "a mapping or a sequence"));
            }
        }
        Ok(out)
    }

    fn labels(&self, node: &Node, path: &str) -> Result<BTreeMap<String, String>, Error> {
        Ok(self
            .key_values(node, path, '=')?
            .into_iter()
            .map(|(k, v, _, _)| (k, v.unwrap_or_default()))
            .collect())
    }

    // ---- top level ---------------------------------------------------------------------

    fn project(&mut self, root: &Node) -> Result<Project, Error> {
        let entries = match &root.kind {
            Kind::Map(entries) => entries,
            _ => return Err(self.expected(root, "", "a mapping at the top level")),
        };
        let mut project = Project::default();
        let mut name_node: Option<(String, &Node)> = None;
        let mut services_node: Option<(&Node, &Node)> = None;
        for (k, v) in entries {
            let key = k.as_scalar().unwrap_or_default();
            let path = key.to_owned();
            match self.classify(k, key, &path, TOP_KEYS, TOP_UNSUPPORTED, "the top level")? {
                KeyClass::Known => {}
                KeyClass::Extension => {
                    project.extensions.insert(key.to_owned(), to_json(v));
                    continue;
                }
                KeyClass::Unsupported => continue,
            }
            match key {
                "version" => self.warn(k, &path, "obsolete, ignored"),
                "name" if !v.is_null() => name_node = Some((self.string(v, &path)?, &**v)),
                "services" => services_node = Some((&**k, &**v)),
                "networks" => project.networks = self.top_networks(v, &path)?,
                "volumes" => project.volumes = self.top_volumes(v, &path)?,
                "secrets" => project.secrets = self.top_files(v, &path, FileKind::Secret)?,
                "configs" => project.configs = self.top_files(v, &path, FileKind::Config)?,
                _ => {}
            }
        }
        project.name = self.project_name(name_node)?;

        let Some((services_key, services)) = services_node.filter(|(_, v)| !v.is_null()) else {
            return Err(Error::new(
                self.file,
                services_node.map_or(root.loc, |(k, _)| k.loc),
                "services",
                "no services defined",
            ));
        };
        let entries = self.map(services, "services")?;
        if entries.is_empty() {
            return Err(self.err(services_key, "services", "no services defined"));
        }
        if entries.len() > crate::MAX_SERVICES {
            return Err(self.err(
                services_key,
                "services",
                format!("more than {} services", crate::MAX_SERVICES),
            ));
        }
        let mut all = BTreeMap::new();
        for (k, v) in entries {
            let name = k.as_scalar().unwrap_or_default();
            let path = format!("services.{name}");
            if !is_valid_name(name) {
                return Err(self.err(
                    k,
                    &path,
                    format!(
                        "invalid service name '{name}': use letters, digits, '_', '.' and '-', \
                         starting with a letter or digit"
                    ),
                ));
            }
            if v.is_null() {
                return Err(self.err(
                    k,
                    &path,
                    format!("service '{name}' has neither image nor build"),
                ));
            }
            let service = self.service(name, k, v, &path)?;
            all.insert(name.to_owned(), service);
        }
        self.finish(project, all)
    }

    fn project_name(&self, from_file: Option<(String, &Node)>) -> Result<String, Error> {
        let rule = "must contain only lowercase letters, digits, '-' and '_', and start with a \
                    letter or digit";
        if let Some(name) = self.input.project_name {
            if !is_valid_project_name(name) {
                return Err(Error::new(
                    self.file,
                    Location::default(),
                    "",
                    format!("invalid project name '{name}': {rule}"),
                ));
            }
            return Ok(name.to_owned());
        }
        if let Some((name, node)) = from_file {
            if !is_valid_project_name(&name) {
                return Err(self.err(
                    node,
                    "name",
                    format!("invalid project name '{name}': {rule}"),
                ));
            }
            return Ok(name);
        }
        let name = normalise_project_name(self.input.default_name);
        if name.is_empty() {
            return Err(Error::new(
                self.file,
                Location::default(),
                "",
                format!(
                    "cannot derive a project name from '{}': set 'name:' in the file",
                    self.input.default_name
                ),
            ));
        }
        Ok(name)
    }

    fn top_networks(
        &mut self,
        node: &Node,
        path: &str,
    ) -> Result<BTreeMap<String, Network>, Error> {
        let mut out = BTreeMap::new();
        if node.is_null() {
            return Ok(out);
        }
        for (k, v) in self.map(node, path)? {
            let name = k.as_scalar().unwrap_or_default();
            let p = join(path, name);
            if !is_valid_name(name) {
                return Err(self.err(k, &p, format!("invalid network name '{name}'")));
            }
            let mut net = Network::default();
            if !v.is_null() {
                let context = format!("network '{name}'");
                for (_, key, value, kp) in
                    self.fields(v, &p, NETWORK_KEYS, NETWORK_UNSUPPORTED, &context, false)?
                {
                    match key.as_str() {
                        "driver" => net.driver = Some(self.non_empty_string(value, &kp)?),
                        "external" => {
                            let (external, name) = self.external(value, &kp)?;
                            net.external = external;
                            if name.is_some() {
                                net.name = name;
                            }
                        }
                        "name" => net.name = Some(self.non_empty_string(value, &kp)?),
                        "internal" => net.internal = self.bool(value, &kp)?,
                        "labels" => net.labels = self.labels(value, &kp)?,
                        _ => {}
                    }
                }
            }
            out.insert(name.to_owned(), net);
        }
        Ok(out)
    }

    /// `external: true` or the legacy `external: {name: x}`.
    fn external(&mut self, node: &Node, path: &str) -> Result<(bool, Option<String>), Error> {
        if let Kind::Map(_) = node.kind {
            let mut name = None;
            for (_, _, value, kp) in self.fields(node, path, &["name"], &[], "external", false)? {
                name = Some(self.non_empty_string(value, &kp)?);
            }
            self.warn(
                node,
                path,
                "'external: {name: ...}' is deprecated, use 'external: true' and 'name:'",
            );
            return Ok((true, name));
        }
        Ok((self.bool(node, path)?, None))
    }

    /// Top-level `secrets:` or `configs:`: each from one of `file`, `environment`,
    /// `content` (configs) or `external: true`.
    fn top_files(
        &mut self,
        node: &Node,
        path: &str,
        kind: FileKind,
    ) -> Result<BTreeMap<String, FileSource>, Error> {
        let mut out = BTreeMap::new();
        if node.is_null() {
            return Ok(out);
        }
        let what = kind.as_str();
        for (k, v) in self.map(node, path)? {
            let name = k.as_scalar().unwrap_or_default();
            let p = join(path, name);
            if !is_valid_name(name) {
                return Err(self.err(k, &p, format!("invalid {what} name '{name}'")));
            }
            let mut src = FileSource::default();
            let context = format!("{what} '{name}'");
            if !v.is_null() {
                for (_, key, value, kp) in self.fields(
                    v,
                    &p,
                    FILE_SOURCE_KEYS,
                    FILE_SOURCE_UNSUPPORTED,
                    &context,
                    false,
                )? {
                    match key.as_str() {
                        "file" => src.file = Some(self.non_empty_string(value, &kp)?),
                        "environment" => src.environment = Some(self.non_empty_string(value, &kp)?),
                        "content" if kind == FileKind::Config => {
                            src.content = Some(self.string(value, &kp)?)
                        }
                        "content" => {
                            return Err(self.err(
                                value,
                                &kp,
                                "a secret's value is never written in the compose file: use \
                                 file, environment or external",
                            ));
                        }
                        "external" => {
                            let (external, ext_name) = self.external(value, &kp)?;
                            src.external = external;
                            if ext_name.is_some() {
                                src.name = ext_name;
                            }
                        }
                        "name" => src.name = Some(self.non_empty_string(value, &kp)?),
                        _ => {}
                    }
                }
            }
            if let Err(m) = crate::validate::check_file_source(kind, name, &src) {
                return Err(self.err(k, &p, m));
            }
            out.insert(name.to_owned(), src);
        }
        Ok(out)
    }

    /// A service's `secrets:` or `configs:`: `[NAME]` or `[{source, target, uid, gid,
    /// mode}]`; each source is checked to be declared once all is read.
    fn file_uses(
        &mut self,
        service: &str,
        node: &Node,
        path: &str,
        kind: FileKind,
    ) -> Result<Vec<FileUse>, Error> {
        let mut out = Vec::new();
        for (i, item) in self.seq(node, path)?.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let mut u = FileUse::default();
            if let Kind::Scalar { .. } = item.kind {
                u.source = self.non_empty_string(item, &p)?;
            } else {
                for (_, key, value, kp) in
                    self.fields(item, &p, FILE_USE_KEYS, &[], kind.as_str(), false)?
                {
                    match key.as_str() {
                        "source" => u.source = self.non_empty_string(value, &kp)?,
                        "target" => u.target = Some(self.non_empty_string(value, &kp)?),
                        "uid" => u.uid = Some(self.scalar(value, &kp, "a user id")?),
                        "gid" => u.gid = Some(self.scalar(value, &kp, "a group id")?),
                        "mode" => {
                            let text = self.scalar(value, &kp, "a file mode")?;
                            u.mode = Some(parse_mode(&text).map_err(|m| self.err(value, &kp, m))?);
                        }
                        _ => {}
                    }
                }
                if u.source.is_empty() {
                    return Err(self.err(
                        item,
                        &p,
                        format!("a {} needs a 'source'", kind.as_str()),
                    ));
                }
            }
            self.refs.files.push((
                kind,
                Ref {
                    service: service.to_owned(),
                    target: u.source.clone(),
                    loc: item.loc,
                    path: p,
                },
            ));
            out.push(u);
        }
        Ok(out)
    }

    fn top_volumes(&mut self, node: &Node, path: &str) -> Result<BTreeMap<String, Volume>, Error> {
        let mut out = BTreeMap::new();
        if node.is_null() {
            return Ok(out);
        }
        for (k, v) in self.map(node, path)? {
            let name = k.as_scalar().unwrap_or_default();
            let p = join(path, name);
            if !is_valid_name(name) {
                return Err(self.err(k, &p, format!("invalid volume name '{name}'")));
            }
            let mut vol = Volume::default();
            if !v.is_null() {
                let context = format!("volume '{name}'");
                for (_, key, value, kp) in
                    self.fields(v, &p, VOLUME_KEYS, VOLUME_UNSUPPORTED, &context, false)?
                {
                    match key.as_str() {
                        "driver" => vol.driver = Some(self.non_empty_string(value, &kp)?),
                        "external" => {
                            let (external, name) = self.external(value, &kp)?;
                            vol.external = external;
                            if name.is_some() {
                                vol.name = name;
                            }
                        }
                        "name" => vol.name = Some(self.non_empty_string(value, &kp)?),
                        "labels" => vol.labels = self.labels(value, &kp)?,
                        _ => {}
                    }
                }
            }
            out.insert(name.to_owned(), vol);
        }
        Ok(out)
    }

    // ---- services ----------------------------------------------------------------------

    fn service(
        &mut self,
        name: &str,
        name_node: &Node,
        node: &Node,
        path: &str,
    ) -> Result<Service, Error> {
        let mut svc = Service {
            replicas: 1,
            ..Service::default()
        };
        let context = format!("service '{name}'");
        let fields = self.fields(
            node,
            path,
            SERVICE_KEYS,
            SERVICE_UNSUPPORTED,
            &context,
            true,
        )?;
        let mut env_files: Vec<(String, Option<String>)> = Vec::new();
        let mut environment: Vec<(String, Option<String>)> = Vec::new();
        let mut replicas: Option<(u32, &Node, String)> = None;
        let mut scale: Option<(u32, &Node, String)> = None;
        let mut legacy_limits = Resources::default();
        let mut legacy_reservations = Resources::default();
        let mut restart_set = false;
        let mut pull_build_at: Option<&Node> = None;
        let mut deploy_restart = None;
        let mut has_networks = false;
        for (_, key, v, p) in fields {
            self.refs.keys.push(Ref {
                service: name.to_owned(),
                target: key.clone(),
                loc: v.loc,
                path: p.clone(),
            });
            match key.as_str() {
                "x-drover" => {
                    if let Kind::Map(entries) = &v.kind
                        && let Some((k, _)) = entries
                            .iter()
                            .find(|(k, _)| k.as_scalar() == Some(crate::SIDEKICK_OF))
                    {
                        let target = format!("x-drover.{}", crate::SIDEKICK_OF);
                        self.refs.keys.push(Ref {
                            service: name.to_owned(),
                            loc: k.loc,
                            path: join(&p, crate::SIDEKICK_OF),
                            target,
                        });
                    }
                    svc.extensions.insert(key.clone(), to_json(v));
                }
                k if k.starts_with("x-") => {
                    svc.extensions.insert(key.clone(), to_json(v));
                }
                "network_mode" => {
                    let mode = self.non_empty_string(v, &p)?;
                    if mode == crate::NETWORK_NONE
                        || mode == crate::NETWORK_HOST
                        || mode.starts_with("service:")
                    {
                        svc.network_mode = Some(mode);
                    } else {
                        self.warn(
                            v,
                            &p,
                            format!(
                                "network_mode '{mode}' is not supported (none, host and \
                                 service:NAME are); ignored"
                            ),
                        );
                    }
                }
                "volumes_from" => svc.volumes_from = self.volumes_from(name, v, &p)?,
                "secrets" => svc.secrets = self.file_uses(name, v, &p, FileKind::Secret)?,
                "configs" => svc.configs = self.file_uses(name, v, &p, FileKind::Config)?,
                "image" => svc.image = Some(self.non_empty_string(v, &p)?),
                "build" => svc.build = Some(self.build(v, &p)?),
                "command" => svc.command = Some(self.command(v, &p)?),
                "entrypoint" => svc.entrypoint = Some(self.command(v, &p)?),
                "environment" => environment = self.environment(v, &p)?,
                "env_file" => env_files = self.env_files(v, &p)?,
                "ports" => svc.ports = self.ports(v, &p)?,
                "volumes" => {
                    let mut mounts = self.volumes(name, v, &p)?;
                    svc.volumes.append(&mut mounts);
                }
                "tmpfs" => {
                    let mut mounts = self.tmpfs(v, &p)?;
                    svc.volumes.append(&mut mounts);
                }
                "networks" => {
                    svc.networks = self.service_networks(name, v, &p)?;
                    has_networks = true;
                }
                "depends_on" => svc.depends_on = self.depends_on(name, v, &p)?,
                "healthcheck" => svc.healthcheck = Some(self.healthcheck(v, &p)?),
                "pull_policy" => {
                    let policy = self.pull_policy(v, &p)?;
                    if policy == crate::PullPolicy::Build {
                        pull_build_at = Some(v);
                    }
                    svc.pull_policy = Some(policy);
                }
                "restart" => {
                    svc.restart = self.restart(v, &p)?;
                    restart_set = true;
                }
                "labels" => svc.labels = self.labels(v, &p)?,
                "deploy" => {
                    let deploy = self.deploy(v, &p)?;
                    if let Some((_, node, path)) = &deploy.replicas {
                        self.refs.counts.push(Ref {
                            service: name.to_owned(),
                            target: "deploy.replicas".to_owned(),
                            loc: node.loc,
                            path: path.clone(),
                        });
                    }
                    if let Some(at) = deploy.mode_at {
                        self.refs.counts.push(Ref {
                            service: name.to_owned(),
                            target: "deploy.mode".to_owned(),
                            loc: at,
                            path: format!("{p}.mode"),
                        });
                    }
                    replicas = deploy.replicas;
                    svc.global = deploy.global;
                    svc.placement = deploy.placement;
                    svc.update_config = deploy.update;
                    svc.rollback_config = deploy.rollback;
                    svc.limits = deploy.limits;
                    svc.reservations = deploy.reservations;
                    deploy_restart = deploy.restart;
                }
                "scale" => {
                    let n = self.integer(v, &p, "a number of replicas")?;
                    self.refs.counts.push(Ref {
                        service: name.to_owned(),
                        target: "scale".to_owned(),
                        loc: v.loc,
                        path: p.clone(),
                    });
                    scale = Some((n, v, p.clone()));
                }
                "user" => svc.user = Some(self.string(v, &p)?),
                "working_dir" => svc.working_dir = Some(self.string(v, &p)?),
                "hostname" => svc.hostname = Some(self.string(v, &p)?),
                "cap_add" => svc.cap_add = self.string_list(v, &p)?,
                "cap_drop" => svc.cap_drop = self.string_list(v, &p)?,
                "extra_hosts" => svc.extra_hosts = self.extra_hosts(v, &p)?,
                "links" => svc.links = self.links(name, v, &p)?,
                "profiles" => {
                    svc.profiles = self.string_list(v, &p)?;
                    if let Some(bad) = svc.profiles.iter().find(|p| !is_valid_name(p)) {
                        return Err(self.err(v, &p, format!("invalid profile name '{bad}'")));
                    }
                }
                "stop_grace_period" => svc.stop_grace_period_ns = Some(self.duration(v, &p)?),
                "container_name" => {
                    let n = self.non_empty_string(v, &p)?;
                    let ok = n.starts_with(|c: char| c.is_ascii_alphanumeric())
                        && n.len() <= 128
                        && n.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
                    if !ok {
                        return Err(self.err(
                            v,
                            &p,
                            format!(
                                "invalid container_name '{n}': letters, digits, '_', '.' and '-'"
                            ),
                        ));
                    }
                    self.refs.keys.push(Ref {
                        service: name.to_owned(),
                        target: "container_name".to_owned(),
                        loc: v.loc,
                        path: p.clone(),
                    });
                    svc.container_name = Some(n);
                }
                "expose" => svc.expose = self.expose(v, &p)?,
                "platform" => {
                    let text = self.non_empty_string(v, &p)?;
                    let valid = text.split('/').count() <= 3
                        && text.split('/').all(|part| {
                            !part.is_empty()
                                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        });
                    if !valid {
                        return Err(self.err(
                            v,
                            &p,
                            format!("invalid platform '{text}' (expected OS[/ARCH[/VARIANT]], like linux/amd64)"),
                        ));
                    }
                    svc.platform = Some(text);
                }
                "annotations" => svc.annotations = self.labels(v, &p)?,
                "stop_signal" => svc.stop_signal = Some(self.non_empty_string(v, &p)?),
                "sysctls" => svc.sysctls = self.labels(v, &p)?,
                "ulimits" => svc.ulimits = self.ulimits(v, &p)?,
                "tty" => svc.tty = self.bool(v, &p)?,
                "stdin_open" => svc.stdin_open = self.bool(v, &p)?,
                "init" => svc.init = Some(self.bool(v, &p)?),
                "shm_size" => svc.shm_size = Some(self.memory(v, &p)?),
                "read_only" => svc.read_only = self.bool(v, &p)?,
                "dns" => svc.dns = self.one_or_list(v, &p)?,
                "dns_search" => svc.dns_search = self.one_or_list(v, &p)?,
                "dns_opt" => svc.dns_opt = self.string_list(v, &p)?,
                "runtime" => svc.runtime = Some(self.non_empty_string(v, &p)?),
                "logging" => svc.logging = Some(self.logging(v, &p)?),
                "group_add" => svc.group_add = self.string_list(v, &p)?,
                "oom_score_adj" => {
                    let n: i64 = self.integer(v, &p, "an integer from -1000 to 1000")?;
                    if !(-1000..=1000).contains(&n) {
                        return Err(self.err(
                            v,
                            &p,
                            format!("oom_score_adj {n} is not within -1000..1000"),
                        ));
                    }
                    svc.oom_score_adj = Some(n);
                }
                "storage_opt" => svc.storage_opt = self.labels(v, &p)?,
                "privileged" => svc.privileged = self.bool(v, &p)?,
                "pid" => {
                    let mode = self.non_empty_string(v, &p)?;
                    crate::check_pid(&mode).map_err(|m| self.err(v, &p, m))?;
                    svc.pid = Some(mode);
                }
                "ipc" => {
                    let mode = self.non_empty_string(v, &p)?;
                    crate::check_ipc(&mode).map_err(|m| self.err(v, &p, m))?;
                    svc.ipc = Some(mode);
                }
                "devices" => svc.devices = self.devices(v, &p)?,
                "security_opt" => svc.security_opt = self.string_list(v, &p)?,
                "cpus" => legacy_limits.cpus = Some(self.cpus(v, &p)?),
                "mem_limit" => legacy_limits.memory = Some(self.memory(v, &p)?),
                "mem_reservation" => legacy_reservations.memory = Some(self.memory(v, &p)?),
                "pids_limit" => legacy_limits.pids = Some(self.integer(v, &p, "an integer")?),
                _ => {}
            }
        }

        if svc.image.is_none() && svc.build.is_none() {
            return Err(self.err(
                name_node,
                path,
                format!("service '{name}' has neither image nor build"),
            ));
        }

        // env_file contents, then `environment` on top.
        for (k, v) in env_files.into_iter().chain(environment) {
            svc.environment.insert(k, v);
        }

        if svc.network_mode.is_none() && (!has_networks || svc.networks.is_empty()) {
            svc.networks
                .insert("default".to_owned(), ServiceNetwork::default());
            if !has_networks {
                self.refs.networks.push(Ref {
                    service: name.to_owned(),
                    target: "default".to_owned(),
                    loc: node.loc,
                    path: path.to_owned(),
                });
            }
        }

        svc.replicas = match (replicas, scale) {
            (Some((r, _, _)), Some((s, node, p))) if r != s => {
                return Err(self.err(
                    node,
                    &p,
                    format!("'scale: {s}' conflicts with 'deploy.replicas: {r}'"),
                ));
            }
            (Some((n, node, p)), _) | (None, Some((n, node, p))) => {
                if n > MAX_REPLICAS {
                    return Err(self.err(
                        node,
                        &p,
                        format!("too many replicas: {n}, the limit is {MAX_REPLICAS}"),
                    ));
                }
                n
            }
            (None, None) => 1,
        };

        for (slot, legacy) in [
            (&mut svc.limits, legacy_limits),
            (&mut svc.reservations, legacy_reservations),
        ] {
            slot.cpus = slot.cpus.or(legacy.cpus);
            slot.memory = slot.memory.or(legacy.memory);
            slot.pids = slot.pids.or(legacy.pids);
        }
        if !restart_set && let Some(policy) = deploy_restart {
            svc.restart = policy;
        }
        if let Some(at) = pull_build_at
            && svc.build.is_none()
        {
            return Err(self.err(
                at,
                &format!("{path}.pull_policy"),
                format!("service '{name}' has pull_policy build but no build section"),
            ));
        }
        Ok(svc)
    }

    fn build(&mut self, node: &Node, path: &str) -> Result<Build, Error> {
        if let Kind::Scalar { .. } = node.kind {
            return Ok(Build {
                context: self.non_empty_string(node, path)?,
                ..Build::default()
            });
        }
        let mut build = Build {
            context: ".".to_owned(),
            ..Build::default()
        };
        for (_, key, v, p) in
            self.fields(node, path, BUILD_KEYS, BUILD_UNSUPPORTED, "build", false)?
        {
            match key.as_str() {
                "context" => build.context = self.non_empty_string(v, &p)?,
                "dockerfile" => build.dockerfile = Some(self.non_empty_string(v, &p)?),
                "target" => build.target = Some(self.non_empty_string(v, &p)?),
                "args" => {
                    for (k, value, _, _) in self.key_values(v, &p, '=')? {
                        // An argument without value takes the variable's value, if set.
                        if let Some(value) = value.or_else(|| self.input.variables.get(&k).cloned())
                        {
                            build.args.insert(k, value);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(build)
    }

    fn command(&self, node: &Node, path: &str) -> Result<Vec<String>, Error> {
        match node.kind {
            Kind::Seq(_) => self.string_list(node, path),
            Kind::Scalar { .. } => {
                let text = self.string(node, path)?;
                split_shell(&text).map_err(|m| self.err(node, path, m))
            }
            Kind::Map(_) => Err(self.expected(node, path, "a string or a sequence")),
        }
    }

    fn environment(&self, node: &Node, path: &str) -> Result<Vec<(String, Option<String>)>, Error> {
        let mut out = Vec::new();
        for (k, v, loc, p) in self.key_values(node, path, '=')? {
            if k.contains('=') || k.contains(char::is_whitespace) {
                return Err(Error::new(
                    self.file,
                    loc,
                    p,
                    format!("invalid environment variable name '{k}'"),
                ));
            }
            let v = v.or_else(|| self.input.variables.get(&k).cloned());
            out.push((k, v));
        }
        Ok(out)
    }

    fn env_files(
        &mut self,
        node: &Node,
        path: &str,
    ) -> Result<Vec<(String, Option<String>)>, Error> {
        let items: Vec<(Rc<Node>, String)> = match &node.kind {
            Kind::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| (Rc::clone(n), format!("{path}[{i}]")))
                .collect(),
            _ => vec![(Rc::new(node.clone()), path.to_owned())],
        };
        let mut out = Vec::new();
        for (item, p) in items {
            let (file, required) = match &item.kind {
                Kind::Map(_) => {
                    let mut file = None;
                    let mut required = true;
                    for (_, key, v, kp) in
                        self.fields(&item, &p, ENV_FILE_KEYS, &[], "env_file", false)?
                    {
                        match key.as_str() {
                            "path" => file = Some(self.non_empty_string(v, &kp)?),
                            "required" => required = self.bool(v, &kp)?,
                            "format" => {
                                let format = self.string(v, &kp)?;
                                if format != "raw" && !format.is_empty() {
                                    return Err(self.err(
                                        v,
                                        &kp,
                                        format!("unsupported env_file format '{format}'"),
                                    ));
                                }
                            }
                            _ => {}
                        }
                    }
                    let Some(file) = file else {
                        return Err(self.err(&item, &p, "env_file entry needs a 'path'"));
                    };
                    (file, required)
                }
                _ => (self.non_empty_string(&item, &p)?, true),
            };
            match self.input.files.read(&file) {
                Ok(text) => {
                    self.env_file_bytes = self.env_file_bytes.saturating_add(text.len());
                    if self.env_file_bytes > MAX_ENV_FILE_BYTES {
                        return Err(self.err(
                            &item,
                            &p,
                            format!(
                                "env_file contents too large: more than {MAX_ENV_FILE_BYTES} \
                                 bytes in total"
                            ),
                        ));
                    }
                    for (k, v) in crate::parse_dotenv(&file, &text)? {
                        out.push((k, Some(v)));
                    }
                }
                Err(reason) if required => {
                    return Err(self.err(
                        &item,
                        &p,
                        format!("cannot read env_file '{file}': {reason}"),
                    ));
                }
                Err(_) => {}
            }
        }
        Ok(out)
    }

    fn ports(&mut self, node: &Node, path: &str) -> Result<Vec<Port>, Error> {
        let mut out = Vec::new();
        for (i, item) in self.seq(node, path)?.iter().enumerate() {
            let p = format!("{path}[{i}]");
            match &item.kind {
                Kind::Map(_) => out.extend(self.port_long(item, &p)?),
                Kind::Scalar { .. } => {
                    let spec = self.scalar(item, &p, "a string or number")?;
                    out.extend(parse_port_spec(&spec).map_err(|m| self.err(item, &p, m))?);
                }
                Kind::Seq(_) => return Err(self.expected(item, &p, "a string, number or mapping")),
            }
            if self.ports + out.len() > MAX_PORTS {
                return Err(self.err(
                    item,
                    &p,
                    format!("too many ports: the project's ports expand to more than {MAX_PORTS}"),
                ));
            }
        }
        self.ports += out.len();
        Ok(out)
    }

    fn port_long(&mut self, node: &Node, path: &str) -> Result<Vec<Port>, Error> {
        let mut target = None;
        let mut published = None;
        let mut host_ip = None;
        let mut protocol = "tcp".to_owned();
        for (_, key, v, p) in self.fields(node, path, PORT_KEYS, PORT_UNSUPPORTED, "port", false)? {
            match key.as_str() {
                "target" => {
                    let text = self.scalar(v, &p, "a port number")?;
                    let port = parse_port_range(&text, "port")
                        .ok()
                        .filter(|(a, b)| a == b)
                        .ok_or_else(|| self.err(v, &p, format!("invalid port '{text}'")))?;
                    target = Some(port);
                }
                "published" => {
                    let text = self.scalar(v, &p, "a port number or range")?;
                    if !text.is_empty() {
                        published = Some(
                            parse_port_range(&text, "port")
                                .map_err(|_| self.err(v, &p, format!("invalid port '{text}'")))?,
                        );
                    }
                }
                "host_ip" => host_ip = Some(self.non_empty_string(v, &p)?),
                "protocol" => {
                    let text = self.string(v, &p)?;
                    protocol = check_protocol(&text).map_err(|m| self.err(v, &p, m))?;
                }
                "mode" => {
                    let mode = self.string(v, &p)?;
                    if mode != "host" && mode != "ingress" {
                        return Err(self.err(v, &p, format!("unknown port mode '{mode}'")));
                    }
                }
                _ => {}
            }
        }
        let Some(target) = target else {
            return Err(self.err(node, path, "port needs a 'target'"));
        };
        expand_ports(published, target, host_ip.as_deref(), &protocol, "").map_err(|_| {
            self.err(
                node,
                path,
                "a published port range needs as many container ports",
            )
        })
    }

    fn volumes(&mut self, service: &str, node: &Node, path: &str) -> Result<Vec<Mount>, Error> {
        let mut out = Vec::new();
        for (i, item) in self.seq(node, path)?.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let mount = match &item.kind {
                Kind::Map(_) => self.volume_long(item, &p)?,
                Kind::Scalar { .. } => {
                    let spec = self.non_empty_string(item, &p)?;
                    self.volume_short(item, &p, &spec)?
                }
                Kind::Seq(_) => return Err(self.expected(item, &p, "a string or a mapping")),
            };
            if mount.kind == MountKind::Volume
                && let Some(source) = &mount.source
            {
                self.refs.volumes.push(Ref {
                    service: service.to_owned(),
                    target: source.clone(),
                    loc: item.loc,
                    path: p.clone(),
                });
            }
            out.push(mount);
        }
        Ok(out)
    }

    fn check_target(&self, node: &Node, path: &str, target: &str) -> Result<(), Error> {
        if !target.starts_with('/') {
            return Err(self.err(
                node,
                path,
                format!("container path '{target}' must be absolute"),
            ));
        }
        Ok(())
    }

    /// Source of a bind mount, made absolute against the base directory.
    fn bind_source(&self, node: &Node, path: &str, source: &str) -> Result<String, Error> {
        let source = if source == "~" || source.starts_with("~/") {
            let Some(home) = self.input.variables.get("HOME") else {
                return Err(self.err(
                    node,
                    path,
                    format!("cannot expand '~' in '{source}': HOME is not set"),
                ));
            };
            format!("{home}{}", &source[1..])
        } else {
            source.to_owned()
        };
        Ok(normalise_path(self.input.base_dir, &source))
    }

    fn volume_short(&mut self, node: &Node, path: &str, spec: &str) -> Result<Mount, Error> {
        let parts: Vec<&str> = spec.split(':').collect();
        let (source, target, mode) = match parts.as_slice() {
            [target] => (None, *target, None),
            [source, target] => (Some(*source), *target, None),
            [source, target, mode] => (Some(*source), *target, Some(*mode)),
            _ => return Err(self.err(node, path, format!("invalid volume '{spec}'"))),
        };
        self.check_target(node, path, target)?;
        let mut read_only = false;
        for option in mode.unwrap_or_default().split(',') {
            match option {
                "" | "rw" | "cached" | "delegated" | "consistent" => {}
                "ro" => read_only = true,
                "z" | "Z" | "nocopy" | "shared" | "rshared" | "slave" | "rslave" | "private"
                | "rprivate" => self.warn(
                    node,
                    path,
                    format!("volume option '{option}' is not supported yet, ignored"),
                ),
                other => {
                    return Err(self.err(node, path, format!("invalid volume mode '{other}'")));
                }
            }
        }
        let (kind, source) = match source {
            None => (MountKind::Volume, None),
            Some(s) if s.starts_with(['/', '.', '~']) => {
                (MountKind::Bind, Some(self.bind_source(node, path, s)?))
            }
            Some(s) => {
                if !is_valid_name(s) {
                    return Err(self.err(node, path, format!("invalid volume name '{s}'")));
                }
                (MountKind::Volume, Some(s.to_owned()))
            }
        };
        Ok(Mount {
            kind,
            source,
            target: target.to_owned(),
            read_only,
        })
    }

    fn volume_long(&mut self, node: &Node, path: &str) -> Result<Mount, Error> {
        let mut kind = None;
        let mut source: Option<(String, &Node, String)> = None;
        let mut target = None;
        let mut read_only = false;
        for (_, key, v, p) in
            self.fields(node, path, MOUNT_KEYS, MOUNT_UNSUPPORTED, "volume", false)?
        {
            match key.as_str() {
                "type" => {
                    let t = self.string(v, &p)?;
                    kind = Some(match t.as_str() {
                        "volume" => MountKind::Volume,
                        "bind" => MountKind::Bind,
                        "tmpfs" => MountKind::Tmpfs,
                        _ => {
                            return Err(self.err(v, &p, format!("unsupported volume type '{t}'")));
                        }
                    });
                }
                "source" => {
                    let s = self.string(v, &p)?;
                    if !s.is_empty() {
                        source = Some((s, v, p));
                    }
                }
                "target" => {
                    let t = self.non_empty_string(v, &p)?;
                    self.check_target(v, &p, &t)?;
                    target = Some(t);
                }
                "read_only" => read_only = self.bool(v, &p)?,
                _ => {}
            }
        }
        let Some(target) = target else {
            return Err(self.err(node, path, "volume needs a 'target'"));
        };
        let kind = kind.unwrap_or(MountKind::Volume);
        let source = match (kind, source) {
            (MountKind::Bind, None) => {
                return Err(self.err(node, path, "bind mount needs a 'source'"));
            }
            (MountKind::Bind, Some((s, v, p))) => Some(self.bind_source(v, &p, &s)?),
            (MountKind::Tmpfs, Some((_, v, p))) => {
                return Err(self.err(v, &p, "tmpfs mounts take no 'source'"));
            }
            (MountKind::Volume, Some((s, v, p))) => {
                if !is_valid_name(&s) {
                    return Err(self.err(v, &p, format!("invalid volume name '{s}'")));
                }
                Some(s)
            }
            (_, None) => None,
        };
        Ok(Mount {
            kind,
            source,
            target,
            read_only,
        })
    }

    fn tmpfs(&mut self, node: &Node, path: &str) -> Result<Vec<Mount>, Error> {
        let items: Vec<(String, &Node, String)> = match &node.kind {
            Kind::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let p = format!("{path}[{i}]");
                    self.non_empty_string(item, &p).map(|s| (s, &**item, p))
                })
                .collect::<Result<_, _>>()?,
            _ => vec![(self.non_empty_string(node, path)?, node, path.to_owned())],
        };
        let mut out = Vec::new();
        for (spec, item, p) in items {
            let (target, options) = match spec.split_once(':') {
                Some((t, o)) => (t.to_owned(), Some(o)),
                None => (spec.clone(), None),
            };
            self.check_target(item, &p, &target)?;
            if options.is_some_and(|o| !o.is_empty()) {
                self.warn(item, &p, "tmpfs options are not supported yet, ignored");
            }
            out.push(Mount {
                kind: MountKind::Tmpfs,
                source: None,
                target,
                read_only: false,
            });
        }
        Ok(out)
    }

    fn service_networks(
        &mut self,
        service: &str,
        node: &Node,
        path: &str,
    ) -> Result<BTreeMap<String, ServiceNetwork>, Error> {
        let mut out = BTreeMap::new();
        let mut add = |cx: &mut Self, name: String, at: &Node, p: String, net| {
            cx.refs.networks.push(Ref {
                service: service.to_owned(),
                target: name.clone(),
                loc: at.loc,
                path: p,
            });
            out.insert(name, net);
        };
        match &node.kind {
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    let name = self.non_empty_string(item, &p)?;
                    add(self, name, item, p, ServiceNetwork::default());
                }
            }
            Kind::Map(entries) => {
                for (k, v) in entries {
                    let name = k.as_scalar().unwrap_or_default().to_owned();
                    let p = join(path, &name);
                    let mut net = ServiceNetwork::default();
                    if !v.is_null() {
                        let context = format!("network '{name}' of service '{service}'");
                        for (_, _, value, kp) in self.fields(
                            v,
                            &p,
                            SERVICE_NETWORK_KEYS,
                            SERVICE_NETWORK_UNSUPPORTED,
                            &context,
                            false,
                        )? {
                            net.aliases = self.string_list(value, &kp)?;
                        }
                    }
                    add(self, name, k, p, net);
                }
            }
            Kind::Scalar { .. } => {
                return Err(self.expected(node, path, "a sequence or a mapping"));
            }
        }
        Ok(out)
    }

    fn depends_on(
        &mut self,
        service: &str,
        node: &Node,
        path: &str,
    ) -> Result<BTreeMap<String, Dependency>, Error> {
        let mut out = BTreeMap::new();
        let mut entries: Vec<(String, &Node, Option<&Node>, String)> = Vec::new();
        match &node.kind {
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    entries.push((self.non_empty_string(item, &p)?, &**item, None, p));
                }
            }
            Kind::Map(map) => {
                for (k, v) in map {
                    let name = k.as_scalar().unwrap_or_default().to_owned();
                    let p = join(path, &name);
                    entries.push((name, &**k, Some(&**v), p));
                }
            }
            Kind::Scalar { .. } => {
                return Err(self.expected(node, path, "a sequence or a mapping"));
            }
        }
        for (name, at, spec, p) in entries {
            let mut dep = Dependency {
                condition: Condition::ServiceStarted,
                required: true,
            };
            if let Some(spec) = spec.filter(|s| !s.is_null()) {
                let context = format!("depends_on entry '{name}'");
                for (_, key, v, kp) in self.fields(spec, &p, DEPENDS_KEYS, &[], &context, false)? {
                    match key.as_str() {
                        "condition" => {
                            let c = self.string(v, &kp)?;
                            dep.condition = match c.as_str() {
                                "service_started" => Condition::ServiceStarted,
                                "service_healthy" => Condition::ServiceHealthy,
                                "service_completed_successfully" => {
                                    Condition::ServiceCompletedSuccessfully
                                }
                                _ => {
                                    return Err(self.err(
                                        v,
                                        &kp,
                                        format!(
                                            "unknown condition '{c}' (expected service_started, \
                                             service_healthy or service_completed_successfully)"
                                        ),
                                    ));
                                }
                            };
                        }
                        "required" => dep.required = self.bool(v, &kp)?,
                        "restart" if self.bool(v, &kp)? => {
                            self.warn(v, &kp, "not supported yet, ignored");
                        }
                        _ => {}
                    }
                }
            }
            self.refs.depends.push(Ref {
                service: service.to_owned(),
                target: name.clone(),
                loc: at.loc,
                path: p,
            });
            out.insert(name, dep);
        }
        Ok(out)
    }

    fn healthcheck(&mut self, node: &Node, path: &str) -> Result<Healthcheck, Error> {
        let mut hc = Healthcheck::default();
        let mut disabled = false;
        for (_, key, v, p) in self.fields(
            node,
            path,
            HEALTH_KEYS,
            HEALTH_UNSUPPORTED,
            "healthcheck",
            false,
        )? {
            match key.as_str() {
                "test" => {
                    hc.test = match v.kind {
                        Kind::Seq(_) => {
                            let test = self.string_list(v, &p)?;
                            match test.first().map(String::as_str) {
                                Some("NONE" | "CMD" | "CMD-SHELL") => {}
                                Some(other) => {
                                    return Err(self.err(
                                        v,
                                        &p,
                                        format!(
                                            "healthcheck test must start with NONE, CMD or \
                                             CMD-SHELL, found '{other}'"
                                        ),
                                    ));
                                }
                                None => {
                                    return Err(self.err(v, &p, "healthcheck test is empty"));
                                }
                            }
                            test
                        }
                        _ => vec!["CMD-SHELL".to_owned(), self.string(v, &p)?],
                    };
                }
                "interval" => hc.interval_ns = Some(self.duration(v, &p)?),
                "timeout" => hc.timeout_ns = Some(self.duration(v, &p)?),
                "start_period" => hc.start_period_ns = Some(self.duration(v, &p)?),
                "retries" => hc.retries = Some(self.integer(v, &p, "a number of retries")?),
                "disable" => disabled = self.bool(v, &p)?,
                _ => {}
            }
        }
        if disabled {
            return Ok(Healthcheck {
                test: vec!["NONE".to_owned()],
                ..Healthcheck::default()
            });
        }
        Ok(hc)
    }

    fn pull_policy(&self, node: &Node, path: &str) -> Result<crate::PullPolicy, Error> {
        use crate::PullPolicy;
        let text = self.string(node, path)?;
        Ok(match text.as_str() {
            "always" => PullPolicy::Always,
            "missing" | "if_not_present" => PullPolicy::Missing,
            "never" => PullPolicy::Never,
            "build" => PullPolicy::Build,
            other => {
                return Err(self.err(
                    node,
                    path,
                    format!(
                        "unknown pull_policy '{other}' (expected always, missing, never or build)"
                    ),
                ));
            }
        })
    }

    fn restart(&self, node: &Node, path: &str) -> Result<RestartPolicy, Error> {
        let text = self.string(node, path)?;
        Ok(match text.as_str() {
            "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => RestartPolicy::OnFailure { max_retries: None },
            other => match other.strip_prefix("on-failure:").map(str::parse::<u32>) {
                Some(Ok(n)) => RestartPolicy::OnFailure {
                    max_retries: Some(n),
                },
                _ => {
                    return Err(self.err(
                        node,
                        path,
                        format!(
                            "unknown restart policy '{other}' (expected no, always, \
                             on-failure[:N] or unless-stopped)"
                        ),
                    ));
                }
            },
        })
    }

    fn deploy<'n>(&mut self, node: &'n Node, path: &str) -> Result<Deploy<'n>, Error> {
        let mut out = Deploy::default();
        for (_, key, v, p) in
            self.fields(node, path, DEPLOY_KEYS, DEPLOY_UNSUPPORTED, "deploy", false)?
        {
            match key.as_str() {
                "replicas" => {
                    let n = self.integer(v, &p, "a number of replicas")?;
                    out.replicas = Some((n, v, p));
                }
                "mode" => {
                    let mode = self.string(v, &p)?;
                    out.mode_at = Some(v.loc);
                    match mode.as_str() {
                        "replicated" => {}
                        "global" => out.global = true,
                        _ => return Err(self.err(v, &p, format!("unknown deploy mode '{mode}'"))),
                    }
                }
                "resources" => {
                    for (_, key, v, p) in self.fields(
                        v,
                        &p,
                        &["limits", "reservations"],
                        &[],
                        "deploy.resources",
                        false,
                    )? {
                        let resources = self.resources(v, &p)?;
                        if key == "limits" {
                            out.limits = resources;
                        } else {
                            out.reservations = resources;
                        }
                    }
                }
                "restart_policy" => out.restart = Some(self.restart_policy(v, &p)?),
                "placement" => out.placement = self.placement(v, &p)?,
                "update_config" => out.update = Some(self.update_config(v, &p, &key)?),
                "rollback_config" => out.rollback = Some(self.update_config(v, &p, &key)?),
                _ => {}
            }
        }
        Ok(out)
    }

    fn update_config(
        &mut self,
        node: &Node,
        path: &str,
        which: &str,
    ) -> Result<UpdateConfig, Error> {
        let mut out = UpdateConfig::default();
        for (_, key, v, p) in self.fields(node, path, UPDATE_KEYS, &[], which, false)? {
            match key.as_str() {
                "parallelism" => {
                    out.parallelism = Some(self.integer(v, &p, "a number of containers")?)
                }
                "delay" => out.delay_ns = Some(self.duration(v, &p)?),
                "monitor" => out.monitor_ns = Some(self.duration(v, &p)?),
                "max_failure_ratio" => {
                    let text = self.scalar(v, &p, "a ratio between 0 and 1")?;
                    match text.trim().parse::<f64>() {
                        Ok(r) if (0.0..=1.0).contains(&r) => out.max_failure_ratio = Some(r),
                        _ => {
                            return Err(self.err(
                                v,
                                &p,
                                format!("invalid ratio '{text}' (expected 0 to 1, like 0.2)"),
                            ));
                        }
                    }
                }
                "order" => {
                    let text = self.string(v, &p)?;
                    out.order = Some(match text.as_str() {
                        "stop-first" => UpdateOrder::StopFirst,
                        "start-first" => UpdateOrder::StartFirst,
                        _ => {
                            return Err(self.err(
                                v,
                                &p,
                                format!(
                                    "unknown order '{text}' (expected stop-first or start-first)"
                                ),
                            ));
                        }
                    });
                }
                "failure_action" => {
                    let text = self.string(v, &p)?;
                    out.failure_action = Some(match text.as_str() {
                        "continue" => FailureAction::Continue,
                        "pause" => FailureAction::Pause,
                        "rollback" if which == "update_config" => FailureAction::Rollback,
                        _ => {
                            let expected = if which == "update_config" {
                                "continue, pause or rollback"
                            } else {
                                "continue or pause"
                            };
                            return Err(self.err(
                                v,
                                &p,
                                format!("unknown failure_action '{text}' (expected {expected})"),
                            ));
                        }
                    });
                }
                _ => {}
            }
        }
        Ok(out)
    }

    fn placement(&mut self, node: &Node, path: &str) -> Result<Placement, Error> {
        let mut out = Placement::default();
        for (_, key, v, p) in self.fields(
            node,
            path,
            PLACEMENT_KEYS,
            PLACEMENT_UNSUPPORTED,
            "deploy.placement",
            false,
        )? {
            match key.as_str() {
                "constraints" => {
                    for (i, item) in self.seq(v, &p)?.iter().enumerate() {
                        let ip = format!("{p}[{i}]");
                        let text =
                            self.scalar(item, &ip, "a constraint like 'node.labels.region == eu'")?;
                        let key = text.trim_start();
                        if ["node.role", "node.platform.", "engine.labels."]
                            .iter()
                            .any(|k| key.starts_with(k))
                        {
                            self.warn(
                                item,
                                &ip,
                                "swarm roles, platforms and engine labels do not exist in Drover; constraint ignored",
                            );
                            continue;
                        }
                        let c = scheduler::parse_constraint(&text)
                            .map_err(|m| self.err(item, &ip, m))?;
                        out.constraints.push(c.to_source());
                    }
                }
                "max_replicas_per_node" => {
                    out.max_replicas_per_node =
                        Some(self.integer(v, &p, "a number of replicas")?);
                }
                _ => {}
            }
        }
        Ok(out)
    }

    fn restart_policy(&mut self, node: &Node, path: &str) -> Result<RestartPolicy, Error> {
        let mut condition = "any".to_owned();
        let mut condition_node = node;
        let mut max = None;
        for (_, key, v, p) in self.fields(
            node,
            path,
            RESTART_POLICY_KEYS,
            &[],
            "restart_policy",
            false,
        )? {
            match key.as_str() {
                "condition" => {
                    condition = self.string(v, &p)?;
                    condition_node = v;
                }
                "max_attempts" => max = Some(self.integer(v, &p, "a number of attempts")?),
                _ => self.warn(v, &p, "not supported yet, ignored"),
            }
        }
        match condition.as_str() {
            "none" => Ok(RestartPolicy::No),
            "any" => Ok(RestartPolicy::Always),
            "on-failure" => Ok(RestartPolicy::OnFailure { max_retries: max }),
            other => Err(self.err(
                condition_node,
                &join(path, "condition"),
                format!("unknown restart condition '{other}' (expected none, on-failure or any)"),
            )),
        }
    }

    fn resources(&mut self, node: &Node, path: &str) -> Result<Resources, Error> {
        let mut out = Resources::default();
        for (_, key, v, p) in self.fields(
            node,
            path,
            RESOURCE_KEYS,
            RESOURCE_UNSUPPORTED,
            "resources",
            false,
        )? {
            match key.as_str() {
                "cpus" => out.cpus = Some(self.cpus(v, &p)?),
                "memory" => out.memory = Some(self.memory(v, &p)?),
                "pids" => out.pids = Some(self.integer(v, &p, "an integer")?),
                _ => {}
            }
        }
        Ok(out)
    }

    fn cpus(&self, node: &Node, path: &str) -> Result<f64, Error> {
        let text = self.scalar(node, path, "a number of CPUs")?;
        match text.trim().parse::<f64>() {
            Ok(n) if n.is_finite() && n >= 0.0 => Ok(n),
            _ => Err(self.err(node, path, format!("invalid number of CPUs '{text}'"))),
        }
    }

    fn memory(&self, node: &Node, path: &str) -> Result<u64, Error> {
        let text = self.scalar(node, path, "a size like '512m'")?;
        parse_bytes(&text).map_err(|m| self.err(node, path, m))
    }

    /// `links: [db, "db:database"]` → `service:alias` entries (the linked service is
    /// checked to exist once all services are read).
    fn links(&mut self, service: &str, node: &Node, path: &str) -> Result<Vec<String>, Error> {
        let refs = self.service_refs(node, path, |text| {
            let (target, alias) = text.split_once(':').unwrap_or((text, text));
            if target.is_empty() || alias.is_empty() || alias.contains(':') {
                return Err(format!(
                    "invalid link '{text}' (expected SERVICE or SERVICE:ALIAS)"
                ));
            }
            Ok((target.to_owned(), format!("{target}:{alias}")))
        })?;
        let mut out = Vec::new();
        for (target, entry, loc, path) in refs {
            self.refs.links.push(Ref {
                service: service.to_owned(),
                target,
                loc,
                path,
            });
            out.push(entry);
        }
        Ok(out)
    }

    /// A sequence of strings naming services of the stack: each entry read by `parse` into
    /// (the service, the entry as kept), with where it is.
    fn service_refs(
        &self,
        node: &Node,
        path: &str,
        parse: impl Fn(&str) -> Result<(String, String), String>,
    ) -> Result<Vec<(String, String, Location, String)>, Error> {
        let Kind::Seq(items) = &node.kind else {
            return Err(self.expected(node, path, "a sequence"));
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let text = self.non_empty_string(item, &p)?;
            let (target, entry) = parse(&text).map_err(|m| self.err(item, &p, m))?;
            out.push((target, entry, item.loc, p));
        }
        Ok(out)
    }

    fn extra_hosts(&self, node: &Node, path: &str) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        match &node.kind {
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    let text = self.string(item, &p)?;
                    // "host=ip" is preferred by compose; "host:ip" splits at the first ':' so
                    // that IPv6 addresses survive.
                    let split = text.split_once('=').or_else(|| text.split_once(':'));
                    match split {
                        Some((host, ip)) if !host.is_empty() && !ip.is_empty() => {
                            out.push(format!("{host}:{ip}"));
                        }
                        _ => {
                            return Err(self.err(
                                item,
                                &p,
                                format!("invalid extra host '{text}' (expected host:ip)"),
                            ));
                        }
                    }
                }
            }
            Kind::Map(entries) => {
                for (k, v) in entries {
                    let host = k.as_scalar().unwrap_or_default();
                    let p = join(path, host);
                    let ips = match v.kind {
                        Kind::Seq(_) => self.string_list(v, &p)?,
                        _ => vec![self.non_empty_string(v, &p)?],
                    };
                    for ip in ips {
                        out.push(format!("{host}:{ip}"));
                    }
                }
            }
            Kind::Scalar { .. } => {
                return Err(self.expected(node, path, "a sequence or a mapping"));
            }
        }
        Ok(out)
    }

    // ---- cross references and profiles -------------------------------------------------

    fn finish(
        &mut self,
        mut project: Project,
        mut all: BTreeMap<String, Service>,
    ) -> Result<Project, Error> {
        let file = self.file;
        let names = &self.names;
        let ref_err = |r: &Ref, message: String| {
            let f = names
                .get(usize::from(r.loc.file))
                .map_or(file, String::as_str);
            Error::new(f, r.loc, r.path.clone(), message)
        };
        for r in &self.refs.networks {
            if r.target != "default" && !project.networks.contains_key(&r.target) {
                return Err(ref_err(
                    r,
                    format!(
                        "service '{}' uses network '{}', which is not declared under the \
                         top-level 'networks'",
                        r.service, r.target
                    ),
                ));
            }
        }
        for r in &self.refs.volumes {
            if !project.volumes.contains_key(&r.target) {
                return Err(ref_err(
                    r,
                    format!(
                        "service '{}' uses volume '{}', which is not declared under the \
                         top-level 'volumes'",
                        r.service, r.target
                    ),
                ));
            }
        }
        for (kind, r) in &self.refs.files {
            let declared = match kind {
                FileKind::Secret => project.secrets.contains_key(&r.target),
                FileKind::Config => project.configs.contains_key(&r.target),
            };
            if !declared {
                let (what, top) = (kind.as_str(), kind.top_key());
                return Err(ref_err(
                    r,
                    format!(
                        "service '{}' uses {what} '{}', which is not declared under the \
                         top-level '{top}'",
                        r.service, r.target
                    ),
                ));
            }
        }
        for r in &self.refs.links {
            if !all.contains_key(&r.target) {
                return Err(ref_err(
                    r,
                    format!(
                        "service '{}' links to undefined service '{}'",
                        r.service, r.target
                    ),
                ));
            }
        }
        for r in &self.refs.depends {
            if !all.contains_key(&r.target) {
                return Err(ref_err(
                    r,
                    format!(
                        "service '{}' depends on undefined service '{}'",
                        r.service, r.target
                    ),
                ));
            }
        }
        let graph: BTreeMap<&str, Vec<&str>> = all
            .iter()
            .map(|(name, s)| {
                (
                    name.as_str(),
                    s.depends_on.keys().map(String::as_str).collect(),
                )
            })
            .collect();
        if let Some(cycle) = find_cycle(&graph) {
            let (from, to) = (cycle.first(), cycle.get(1));
            let at = self
                .refs
                .depends
                .iter()
                .find(|r| Some(&r.service) == from && Some(&r.target) == to);
            let message = format!("dependency cycle: {}", cycle.join(" -> "));
            return Err(match at {
                Some(r) => ref_err(r, message),
                None => Error::new(file, Location::default(), "", message),
            });
        }

        // Profiles.
        let active_profiles = self.input.profiles;
        let all_profiles = active_profiles.iter().any(|p| p == "*");
        let is_active = |s: &Service| {
            all_profiles
                || s.profiles.is_empty()
                || s.profiles.iter().any(|p| active_profiles.contains(p))
        };
        let inactive: BTreeSet<String> = all
            .iter()
            .filter(|(_, s)| !is_active(s))
            .map(|(n, _)| n.clone())
            .collect();
        for r in &self.refs.depends {
            let (Some(service), true) = (all.get(&r.service), inactive.contains(&r.target)) else {
                continue;
            };
            if !is_active(service) {
                continue;
            }
            let required = service.depends_on.get(&r.target).is_none_or(|d| d.required);
            if required {
                let profiles = all
                    .get(&r.target)
                    .map(|s| s.profiles.join(", "))
                    .unwrap_or_default();
                return Err(ref_err(
                    r,
                    format!(
                        "service '{}' depends on service '{}', which is not enabled (enable \
                         one of its profiles: {profiles})",
                        r.service, r.target
                    ),
                ));
            }
        }
        all.retain(|name, _| !inactive.contains(name));
        for service in all.values_mut() {
            service.depends_on.retain(|dep, _| !inactive.contains(dep));
        }
        if all.values().any(|s| s.networks.contains_key("default")) {
            project.networks.entry("default".to_owned()).or_default();
        }
        if let Err(e) = crate::check_sidekicks(&all) {
            let at = self
                .refs
                .keys
                .iter()
                .find(|r| r.service == e.service && r.target == e.key);
            let path = format!("services.{}.{}", e.service, e.key);
            return Err(match at {
                Some(r) => ref_err(r, e.message).with_path(path),
                None => Error::new(file, Location::default(), path, e.message),
            });
        }
        for r in self
            .refs
            .keys
            .iter()
            .filter(|r| r.target == "container_name")
        {
            let one = all
                .get(&r.service)
                .is_none_or(|s| s.replicas <= 1 && !s.global);
            if !one {
                return Err(ref_err(
                    r,
                    format!(
                        "service '{}' has a container_name and more than one replica: a \
                         fixed name runs once",
                        r.service
                    ),
                ));
            }
        }
        project.services = all;
        for r in &self.refs.counts {
            if let Some(primary) = project.primary_of(&r.service) {
                return Err(ref_err(
                    r,
                    format!(
                        "service '{}' runs beside each replica of '{primary}' (a sidekick): \
                         its replica count and mode are {primary}'s; remove {}",
                        r.service, r.target
                    ),
                ));
            }
        }
        Ok(project)
    }

    /// `devices: ["/dev/fuse", "/dev/sda:/dev/xvda:rw", {source: /dev/kvm, target:
    /// /dev/kvm, permissions: rwm}]`.
    fn devices(&mut self, node: &Node, path: &str) -> Result<Vec<crate::Device>, Error> {
        let mut out = Vec::new();
        for (i, item) in self.seq(node, path)?.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let device = match item.kind {
                Kind::Map(_) => {
                    let (mut host, mut container, mut permissions) = (None, None, None);
                    for (_, key, value, kp) in self.fields(
                        item,
                        &p,
                        &["source", "target", "permissions"],
                        &[],
                        "device",
                        false,
                    )? {
                        let text = self.non_empty_string(value, &kp)?;
                        match key.as_str() {
                            "source" => host = Some(text),
                            "target" => container = Some(text),
                            _ => permissions = Some(text),
                        }
                    }
                    let Some(host) = host else {
                        return Err(self.err(item, &p, "a device needs a source"));
                    };
                    crate::Device {
                        container: container.unwrap_or_else(|| host.clone()),
                        host,
                        permissions: permissions.unwrap_or_else(|| "rwm".to_owned()),
                    }
                }
                _ => {
                    let text = self.non_empty_string(item, &p)?;
                    parse_device(&text).map_err(|m| self.err(item, &p, m))?
                }
            };
            device.check().map_err(|m| self.err(item, &p, m))?;
            out.push(device);
        }
        Ok(out)
    }

    /// A string or a sequence of strings.
    fn one_or_list(&self, node: &Node, path: &str) -> Result<Vec<String>, Error> {
        match node.kind {
            Kind::Seq(_) => self.string_list(node, path),
            _ => Ok(vec![self.non_empty_string(node, path)?]),
        }
    }

    /// `expose: [80, "8000-8001/udp"]` → `80/tcp`, `8000/udp`, `8001/udp`.
    fn expose(&mut self, node: &Node, path: &str) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        for (i, item) in self.seq(node, path)?.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let text = self.scalar(item, &p, "a port")?;
            let (range, proto) = text.split_once('/').unwrap_or((&text, "tcp"));
            let bad = || format!("invalid expose '{text}' (expected PORT[-PORT][/tcp|udp])");
            if proto != "tcp" && proto != "udp" {
                return Err(self.err(item, &p, bad()));
            }
            let (lo, hi) = match range.split_once('-') {
                Some((a, b)) => (a.parse::<u16>(), b.parse::<u16>()),
                None => (range.parse::<u16>(), range.parse::<u16>()),
            };
            let (Ok(lo), Ok(hi)) = (lo, hi) else {
                return Err(self.err(item, &p, bad()));
            };
            if lo == 0 || hi < lo {
                return Err(self.err(item, &p, bad()));
            }
            self.ports += usize::from(hi - lo) + 1;
            if self.ports > MAX_PORTS {
                return Err(self.err(item, &p, format!("more than {MAX_PORTS} ports")));
            }
            out.extend((lo..=hi).map(|port| format!("{port}/{proto}")));
        }
        Ok(out)
    }

    /// `ulimits: {nofile: {soft: 20000, hard: 40000}, nproc: 65535}`.
    fn ulimits(
        &mut self,
        node: &Node,
        path: &str,
    ) -> Result<BTreeMap<String, crate::Ulimit>, Error> {
        let mut out = BTreeMap::new();
        for (k, v) in self.map(node, path)? {
            let name = k.as_scalar().unwrap_or_default().to_owned();
            let p = join(path, &name);
            let limit = match v.kind {
                Kind::Map(_) => {
                    let (mut soft, mut hard) = (None, None);
                    for (_, key, value, kp) in
                        self.fields(v, &p, &["soft", "hard"], &[], "ulimit", false)?
                    {
                        let n: i64 = self.integer(value, &kp, "an integer")?;
                        if key == "soft" {
                            soft = Some(n);
                        } else {
                            hard = Some(n);
                        }
                    }
                    match (soft, hard) {
                        (Some(soft), Some(hard)) if soft <= hard => crate::Ulimit { soft, hard },
                        (Some(_), Some(_)) => {
                            return Err(self.err(v, &p, "soft limit above the hard limit"));
                        }
                        _ => return Err(self.err(v, &p, "a ulimit needs soft and hard")),
                    }
                }
                _ => {
                    let n: i64 = self.integer(v, &p, "an integer or {soft, hard}")?;
                    crate::Ulimit { soft: n, hard: n }
                }
            };
            out.insert(name, limit);
        }
        Ok(out)
    }

    /// `logging: {driver: json-file, options: {max-size: 10m}}`.
    fn logging(&mut self, node: &Node, path: &str) -> Result<crate::Logging, Error> {
        let mut out = crate::Logging::default();
        for (_, key, v, p) in
            self.fields(node, path, &["driver", "options"], &[], "logging", false)?
        {
            match key.as_str() {
                "driver" => out.driver = Some(self.non_empty_string(v, &p)?),
                "options" => out.options = self.labels(v, &p)?,
                _ => {}
            }
        }
        Ok(out)
    }

    /// `volumes_from: [SERVICE, SERVICE:ro, SERVICE:rw]` (containers of other projects,
    /// `container:NAME`, are not supported: Drover places replicas itself).
    fn volumes_from(
        &mut self,
        service: &str,
        node: &Node,
        path: &str,
    ) -> Result<Vec<String>, Error> {
        let refs = self.service_refs(node, path, |text| {
            let (target, mode) = text.split_once(':').unwrap_or((text, "rw"));
            if target == "container" {
                return Err(format!(
                    "volumes_from '{text}': containers outside the stack are not supported \
                     (name a service of this stack)"
                ));
            }
            if target.is_empty() || !matches!(mode, "ro" | "rw") {
                return Err(format!(
                    "invalid volumes_from '{text}' (expected SERVICE or SERVICE:ro)"
                ));
            }
            let entry = match mode {
                "ro" => format!("{target}:ro"),
                _ => target.to_owned(),
            };
            Ok((target.to_owned(), entry))
        })?;
        let mut out = Vec::new();
        for (i, (_, entry, loc, path)) in refs.into_iter().enumerate() {
            self.refs.keys.push(Ref {
                service: service.to_owned(),
                target: format!("volumes_from[{i}]"),
                loc,
                path,
            });
            out.push(entry);
        }
        Ok(out)
    }
}

#[derive(Default)]
struct Deploy<'n> {
    replicas: Option<(u32, &'n Node, String)>,
    /// Where `mode` was given.
    mode_at: Option<Location>,
    update: Option<UpdateConfig>,
    rollback: Option<UpdateConfig>,
    global: bool,
    placement: Placement,
    limits: Resources,
    reservations: Resources,
    restart: Option<RestartPolicy>,
}

/// Converts a subtree to JSON for `x-*` extensions: plain scalars are typed by the core
/// schema, everything else is a string.
pub(crate) fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value;
    match &node.kind {
        Kind::Scalar { text, .. } => match node.scalar_type() {
            Some(ScalarType::Null) => Value::Null,
            Some(ScalarType::Bool(b)) => Value::Bool(b),
            Some(ScalarType::Int) => {
                let parsed = if let Some(hex) = text.strip_prefix("0x") {
                    i64::from_str_radix(hex, 16).ok()
                } else if let Some(oct) = text.strip_prefix("0o") {
                    i64::from_str_radix(oct, 8).ok()
                } else {
                    text.parse::<i64>().ok()
                };
                match parsed {
                    Some(n) if n >= 0 => Value::from(n.unsigned_abs()),
                    Some(n) => Value::from(n),
                    None => match text.parse::<u64>() {
                        Ok(n) => Value::from(n),
                        Err(_) => float_or_string(text),
                    },
                }
            }
            Some(ScalarType::Float) => float_or_string(text),
            _ => Value::String(text.clone()),
        },
        Kind::Seq(items) => Value::Array(items.iter().map(|i| to_json(i)).collect()),
        Kind::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.as_scalar().unwrap_or_default().to_owned(), to_json(v)))
                .collect(),
        ),
    }
}

fn float_or_string(text: &str) -> serde_json::Value {
    text.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or_else(
            || serde_json::Value::String(text.to_owned()),
            serde_json::Value::Number,
        )
}

/// A file mode: octal when written with a leading `0` or `0o` (`0440`, `0o440`, as compose
/// reads it), else decimal (`288`).
fn parse_mode(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let parsed = match t
        .strip_prefix("0o")
        .or_else(|| t.strip_prefix('0').filter(|r| !r.is_empty()))
    {
        Some(octal) => u32::from_str_radix(octal, 8).ok(),
        None => t.parse().ok(),
    };
    match parsed {
        Some(m) if m <= 0o7777 => Ok(m),
        _ => Err(format!(
            "invalid file mode '{text}' (expected octal like 0440)"
        )),
    }
}

/// A short `devices` entry, as the engine reads `--device`: `HOST`, `HOST:CONTAINER`,
/// `HOST:PERMISSIONS` or `HOST:CONTAINER:PERMISSIONS`.
fn parse_device(text: &str) -> Result<crate::Device, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let is_mode = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
    let (host, container, permissions) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, m] if is_mode(m) => (*h, *h, *m),
        [h, c] => (*h, *c, "rwm"),
        [h, c, m] => (*h, *c, *m),
        _ => {
            return Err(format!(
                "invalid device '{text}' (expected HOST[:CONTAINER[:PERMISSIONS]])"
            ));
        }
    };
    if !host.starts_with('/') {
        return Err(format!(
            "invalid device '{text}' (expected HOST[:CONTAINER[:PERMISSIONS]] with an \
             absolute host path; CDI device names are not supported)"
        ));
    }
    Ok(crate::Device {
        host: host.to_owned(),
        container: container.to_owned(),
        permissions: permissions.to_owned(),
    })
}
