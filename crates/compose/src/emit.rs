//! Writes a normalised [`Project`] back out as a compose file that [`crate::load`] reads back
//! to the same project.
//!
//! The document is first built as a `serde_json::Value` (insertion-ordered), then written by
//! a tiny block-style YAML emitter: string values are always double-quoted (with `$` doubled,
//! since every value is interpolated on load), numbers and booleans are plain, keys are
//! plain unless they need quoting.

use serde_json::{Map, Value, json};

use crate::units::format_duration;
use crate::{
    Condition, FileKind, Healthcheck, Mount, MountKind, Network, Port, Project, Resources,
    RestartPolicy, Service, ServiceNetwork,
};

const DEFAULT: &str = "default";

/// The project as a compose-spec YAML document.
pub fn to_compose_yaml(project: &Project) -> String {
    let mut out = String::new();
    write_map(&mut out, &document(project), 0);
    out
}

fn document(project: &Project) -> Map<String, Value> {
    let mut doc = Map::new();
    doc.insert("name".into(), project.name.clone().into());
    // `default` is implied for services that list no networks, and declared implicitly when
    // used: leave both out when they carry nothing else.
    let uses_default = project
        .services
        .values()
        .any(|s| s.networks.contains_key(DEFAULT));
    let services: Map<String, Value> = project
        .services
        .iter()
        .map(|(name, s)| (name.clone(), Value::Object(service(s))))
        .collect();
    doc.insert("services".into(), Value::Object(services));
    let networks: Vec<_> = project
        .networks
        .iter()
        .filter(|(name, n)| {
            !(uses_default && name.as_str() == DEFAULT && **n == Network::default())
        })
        .collect();
    if !networks.is_empty() {
        let networks = networks
            .into_iter()
            .map(|(name, n)| {
                let mut m = Map::new();
                insert_opt(&mut m, "driver", n.driver.as_deref());
                if n.external {
                    m.insert("external".into(), true.into());
                }
                insert_opt(&mut m, "name", n.name.as_deref());
                if n.internal {
                    m.insert("internal".into(), true.into());
                }
                if !n.labels.is_empty() {
                    m.insert("labels".into(), json!(n.labels));
                }
                (name.clone(), Value::Object(m))
            })
            .collect();
        doc.insert("networks".into(), Value::Object(networks));
    }
    if !project.volumes.is_empty() {
        let volumes = project
            .volumes
            .iter()
            .map(|(name, v)| {
                let mut m = Map::new();
                insert_opt(&mut m, "driver", v.driver.as_deref());
                if v.external {
                    m.insert("external".into(), true.into());
                }
                insert_opt(&mut m, "name", v.name.as_deref());
                if !v.labels.is_empty() {
                    m.insert("labels".into(), json!(v.labels));
                }
                (name.clone(), Value::Object(m))
            })
            .collect();
        doc.insert("volumes".into(), Value::Object(volumes));
    }
    for kind in [FileKind::Secret, FileKind::Config] {
        let files = project.files(kind);
        if files.is_empty() {
            continue;
        }
        let files = files
            .iter()
            .map(|(name, f)| {
                let mut m = Map::new();
                insert_opt(&mut m, "file", f.file.as_deref());
                insert_opt(&mut m, "environment", f.environment.as_deref());
                insert_opt(&mut m, "content", f.content.as_deref());
                if f.external {
                    m.insert("external".into(), true.into());
                }
                insert_opt(&mut m, "name", f.name.as_deref());
                (name.clone(), Value::Object(m))
            })
            .collect();
        doc.insert(kind.top_key().into(), Value::Object(files));
    }
    for (key, value) in &project.extensions {
        doc.insert(key.clone(), value.clone());
    }
    doc
}

fn insert_opt(m: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        m.insert(key.into(), v.into());
    }
}

fn service(s: &Service) -> Map<String, Value> {
    let mut m = Map::new();
    insert_opt(&mut m, "image", s.image.as_deref());
    if let Some(b) = &s.build {
        let mut build = Map::new();
        build.insert("context".into(), b.context.clone().into());
        insert_opt(&mut build, "dockerfile", b.dockerfile.as_deref());
        if !b.args.is_empty() {
            build.insert("args".into(), json!(b.args));
        }
        insert_opt(&mut build, "target", b.target.as_deref());
        m.insert("build".into(), Value::Object(build));
    }
    if let Some(c) = &s.command {
        m.insert("command".into(), json!(c));
    }
    if let Some(e) = &s.entrypoint {
        m.insert("entrypoint".into(), json!(e));
    }
    if !s.environment.is_empty() {
        m.insert("environment".into(), json!(s.environment));
    }
    if !s.ports.is_empty() {
        m.insert(
            "ports".into(),
            Value::Array(s.ports.iter().map(port).collect()),
        );
    }
    if !s.volumes.is_empty() {
        m.insert(
            "volumes".into(),
            Value::Array(s.volumes.iter().map(mount).collect()),
        );
    }
    let only_default =
        s.networks.len() == 1 && s.networks.get(DEFAULT) == Some(&ServiceNetwork::default());
    if !s.networks.is_empty() && !only_default {
        let networks = s
            .networks
            .iter()
            .map(|(name, n)| {
                let mut net = Map::new();
                if !n.aliases.is_empty() {
                    net.insert("aliases".into(), json!(n.aliases));
                }
                (name.clone(), Value::Object(net))
            })
            .collect();
        m.insert("networks".into(), Value::Object(networks));
    }
    if !s.depends_on.is_empty() {
        let deps = s
            .depends_on
            .iter()
            .map(|(name, d)| {
                let condition = match d.condition {
                    Condition::ServiceStarted => "service_started",
                    Condition::ServiceHealthy => "service_healthy",
                    Condition::ServiceCompletedSuccessfully => "service_completed_successfully",
                };
                let mut dep = Map::new();
                dep.insert("condition".into(), condition.into());
                if !d.required {
                    dep.insert("required".into(), false.into());
                }
                (name.clone(), Value::Object(dep))
            })
            .collect();
        m.insert("depends_on".into(), Value::Object(deps));
    }
    if let Some(hc) = &s.healthcheck {
        m.insert("healthcheck".into(), Value::Object(healthcheck(hc)));
    }
    let restart = match s.restart {
        RestartPolicy::No => None,
        RestartPolicy::Always => Some("always".to_owned()),
        RestartPolicy::UnlessStopped => Some("unless-stopped".to_owned()),
        RestartPolicy::OnFailure { max_retries: None } => Some("on-failure".to_owned()),
        RestartPolicy::OnFailure {
            max_retries: Some(n),
        } => Some(format!("on-failure:{n}")),
    };
    if let Some(r) = restart {
        m.insert("restart".into(), r.into());
    }
    if let Some(p) = s.pull_policy {
        m.insert("pull_policy".into(), p.as_str().into());
    }
    if !s.labels.is_empty() {
        m.insert("labels".into(), json!(s.labels));
    }
    let mut deploy = Map::new();
    if s.replicas != 1 {
        deploy.insert("replicas".into(), s.replicas.into());
    }
    let mut resources = Map::new();
    for (key, r) in [("limits", &s.limits), ("reservations", &s.reservations)] {
        if !r.is_empty() {
            resources.insert(key.into(), Value::Object(resources_map(r)));
        }
    }
    if !resources.is_empty() {
        deploy.insert("resources".into(), Value::Object(resources));
    }
    if s.global {
        deploy.insert("mode".into(), "global".into());
    }
    if !s.placement.is_empty() {
        let mut placement = Map::new();
        if !s.placement.constraints.is_empty() {
            placement.insert("constraints".into(), json!(s.placement.constraints));
        }
        if let Some(n) = s.placement.max_replicas_per_node {
            placement.insert("max_replicas_per_node".into(), n.into());
        }
        deploy.insert("placement".into(), Value::Object(placement));
    }
    for (key, c) in [
        ("update_config", &s.update_config),
        ("rollback_config", &s.rollback_config),
    ] {
        if let Some(c) = c {
            deploy.insert(key.into(), Value::Object(update_config_map(c)));
        }
    }
    if !deploy.is_empty() {
        m.insert("deploy".into(), Value::Object(deploy));
    }
    insert_opt(&mut m, "user", s.user.as_deref());
    insert_opt(&mut m, "working_dir", s.working_dir.as_deref());
    insert_opt(&mut m, "hostname", s.hostname.as_deref());
    insert_opt(&mut m, "network_mode", s.network_mode.as_deref());
    if s.privileged {
        m.insert("privileged".into(), true.into());
    }
    insert_opt(&mut m, "pid", s.pid.as_deref());
    insert_opt(&mut m, "ipc", s.ipc.as_deref());
    if !s.devices.is_empty() {
        let d: Vec<String> = s.devices.iter().map(crate::Device::short).collect();
        m.insert("devices".into(), json!(d));
    }
    for kind in [FileKind::Secret, FileKind::Config] {
        let uses = s.file_uses(kind);
        if uses.is_empty() {
            continue;
        }
        // The version is the server's, not compose syntax: never written.
        let uses: Vec<Value> = uses
            .iter()
            .map(|u| {
                if u.target.is_none() && u.uid.is_none() && u.gid.is_none() && u.mode.is_none() {
                    return u.source.clone().into();
                }
                let mut m = Map::new();
                m.insert("source".into(), u.source.clone().into());
                insert_opt(&mut m, "target", u.target.as_deref());
                insert_opt(&mut m, "uid", u.uid.as_deref());
                insert_opt(&mut m, "gid", u.gid.as_deref());
                if let Some(mode) = u.mode {
                    m.insert("mode".into(), format!("0{mode:o}").into());
                }
                Value::Object(m)
            })
            .collect();
        m.insert(kind.top_key().into(), Value::Array(uses));
    }
    for (key, list) in [
        ("volumes_from", &s.volumes_from),
        ("cap_add", &s.cap_add),
        ("cap_drop", &s.cap_drop),
        ("security_opt", &s.security_opt),
        ("extra_hosts", &s.extra_hosts),
        ("links", &s.links),
        ("profiles", &s.profiles),
    ] {
        if !list.is_empty() {
            m.insert(key.into(), json!(list));
        }
    }
    if let Some(ns) = s.stop_grace_period_ns {
        m.insert("stop_grace_period".into(), format_duration(ns).into());
    }
    insert_opt(&mut m, "container_name", s.container_name.as_deref());
    insert_opt(&mut m, "platform", s.platform.as_deref());
    if !s.annotations.is_empty() {
        m.insert("annotations".into(), json!(s.annotations));
    }
    insert_opt(&mut m, "stop_signal", s.stop_signal.as_deref());
    insert_opt(&mut m, "runtime", s.runtime.as_deref());
    for (key, list) in [
        ("expose", &s.expose),
        ("dns", &s.dns),
        ("dns_search", &s.dns_search),
        ("dns_opt", &s.dns_opt),
        ("group_add", &s.group_add),
    ] {
        if !list.is_empty() {
            m.insert(key.into(), json!(list));
        }
    }
    for (key, map) in [("sysctls", &s.sysctls), ("storage_opt", &s.storage_opt)] {
        if !map.is_empty() {
            m.insert(key.into(), json!(map));
        }
    }
    if !s.ulimits.is_empty() {
        let u: Map<String, Value> = s
            .ulimits
            .iter()
            .map(|(k, l)| (k.clone(), json!({"soft": l.soft, "hard": l.hard})))
            .collect();
        m.insert("ulimits".into(), Value::Object(u));
    }
    for (key, on) in [
        ("tty", s.tty),
        ("stdin_open", s.stdin_open),
        ("read_only", s.read_only),
    ] {
        if on {
            m.insert(key.into(), true.into());
        }
    }
    if let Some(i) = s.init {
        m.insert("init".into(), i.into());
    }
    if let Some(b) = s.shm_size {
        m.insert("shm_size".into(), b.into());
    }
    if let Some(n) = s.oom_score_adj {
        m.insert("oom_score_adj".into(), n.into());
    }
    if let Some(l) = &s.logging {
        let mut lm = Map::new();
        insert_opt(&mut lm, "driver", l.driver.as_deref());
        if !l.options.is_empty() {
            lm.insert("options".into(), json!(l.options));
        }
        m.insert("logging".into(), Value::Object(lm));
    }
    for (key, value) in &s.extensions {
        m.insert(key.clone(), value.clone());
    }
    m
}

fn port(p: &Port) -> Value {
    let mut m = Map::new();
    m.insert("target".into(), p.target.into());
    if let Some(published) = p.published {
        m.insert("published".into(), published.into());
    }
    insert_opt(&mut m, "host_ip", p.host_ip.as_deref());
    m.insert("protocol".into(), p.protocol.clone().into());
    Value::Object(m)
}

fn mount(v: &Mount) -> Value {
    let mut m = Map::new();
    let kind = match v.kind {
        MountKind::Volume => "volume",
        MountKind::Bind => "bind",
        MountKind::Tmpfs => "tmpfs",
    };
    m.insert("type".into(), kind.into());
    insert_opt(&mut m, "source", v.source.as_deref());
    m.insert("target".into(), v.target.clone().into());
    if v.read_only {
        m.insert("read_only".into(), true.into());
    }
    Value::Object(m)
}

fn healthcheck(hc: &Healthcheck) -> Map<String, Value> {
    let mut m = Map::new();
    if !hc.test.is_empty() {
        m.insert("test".into(), json!(hc.test));
    }
    for (key, value) in [
        ("interval", hc.interval_ns),
        ("timeout", hc.timeout_ns),
        ("start_period", hc.start_period_ns),
    ] {
        if let Some(ns) = value {
            m.insert(key.into(), format_duration(ns).into());
        }
    }
    if let Some(r) = hc.retries {
        m.insert("retries".into(), r.into());
    }
    m
}

fn resources_map(r: &Resources) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(cpus) = r.cpus {
        // Rust's float formatting is the shortest text that parses back exactly.
        m.insert("cpus".into(), format!("{cpus}").into());
    }
    if let Some(memory) = r.memory {
        m.insert("memory".into(), memory.into());
    }
    if let Some(pids) = r.pids {
        m.insert("pids".into(), pids.into());
    }
    m
}

// ---- YAML writer -------------------------------------------------------------------------

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Writes the entries of a non-empty mapping, one per line, at `level` spaces.
fn write_map(out: &mut String, map: &Map<String, Value>, level: usize) {
    for (key, value) in map {
        indent(out, level);
        out.push_str(&quote_key(key));
        out.push(':');
        write_value_after_key(out, value, level);
    }
}

fn write_value_after_key(out: &mut String, value: &Value, level: usize) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            write_map(out, m, level + 2);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            write_seq(out, a, level + 2);
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], level: usize) {
    for item in items {
        indent(out, level);
        out.push('-');
        match item {
            Value::Object(m) if !m.is_empty() => {
                // The first entry goes on the dash's line, the rest aligned under it.
                let mut block = String::new();
                write_map(&mut block, m, level + 2);
                out.push(' ');
                out.push_str(block.get(level + 2..).unwrap_or_default());
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                write_seq(out, a, level + 2);
            }
            other => {
                out.push(' ');
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
    }
}

/// Scalars and empty collections.
fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s, true),
        Value::Array(_) => "[]".to_owned(),
        Value::Object(_) => "{}".to_owned(),
    }
}

/// Keys stay plain when that is unambiguous in YAML 1.1 and 1.2.
fn quote_key(key: &str) -> String {
    let plain_ok = key
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/'))
        && !matches!(
            key.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain_ok {
        key.to_owned()
    } else {
        quote(key, false)
    }
}

/// A YAML double-quoted scalar. With `dollar`, `$` is doubled so interpolation gives it back.
fn quote(s: &str, dollar: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '$' if dollar => out.push_str("$$"),
            // Outside YAML's printable set (or confusable): escape.
            c if (c as u32) < 0x20
                || (0x7f..=0x9f).contains(&(c as u32))
                || c == '\u{feff}'
                || c == '\u{fffe}'
                || c == '\u{ffff}' =>
            {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn update_config_map(c: &crate::model::UpdateConfig) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(n) = c.parallelism {
        m.insert("parallelism".into(), n.into());
    }
    if let Some(ns) = c.delay_ns {
        m.insert("delay".into(), format_duration(ns).into());
    }
    if let Some(a) = c.failure_action {
        m.insert("failure_action".into(), a.as_str().into());
    }
    if let Some(ns) = c.monitor_ns {
        m.insert("monitor".into(), format_duration(ns).into());
    }
    if let Some(r) = c.max_failure_ratio {
        m.insert("max_failure_ratio".into(), r.into());
    }
    if let Some(o) = c.order {
        m.insert("order".into(), o.as_str().into());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(
            quote("a\"b\\c\n$x\u{7}é", true),
            "\"a\\\"b\\\\c\\n$$x\\u0007é\""
        );
        assert_eq!(
            quote_key("traefik.http.routers.web.rule"),
            "traefik.http.routers.web.rule"
        );
        assert_eq!(quote_key("yes"), "\"yes\"");
        assert_eq!(quote_key("8080"), "\"8080\"");
        assert_eq!(quote_key("a b"), "\"a b\"");
        assert_eq!(quote_key("$HOME"), "\"$HOME\"");
        assert_eq!(quote_key(""), "\"\"");
    }

    #[test]
    fn nested_sequences() {
        let v = json!({"a": [[1, [2]], {"b": [], "c": {"d": "e"}}, {}, []], "f": {}});
        let mut out = String::new();
        if let Value::Object(m) = v {
            write_map(&mut out, &m, 0);
        }
        assert_eq!(
            out,
            "a:\n  -\n    - 1\n    -\n      - 2\n  - b: []\n    c:\n      d: \"e\"\n  - {}\n  - []\nf: {}\n"
        );
    }
}
