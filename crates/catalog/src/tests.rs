//! Fixture tests: catalogs under `tests/fixtures/` (read here with std::fs; the crate does
//! no I/O) → the index, printed one line per template, version and problem; answers →
//! the rendered compose file and its warnings, or the errors.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use expect_test::{Expect, expect};

fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            panic!("fixture folder {} missing", dir.display())
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if let (Ok(rel), Ok(bytes)) = (p.strip_prefix(root), std::fs::read(&p)) {
                out.insert(rel.to_string_lossy().replace('\\', "/"), bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn fixture(name: &str) -> Index {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    index(name, &read_tree(&root))
}

fn builtin() -> Index {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog/builtin");
    index("builtin", &read_tree(&root))
}

fn show_question(q: &Question) -> String {
    let mut s = format!("{}:{}", q.variable, q.kind.as_str());
    if q.required {
        s += "*";
    }
    if let Some(d) = &q.default {
        s += &format!("={d}");
    }
    if !q.options.is_empty() {
        s += &format!("[{}]", q.options.join("|"));
    }
    if q.min.is_some() || q.max.is_some() {
        let f = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
        s += &format!("({}..{})", f(q.min), f(q.max));
    }
    if let Some(p) = &q.pattern {
        s += &format!(" /{p}/");
    }
    if let Some(c) = &q.show_if {
        s += &format!(" if {c}");
    }
    if let Some(g) = &q.group {
        s += &format!(" in {g}");
    }
    if q.generate {
        s += " generated";
    }
    s
}

fn show_index(ix: &Index) -> String {
    let mut out = String::new();
    for t in ix.templates.values() {
        out += &format!(
            "{} ({:?}) \"{}\" categories={:?} icon={} default={} readme={}\n",
            t.name,
            t.format,
            t.display_name,
            t.categories,
            t.icon.as_deref().unwrap_or("-"),
            t.default_version.as_deref().unwrap_or("-"),
            t.readme.is_some(),
        );
        for v in &t.versions {
            out += &format!(
                "  {} [{}] {} {}\n",
                v.version,
                v.folder,
                v.compose.path.rsplit('/').next().unwrap_or_default(),
                v.description.as_deref().unwrap_or("")
            );
            for q in &v.questions {
                out += &format!("    {}\n", show_question(q));
            }
        }
        for w in &t.warnings {
            out += &format!("  warning: {w}\n");
        }
    }
    for p in &ix.problems {
        out += &format!("problem: {p}\n");
    }
    out
}

/// Deterministic "random" bytes.
fn counter() -> impl FnMut(&mut [u8]) {
    let mut c = 0u8;
    move |b: &mut [u8]| {
        for x in b {
            *x = c;
            c = c.wrapping_add(37);
        }
    }
}

fn services() -> Vec<String> {
    vec!["shop/api".into(), "shop/db".into()]
}

fn answers(pairs: &str) -> BTreeMap<String, String> {
    pairs
        .split(';')
        .filter(|p| !p.trim().is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.replace("\\n", "\n")))
        .collect()
}

/// Resolves `given` for TEMPLATE:VERSION of the index and renders it as stack `shop`.
fn render_with(ix: &Index, template: &str, version: &str, given: &str) -> String {
    let Some(t) = ix.templates.get(template) else {
        return format!("no template {template}\n");
    };
    let Some(v) = t.version(version) else {
        return format!("no version {version}\n");
    };
    let given = answers(given);
    let resolved = match resolve_answers(
        &v.questions,
        &given,
        &BTreeMap::new(),
        &services(),
        &mut counter(),
    ) {
        Ok(a) => a,
        Err(errs) => {
            return errs
                .iter()
                .map(|e| format!("answer error: {e}\n"))
                .collect();
        }
    };
    match render(t, version, &resolved, "shop") {
        Err(e) => format!("render error: {e}\n"),
        Ok(r) => {
            let mut out = xdrover_errors(&r.project);
            out += &r.compose_yaml;
            for w in r.warnings {
                out += &format!("warning: {w}\n");
            }
            out
        }
    }
}

/// What the server would refuse in the project's `x-drover` settings (the server checks
/// them with these same functions), one line per service. (Sidekick relations are
/// checked by `compose::load` itself.)
fn xdrover_errors(p: &compose::Project) -> String {
    let mut out = String::new();
    for (name, svc) in &p.services {
        let r = proto::x_drover(svc).and_then(|x| {
            x.probe()?;
            x.drain_ms()?;
            Ok(())
        });
        if let Err(e) = r {
            out += &format!("x-drover refused: {name}: {e}\n");
        }
    }
    out
}

fn check_render(catalog: &str, template: &str, version: &str, given: &str, expected: Expect) {
    expected.assert_eq(&render_with(&fixture(catalog), template, version, given));
}

#[test]
fn rancher_catalog_index() {
    expect![[r#"
        broken-tpl (Rancher) "Broken template" categories=[] icon=- default=- readme=false
          0.0.1 [0] docker-compose.yml.tpl 
            X:string=1
        global-app (Rancher) "Global Agent" categories=["Monitoring"] icon=- default=0.1.0 readme=false
          0.1.0 [0] docker-compose.yml 
          warning: templates/global-app/0/rancher-compose.yml:5:3: unknown key 'banner' ignored
        tpl-app (Rancher) "Templated App" categories=["Test"] icon=- default=2.0.0 readme=false
          2.0.0 [0] docker-compose.yml.tpl every question type
            FLAVOUR:string=Standard(3..20) in Image
            TAG:string /[0-9]+\.[0-9]+/ in Image
            WORKERS:int=2(1..16)
            ENABLE_TLS:boolean=false
            MODE:enum=single[single|cluster|dev]
            DB_PASSWORD:password*
            GREETING:multiline=hello
            PUBLIC_HOST:hostname* if ENABLE_TLS=true
            UPSTREAM:service
            TLS_CERT:certificate if ENABLE_TLS=true
            EXTRA_HOSTS:string=alpha, beta
            GLOBAL:boolean=false
        v1-app (Rancher) "V1 App" categories=["Test"] icon=templates/v1-app/catalogIcon-v1-app.svg default=1.1.0-rancher1 readme=true
          1.0.0-rancher1 [0] docker-compose.yml first version
            HTTP_PORT:int*=8080(1..65535)
            DB_PASSWORD:password*
          1.1.0-rancher1 [1] docker-compose.yml adds an admin e-mail, sidekick volumes and scheduling rules
            HTTP_PORT:int*=8080(1..65535)
            DB_PASSWORD:password*
            ADMIN_EMAIL:string* /[^@ ]+@[^@ ]+/
        problem: bad-tpl-syntax: templates/bad-tpl-syntax/0/docker-compose.yml.tpl:4:1: unexpected EOF
        problem: bad-tpl-syntax: templates/bad-tpl-syntax: no version could be loaded
        problem: broken-question: templates/broken-question/0/rancher-compose.yml:4:7: questions[0] SIZE: unknown type 'float' (string, int, boolean, enum, password, multiline, hostname, service, certificate)
        problem: broken-question: templates/broken-question: no version could be loaded
        problem: broken-yaml: templates/broken-yaml/0/rancher-compose.yml:4:6: while parsing a block collection, did not find expected '-' indicator
        problem: broken-yaml: templates/broken-yaml: no version could be loaded
        problem: empty: templates/empty: no version: a version is a folder holding compose.yaml (or docker-compose.yml[.tpl] for Rancher)
        problem: no-format: templates/no-format: neither template.yml (Drover) nor config.yml (Rancher): not a template
    "#]].assert_eq(&show_index(&fixture("rancher")));
}

#[test]
fn drover_catalog_index() {
    expect![[r#"
        bad-compose (Drover) "Bad compose" categories=[] icon=- default=- readme=false
          1.0 [1.0] compose.yaml 
            PORT:int=80
        notes (Drover) "Notes" categories=["Productivity", "Web"] icon=templates/notes/icon.svg default=- readme=false
          1.2.0 [1.2.0] compose.yaml Notes with PostgreSQL
            SITE_NAME:string=My notes(..40) /[A-Za-z0-9 ]+/
            HTTP_PORT:int=8080(1024..65535)
            DB_PASSWORD:password(40..) generated
            SMTP:boolean=false in E-mail
            SMTP_HOST:hostname* if SMTP=true in E-mail
          1.9.0-rc1 [1.9.0-rc1] compose.yaml Notes with PostgreSQL
            SITE_NAME:string=My notes(..40) /[A-Za-z0-9 ]+/
            HTTP_PORT:int=8080(1024..65535)
            DB_PASSWORD:password(40..) generated
            SMTP:boolean=false in E-mail
            SMTP_HOST:hostname* if SMTP=true in E-mail
          1.10.0 [1.10.0] compose.yaml Notes with PostgreSQL
            SITE_NAME:string=My notes(..30) /[A-Za-z0-9 ]+/
            HTTP_PORT:int=8080(1024..65535)
            DB_PASSWORD:password(40..) generated
            SMTP:boolean=false in E-mail
            SMTP_HOST:hostname* if SMTP=true in E-mail
            THEME:enum=light[light|dark]
          warning: templates/notes/template.yml:7:1: unknown key 'colour' ignored
    "#]].assert_eq(&show_index(&fixture("drover")));
}

#[test]
fn rancher_v1_first_version() {
    check_render(
        "rancher",
        "v1-app",
        "1.0.0-rancher1",
        "DB_PASSWORD=pw",
        expect![[r#"
            name: "shop"
            services:
              db:
                image: "postgres:16.2"
                environment:
                  POSTGRES_PASSWORD: "pw"
              web:
                image: "nginx:1.25"
                ports:
                  - target: 80
                    published: 8080
                    protocol: "tcp"
                pull_policy: "always"
                deploy:
                  replicas: 2
                links:
                  - "db:database"
                logging:
                  driver: "json-file"
                  options:
                    max-size: "10m"
              web-data:
                image: "busybox:1.36"
                command:
                  - "sleep"
                  - "infinity"
                network_mode: "service:web"
            warning: templates/v1-app/0/docker-compose.yml:8:5: services.web.external_links: not supported yet, ignored
        "#]],
    );
}

#[test]
fn rancher_v1_labels_rancher_compose_and_unsupported_keys() {
    check_render(
        "rancher",
        "v1-app",
        "1",
        "DB_PASSWORD=pw;ADMIN_EMAIL=ops@example.com;HTTP_PORT=8081",
        expect![[r#"
            name: "shop"
            services:
              db:
                image: "postgres:16.4"
                environment:
                  ADMIN_EMAIL: "ops@example.com"
                  POSTGRES_PASSWORD: "pw"
                hostname: "shop-db-1"
              web:
                image: "nginx:1.27"
                ports:
                  - target: 80
                    published: 8081
                    protocol: "tcp"
                pull_policy: "always"
                labels:
                  com.example.team: "frontend"
                  io.rancher.container.network: "true"
                volumes_from:
                  - "web-data"
                links:
                  - "db:database"
                logging:
                  driver: "json-file"
                  options:
                    max-size: "10m"
                x-drover:
                  health:
                    interval: "2000ms"
                    timeout: "1500ms"
                    retries: 3
                    start_period: "60000ms"
                    on_unhealthy: "recreate_on_quorum"
                    http: "/healthz"
                    port: 80
                  affinity:
                    - service: "db"
              web-data:
                image: "busybox:1.36"
                command:
                  - "sleep"
                  - "infinity"
                volumes:
                  - type: "volume"
                    target: "/srv/web"
                deploy:
                  replicas: 3
                  placement:
                    constraints:
                      - "node.labels.tier == web"
                      - "node.labels.zone == a"
                      - "node.labels.maintenance != true"
                    max_replicas_per_node: 1
                  update_config:
                    parallelism: 1
                    delay: "2s"
                    order: "start-first"
            warning: templates/v1-app/1/docker-compose.yml:15:3: services.web.volume_driver: 'volume_driver' is not a compose key Drover knows; ignored
            warning: templates/v1-app/1/rancher-compose.yml:26:3: web.retain_ip: rancher-compose key 'retain_ip' has no Drover meaning; ignored
            warning: templates/v1-app/1/rancher-compose.yml:37:24: web.health_check.healthy_threshold: Drover counts a container healthy after one passing check; ignored
            warning: templates/v1-app/1/docker-compose.yml:21:52: services.web.labels.io.rancher.scheduler.affinity:host_label_soft: soft host affinity has no Drover equivalent (constraints are hard); ignored
            warning: templates/v1-app/1/docker-compose.yml:24:5: services.web.labels.io.rancher.container.network: label 'io.rancher.container.network' has no Drover meaning; kept as a plain label
            warning: templates/v1-app/1/rancher-compose.yml:41:20: web-data.start_on_create: start_on_create: false has no Drover equivalent: containers start when made
            warning: templates/v1-app/1/docker-compose.yml:40:52: services.db.labels.io.rancher.scheduler.affinity:container_label: 'app=database': affinity to containers by label has no Drover equivalent (only io.rancher.stack_service.name); ignored
            warning: templates/v1-app/1/rancher-compose.yml:42:1: ghost: no service 'ghost' in the compose file; its settings are ignored
            warning: templates/v1-app/1/docker-compose.yml:17:27: services.web.labels.io.rancher.sidekicks: 'web' uses the volumes or network of its sidekick 'web-data', so in Drover 'web-data' leads their unit: scale, mode and placement move to it
            warning: templates/v1-app/1/docker-compose.yml:17:27: services.web.labels.io.rancher.sidekicks: sidekick 'web-missing' is not a service of this template
            warning: templates/v1-app/1/docker-compose.yml:8:5: services.web.external_links: not supported yet, ignored
            warning: templates/v1-app/1/docker-compose.yml:14:15: services.web.cpu_shares: not supported yet, ignored
        "#]],
    );
}

#[test]
fn rancher_tpl_with_every_construct() {
    check_render(
        "rancher",
        "tpl-app",
        "2.0.0",
        "DB_PASSWORD=s3cret;ENABLE_TLS=true;MODE=cluster;WORKERS=4;FLAVOUR=Debug-Build;\
         TAG=3.1;PUBLIC_HOST=app.example.com;UPSTREAM=shop/api;\
         TLS_CERT=-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----;\
         EXTRA_HOSTS=one, two ,three;GREETING=hi there",
        expect![[r#"
            name: "shop"
            services:
              app:
                image: "registry.example.com/debug-build:3.1"
                environment:
                  BASE64_NAME: "c2hvcA=="
                  CLUSTER: "yes"
                  DB_PASSWORD: "s3cret"
                  HOSTS_JSON: "[\"one\",\" two \",\"three\"]"
                  STACK: "shop"
                  TLS: "on"
                  TRIMMED: "spaced"
                  UPPER_MODE: "CLUSTER"
                  WORKERS: "4"
                labels:
                  joined: "a+b+cluster"
                  upstream.scheme: "shop/api"
                secrets:
                  - "tls"
                extra_hosts:
                  - "one:10.0.0.10"
                  - "two:10.0.0.11"
                  - "three:10.0.0.12"
                x-drover:
                  health:
                    interval: "5000ms"
                    retries: 2
                    on_unhealthy: "none"
                    tcp: 8080
              worker:
                image: "busybox:1.36"
                command:
                  - "sh"
                  - "-c"
                  - "echo hi there"
                deploy:
                  replicas: 3
            secrets:
              tls:
                environment: "TLS_CERT"
        "#]],
    );
}

#[test]
fn rancher_tpl_with_defaults_else_branches() {
    check_render(
        "rancher",
        "tpl-app",
        "2.0.0",
        "DB_PASSWORD=x;GLOBAL=yes;MODE=dev",
        expect![[r#"
            name: "shop"
            services:
              app:
                image: "registry.example.com/standard:2.0"
                environment:
                  BASE64_NAME: "c2hvcA=="
                  DB_PASSWORD: "x"
                  DEBUG: "true"
                  HOSTS_JSON: "[\"alpha\",\" beta\"]"
                  STACK: "shop"
                  TLS: "off"
                  TRIMMED: "spaced"
                  UPPER_MODE: "DEV"
                  WORKERS: "2"
                labels:
                  joined: "a+b+dev"
                  upstream.scheme: ""
                deploy:
                  mode: "global"
                extra_hosts:
                  - "alpha:10.0.0.10"
                  - "beta:10.0.0.11"
                x-drover:
                  health:
                    interval: "5000ms"
                    retries: 2
                    on_unhealthy: "none"
                    tcp: 8080
              worker:
                image: "busybox:1.36"
                command:
                  - "sh"
                  - "-c"
                  - "echo hello"
                deploy:
                  replicas: 3
        "#]],
    );
}

#[test]
fn rancher_global_v2_and_health_check_tcp() {
    check_render(
        "rancher",
        "global-app",
        "0.1.0",
        "",
        expect![[r#"
        name: "shop"
        services:
          agent:
            image: "prom/node-exporter:v1.8.2"
            volumes:
              - type: "volume"
                source: "state"
                target: "/state"
            labels:
              io.rancher.container.dns: "true"
            deploy:
              mode: "global"
            network_mode: "host"
            pid: "host"
            x-drover:
              health:
                interval: "10000ms"
                on_unhealthy: "recreate"
                tcp: 9100
        volumes:
          state:
            driver: "local"
        warning: templates/global-app/0/docker-compose.yml:15:5: services.agent.blkio_weight: 'blkio_weight' is not a compose key Drover knows; ignored
        warning: templates/global-app/0/rancher-compose.yml:11:17: agent.health_check.strategy: unknown strategy 'sometimes'; recreate is used
        warning: templates/global-app/0/rancher-compose.yml:12:7: agent.health_check.recreate_on_quorum_strategy_config: health_check key 'recreate_on_quorum_strategy_config' has no Drover meaning; ignored
        warning: templates/global-app/0/rancher-compose.yml:14:5: agent.lb_config: rancher-compose key 'lb_config' has no Drover meaning; ignored
        warning: templates/global-app/0/docker-compose.yml:14:7: services.agent.labels.io.rancher.container.dns: label 'io.rancher.container.dns' has no Drover meaning; kept as a plain label
    "#]],
    );
}

#[test]
fn rancher_template_error_names_the_file() {
    check_render(
        "rancher",
        "broken-tpl",
        "0.0.1",
        "",
        expect![[r#"
        render error: templates/broken-tpl/0/docker-compose.yml.tpl:5:11:16:b64dec: Invalid input length: 1
    "#]],
    );
}

#[test]
fn drover_template_with_generated_password() {
    check_render(
        "drover",
        "notes",
        "1.10.0",
        "SITE_NAME=Team notes",
        expect![[r#"
        name: "shop"
        services:
          db:
            image: "postgres:16.4"
            environment:
              POSTGRES_PASSWORD: "AlMxY9kDoP0bCnGrS3eFqJuV6hItMxY9kLwP0bCn"
            volumes:
              - type: "volume"
                source: "data"
                target: "/var/lib/postgresql/data"
          web:
            image: "nginx:1.10.0"
            environment:
              DB_PASSWORD: "AlMxY9kDoP0bCnGrS3eFqJuV6hItMxY9kLwP0bCn"
              SITE_NAME: "Team notes"
              SMTP_HOST: ""
            ports:
              - target: 80
                published: 8080
                protocol: "tcp"
            depends_on:
              db:
                condition: "service_started"
            x-drover:
              health:
                http: "/health"
                port: 80
        volumes:
          data: {}
    "#]],
    );
}

#[test]
fn drover_compose_error_names_file_and_line() {
    check_render(
        "drover",
        "bad-compose",
        "1.0",
        "",
        expect![[r#"
        render error: templates/bad-compose/1.0/compose.yaml:6:14: services.web.restart: unknown restart policy 'sometimes' (expected no, always, on-failure[:N] or unless-stopped)
    "#]],
    );
}

#[test]
fn answer_errors_name_their_question() {
    let ix = fixture("rancher");
    for (given, expected) in [
        (
            "WORKERS=99;MODE=huge;ENABLE_TLS=maybe;FLAVOUR=ab;TAG=latest;UPSTREAM=web;NOPE=1",
            expect![[r#"
                answer error: NOPE: this version asks no such question
                answer error: FLAVOUR: at least 3 characters (got 2)
                answer error: TAG: does not match the pattern [0-9]+\.[0-9]+
                answer error: WORKERS: 99 is above the maximum 16
                answer error: ENABLE_TLS: 'maybe' is not true or false
                answer error: MODE: 'huge' is not one of: single, cluster, dev
                answer error: DB_PASSWORD: required (Database password)
                answer error: UPSTREAM: no running service 'web' (running: shop/api, shop/db)
            "#]],
        ),
        (
            "DB_PASSWORD=two\\nlines;ENABLE_TLS=true;PUBLIC_HOST=-bad-.example;TLS_CERT=abc",
            expect![[r#"
                answer error: DB_PASSWORD: must be one line
                answer error: PUBLIC_HOST: '-bad-.example' is not a host name like app.example.com
                answer error: TLS_CERT: not a PEM block (-----BEGIN ... -----END ...)
            "#]],
        ),
    ] {
        expected.assert_eq(&render_with(&ix, "tpl-app", "2.0.0", given));
    }
}

#[test]
fn hidden_questions_are_not_required_nor_checked_and_secrets_are_marked() {
    let ix = fixture("rancher");
    let Some(v) = ix.templates.get("tpl-app").and_then(|t| t.latest()) else {
        panic!("tpl-app")
    };
    let given = answers("DB_PASSWORD=x;TLS_CERT=not a pem");
    let Ok(a) = resolve_answers(
        &v.questions,
        &given,
        &BTreeMap::new(),
        &services(),
        &mut counter(),
    ) else {
        panic!("hidden TLS_CERT must not be checked")
    };
    expect![[r#"
        {"DB_PASSWORD": "<redacted>", "ENABLE_TLS": "false", "EXTRA_HOSTS": "alpha, beta", "FLAVOUR": "Standard", "GLOBAL": "false", "GREETING": "hello", "MODE": "single", "TAG": "", "TLS_CERT": "<redacted>", "UPSTREAM": "", "WORKERS": "2"}
        {"DB_PASSWORD", "TLS_CERT"}
    "#]].assert_eq(&format!("{:?}\n{:?}\n", a.redacted(), a.secret));
}

#[test]
fn generated_passwords_are_kept_across_upgrades() {
    let ix = fixture("drover");
    let Some(t) = ix.templates.get("notes") else {
        panic!("notes")
    };
    let (Some(old), Some(new)) = (t.version("1.2.0"), t.version("1.10.0")) else {
        panic!("versions")
    };
    let Ok(first) = resolve_answers(
        &old.questions,
        &BTreeMap::new(),
        &BTreeMap::new(),
        &[],
        &mut counter(),
    ) else {
        panic!("defaults")
    };
    let pw = first.values.get("DB_PASSWORD").cloned().unwrap_or_default();
    assert_eq!(pw.len(), 40, "min 40 wins over the default length");
    assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()));
    // A stored site name the new version's max: 30 refuses, and the new THEME question.
    let mut stored = first.values.clone();
    stored.insert(
        "SITE_NAME".into(),
        "A site name well over thirty chars".into(),
    );
    let ask: Vec<String> = new_questions(old, new, &stored)
        .iter()
        .map(|q| q.variable.clone())
        .collect();
    assert_eq!(ask, ["SITE_NAME", "THEME"]);
    stored.insert("SITE_NAME".into(), "Short".into());
    let Ok(upgraded) = resolve_answers(
        &new.questions,
        &BTreeMap::new(),
        &stored,
        &[],
        &mut |_: &mut [u8]| panic!("no new randomness on upgrade"),
    ) else {
        panic!("upgrade")
    };
    assert_eq!(upgraded.values.get("DB_PASSWORD"), Some(&pw));
    assert_eq!(
        upgraded.values.get("THEME").map(String::as_str),
        Some("light")
    );
    assert!(upgraded.is_secret("DB_PASSWORD"));
}

#[test]
fn version_order() {
    let mut v = vec![
        "1.10.0",
        "v1.2.0",
        "1.9.0-rc1",
        "1.9.0",
        "1.0.0-rancher10",
        "1.0.0-rancher2",
        "2",
        "1.9.0-rc2",
    ];
    v.sort_by(|a, b| compare_versions(a, b));
    expect![[r#"["1.0.0-rancher2", "1.0.0-rancher10", "v1.2.0", "1.9.0-rc1", "1.9.0-rc2", "1.9.0", "1.10.0", "2"]"#]].assert_eq(&format!("{v:?}"));
}

#[test]
fn broken_input_never_panics() {
    let mut files = BTreeMap::new();
    for (p, c) in [
        ("templates/a/template.yml", &b"[unclosed"[..]),
        ("templates/b/config.yml", b"name: B"),
        ("templates/b/0/docker-compose.yml", b"\xff\xfe"),
        ("templates/c/config.yml", b"- a list"),
        ("templates/d/template.yml", b"name: D"),
        ("templates/d/1/compose.yaml", b"services: {web: {image: x}}"),
        ("templates/d/1/questions.yml", b"questions: {not: a list}"),
        ("templates/e/config.yml", b"name: E"),
        ("templates/e/0/docker-compose.yml.tpl", b"{{ if }}"),
        ("README.md", b"top"),
        ("templates/stray.txt", b"x"),
    ] {
        files.insert(p.to_owned(), c.to_vec());
    }
    let ix = index("bad", &files);
    expect![[r#"
        problem: a: templates/a/template.yml:2:1: while parsing a flow sequence, expected ',' or ']'
        problem: b: templates/b/0/docker-compose.yml: not UTF-8 text: invalid utf-8 sequence of 1 bytes from index 0
        problem: b: templates/b: no version could be loaded
        problem: c: templates/c/config.yml: expected a mapping, found a sequence
        problem: d: templates/d/1/questions.yml:1:12: questions: expected a list, found a mapping
        problem: d: templates/d: no version could be loaded
        problem: e: templates/e/0/docker-compose.yml.tpl:1:7: missing value for if
        problem: e: templates/e: no version could be loaded
    "#]].assert_eq(&show_index(&ix));
    assert!(
        !ix.templates.contains_key("e"),
        "a .tpl that does not parse is a problem"
    );
}

#[test]
fn rancher_errors_point_at_the_template_file_and_line() {
    let mut files = BTreeMap::new();
    for (p, c) in [
        ("templates/f/config.yml", "name: F"),
        (
            "templates/f/0/docker-compose.yml.tpl",
            "web:\n  image: nginx:1.27\n  command: [{{ .Values.X }}\n",
        ),
        ("templates/g/config.yml", "name: G"),
        (
            "templates/g/0/docker-compose.yml",
            "# v1 layout\nweb:\n  image: nginx:1.27\n  labels:\n    a: b\n  ports:\n    - \"99999:80\"\n",
        ),
        ("templates/h/config.yml", "name: H"),
        (
            "templates/h/0/docker-compose.yml",
            "web:\n  image: nginx:1.27\n",
        ),
        ("templates/h/0/rancher-compose.yml", "web:\n  scale: lots\n"),
    ] {
        files.insert(p.to_owned(), c.as_bytes().to_vec());
    }
    let ix = index("lines", &files);
    let mut out = String::new();
    for name in ["f", "g", "h"] {
        let Some(t) = ix.templates.get(name) else {
            panic!("{name}: {:?}", ix.problems)
        };
        out += &match render(t, "0", &Answers::default(), "s") {
            Ok(_) => "rendered\n".to_owned(),
            Err(e) => format!("{e}\n"),
        };
    }
    expect![[r#"
        templates/f/0/docker-compose.yml.tpl (rendered):4:1: while parsing a flow sequence, expected ',' or ']'
        templates/g/0/docker-compose.yml:7:7: services.web.ports[0]: invalid port '99999:80'
        templates/h/0/rancher-compose.yml:2:10: services.web.scale: expected a number of replicas, found 'lots'
    "#]].assert_eq(&out);
}

#[test]
fn every_builtin_template_version_renders_with_its_defaults() {
    let ix = builtin();
    assert!(ix.problems.is_empty(), "{:#?}", ix.problems);
    assert!(ix.templates.len() >= 15, "{} templates", ix.templates.len());
    let mut summary = String::new();
    for t in ix.templates.values() {
        assert_eq!(t.format, Format::Drover, "{}", t.name);
        assert!(
            t.icon.is_some() || t.warnings.is_empty(),
            "{}: {:?}",
            t.name,
            t.warnings
        );
        let mut line = format!("{}:", t.name);
        let mut previous: Option<(&Version, Answers)> = None;
        for v in &t.versions {
            let a = match resolve_answers(
                &v.questions,
                &BTreeMap::new(),
                &BTreeMap::new(),
                &[],
                &mut counter(),
            ) {
                Ok(a) => a,
                Err(e) => panic!("{} {}: defaults do not answer: {e:?}", t.name, v.version),
            };
            let r = match render(t, &v.version, &a, "app") {
                Ok(r) => r,
                Err(e) => panic!("{} {}: {e}", t.name, v.version),
            };
            if let Err(e) = compose::validate(&r.project) {
                panic!("{} {}: {e}", t.name, v.version);
            }
            assert_eq!(xdrover_errors(&r.project), "", "{} {}", t.name, v.version);
            assert!(
                r.warnings.is_empty(),
                "{} {}: {:?}",
                t.name,
                v.version,
                r.warnings
            );
            for (name, s) in &r.project.services {
                let image = s.image.as_deref().unwrap_or_default();
                assert!(
                    image.contains(':') && !image.ends_with(":latest"),
                    "{} {}: {name} image {image} is not pinned",
                    t.name,
                    v.version
                );
            }
            line += &format!(" {}", v.version);
            if let Some((old, stored)) = &previous {
                let ask: Vec<String> = new_questions(old, v, &stored.values)
                    .iter()
                    .map(|q| q.variable.clone())
                    .collect();
                line += &format!(" (upgrade asks {ask:?})");
            }
            previous = Some((v, a));
        }
        summary += &line;
        summary += "\n";
    }
    expect![[r#"
        ghost: 5.82.2 5.96.0 (upgrade asks ["MAIL_FROM"])
        gitea: 1.21.11 1.22.2 (upgrade asks ["LFS"])
        jenkins: 2.462.2 2.462.3 (upgrade asks [])
        kafka: 3.7.1 3.8.0 (upgrade asks ["AUTO_CREATE_TOPICS"])
        keycloak: 25.0.6
        mattermost: 9.11.1
        minio: 2024.09.13
        nextcloud: 29.0.7
        postgresql: 16.3 16.4 (upgrade asks ["INITDB_ARGS"])
        prometheus-grafana: 2.53.2
        redis: 7.2.5 7.4.0 (upgrade asks [])
        traefik: 3.1.4
        uptime-kuma: 1.23.13 1.23.14 (upgrade asks [])
        wordpress: 6.5.5 6.6.2 (upgrade asks ["MEMORY_LIMIT"])
        zookeeper: 3.9.2
    "#]]
    .assert_eq(&summary);
}

#[test]
fn synthetic_catalog_indexes_and_renders() {
    let ix = index("bench", &synthetic_catalog(10, 25));
    assert!(ix.problems.is_empty(), "{:#?}", ix.problems);
    assert_eq!(ix.templates.len(), 10);
    assert_eq!(
        ix.templates
            .values()
            .map(|t| t.versions.len())
            .sum::<usize>(),
        25
    );
    for t in ix.templates.values() {
        for v in &t.versions {
            let a = resolve_answers(
                &v.questions,
                &BTreeMap::new(),
                &BTreeMap::new(),
                &[],
                &mut counter(),
            );
            let Ok(a) = a else {
                panic!("{} {}: {a:?}", t.name, v.version)
            };
            if let Err(e) = render(t, &v.version, &a, "bench") {
                panic!("{} {}: {e}", t.name, v.version);
            }
        }
    }
}
