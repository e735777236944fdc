//! What each fuzz target does with its input: the parsers Drover runs on input from outside,
//! fed as the CLI, the server and the agent feed them, and what they do next with a value
//! that parsed. One function per target; none may panic, whatever the bytes.
//!
//! This file is also compiled into `xtask` (`chaos/mod.rs` includes it by path), whose
//! `chaos --scenario hostile` replays every corpus file through these same functions on
//! stable Rust and measures each input's time and peak heap.
//!
//! Panics here are the findings: a parser that panics, or one of the invariants the
//! functions assert (each names the contract it checks), is a defect.

use std::collections::BTreeMap;

/// What a target does with one input.
pub type Target = fn(&[u8]);

/// Every target: its name (the `fuzz_targets/NAME.rs` binary and `corpus/NAME`) and its
/// function.
pub const TARGETS: &[(&str, Target)] = &[
    ("compose", compose),
    ("dotenv", dotenv),
    ("interpolate", interpolate),
    ("agent_msg", agent_msg),
    ("api_bodies", api_bodies),
    ("expose", expose),
];

/// The variables every compose input is read with (those of `compose`'s own fixture
/// tests, so that the fixtures seeding the corpus load as they do there), before a `.env`
/// section of the input.
fn fixture_variables() -> BTreeMap<String, String> {
    [
        ("HOME", "/home/dev"),
        ("TAG", "1.25"),
        ("DB_PASSWORD", "s3cr3t"),
        ("GITLAB_HOME", "/srv/gitlab"),
        ("DOMAIN", "example.com"),
        ("EMPTY", ""),
        ("GF_INSTALL_PLUGINS", "grafana-clock-panel"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The line that starts another file in a `compose` input: `#@file NAME` (a YAML comment,
/// so a corpus file without one is one compose file).
pub const FILE_MARK: &str = "#@file ";

/// A `compose` input cut into its files: the first part is `compose.yaml`; then each
/// `#@file NAME` line starts a file: `.env` (the variables, parsed as the CLI parses it),
/// `-f NAME` (a further `-f` file, merged over the first), or any other name (a file the
/// project may read: `env_file`, `include`, `extends`).
pub struct ComposeFiles<'a> {
    pub main: &'a str,
    pub dotenv: Option<&'a str>,
    pub overrides: Vec<(String, String)>,
    pub files: BTreeMap<String, String>,
}

pub fn split_compose(text: &str) -> ComposeFiles<'_> {
    let mut parts = Vec::new();
    let mut name: Option<&str> = None;
    let mut start = 0;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if let Some(next) = line.strip_prefix(FILE_MARK) {
            parts.push((name, &text[start..at]));
            name = Some(next.trim_end_matches(['\n', '\r']));
            start = at + line.len();
        }
        at += line.len();
    }
    parts.push((name, &text[start..]));
    let mut out = ComposeFiles {
        main: "",
        dotenv: None,
        overrides: Vec::new(),
        files: BTreeMap::new(),
    };
    for (name, body) in parts {
        match name {
            None => out.main = body,
            Some(".env") => out.dotenv = Some(body),
            Some(n) => match n.strip_prefix("-f ") {
                Some(f) => out.overrides.push((f.to_owned(), body.to_owned())),
                None => {
                    out.files.insert(n.to_owned(), body.to_owned());
                }
            },
        }
    }
    out
}

/// `compose::load` as `drover stack deploy` runs it (crates/cli/src/local.rs: the file,
/// `.env`, further `-f` files, `env_file`/`include`/`extends` files beside it,
/// `COMPOSE_PROFILES`), then what the CLI and the server do with the project it loads.
/// Invariants: the project the CLI sends as JSON is the project the server reads, it
/// passes `compose::validate` as the server runs it, and `to_compose_yaml` (export, `stack
/// config`) loads back to the same project (emit.rs's contract).
pub fn compose(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let input = split_compose(text);
    let mut variables = fixture_variables();
    if let Some(env) = input.dotenv {
        match ::compose::parse_dotenv(".env", env) {
            Ok(vars) => variables.extend(vars),
            Err(_) => return,
        }
    }
    let profiles: Vec<String> = variables
        .get("COMPOSE_PROFILES")
        .map(|p| {
            p.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let project_name = variables.get("COMPOSE_PROJECT_NAME").cloned();
    let load = |file_name: &str, text: &str, overrides: &[(String, String)], base: &str| {
        ::compose::load(&::compose::Input {
            file_name,
            text,
            project_name: project_name.as_deref(),
            default_name: "fuzz",
            variables: &variables,
            profiles: &profiles,
            base_dir: Some(base),
            files: &input.files,
            overrides,
        })
    };
    let Ok(loaded) = load("compose.yaml", input.main, &input.overrides, "/srv/app") else {
        return;
    };
    let project = loaded.project;

    // The CLI sends the project as JSON; the server reads it back.
    let json = serde_json::to_string(&project).expect("a project serialises");
    let sent: ::compose::Project =
        serde_json::from_str(&json).expect("the server reads the project the CLI sends");
    assert_eq!(
        sent, project,
        "the project changed on its way to the server"
    );
    // What the server does with a deployed project (api/stacks.rs) before it writes it.
    project_checks(&sent);

    // `stack export` / `stack config`: loads back to the same project.
    let yaml = ::compose::to_compose_yaml(&project);
    let again = match load("exported.yml", &yaml, &[], "/elsewhere") {
        Ok(again) => again,
        Err(e) => panic!("exported YAML does not load: {e}\n{yaml}"),
    };
    assert_eq!(again.project, project, "export changed the project\n{yaml}");
}

/// The server's own checks of a project it is about to write, and what it derives from
/// it (api/stacks.rs, `proto::desired_for_stack`): none may panic.
fn project_checks(project: &::compose::Project) {
    if ::compose::validate(project).is_err() {
        return;
    }
    let _ = ::compose::check_sidekicks(&project.services);
    let _ = ::compose::dependency_order(project);
    let units = project.units();
    let mut slots = Vec::new();
    for (name, service) in &project.services {
        let _ = service.spec_hash();
        let _ = project.unit_hash(name);
        if let Ok(x) = proto::x_drover(service) {
            let _ = ingress::check(&x.expose);
            let _ = x.probe();
            let _ = x.drain_ms();
        }
        let _ = proto::is_singleton(service);
        slots.push((name.clone(), 1));
    }
    drop(units);
    let _ = proto::desired_for_stack("default", project, &slots);
}

/// `.env` and `env_file` files (`compose::parse_dotenv`).
pub fn dotenv(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ::compose::parse_dotenv("fuzz.env", text);
}

/// `${VAR}` interpolation of one string: the template, then after a NUL byte the
/// variables as `.env` lines.
pub fn interpolate(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (template, vars) = text.split_once('\0').unwrap_or((text, ""));
    let mut variables = fixture_variables();
    if let Ok(v) = ::compose::parse_dotenv("vars.env", vars) {
        variables.extend(v);
    }
    let _ = ::compose::interpolate::interpolate(template, &variables);
}

/// A session of the agent protocol: one JSON message a line, each decoded as the server
/// decodes `AgentMsg` (agents.rs) and as the agent decodes `ServerMsg` (session.rs), and
/// applied as they apply them: reports and their patches, desired states and theirs, the
/// ingress table indexed for the proxy.
pub fn agent_msg(data: &[u8]) {
    let mut observed = proto::Observed::default();
    let mut desired = proto::Desired::default();
    for line in data.split(|b| *b == b'\n') {
        match serde_json::from_slice::<proto::AgentMsg>(line) {
            Ok(proto::AgentMsg::Observed(o)) => observed = o,
            Ok(proto::AgentMsg::ObservedChanges(patch)) => {
                let before = observed.clone();
                observed.apply(patch);
                let _ = observed.changes_since(&before);
            }
            _ => {}
        }
        match serde_json::from_slice::<proto::ServerMsg>(line) {
            Ok(proto::ServerMsg::Desired(d)) => desired = d,
            Ok(proto::ServerMsg::DesiredStacks(patch)) => desired.apply(patch),
            Ok(proto::ServerMsg::Ingress(Some(table))) => {
                let router = ingress::Router::new(&table);
                let _ = router.route(Some("example.com"), "/");
                let _ = router.cert_for("example.com");
                let _ = router.challenge("/.well-known/acme-challenge/x");
            }
            _ => {}
        }
    }
    for c in &desired.containers {
        if let Ok(x) = proto::x_drover(&c.spec) {
            let _ = x.probe();
            let _ = x.drain_ms();
        }
    }
}

/// Request bodies of the REST API, as `JsonBody` reads them (serde_json into the
/// api-types request types): the first byte picks the type, the rest is the body. A deploy
/// goes on as `api/stacks.rs` goes on: its compose text loaded with its variables and
/// profiles, or its project checked.
pub fn api_bodies(data: &[u8]) {
    use api_types as t;
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    fn read<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
        serde_json::from_slice(body).ok()
    }
    let _read = match which % 24 {
        0 => read::<t::DeployRequest>(body).map(deploy).is_some(),
        1 => read::<t::ScaleRequest>(body).is_some(),
        2 => read::<t::RollbackRequest>(body).is_some(),
        3 => read::<t::InstallRequest>(body).is_some(),
        4 => read::<t::UpgradeRequest>(body).is_some(),
        5 => read::<t::NewCatalog>(body).is_some(),
        6 => read::<t::NewFile>(body).is_some(),
        7 => read::<t::HostLabels>(body).is_some(),
        8 => read::<t::DrainRequest>(body).is_some(),
        9 => read::<t::NewHostToken>(body).is_some(),
        10 => read::<t::NewEnvironment>(body).is_some(),
        11 => read::<t::Login>(body).is_some(),
        12 => read::<t::NewApiKey>(body).is_some(),
        13 => read::<t::NewUser>(body).is_some(),
        14 => read::<t::NewPassword>(body).is_some(),
        15 => read::<t::Member>(body).is_some(),
        16 => read::<t::EnvPolicy>(body).is_some(),
        17 => read::<t::LdapSettings>(body).is_some(),
        18 => read::<t::LdapTest>(body).is_some(),
        19 => read::<t::NewNetwork>(body).is_some(),
        20 => read::<t::NewRegistry>(body).is_some(),
        21 => read::<t::NewCert>(body).is_some(),
        22 => read::<t::exec::ExecRequest>(body).is_some(),
        _ => read::<t::exec::ExecControl>(body).is_some(),
    };
}

fn deploy(req: api_types::DeployRequest) {
    match (req.compose, req.project) {
        (Some(text), None) => {
            let name = req.name.clone().unwrap_or_default();
            let loaded = ::compose::load(&::compose::Input {
                file_name: "compose",
                text: &text,
                project_name: req.name.as_deref(),
                default_name: &name,
                variables: &req.environment,
                profiles: &req.profiles,
                base_dir: None,
                files: &::compose::NoFiles,
                overrides: &[],
            });
            if let Ok(loaded) = loaded {
                project_checks(&loaded.project);
            }
        }
        (None, Some(mut project)) => {
            if let Some(name) = req.name {
                project.name = name;
            }
            project_checks(&project);
        }
        _ => {}
    }
}

/// A service's `x-drover.expose` list (JSON, as the server reads it from a project):
/// `ingress::check`, and a list it accepts routed (the table, its conflicts with itself in
/// another stack, the proxy's router).
pub fn expose(data: &[u8]) {
    let Ok(list) = serde_json::from_slice::<Vec<ingress::Expose>>(data) else {
        return;
    };
    if ingress::check(&list).is_err() {
        return;
    }
    let services = [
        ingress::Service {
            stack: "a",
            service: "web",
            expose: &list,
        },
        ingress::Service {
            stack: "b",
            service: "web",
            expose: &list,
        },
    ];
    let _ = ingress::conflicts(&services);
    let containers = [ingress::Container {
        name: "a-web-1",
        stack: "a",
        service: "web",
        host: "h1",
        ready: true,
        ip: Some(std::net::Ipv4Addr::new(10, 192, 0, 2)),
    }];
    let (table, _problems) = ingress::table(&ingress::Input {
        services: services[..1].to_vec(),
        containers: containers.to_vec(),
        ..Default::default()
    });
    let router = ingress::Router::new(&table);
    for e in &list {
        match e {
            ingress::Expose::Http(h) => {
                let host = h.host.as_deref().map(|h| h.replace('*', "x"));
                let _ = router.route(host.as_deref(), h.path.as_deref().unwrap_or("/"));
            }
            ingress::Expose::Tcp(t) => {
                let _ = router.tcp(t.tcp);
            }
        }
    }
}
