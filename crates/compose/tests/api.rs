//! `validate`, `dependency_order`, `parse_dotenv` and JSON round trips through the public API.

mod common;

use std::collections::BTreeMap;

use compose::{
    Condition, Dependency, Mount, MountKind, Network, Project, Service, ServiceNetwork,
    dependency_order, parse_dotenv, to_compose_yaml, validate,
};
use expect_test::{Expect, expect};

fn service(image: &str, deps: &[&str]) -> Service {
    Service {
        image: Some(image.to_owned()),
        replicas: 1,
        networks: [("default".to_owned(), ServiceNetwork::default())].into(),
        depends_on: deps
            .iter()
            .map(|d| {
                (
                    (*d).to_owned(),
                    Dependency {
                        condition: Condition::ServiceStarted,
                        required: true,
                    },
                )
            })
            .collect(),
        ..Service::default()
    }
}

fn project(services: &[(&str, &[&str])]) -> Project {
    Project {
        name: "demo".to_owned(),
        services: services
            .iter()
            .map(|(name, deps)| ((*name).to_owned(), service("img", deps)))
            .collect(),
        networks: [("default".to_owned(), Network::default())].into(),
        ..Project::default()
    }
}

fn check_validate(p: &Project, want: Expect) {
    let got = match validate(p) {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.to_string(),
    };
    want.assert_eq(&got);
}

#[test]
fn dependency_order_is_topological_with_name_ties() {
    let p = project(&[
        ("web", &["api", "cache"]),
        ("api", &["db"]),
        ("db", &[]),
        ("cache", &[]),
        ("worker", &["db"]),
        ("admin", &[]),
    ]);
    expect![[r#"["admin", "cache", "db", "api", "web", "worker"]"#]]
        .assert_eq(&format!("{:?}", dependency_order(&p)));
    // Cycles and unknown services never panic; cyclic services come last.
    let p = project(&[("a", &["b"]), ("b", &["a"]), ("c", &["zzz"])]);
    expect![[r#"["c", "a", "b"]"#]].assert_eq(&format!("{:?}", dependency_order(&p)));
    assert!(dependency_order(&Project::default()).is_empty());
}

#[test]
fn dependency_order_of_a_long_chain() {
    // Deep chains must not recurse.
    let names: Vec<String> = (0..20_000).map(|i| format!("s{i:05}")).collect();
    let mut p = project(&[]);
    for (i, name) in names.iter().enumerate() {
        let deps: Vec<&str> = if i == 0 {
            vec![]
        } else {
            vec![names[i - 1].as_str()]
        };
        p.services.insert(name.clone(), service("img", &deps));
    }
    assert_eq!(dependency_order(&p), names);
    assert!(validate(&p).is_ok());
    // Close the loop: a 20,000-long cycle.
    if let Some(first) = p.services.get_mut("s00000") {
        first.depends_on = service("img", &["s19999"]).depends_on;
    }
    let err = validate(&p).err().map(|e| e.message).unwrap_or_default();
    assert!(
        err.starts_with("dependency cycle: s00000 -> s19999 -> s19998"),
        "{err}"
    );
}

#[test]
fn validate_accepts_loaded_fixtures() {
    for (name, text) in [
        ("voting-app.yml", include_str!("fixtures/voting-app.yml")),
        ("long-syntax.yml", include_str!("fixtures/long-syntax.yml")),
        ("extensions.yml", include_str!("fixtures/extensions.yml")),
    ] {
        let loaded = common::load_text(name, text).expect("fixture loads");
        assert_eq!(validate(&loaded.project), Ok(()), "{name}");
        // Through JSON, as the API would receive it.
        let json = serde_json::to_string(&loaded.project).expect("serialises");
        let back: Project = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, loaded.project, "{name}");
        assert_eq!(to_compose_yaml(&back), to_compose_yaml(&loaded.project));
    }
}

#[test]
fn validate_rejects() {
    let ok = project(&[("web", &["db"]), ("db", &[])]);
    check_validate(&ok, expect!["ok"]);

    let mut p = ok.clone();
    p.name = "Demo".to_owned();
    check_validate(
        &p,
        expect![
            "project:0:0: name: invalid project name 'Demo': must contain only lowercase letters, digits, '-' and '_', and start with a letter or digit"
        ],
    );

    let mut p = ok.clone();
    p.services
        .insert("bad name".to_owned(), service("img", &[]));
    check_validate(
        &p,
        expect!["project:0:0: services.bad name: invalid service name 'bad name'"],
    );

    let mut p = ok.clone();
    p.services.insert("x".to_owned(), service("img", &["nope"]));
    check_validate(
        &p,
        expect![
            "project:0:0: services.x.depends_on.nope: service 'x' depends on undefined service 'nope'"
        ],
    );

    let p = project(&[("a", &["b"]), ("b", &["a"])]);
    check_validate(
        &p,
        expect!["project:0:0: services.a.depends_on: dependency cycle: a -> b -> a"],
    );

    let mut p = ok.clone();
    if let Some(s) = p.services.get_mut("web") {
        s.image = None;
    }
    check_validate(
        &p,
        expect!["project:0:0: services.web: service 'web' has neither image nor build"],
    );

    let mut p = ok.clone();
    if let Some(s) = p.services.get_mut("web") {
        s.networks
            .insert("front".to_owned(), ServiceNetwork::default());
    }
    check_validate(
        &p,
        expect![
            "project:0:0: services.web.networks.front: service 'web' uses network 'front', which is not declared under the top-level 'networks'"
        ],
    );

    let mut p = ok.clone();
    if let Some(s) = p.services.get_mut("web") {
        s.volumes.push(Mount {
            kind: MountKind::Volume,
            source: Some("data".to_owned()),
            target: "/data".to_owned(),
            read_only: false,
        });
    }
    check_validate(
        &p,
        expect![
            "project:0:0: services.web.volumes[0]: service 'web' uses volume 'data', which is not declared under the top-level 'volumes'"
        ],
    );

    let mut p = ok.clone();
    if let Some(s) = p.services.get_mut("web") {
        s.volumes.push(Mount {
            kind: MountKind::Bind,
            source: Some("/srv".to_owned()),
            target: "relative".to_owned(),
            read_only: false,
        });
    }
    check_validate(
        &p,
        expect!["project:0:0: services.web.volumes[0]: container path 'relative' must be absolute"],
    );

    let mut p = ok.clone();
    if let Some(s) = p.services.get_mut("web") {
        s.replicas = 5000;
    }
    check_validate(
        &p,
        expect![
            "project:0:0: services.web.deploy.replicas: too many replicas: 5000, the limit is 1000"
        ],
    );

    let mut p = ok.clone();
    if let Some(s) = p.services.get_mut("web") {
        s.limits.cpus = Some(f64::NAN);
    }
    check_validate(
        &p,
        expect!["project:0:0: services.web.deploy.resources: invalid number of CPUs"],
    );

    let mut p = ok.clone();
    p.extensions
        .insert("custom".to_owned(), serde_json::Value::Null);
    check_validate(
        &p,
        expect!["project:0:0: custom: extension keys must start with 'x-'"],
    );
}

#[test]
fn dotenv_public() {
    let parsed: BTreeMap<String, String> =
        parse_dotenv(".env", "A=1\n# c\nexport B='x y'\n").expect("parses");
    expect![[r#"{"A": "1", "B": "x y"}"#]].assert_eq(&format!("{parsed:?}"));
    let err = parse_dotenv("prod.env", "\n\n  oops\n")
        .err()
        .map(|e| e.to_string());
    expect![[r#"Some("prod.env:3:3: expected KEY=VALUE, found 'oops'")"#]]
        .assert_eq(&format!("{err:?}"));
}

#[test]
fn spec_hash_is_stable() {
    let a = common::load_text(
        "a.yml",
        "services:\n  web:\n    image: nginx\n    ports: ['80']\n",
    )
    .expect("loads");
    let b = common::load_text(
        "b.yml",
        "services:\n  web:\n    ports:\n      - target: 80\n    image: \"nginx\"\n",
    )
    .expect("loads");
    let hash = |l: &compose::Loaded| l.project.services.get("web").map(Service::spec_hash);
    assert_eq!(hash(&a), hash(&b));
    assert_eq!(hash(&a).map(|h| h.len()), Some(24));
    // A project stored before these keys existed keeps its hash; setting one recreates.
    let web = a.project.services.get("web").cloned().unwrap_or_default();
    let changed = |f: &dyn Fn(&mut Service)| {
        let mut s = web.clone();
        f(&mut s);
        s.spec_hash()
    };
    let base = web.spec_hash();
    assert_ne!(changed(&|s| s.privileged = true), base);
    assert_ne!(changed(&|s| s.pid = Some("host".into())), base);
    assert_ne!(changed(&|s| s.ipc = Some("host".into())), base);
    assert_ne!(changed(&|s| s.network_mode = Some("host".into())), base);
    assert_ne!(
        changed(&|s| s.security_opt = vec!["label=disable".into()]),
        base
    );
    assert_ne!(
        changed(&|s| s.devices = vec![device("/dev/fuse", "rwm")]),
        base
    );
    let json = serde_json::to_string(&web).expect("json");
    assert!(
        !json.contains("privileged") && !json.contains("devices"),
        "{json}"
    );
}

#[test]
fn validate_checks_placement_constraints() {
    // A project sent as JSON goes through the parser compose files' constraints go through.
    let mut p = project(&[("web", &[]), ("db", &[])]);
    if let Some(s) = p.services.get_mut("web") {
        s.placement.constraints = vec![
            "node.labels.region == eu".to_owned(),
            "node.hostname != db1".to_owned(),
        ];
    }
    check_validate(&p, expect!["ok"]);

    if let Some(s) = p.services.get_mut("web") {
        s.placement.constraints.push("region = eu".to_owned());
    }
    check_validate(
        &p,
        expect![[
            r#"project:0:0: services.web.deploy.placement.constraints[2]: constraint "region = eu": expected KEY == VALUE or KEY != VALUE"#
        ]],
    );

    if let Some(s) = p.services.get_mut("web") {
        s.placement.constraints = vec!["node.role == manager".to_owned()];
    }
    let err = validate(&p).err().map(|e| e.path).unwrap_or_default();
    assert_eq!(err, "services.web.deploy.placement.constraints[0]");
}

fn device(host: &str, permissions: &str) -> compose::Device {
    compose::Device {
        host: host.into(),
        container: "/dev/fuse".into(),
        permissions: permissions.into(),
    }
}

#[test]
fn validate_checks_privilege_keys() {
    // A project sent as JSON is held to what a compose file may say.
    let ok = project(&[("web", &[])]);
    let with = |f: &dyn Fn(&mut Service)| {
        let mut p = ok.clone();
        if let Some(s) = p.services.get_mut("web") {
            f(s);
        }
        p
    };
    check_validate(
        &with(&|s| {
            s.privileged = true;
            s.pid = Some("host".into());
            s.ipc = Some("shareable".into());
        }),
        expect!["ok"],
    );
    check_validate(
        &with(&|s| s.pid = Some("container:x".into())),
        expect!["project:0:0: services.web.pid: unsupported pid 'container:x' (expected host)"],
    );
    check_validate(
        &with(&|s| s.ipc = Some("container:x".into())),
        expect![
            "project:0:0: services.web.ipc: ipc 'container:x' is not supported: Drover does not share one container's IPC namespace with another (expected host, private, shareable or none)"
        ],
    );
    check_validate(
        &with(&|s| s.devices = vec![device("dev/fuse", "rwm")]),
        expect![
            "project:0:0: services.web.devices[0]: device host path 'dev/fuse' must be absolute"
        ],
    );
    check_validate(
        &with(&|s| s.devices = vec![device("/dev/fuse", "rr")]),
        expect![
            "project:0:0: services.web.devices[0]: invalid device permissions 'rr' (some of r, w and m)"
        ],
    );
    // The host's network: no Drover network beside it.
    check_validate(
        &with(&|s| s.network_mode = Some("host".into())),
        expect![
            "project:0:0: services.web.networks: 'networks' cannot be set with network_mode 'host'"
        ],
    );
    check_validate(
        &with(&|s| {
            s.network_mode = Some("host".into());
            s.networks.clear();
        }),
        expect!["ok"],
    );
    // Devices default to rwm in JSON too.
    let d: compose::Device =
        serde_json::from_str(r#"{"host":"/dev/fuse","container":"/dev/fuse"}"#).expect("json");
    assert_eq!(d.permissions, "rwm");
}
