//! Rancher 1.x compose files → what `compose::load` reads.
//!
//! - Layout: v1 (services at the top level) and v2 (`version:` + `services:`) become one
//!   `services:` mapping; v2's `networks`, `volumes`, `secrets`, `configs` are kept.
//! - v1 keys: `net` → `network_mode` (`container:X` → `service:X` for a service of the
//!   template), `log_driver`/`log_opt` → `logging`, `dockerfile` → `build.dockerfile`.
//! - `rancher-compose.yml`: `scale` → replicas, `health_check` → `x-drover.health`
//!   (`request_line` → an http check on `port`, else tcp; `interval`, `response_timeout`,
//!   `initializing_timeout` in ms; `unhealthy_threshold` → retries; `strategy` →
//!   `on_unhealthy`), `upgrade_strategy` → `deploy.update_config`, `drain_timeout_ms` →
//!   `x-drover.drain`, `start_on_create`.
//! - Labels: `io.rancher.sidekicks` → `x-drover.sidekick_of` on each sidekick (unless it
//!   already shares its primary's network or volumes), `io.rancher.scheduler.global` →
//!   `deploy.mode: global`, `affinity:host_label[_ne]` → placement constraints,
//!   `affinity:container_label*` on `io.rancher.stack_service.name` → `x-drover.affinity`
//!   (hard or soft, anti for `_ne`; anti-affinity to the service itself → at most one per
//!   host), `io.rancher.container.start_once` → `restart: "no"`,
//!   `hostname_override: container_name` → `hostname: STACK-SERVICE-1`,
//!   `pull_image: always` → `pull_policy: always`.
//! - Everything else that has no Drover meaning is a warning naming the key or label, the
//!   file and the line; unknown keys are dropped (with that warning), `io.rancher.*`
//!   labels without meaning are kept as plain labels.

use crate::render::Names;
use crate::yaml::{Kind, Loc, Node};

pub(crate) struct Converter<'a> {
    names: &'a Names,
    stack: &'a str,
    pub warnings: Vec<String>,
}

const TOP_KEPT: &[&str] = &["networks", "volumes", "secrets", "configs"];

fn truthy(s: &str) -> bool {
    matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "true" | "yes" | "on" | "1"
    )
}

fn ms(n: &Node) -> Option<String> {
    let t = n.as_str()?.trim();
    let v: u64 = t.parse().ok()?;
    Some(format!("{v}ms"))
}

impl<'a> Converter<'a> {
    pub fn new(names: &'a Names, stack: &'a str) -> Self {
        Converter {
            names,
            stack,
            warnings: Vec::new(),
        }
    }

    fn warn(&mut self, loc: Loc, path: &str, message: impl Into<String>) {
        self.warnings
            .push(self.names.at(loc, path, message).to_string());
    }

    /// The converted document. `rc` is `rancher-compose.yml` without its `.catalog`.
    pub fn convert(&mut self, doc: Node, rc: Option<Node>) -> Node {
        let root_loc = doc.loc;
        let Kind::Map(top) = doc.kind else {
            self.warn(
                doc.loc,
                "",
                format!("expected a mapping of services, found {}", doc.describe()),
            );
            return Node::map(root_loc, vec![]);
        };
        let v2 = top
            .iter()
            .any(|(k, _)| matches!(k.as_str(), Some("services" | "version")));
        let mut out: Vec<(Node, Node)> = Vec::new();
        let mut services: Vec<(Node, Node)> = Vec::new();
        let mut services_loc = root_loc;
        for (k, v) in top {
            let key = k.as_str().unwrap_or_default().to_owned();
            if !v2 {
                services.push((k, v));
                continue;
            }
            match key.as_str() {
                "version" => {}
                "services" => {
                    services_loc = k.loc;
                    if let Kind::Map(e) = v.kind {
                        services = e;
                    } else if !v.is_null() {
                        self.warn(v.loc, "services", "expected a mapping; ignored");
                    }
                }
                k2 if TOP_KEPT.contains(&k2) || k2.starts_with("x-") => out.push((k, v)),
                _ => self.warn(
                    k.loc,
                    &key,
                    format!("top-level key '{key}' is not supported by Drover; ignored"),
                ),
            }
        }
        let names: Vec<String> = services
            .iter()
            .filter_map(|(k, _)| k.as_str().map(str::to_owned))
            .collect();
        // rancher-compose.yml's services, in either layout.
        let mut rc_services: Vec<(Node, Node)> = Vec::new();
        if let Some(rc) = rc
            && let Kind::Map(e) = rc.kind
        {
            let rc_v2 = e
                .iter()
                .any(|(k, _)| matches!(k.as_str(), Some("services" | "version")));
            for (k, v) in e {
                let key = k.as_str().unwrap_or_default().to_owned();
                if !rc_v2 {
                    rc_services.push((k, v));
                } else if key == "services" {
                    if let Kind::Map(s) = v.kind {
                        rc_services.extend(s);
                    }
                } else if key != "version" {
                    self.warn(
                        k.loc,
                        &key,
                        format!("'{key}' is not supported by Drover; ignored"),
                    );
                }
            }
        }
        let mut sidekicks: Vec<(String, Loc, String, Vec<String>)> = Vec::new();
        let mut converted: Vec<(Node, Node)> = Vec::new();
        for (k, v) in services {
            let name = k.as_str().unwrap_or_default().to_owned();
            let rc = rc_services
                .iter()
                .position(|(rk, _)| rk.as_str() == Some(&name))
                .map(|i| rc_services.remove(i).1);
            let svc = self.service(&name, v, rc, &names, &mut sidekicks);
            converted.push((k, svc));
        }
        for (k, _) in &rc_services {
            let name = k.as_str().unwrap_or_default();
            self.warn(
                k.loc,
                name,
                format!("no service '{name}' in the compose file; its settings are ignored"),
            );
        }
        // Sidekicks: each named service runs beside its primary.
        for (primary, loc, path, list) in sidekicks {
            for s in list {
                // A primary that mounts its sidekick's volumes (or joins its network) is,
                // in Drover, that sidekick's sidekick: the unit's replica count, mode and
                // placement are then the sidekick's, so they move there.
                let refs_sidekick = converted
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(&primary))
                    .is_some_and(|(_, p)| refs(p, &s));
                if refs_sidekick {
                    let moved: Vec<(String, Node)> = converted
                        .iter_mut()
                        .find(|(k, _)| k.as_str() == Some(&primary))
                        .map(|(_, p)| {
                            ["scale", "deploy"]
                                .iter()
                                .filter_map(|key| Some((key.to_string(), p.remove(key)?)))
                                .collect()
                        })
                        .unwrap_or_default();
                    if let Some((_, svc)) =
                        converted.iter_mut().find(|(k, _)| k.as_str() == Some(&s))
                    {
                        for (key, value) in moved {
                            svc.set(&key, value);
                        }
                    }
                    self.warn(
                        loc,
                        &path,
                        format!(
                            "'{primary}' uses the volumes or network of its sidekick '{s}', so \
                             in Drover '{s}' leads their unit: scale, mode and placement move to it"
                        ),
                    );
                    continue;
                }
                let Some((_, svc)) = converted.iter_mut().find(|(k, _)| k.as_str() == Some(&s))
                else {
                    self.warn(
                        loc,
                        &path,
                        format!("sidekick '{s}' is not a service of this template"),
                    );
                    continue;
                };
                let already = svc
                    .get("network_mode")
                    .and_then(Node::as_str)
                    .and_then(|m| m.strip_prefix("service:"))
                    .is_some_and(|x| names.iter().any(|n| n == x))
                    || svc.get("volumes_from").is_some_and(|vf| {
                        vf.items().iter().filter_map(Node::as_str).any(|x| {
                            let x = x.split(':').next().unwrap_or(x);
                            names.iter().any(|n| n == x)
                        })
                    });
                if !already {
                    xdrover(svc, loc).set("sidekick_of", Node::str(loc, primary.clone()));
                }
            }
        }
        out.insert(
            0,
            (
                Node::plain(services_loc, "services"),
                Node::map(services_loc, converted),
            ),
        );
        Node::map(root_loc, out)
    }

    fn service(
        &mut self,
        name: &str,
        node: Node,
        rc: Option<Node>,
        names: &[String],
        sidekicks: &mut Vec<(String, Loc, String, Vec<String>)>,
    ) -> Node {
        let loc = node.loc;
        let path = format!("services.{name}");
        let Kind::Map(entries) = node.kind else {
            if !node.is_null() {
                self.warn(
                    loc,
                    &path,
                    format!("expected a mapping, found {}", node.describe()),
                );
            }
            return Node::map(loc, vec![]);
        };
        let mut svc = Node::map(loc, vec![]);
        let mut log_driver: Option<Node> = None;
        let mut log_opt: Option<Node> = None;
        let mut dockerfile: Option<Node> = None;
        let mut labels: Vec<(Node, Node)> = Vec::new();
        for (k, v) in entries {
            let key = k.as_str().unwrap_or_default().to_owned();
            let kp = format!("{path}.{key}");
            match key.as_str() {
                "net" | "network_mode" => {
                    let mode = v.as_str().unwrap_or_default().to_owned();
                    if let Some(c) = mode.strip_prefix("container:") {
                        if names.iter().any(|n| n == c) {
                            svc.set("network_mode", Node::str(v.loc, format!("service:{c}")));
                        } else {
                            self.warn(
                                v.loc,
                                &kp,
                                format!(
                                    "container '{c}' is not a service of this template; ignored"
                                ),
                            );
                        }
                    } else if mode == "bridge" || mode == "default" || mode.is_empty() {
                        // The stack's own network: what Drover gives every service.
                    } else {
                        svc.set("network_mode", v);
                    }
                }
                "log_driver" => log_driver = Some(v),
                "log_opt" => log_opt = Some(v),
                "dockerfile" => dockerfile = Some(v),
                "labels" => labels = label_entries(v),
                "volumes_from" => {
                    let mut kept = Vec::new();
                    for item in v.items() {
                        match item.as_str() {
                            Some(t) if t.starts_with("container:") => self.warn(
                                item.loc,
                                &kp,
                                format!(
                                    "'{t}': another container's volumes are not supported; ignored"
                                ),
                            ),
                            _ => kept.push(item.clone()),
                        }
                    }
                    svc.set(
                        "volumes_from",
                        Node {
                            loc: v.loc,
                            kind: Kind::Seq(kept),
                        },
                    );
                }
                _ if compose::is_service_key(&key) => svc.set(&key, v),
                _ => self.warn(
                    k.loc,
                    &kp,
                    format!("'{key}' is not a compose key Drover knows; ignored"),
                ),
            }
        }
        if log_driver.is_some() || log_opt.is_some() {
            let l = log_driver
                .as_ref()
                .or(log_opt.as_ref())
                .map_or(loc, |n| n.loc);
            let mut logging = Node::map(l, vec![]);
            if let Some(d) = log_driver {
                logging.set("driver", d);
            }
            if let Some(o) = log_opt {
                logging.set("options", o);
            }
            svc.set("logging", logging);
        }
        if let Some(d) = dockerfile {
            match svc.get_mut("build") {
                Some(b) if matches!(b.kind, Kind::Map(_)) => b.set("dockerfile", d),
                Some(b) => {
                    let ctx = b.clone();
                    let mut m = Node::map(ctx.loc, vec![]);
                    m.set("context", ctx);
                    m.set("dockerfile", d);
                    *b = m;
                }
                None => self.warn(
                    d.loc,
                    &format!("{path}.dockerfile"),
                    "dockerfile without build; ignored",
                ),
            }
        }
        if let Some(rc) = rc {
            self.rancher_compose(name, &mut svc, rc);
        }
        self.labels(name, &mut svc, labels, sidekicks);
        svc
    }

    fn rancher_compose(&mut self, name: &str, svc: &mut Node, rc: Node) {
        let Kind::Map(entries) = rc.kind else {
            return;
        };
        for (k, v) in entries {
            let key = k.as_str().unwrap_or_default().to_owned();
            let kp = format!("{name}.{key}");
            match key.as_str() {
                "scale" => {
                    if let Some(d) = svc.get_mut("deploy") {
                        d.remove("replicas");
                    }
                    svc.set("scale", v);
                }
                "health_check" => self.health_check(&kp, svc, v),
                "start_on_create" => {
                    if !v.as_str().is_some_and(truthy) {
                        self.warn(
                            v.loc,
                            &kp,
                            "start_on_create: false has no Drover equivalent: containers start when made",
                        );
                    }
                }
                "upgrade_strategy" => {
                    let mut uc = Node::map(v.loc, vec![]);
                    for (uk, uv) in v.entries() {
                        match uk.as_str().unwrap_or_default() {
                            "start_first" => {
                                let order = if uv.as_str().is_some_and(truthy) {
                                    "start-first"
                                } else {
                                    "stop-first"
                                };
                                uc.set("order", Node::str(uv.loc, order));
                            }
                            "batch_size" => uc.set("parallelism", uv.clone()),
                            "interval_millis" => {
                                if let Some(d) = ms(uv) {
                                    uc.set("delay", Node::str(uv.loc, d));
                                }
                            }
                            other => self.warn(
                                uk.loc,
                                &format!("{kp}.{other}"),
                                format!("'{other}' has no Drover meaning; ignored"),
                            ),
                        }
                    }
                    deploy(svc, v.loc).set("update_config", uc);
                }
                "drain_timeout_ms" => match ms(&v) {
                    Some(d) => xdrover(svc, v.loc).set("drain", Node::str(v.loc, d)),
                    None => self.warn(v.loc, &kp, "expected milliseconds; ignored"),
                },
                _ => self.warn(
                    k.loc,
                    &kp,
                    format!("rancher-compose key '{key}' has no Drover meaning; ignored"),
                ),
            }
        }
    }

    fn health_check(&mut self, path: &str, svc: &mut Node, hc: Node) {
        let loc = hc.loc;
        let mut h = Node::map(loc, vec![]);
        let port = hc.get("port").cloned();
        let mut http = None;
        for (k, v) in hc.entries() {
            let key = k.as_str().unwrap_or_default();
            let kp = format!("{path}.{key}");
            match key {
                "port" => {}
                "request_line" => {
                    // "GET /healthz HTTP/1.0": the path is the second word.
                    let line = v.as_str().unwrap_or_default();
                    let mut words = line.split_whitespace();
                    let method = words.next().unwrap_or_default();
                    match words.next() {
                        Some(p) if p.starts_with('/') => {
                            if method != "GET" {
                                self.warn(
                                    v.loc,
                                    &kp,
                                    format!("method {method}: Drover checks with GET"),
                                );
                            }
                            http = Some(Node::str(v.loc, p));
                        }
                        _ if line.trim().is_empty() => {}
                        _ => self.warn(
                            v.loc,
                            &kp,
                            format!("'{line}' is not METHOD /PATH [VERSION]; a tcp check is used"),
                        ),
                    }
                }
                "interval" | "response_timeout" | "initializing_timeout" => {
                    let field = match key {
                        "interval" => "interval",
                        "response_timeout" => "timeout",
                        _ => "start_period",
                    };
                    match ms(v) {
                        Some(d) => h.set(field, Node::str(v.loc, d)),
                        None => self.warn(v.loc, &kp, "expected milliseconds; ignored"),
                    }
                }
                "unhealthy_threshold" => h.set("retries", v.clone()),
                "healthy_threshold" => {
                    if v.as_str().map(str::trim) != Some("1") {
                        self.warn(
                            v.loc,
                            &kp,
                            "Drover counts a container healthy after one passing check; ignored",
                        );
                    }
                }
                "strategy" => {
                    let s = v.as_str().unwrap_or_default();
                    let policy = match s {
                        "recreate" => "recreate",
                        "none" => "none",
                        "recreateOnQuorum" => "recreate_on_quorum",
                        _ => {
                            self.warn(
                                v.loc,
                                &kp,
                                format!("unknown strategy '{s}'; recreate is used"),
                            );
                            "recreate"
                        }
                    };
                    h.set("on_unhealthy", Node::str(v.loc, policy));
                }
                _ => self.warn(
                    k.loc,
                    &kp,
                    format!("health_check key '{key}' has no Drover meaning; ignored"),
                ),
            }
        }
        let Some(port) = port else {
            self.warn(loc, path, "a health check without port: ignored");
            return;
        };
        match http {
            Some(p) => {
                h.set("http", p);
                h.set("port", port);
            }
            None => h.set("tcp", port),
        }
        xdrover(svc, loc).set("health", h);
    }

    fn labels(
        &mut self,
        name: &str,
        svc: &mut Node,
        labels: Vec<(Node, Node)>,
        sidekicks: &mut Vec<(String, Loc, String, Vec<String>)>,
    ) {
        let mut kept: Vec<(Node, Node)> = Vec::new();
        for (k, v) in labels {
            let key = k.as_str().unwrap_or_default().to_owned();
            let value = v.text().unwrap_or_default();
            let kp = format!("services.{name}.labels.{key}");
            let list = || -> Vec<String> {
                value
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            };
            match key.as_str() {
                "io.rancher.sidekicks" => sidekicks.push((name.to_owned(), v.loc, kp, list())),
                "io.rancher.scheduler.global" => {
                    if truthy(&value) {
                        deploy(svc, v.loc).set("mode", Node::str(v.loc, "global"));
                    }
                }
                "io.rancher.container.start_once" => {
                    if truthy(&value) {
                        svc.set("restart", Node::str(v.loc, "no"));
                    }
                }
                "io.rancher.container.pull_image" => {
                    if value == "always" {
                        svc.set("pull_policy", Node::str(v.loc, "always"));
                    } else {
                        self.warn(
                            v.loc,
                            &kp,
                            format!("'{value}': only 'always' has a Drover meaning; ignored"),
                        );
                    }
                }
                "io.rancher.container.hostname_override" => {
                    let scale = svc
                        .get("scale")
                        .and_then(Node::as_str)
                        .and_then(|s| s.trim().parse::<u32>().ok())
                        .unwrap_or(1);
                    if value != "container_name" {
                        self.warn(
                            v.loc,
                            &kp,
                            format!(
                                "'{value}': only 'container_name' has a Drover meaning; ignored"
                            ),
                        );
                    } else if scale > 1 {
                        self.warn(
                            v.loc,
                            &kp,
                            "with more than one replica the host names would clash; ignored",
                        );
                    } else {
                        svc.set(
                            "hostname",
                            Node::str(v.loc, format!("{}-{name}-1", self.stack)),
                        );
                    }
                }
                k2 if k2.starts_with("io.rancher.scheduler.affinity:host_label") => {
                    let rule = &k2["io.rancher.scheduler.affinity:host_label".len()..];
                    let op = match rule {
                        "" => "==",
                        "_ne" => "!=",
                        _ => {
                            self.warn(
                                v.loc,
                                &kp,
                                "soft host affinity has no Drover equivalent (constraints are hard); ignored",
                            );
                            continue;
                        }
                    };
                    for kv in list() {
                        match kv.split_once('=') {
                            Some((lk, lv)) if !lk.trim().is_empty() && !lv.trim().is_empty() => {
                                let c = format!("node.labels.{} {op} {}", lk.trim(), lv.trim());
                                constraints(svc, v.loc).push(Node::str(v.loc, c));
                            }
                            _ => {
                                self.warn(v.loc, &kp, format!("'{kv}' is not LABEL=VALUE; ignored"))
                            }
                        }
                    }
                }
                k2 if k2.starts_with("io.rancher.scheduler.affinity:container_label") => {
                    let rule = &k2["io.rancher.scheduler.affinity:container_label".len()..];
                    let (anti, hard) = match rule {
                        "" => (false, true),
                        "_ne" => (true, true),
                        "_soft" => (false, false),
                        "_soft_ne" => (true, false),
                        _ => {
                            self.warn(v.loc, &kp, "unknown affinity rule; ignored");
                            continue;
                        }
                    };
                    for kv in list() {
                        self.container_affinity(name, svc, v.loc, &kp, &kv, anti, hard);
                    }
                }
                k2 if k2.starts_with("io.rancher.") => {
                    self.warn(
                        k.loc,
                        &kp,
                        format!("label '{k2}' has no Drover meaning; kept as a plain label"),
                    );
                    kept.push((k, v));
                }
                _ => kept.push((k, v)),
            }
        }
        if !kept.is_empty() {
            let loc = kept[0].0.loc;
            svc.set("labels", Node::map(loc, kept));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn container_affinity(
        &mut self,
        name: &str,
        svc: &mut Node,
        loc: Loc,
        path: &str,
        kv: &str,
        anti: bool,
        hard: bool,
    ) {
        let target = kv
            .split_once('=')
            .filter(|(k, _)| k.trim() == "io.rancher.stack_service.name")
            .map(|(_, v)| v.trim().to_owned());
        let Some(target) = target else {
            self.warn(
                loc,
                path,
                format!(
                    "'{kv}': affinity to containers by label has no Drover equivalent \
                     (only io.rancher.stack_service.name); ignored"
                ),
            );
            return;
        };
        let target = target
            .replace("${stack_name}", self.stack)
            .replace("${service_name}", name);
        let service = match target.split_once('/') {
            Some((st, s)) if st == self.stack => s.to_owned(),
            Some((st, _)) => {
                self.warn(
                    loc,
                    path,
                    format!(
                        "'{kv}': affinity to stack '{st}' (another stack) is not supported; ignored"
                    ),
                );
                return;
            }
            None => target.clone(),
        };
        if service == name {
            if anti && hard {
                placement(svc, loc).set("max_replicas_per_node", Node::plain(loc, "1"));
            } else if !anti {
                self.warn(
                    loc,
                    path,
                    "affinity of a service to itself means nothing; ignored",
                );
            }
            // Soft anti-affinity to itself is Drover's default spread.
            return;
        }
        let mut rule = Node::map(loc, vec![]);
        rule.set("service", Node::str(loc, service));
        if anti {
            rule.set("anti", Node::plain(loc, "true"));
        }
        if hard {
            rule.set("hard", Node::plain(loc, "true"));
        }
        seq_child(xdrover(svc, loc), "affinity", loc).push(rule);
    }
}

/// Whether service `svc` shares the network of, or mounts the volumes of, `target`.
fn refs(svc: &Node, target: &str) -> bool {
    svc.get("network_mode")
        .and_then(Node::as_str)
        .and_then(|m| m.strip_prefix("service:"))
        == Some(target)
        || svc.get("volumes_from").is_some_and(|vf| {
            vf.items()
                .iter()
                .filter_map(Node::as_str)
                .any(|x| x.split(':').next() == Some(target))
        })
}

/// Labels as (key, value) nodes, from a mapping or a `KEY=VALUE` list.
fn label_entries(v: Node) -> Vec<(Node, Node)> {
    match v.kind {
        Kind::Map(e) => e,
        Kind::Seq(items) => items
            .into_iter()
            .filter_map(|i| {
                let t = i.as_str()?.to_owned();
                let (k, val) = t.split_once('=').unwrap_or((&t, ""));
                Some((Node::str(i.loc, k), Node::str(i.loc, val)))
            })
            .collect(),
        Kind::Scalar { .. } => vec![],
    }
}

/// The entries of a mapping node (made a mapping if it is not one).
fn entries_mut(n: &mut Node) -> &mut Vec<(Node, Node)> {
    if !matches!(n.kind, Kind::Map(_)) {
        n.kind = Kind::Map(Vec::new());
    }
    match &mut n.kind {
        Kind::Map(e) => e,
        Kind::Scalar { .. } | Kind::Seq(_) => unreachable!("made a mapping above"),
    }
}

/// The value under `key` of a mapping, set to `empty` when absent or of another kind.
fn child<'n>(n: &'n mut Node, key: &str, empty: Node) -> &'n mut Node {
    let e = entries_mut(n);
    let i = match e.iter().position(|(k, _)| k.as_str() == Some(key)) {
        Some(i) => i,
        None => {
            e.push((Node::plain(empty.loc, key), empty.clone()));
            e.len() - 1
        }
    };
    let v = &mut e[i].1;
    if std::mem::discriminant(&v.kind) != std::mem::discriminant(&empty.kind) {
        *v = empty;
    }
    v
}

fn xdrover(svc: &mut Node, loc: Loc) -> &mut Node {
    child(svc, "x-drover", Node::map(loc, vec![]))
}

fn deploy(svc: &mut Node, loc: Loc) -> &mut Node {
    child(svc, "deploy", Node::map(loc, vec![]))
}

fn placement(svc: &mut Node, loc: Loc) -> &mut Node {
    child(deploy(svc, loc), "placement", Node::map(loc, vec![]))
}

fn seq_child<'n>(n: &'n mut Node, key: &str, loc: Loc) -> &'n mut Vec<Node> {
    let c = child(
        n,
        key,
        Node {
            loc,
            kind: Kind::Seq(Vec::new()),
        },
    );
    match &mut c.kind {
        Kind::Seq(items) => items,
        Kind::Scalar { .. } | Kind::Map(_) => unreachable!("made a sequence above"),
    }
}

fn constraints(svc: &mut Node, loc: Loc) -> &mut Vec<Node> {
    seq_child(placement(svc, loc), "constraints", loc)
}
