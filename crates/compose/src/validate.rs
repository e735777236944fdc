//! Checks on a whole [`Project`] (e.g. one submitted as JSON), and dependency ordering.

use std::collections::{BTreeMap, BTreeSet};

use crate::{Error, Location, MountKind, Project};

pub(crate) const MAX_REPLICAS: u32 = 1000;

/// Service, network, volume and profile names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub(crate) fn is_valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Project names: `[a-z0-9][a-z0-9_-]*` (environment names follow the same rule).
pub fn is_valid_project_name(name: &str) -> bool {
    let ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut bytes = name.bytes();
    bytes.next().is_some_and(ok) && bytes.all(|b| ok(b) || matches!(b, b'_' | b'-'))
}

/// Lowercases and drops characters not allowed in a project name (for directory names).
pub(crate) fn normalise_project_name(name: &str) -> String {
    let lowered: String = name
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
        .collect();
    lowered.trim_start_matches(['_', '-']).to_owned()
}

/// Finds a dependency cycle, returned as `[a, b, ..., a]`. Iterative, deterministic (names
/// in order), linear time.
pub(crate) fn find_cycle(graph: &BTreeMap<&str, Vec<&str>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        Open,
        Done,
    }
    let mut state: BTreeMap<&str, State> = graph.keys().map(|k| (*k, State::New)).collect();
    for &start in graph.keys() {
        if state.get(start) != Some(&State::New) {
            continue;
        }
        // Stack of (node, index of next edge to follow).
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        state.insert(start, State::Open);
        while let Some((node, next)) = stack.last_mut() {
            let edges = graph.get(node).map(Vec::as_slice).unwrap_or_default();
            let Some(&to) = edges.get(*next) else {
                state.insert(node, State::Done);
                stack.pop();
                continue;
            };
            *next += 1;
            match state.get(to) {
                Some(State::New) => {
                    state.insert(to, State::Open);
                    stack.push((to, 0));
                }
                Some(State::Open) => {
                    let from = stack.iter().position(|(n, _)| *n == to).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        stack[from..].iter().map(|(n, _)| (*n).to_owned()).collect();
                    cycle.push(to.to_owned());
                    return Some(cycle);
                }
                // Done, or an edge to an unknown node: nothing to follow.
                _ => {}
            }
        }
    }
    None
}

/// Services in start order: every service after the services it depends on; services that
/// are otherwise unordered sort by name. Services caught in a cycle (which [`validate`]
/// rejects) come last, by name. Dependencies on unknown services are ignored.
pub fn dependency_order(project: &Project) -> Vec<String> {
    let names: BTreeSet<&str> = project.services.keys().map(String::as_str).collect();
    let mut waiting_on: BTreeMap<&str, usize> = BTreeMap::new();
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, service) in &project.services {
        let deps: BTreeSet<&str> = service
            .depends_on
            .keys()
            .map(String::as_str)
            .filter(|d| names.contains(d) && *d != name)
            .collect();
        waiting_on.insert(name, deps.len());
        for dep in deps {
            dependents.entry(dep).or_default().push(name);
        }
    }
    let mut ready: BTreeSet<&str> = waiting_on
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(name, _)| *name)
        .collect();
    let mut order = Vec::with_capacity(names.len());
    while let Some(name) = ready.pop_first() {
        order.push(name.to_owned());
        for dependent in dependents.get(name).map(Vec::as_slice).unwrap_or_default() {
            if let Some(n) = waiting_on.get_mut(dependent) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    ready.insert(dependent);
                }
            }
        }
    }
    if order.len() < names.len() {
        let placed: BTreeSet<String> = order.iter().cloned().collect();
        order.extend(
            names
                .iter()
                .filter(|n| !placed.contains(**n))
                .map(|n| (*n).to_owned()),
        );
    }
    order
}

/// Checks a project that did not come from [`crate::load`] (e.g. JSON from the API).
/// Errors carry location `0:0` and the path of the offending value.
/// A top-level secret or config has exactly one source (`content` for configs only), and
/// a name only when external.
pub(crate) fn check_file_source(
    kind: crate::FileKind,
    name: &str,
    src: &crate::FileSource,
) -> Result<(), String> {
    let what = kind.as_str();
    let sources = [
        src.file.is_some(),
        src.environment.is_some(),
        src.content.is_some(),
        src.external,
    ];
    if kind == crate::FileKind::Secret && src.content.is_some() {
        return Err(format!(
            "{what} '{name}': a secret's value is never written in the compose file"
        ));
    }
    let allowed = match kind {
        crate::FileKind::Secret => "file, environment or external: true",
        crate::FileKind::Config => "file, environment, content or external: true",
    };
    match sources.iter().filter(|s| **s).count() {
        1 => Ok(()),
        0 => Err(format!("{what} '{name}' needs one of {allowed}")),
        _ => Err(format!("{what} '{name}' has more than one of {allowed}")),
    }
}

pub fn validate(project: &Project) -> Result<(), Error> {
    let fail = |path: String, message: String| {
        Err(Error::new("project", Location::default(), path, message))
    };
    if !is_valid_project_name(&project.name) {
        return fail(
            "name".to_owned(),
            format!(
                "invalid project name '{}': must contain only lowercase letters, digits, '-' \
                 and '_', and start with a letter or digit",
                project.name
            ),
        );
    }
    for key in project.extensions.keys() {
        if !key.starts_with("x-") {
            return fail(
                key.clone(),
                "extension keys must start with 'x-'".to_owned(),
            );
        }
    }
    for name in project.networks.keys() {
        if !is_valid_name(name) {
            return fail(
                format!("networks.{name}"),
                format!("invalid network name '{name}'"),
            );
        }
    }
    for name in project.volumes.keys() {
        if !is_valid_name(name) {
            return fail(
                format!("volumes.{name}"),
                format!("invalid volume name '{name}'"),
            );
        }
    }
    for (name, s) in &project.services {
        let path = format!("services.{name}");
        let at = |key: &str| format!("{path}.{key}");
        if !is_valid_name(name) {
            return fail(path, format!("invalid service name '{name}'"));
        }
        let has_image = s.image.as_deref().is_some_and(|i| !i.is_empty());
        let has_build = s.build.as_ref().is_some_and(|b| !b.context.is_empty());
        if !has_image && !has_build {
            return fail(
                path,
                format!("service '{name}' has neither image nor build"),
            );
        }
        if s.replicas > MAX_REPLICAS {
            return fail(
                at("deploy.replicas"),
                format!(
                    "too many replicas: {}, the limit is {MAX_REPLICAS}",
                    s.replicas
                ),
            );
        }
        if s.container_name.is_some() && (s.replicas > 1 || s.global) {
            return fail(
                at("container_name"),
                format!(
                    "service '{name}' has a container_name and more than one replica: a fixed \
                     name runs once"
                ),
            );
        }
        if let Some(Err(m)) = s.pid.as_deref().map(crate::check_pid) {
            return fail(at("pid"), m);
        }
        if let Some(Err(m)) = s.ipc.as_deref().map(crate::check_ipc) {
            return fail(at("ipc"), m);
        }
        for (i, d) in s.devices.iter().enumerate() {
            if let Err(m) = d.check() {
                return fail(format!("{path}.devices[{i}]"), m);
            }
        }
        for (i, p) in s.ports.iter().enumerate() {
            if p.target == 0 || p.published == Some(0) {
                return fail(format!("{path}.ports[{i}]"), "invalid port 0".to_owned());
            }
            if p.protocol != "tcp" && p.protocol != "udp" {
                return fail(
                    format!("{path}.ports[{i}]"),
                    format!(
                        "unsupported protocol '{}' (expected tcp or udp)",
                        p.protocol
                    ),
                );
            }
        }
        for (i, m) in s.volumes.iter().enumerate() {
            let mp = format!("{path}.volumes[{i}]");
            if !m.target.starts_with('/') {
                return fail(
                    mp,
                    format!("container path '{}' must be absolute", m.target),
                );
            }
            match (m.kind, &m.source) {
                (MountKind::Bind, None) => {
                    return fail(mp, "bind mount needs a source".to_owned());
                }
                (MountKind::Bind, Some(src)) if src.is_empty() => {
                    return fail(mp, "bind mount needs a source".to_owned());
                }
                (MountKind::Tmpfs, Some(_)) => {
                    return fail(mp, "tmpfs mounts take no source".to_owned());
                }
                (MountKind::Volume, Some(src)) if !project.volumes.contains_key(src) => {
                    return fail(
                        mp,
                        format!(
                            "service '{name}' uses volume '{src}', which is not declared \
                             under the top-level 'volumes'"
                        ),
                    );
                }
                _ => {}
            }
        }
        for net in s.networks.keys() {
            if !project.networks.contains_key(net) {
                return fail(
                    format!("{path}.networks.{net}"),
                    format!(
                        "service '{name}' uses network '{net}', which is not declared under \
                         the top-level 'networks'"
                    ),
                );
            }
        }
        if s.pull_policy == Some(crate::PullPolicy::Build) && s.build.is_none() {
            return fail(
                format!("{path}.pull_policy"),
                format!("service '{name}' has pull_policy build but no build section"),
            );
        }
        for (i, link) in s.links.iter().enumerate() {
            let target = link.split(':').next().unwrap_or(link);
            if !project.services.contains_key(target) {
                return fail(
                    format!("{path}.links[{i}]"),
                    format!("service '{name}' links to undefined service '{target}'"),
                );
            }
        }
        for dep in s.depends_on.keys() {
            if !project.services.contains_key(dep) {
                return fail(
                    format!("{path}.depends_on.{dep}"),
                    format!("service '{name}' depends on undefined service '{dep}'"),
                );
            }
        }
        if let Some(hc) = &s.healthcheck
            && let Some(first) = hc.test.first()
            && !matches!(first.as_str(), "NONE" | "CMD" | "CMD-SHELL")
        {
            return fail(
                at("healthcheck.test"),
                format!("healthcheck test must start with NONE, CMD or CMD-SHELL, found '{first}'"),
            );
        }
        for res in [&s.limits, &s.reservations] {
            if res.cpus.is_some_and(|c| !c.is_finite() || c < 0.0) {
                return fail(at("deploy.resources"), "invalid number of CPUs".to_owned());
            }
        }
        // The parser compose files' constraints go through (see `load`), so a project sent
        // as JSON cannot carry a constraint the scheduler would drop.
        for (i, c) in s.placement.constraints.iter().enumerate() {
            if let Err(message) = scheduler::parse_constraint(c) {
                return fail(format!("{path}.deploy.placement.constraints[{i}]"), message);
            }
        }
        for key in s.environment.keys() {
            if key.is_empty() || key.contains('=') {
                return fail(
                    at("environment"),
                    format!("invalid environment variable name '{key}'"),
                );
            }
        }
        for profile in &s.profiles {
            if !is_valid_name(profile) {
                return fail(at("profiles"), format!("invalid profile name '{profile}'"));
            }
        }
        for key in s.extensions.keys() {
            if !key.starts_with("x-") {
                return fail(at(key), "extension keys must start with 'x-'".to_owned());
            }
        }
        for kind in [crate::FileKind::Secret, crate::FileKind::Config] {
            let mut paths = BTreeSet::new();
            for (i, u) in s.file_uses(kind).iter().enumerate() {
                let at = format!("{path}.{}[{i}]", kind.top_key());
                if !project.files(kind).contains_key(&u.source) {
                    return fail(
                        at,
                        format!(
                            "service '{name}' uses {} '{}', which is not declared under the \
                             top-level '{}'",
                            kind.as_str(),
                            u.source,
                            kind.top_key()
                        ),
                    );
                }
                let p = u.path(kind);
                if p.split('/').any(|c| c == "..") || !paths.insert(p.clone()) {
                    return fail(at, format!("invalid or repeated target '{p}'"));
                }
                if u.mode.is_some_and(|m| m > 0o7777) {
                    return fail(at, "invalid file mode".to_owned());
                }
            }
        }
    }
    for kind in [crate::FileKind::Secret, crate::FileKind::Config] {
        for (name, src) in project.files(kind) {
            if !is_valid_name(name) {
                return fail(
                    format!("{}.{name}", kind.top_key()),
                    format!("invalid {} name '{name}'", kind.as_str()),
                );
            }
            if let Err(m) = check_file_source(kind, name, src) {
                return fail(format!("{}.{name}", kind.top_key()), m);
            }
        }
    }
    if let Err(e) = crate::check_sidekicks(&project.services) {
        return fail(format!("services.{}.{}", e.service, e.key), e.message);
    }
    let graph: BTreeMap<&str, Vec<&str>> = project
        .services
        .iter()
        .map(|(name, s)| {
            (
                name.as_str(),
                s.depends_on.keys().map(String::as_str).collect(),
            )
        })
        .collect();
    if let Some(cycle) = find_cycle(&graph) {
        let first = cycle.first().cloned().unwrap_or_default();
        return fail(
            format!("services.{first}.depends_on"),
            format!("dependency cycle: {}", cycle.join(" -> ")),
        );
    }
    Ok(())
}
