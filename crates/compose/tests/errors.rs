//! Error cases: every message with its exact `file:line:column` and path.

mod common;

use std::collections::BTreeMap;

use common::check;
use compose::{Input, load};
use expect_test::expect;

#[test]
fn wrong_types() {
    check(
        "services:\n  web:\n    image: {name: nginx}\n",
        expect![[r#"
            error: docker-compose.yml:3:12: services.web.image: expected a string, found a mapping
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    ports:\n      - 80\n      - [8080, 80]\n",
        expect![[r#"
            error: docker-compose.yml:6:9: services.web.ports[1]: expected a string, number or mapping, found a sequence
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    cap_add: NET_ADMIN\n",
        expect![[r#"
            error: docker-compose.yml:4:14: services.web.cap_add: expected a sequence, found a string
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    deploy:\n      replicas: two\n",
        expect![[r#"
            error: docker-compose.yml:5:17: services.web.deploy.replicas: expected a number of replicas, found 'two'
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    deploy:\n      replicas: 1.5\n",
        expect![[r#"
            error: docker-compose.yml:5:17: services.web.deploy.replicas: expected a number of replicas, found '1.5'
        "#]],
    );
    check(
        "- just\n- a list\n",
        expect![[r#"
        error: docker-compose.yml:1:1: expected a mapping at the top level, found a sequence
    "#]],
    );
    check(
        "services: [web]\n",
        expect![[r#"
        error: docker-compose.yml:1:11: services: expected a mapping, found a sequence
    "#]],
    );
}

#[test]
fn bad_update_configs() {
    check(
        "services:\n  web:\n    image: nginx\n    deploy:\n      update_config:\n        order: sideways\n",
        expect![[r#"
            error: docker-compose.yml:6:16: services.web.deploy.update_config.order: unknown order 'sideways' (expected stop-first or start-first)
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    deploy:\n      rollback_config:\n        failure_action: rollback\n",
        expect![[r#"
            error: docker-compose.yml:6:25: services.web.deploy.rollback_config.failure_action: unknown failure_action 'rollback' (expected continue or pause)
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    deploy:\n      update_config:\n        max_failure_ratio: 2\n",
        expect![[r#"
            error: docker-compose.yml:6:28: services.web.deploy.update_config.max_failure_ratio: invalid ratio '2' (expected 0 to 1, like 0.2)
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    deploy:\n      update_config:\n        delay: soon\n",
        expect![[r#"
            error: docker-compose.yml:6:16: services.web.deploy.update_config.delay: invalid duration 'soon': expected a number
        "#]],
    );
}

#[test]
fn bad_values() {
    check(
        "services:\n  web:\n    image: nginx\n    restart: sometimes\n",
        expect![[r#"
            error: docker-compose.yml:4:14: services.web.restart: unknown restart policy 'sometimes' (expected no, always, on-failure[:N] or unless-stopped)
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    ports:\n      - \"80:80\"\n      - \"99999:80\"\n",
        expect![[r#"
            error: docker-compose.yml:6:9: services.web.ports[1]: invalid port '99999:80'
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    ports:\n      - target: 80\n        published: 70000\n",
        expect![[r#"
            error: docker-compose.yml:6:20: services.web.ports[0].published: invalid port '70000'
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: 10\n",
        expect![[r#"
            error: docker-compose.yml:6:17: services.web.healthcheck.interval: invalid duration '10': missing unit (use e.g. '30s', '1m30s', '500ms')
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    healthcheck:\n      test: [\"curl\", \"localhost\"]\n",
        expect![[r#"
            error: docker-compose.yml:5:13: services.web.healthcheck.test: healthcheck test must start with NONE, CMD or CMD-SHELL, found 'curl'
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    deploy:\n      resources:\n        limits:\n          memory: 12 parsecs\n",
        expect![[r#"
            error: docker-compose.yml:7:19: services.web.deploy.resources.limits.memory: invalid size '12 parsecs' (use e.g. '512m', '1g', '1.5GB' or bytes)
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    deploy:\n      resources:\n        limits:\n          cpus: lots\n",
        expect![[r#"
            error: docker-compose.yml:7:17: services.web.deploy.resources.limits.cpus: invalid number of CPUs 'lots'
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    command: echo 'unterminated\n",
        expect![[r#"
            error: docker-compose.yml:4:14: services.web.command: unterminated single quote in 'echo 'unterminated'
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    volumes:\n      - data:/data:rx\n",
        expect![[r#"
            error: docker-compose.yml:5:9: services.web.volumes[0]: invalid volume mode 'rx'
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    volumes:\n      - ./data:relative\n",
        expect![[r#"
            error: docker-compose.yml:5:9: services.web.volumes[0]: container path 'relative' must be absolute
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    volumes:\n      - type: bind\n        target: /x\n",
        expect![[r#"
            error: docker-compose.yml:5:9: services.web.volumes[0]: bind mount needs a 'source'
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    depends_on:\n      db:\n        condition: service_ready\n  db:\n    image: postgres\n",
        expect![[r#"
            error: docker-compose.yml:6:20: services.web.depends_on.db.condition: unknown condition 'service_ready' (expected service_started, service_healthy or service_completed_successfully)
        "#]],
    );
    check(
        "services:\n  web:\n    image: \"\"\n",
        expect![[r#"
            error: docker-compose.yml:3:12: services.web.image: must not be empty
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    environment:\n      - =value\n",
        expect![[r#"
            error: docker-compose.yml:5:9: services.web.environment[0]: empty key
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    read_only: true\n    deploy:\n      mode: everywhere\n",
        expect![[r#"
            error: docker-compose.yml:6:13: services.web.deploy.mode: unknown deploy mode 'everywhere'
        "#]],
    );
}

#[test]
fn unknown_keys() {
    check(
        "services:\n  web:\n    imgae: nginx\n",
        expect![[r#"
            error: docker-compose.yml:3:5: services.web.imgae: unknown key 'imgae' in service 'web' (did you mean 'image'?)
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    healthcheck:\n      test: [\"NONE\"]\n      intervl: 5s\n",
        expect![[r#"
            error: docker-compose.yml:6:7: services.web.healthcheck.intervl: unknown key 'intervl' in healthcheck (did you mean 'interval'?)
        "#]],
    );
    check(
        "servics:\n  web:\n    image: nginx\n",
        expect![[r#"
            error: docker-compose.yml:1:1: servics: unknown key 'servics' in the top level (did you mean 'services'?)
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\nnetworks:\n  front:\n    drvier: bridge\n",
        expect![[r#"
            error: docker-compose.yml:6:5: networks.front.drvier: unknown key 'drvier' in network 'front' (did you mean 'driver'?)
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    completely_made_up: 1\n",
        expect![[r#"
            error: docker-compose.yml:4:5: services.web.completely_made_up: unknown key 'completely_made_up' in service 'web'
        "#]],
    );
}

#[test]
fn references() {
    check(
        "services:\n  web:\n    image: nginx\n    networks: [front, back]\nnetworks:\n  front:\n",
        expect![[r#"
            error: docker-compose.yml:4:23: services.web.networks[1]: service 'web' uses network 'back', which is not declared under the top-level 'networks'
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    volumes:\n      - data:/data\n",
        expect![[r#"
            error: docker-compose.yml:5:9: services.web.volumes[0]: service 'web' uses volume 'data', which is not declared under the top-level 'volumes'
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    depends_on: [db]\n",
        expect![[r#"
            error: docker-compose.yml:4:18: services.web.depends_on[0]: service 'web' depends on undefined service 'db'
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    pull_policy: daily\n",
        expect![[r#"
            error: docker-compose.yml:4:18: services.web.pull_policy: unknown pull_policy 'daily' (expected always, missing, never or build)
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    pull_policy: build\n",
        expect![[r#"
            error: docker-compose.yml:4:18: services.web.pull_policy: service 'web' has pull_policy build but no build section
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    links: [db]\n",
        expect![[r#"
            error: docker-compose.yml:4:13: services.web.links[0]: service 'web' links to undefined service 'db'
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    links: [\"db:\"]\n  db:\n    image: x\n",
        expect![[r#"
            error: docker-compose.yml:4:13: services.web.links[0]: invalid link 'db:' (expected SERVICE or SERVICE:ALIAS)
        "#]],
    );
    check(
        "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on:\n      c:\n        condition: service_healthy\n  c:\n    image: x\n    depends_on: [a]\n",
        expect![[r#"
            error: docker-compose.yml:4:18: services.a.depends_on[0]: dependency cycle: a -> b -> c -> a
        "#]],
    );
    check(
        "services:\n  self:\n    image: x\n    depends_on: [self]\n",
        expect![[r#"
            error: docker-compose.yml:4:18: services.self.depends_on[0]: dependency cycle: self -> self
        "#]],
    );
    check(
        "services:\n  web:\n    restart: always\n",
        expect![[r#"
            error: docker-compose.yml:2:3: services.web: service 'web' has neither image nor build
        "#]],
    );
    check(
        "services:\n  web:\n",
        expect![[r#"
        error: docker-compose.yml:2:3: services.web: service 'web' has neither image nor build
    "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    depends_on: [tool]\n  tool:\n    image: busybox\n    profiles: [tools]\n",
        expect![[r#"
            error: docker-compose.yml:4:18: services.web.depends_on[0]: service 'web' depends on service 'tool', which is not enabled (enable one of its profiles: tools)
        "#]],
    );
}

#[test]
fn names() {
    check(
        "services:\n  \"we b\":\n    image: nginx\n",
        expect![[r#"
            error: docker-compose.yml:2:3: services.we b: invalid service name 'we b': use letters, digits, '_', '.' and '-', starting with a letter or digit
        "#]],
    );
    check(
        "name: MyProject\nservices:\n  web:\n    image: nginx\n",
        expect![[r#"
            error: docker-compose.yml:1:7: name: invalid project name 'MyProject': must contain only lowercase letters, digits, '-' and '_', and start with a letter or digit
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\nvolumes:\n  -bad:\n",
        expect![[r#"
            error: docker-compose.yml:5:3: volumes.-bad: invalid volume name '-bad'
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    profiles: [\"-x\"]\n",
        expect![[r#"
            error: docker-compose.yml:4:15: services.web.profiles: invalid profile name '-x'
        "#]],
    );
}

#[test]
fn replicas() {
    check(
        "services:\n  web:\n    image: nginx\n    deploy:\n      replicas: 1001\n",
        expect![[r#"
            error: docker-compose.yml:5:17: services.web.deploy.replicas: too many replicas: 1001, the limit is 1000
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    scale: 2\n    deploy:\n      replicas: 3\n",
        expect![[r#"
            error: docker-compose.yml:4:12: services.web.scale: 'scale: 2' conflicts with 'deploy.replicas: 3'
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    scale: -1\n",
        expect![[r#"
            error: docker-compose.yml:4:12: services.web.scale: expected a number of replicas, found '-1'
        "#]],
    );
}

#[test]
fn interpolation_errors() {
    check(
        "services:\n  web:\n    image: nginx\n    environment:\n      PASSWORD: ${DB_PASS:?set DB_PASS in .env}\n",
        expect![[r#"
            error: docker-compose.yml:5:17: services.web.environment.PASSWORD: required variable DB_PASS is missing a value: set DB_PASS in .env
        "#]],
    );
    check(
        "services:\n  web:\n    image: \"nginx:${\"\n",
        expect![[r#"
            error: docker-compose.yml:3:12: services.web.image: invalid interpolation format in 'nginx:${': expected a variable name after '${' (use '$$' for a literal '$')
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    command: echo $1\n",
        expect![[r#"
            error: docker-compose.yml:4:14: services.web.command: invalid interpolation format in 'echo $1': '$' must be followed by a variable name or '{' (use '$$' for a literal '$')
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    labels:\n      - \"a=${UNSET_A}\"\n      - \"b=${UNSET_B:-ok}\"\n      - \"c=$UNSET_A\"\n",
        expect![[r#"
            name: "mystack"
            services:
              web:
                image: "nginx"
                labels:
                  a: ""
                  b: "ok"
                  c: ""
            --- warnings
            docker-compose.yml:5:9: services.web.labels[0]: variable UNSET_A is not set, using empty string
        "#]],
    );
}

#[test]
fn yaml_errors() {
    check(
        "",
        expect![[r#"
        error: docker-compose.yml:1:1: the file is empty: no services defined
    "#]],
    );
    check(
        "# nothing but a comment\n",
        expect![[r#"
        error: docker-compose.yml:1:1: the file is empty: no services defined
    "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    image: apache\n",
        expect![[r#"
            error: docker-compose.yml:4:5: duplicate key 'image'
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n---\nservices:\n  db:\n    image: postgres\n",
        expect![[r#"
            error: docker-compose.yml:4:1: multiple YAML documents in one file are not supported
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n   bad indent: x\n",
        expect![[r#"
            error: docker-compose.yml:4:4: while parsing a block mapping, did not find expected key
        "#]],
    );
    check(
        "services:\n  web:\n    image: [unclosed\n",
        expect![[r#"
            error: docker-compose.yml:4:1: while parsing a flow sequence, expected ',' or ']'
        "#]],
    );
    check(
        "services:\n  web:\n    image: *nowhere\n",
        expect![[r#"
            error: docker-compose.yml:3:12: while parsing node, found unknown anchor
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    labels: !reset {}\n",
        expect![[r#"
            error: docker-compose.yml:4:20: unsupported YAML tag '!reset'
        "#]],
    );
    check(
        "x-a: &a scalar\nservices:\n  web:\n    <<: *a\n    image: nginx\n",
        expect![[r#"
            error: docker-compose.yml:1:9: merge key '<<' needs a mapping or a sequence of mappings
        "#]],
    );
    check(
        "x-a: &a [a, *a]\nservices:\n  web:\n    image: nginx\n",
        expect![[r#"
            error: docker-compose.yml:1:13: alias refers to an anchor that is not complete yet (recursive alias)
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    hostname:\tweb\n",
        expect![[r#"
            error: docker-compose.yml:4:15: ':' must be followed by a valid YAML whitespace
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    ? [complex, key]\n    : value\n",
        expect![[r#"
            error: docker-compose.yml:4:7: mapping keys must be scalars
        "#]],
    );
}

#[test]
fn env_file_errors() {
    check(
        "services:\n  web:\n    image: nginx\n    env_file: missing.env\n",
        expect![[r#"
            error: docker-compose.yml:4:15: services.web.env_file: cannot read env_file 'missing.env': no such file
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n    env_file:\n      - path: missing.env\n        required: false\n      - bad.env\n",
        expect![[r#"
            error: bad.env:2:1: expected KEY=VALUE, found 'this line is wrong'
        "#]],
    );
}

fn load_with(
    text: &str,
    project_name: Option<&str>,
    default_name: &str,
    base_dir: Option<&str>,
) -> String {
    let variables = BTreeMap::new();
    let files = BTreeMap::new();
    match load(&Input {
        file_name: "compose.yaml",
        text,
        project_name,
        default_name,
        variables: &variables,
        profiles: &[],
        base_dir,
        files: &files,
        overrides: &[],
    }) {
        Ok(l) => {
            let mut out = compose::to_compose_yaml(&l.project);
            for w in l.warnings {
                out.push_str(&format!("{w}\n"));
            }
            out
        }
        Err(e) => format!("error: {e}\n"),
    }
}

#[test]
fn project_names() {
    let text = "name: from-file\nservices:\n  web:\n    image: nginx\n";
    expect![[r#"
        name: "from-flag"
        services:
          web:
            image: "nginx"
    "#]]
    .assert_eq(&load_with(text, Some("from-flag"), "dir", None));
    expect![[r#"
        name: "from-file"
        services:
          web:
            image: "nginx"
    "#]]
    .assert_eq(&load_with(text, None, "dir", None));
    expect![[r#"
        error: compose.yaml:0:0: invalid project name 'Bad Flag': must contain only lowercase letters, digits, '-' and '_', and start with a letter or digit
    "#]].assert_eq(&load_with(text, Some("Bad Flag"), "dir", None));
    let nameless = "services:\n  web:\n    image: nginx\n";
    expect![[r#"
        name: "my_appv2"
        services:
          web:
            image: "nginx"
    "#]]
    .assert_eq(&load_with(nameless, None, "My_App.v2", None));
    expect![[r#"
        error: compose.yaml:0:0: cannot derive a project name from '...': set 'name:' in the file
    "#]]
    .assert_eq(&load_with(nameless, None, "...", None));
}

#[test]
fn relative_binds_without_base_dir() {
    let text = "services:\n  web:\n    image: nginx\n    volumes:\n      - ./data/../conf:/etc/conf:ro\n      - ../shared:/shared\n      - .:/src\n      - ~/x:/x\n";
    expect![[r#"
        error: compose.yaml:8:9: services.web.volumes[3]: cannot expand '~' in '~/x': HOME is not set
    "#]].assert_eq(&load_with(text, None, "app", None));
    let text = "services:\n  web:\n    image: nginx\n    volumes:\n      - ./data/../conf:/etc/conf:ro\n      - ../shared:/shared\n      - .:/src\n";
    expect![[r#"
        name: "app"
        services:
          web:
            image: "nginx"
            volumes:
              - type: "bind"
                source: "./conf"
                target: "/etc/conf"
                read_only: true
              - type: "bind"
                source: "../shared"
                target: "/shared"
              - type: "bind"
                source: "."
                target: "/src"
    "#]]
    .assert_eq(&load_with(text, None, "app", None));
    expect![[r#"
        name: "app"
        services:
          web:
            image: "nginx"
            volumes:
              - type: "bind"
                source: "/home/me/proj/conf"
                target: "/etc/conf"
                read_only: true
              - type: "bind"
                source: "/home/me/shared"
                target: "/shared"
              - type: "bind"
                source: "/home/me/proj"
                target: "/src"
    "#]]
    .assert_eq(&load_with(text, None, "app", Some("/home/me/proj")));
}

#[test]
fn placement_errors() {
    check(
        "services:\n  web:\n    image: x\n    deploy:\n      placement:\n        constraints: [\"region == eu\"]\n",
        expect![[r#"
            error: docker-compose.yml:6:23: services.web.deploy.placement.constraints[0]: constraint "region == eu": key must be node.labels.NAME, node.hostname, node.id, node.platform.os or node.platform.arch
        "#]],
    );
}

#[test]
fn sidekick_mistakes() {
    check(
        "services:\n  web:\n    image: nginx\n  log:\n    image: x\n    network_mode: service:db\n",
        expect![[r#"
            error: docker-compose.yml:6:19: services.log.network_mode: service 'log' runs beside undefined service 'db'
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n  log:\n    image: x\n    network_mode: service:web\n    ports: [\"80:80\"]\n",
        expect![[r#"
            error: docker-compose.yml:7:12: services.log.ports: 'ports' cannot be set with network_mode 'service:web'
        "#]],
    );
    check(
        "services:\n  web:\n    image: nginx\n  log:\n    image: x\n    volumes_from: [web]\n    deploy:\n      replicas: 2\n",
        expect![[r#"
            error: docker-compose.yml:8:17: services.log.deploy.replicas: service 'log' runs beside each replica of 'web' (a sidekick): its replica count and mode are web's; remove deploy.replicas
        "#]],
    );
    check(
        "services:\n  a:\n    image: nginx\n    volumes_from: [b]\n  b:\n    image: x\n    x-drover:\n      sidekick_of: a\n",
        expect![[r#"
            error: docker-compose.yml:4:20: services.a.volumes_from[0]: sidekick cycle: a -> b -> a
        "#]],
    );
    check(
        "services:\n  a:\n    image: nginx\n  b:\n    image: nginx\n  c:\n    image: x\n    network_mode: service:a\n    volumes_from: [\"b:ro\"]\n",
        expect![[r#"
            error: docker-compose.yml:9:20: services.c.volumes_from[0]: service 'c' cannot run beside both 'a' and 'b': a sidekick has one primary
        "#]],
    );
    check(
        "services:\n  a:\n    image: nginx\n    volumes_from: [\"container:db\"]\n",
        expect![[r#"
            error: docker-compose.yml:4:20: services.a.volumes_from[0]: volumes_from 'container:db': containers outside the stack are not supported (name a service of this stack)
        "#]],
    );
    check(
        "services:\n  a:\n    image: nginx\n    volumes_from: [\"b:rx\"]\n",
        expect![[r#"
            error: docker-compose.yml:4:20: services.a.volumes_from[0]: invalid volumes_from 'b:rx' (expected SERVICE or SERVICE:ro)
        "#]],
    );
}

#[test]
fn secret_and_config_mistakes() {
    check(
        "services:\n  db:\n    image: x\n    secrets: [pw]\n",
        expect![[r#"
            error: docker-compose.yml:4:15: services.db.secrets[0]: service 'db' uses secret 'pw', which is not declared under the top-level 'secrets'
        "#]],
    );
    check(
        "services:\n  db:\n    image: x\nsecrets:\n  pw:\n    content: hunter2\n",
        expect![[r#"
            error: docker-compose.yml:6:14: secrets.pw.content: a secret's value is never written in the compose file: use file, environment or external
        "#]],
    );
    check(
        "services:\n  db:\n    image: x\nsecrets:\n  pw: {}\n",
        expect![[r#"
            error: docker-compose.yml:5:3: secrets.pw: secret 'pw' needs one of file, environment or external: true
        "#]],
    );
    check(
        "services:\n  db:\n    image: x\nsecrets:\n  pw: {file: a, external: true}\n",
        expect![[r#"
            error: docker-compose.yml:5:3: secrets.pw: secret 'pw' has more than one of file, environment or external: true
        "#]],
    );
    check(
        "services:\n  db:\n    image: x\n    secrets:\n      - source: pw\n        mode: 0999\nsecrets:\n  pw: {file: a}\n",
        expect![[r#"
            error: docker-compose.yml:6:15: services.db.secrets[0].mode: invalid file mode '0999' (expected octal like 0440)
        "#]],
    );
    check(
        "services:\n  db:\n    image: x\n    configs:\n      - target: /etc/x\nconfigs:\n  c: {content: hi}\n",
        expect![[r#"
            error: docker-compose.yml:5:9: services.db.configs[0]: a config needs a 'source'
        "#]],
    );
}

#[test]
fn service_key_mistakes() {
    check(
        "services:\n  db:\n    image: x\n    container_name: db\n    deploy:\n      replicas: 2\n",
        expect![[r#"
            error: docker-compose.yml:4:21: services.db.container_name: service 'db' has a container_name and more than one replica: a fixed name runs once
        "#]],
    );
    check(
        "services:\n  db:\n    image: x\n    expose: [\"80/sctp\"]\n",
        expect![[r#"
            error: docker-compose.yml:4:14: services.db.expose[0]: invalid expose '80/sctp' (expected PORT[-PORT][/tcp|udp])
        "#]],
    );
    check(
        "services:\n  db:\n    image: x\n    oom_score_adj: 5000\n",
        expect![[r#"
            error: docker-compose.yml:4:20: services.db.oom_score_adj: oom_score_adj 5000 is not within -1000..1000
        "#]],
    );
    check(
        "services:\n  db:\n    image: x\n    ulimits:\n      nofile: {soft: 5, hard: 4}\n",
        expect![[r#"
            error: docker-compose.yml:5:15: services.db.ulimits.nofile: soft limit above the hard limit
        "#]],
    );
    check(
        "services:\n  db:\n    image: x\n    container_name: \"a b\"\n",
        expect![[r#"
            error: docker-compose.yml:4:21: services.db.container_name: invalid container_name 'a b': letters, digits, '_', '.' and '-'
        "#]],
    );
}

#[test]
fn privilege_key_mistakes() {
    check(
        "services:\n  db:\n    image: x\n    pid: \"container:abc\"\n",
        expect![[r#"
            error: docker-compose.yml:4:10: services.db.pid: unsupported pid 'container:abc' (expected host)
        "#]],
    );
    check(
        "services:\n  db:\n    image: x\n    ipc: \"service:web\"\n",
        expect![[r#"
            error: docker-compose.yml:4:10: services.db.ipc: ipc 'service:web' is not supported: Drover does not share one container's IPC namespace with another (expected host, private, shareable or none)
        "#]],
    );
    check(
        "services:\n  db:\n    image: x\n    ipc: shared\n",
        expect![[r#"
            error: docker-compose.yml:4:10: services.db.ipc: unsupported ipc 'shared' (expected host, private, shareable or none)
        "#]],
    );
    check(
        "services:\n  db:\n    image: x\n    devices: [\"nvidia.com/gpu=all\"]\n",
        expect![[r#"
            error: docker-compose.yml:4:15: services.db.devices[0]: invalid device 'nvidia.com/gpu=all' (expected HOST[:CONTAINER[:PERMISSIONS]] with an absolute host path; CDI device names are not supported)
        "#]],
    );
    check(
        "services:\n  db:\n    image: x\n    devices: [\"/dev/fuse:fuse\"]\n",
        expect![[r#"
            error: docker-compose.yml:4:15: services.db.devices[0]: device container path 'fuse' must be absolute
        "#]],
    );
    check(
        "services:\n  db:\n    image: x\n    devices: [\"/dev/fuse:/dev/fuse:rx\"]\n",
        expect![[r#"
            error: docker-compose.yml:4:15: services.db.devices[0]: invalid device permissions 'rx' (some of r, w and m)
        "#]],
    );
    check(
        "services:\n  db:\n    image: x\n    devices: [{target: /dev/fuse}]\n",
        expect![[r#"
            error: docker-compose.yml:4:15: services.db.devices[0]: a device needs a source
        "#]],
    );
    check(
        "services:\n  db:\n    image: x\n    privileged: maybe\n",
        expect![[r#"
            error: docker-compose.yml:4:17: services.db.privileged: expected a boolean (true or false), found 'maybe'
        "#]],
    );
    check(
        "services:\n  db:\n    image: x\n    network_mode: host\n    ports: [\"80:80\"]\n",
        expect![[r#"
            error: docker-compose.yml:5:12: services.db.ports: 'ports' cannot be set with network_mode 'host'
        "#]],
    );
    check(
        "services:\n  db:\n    image: x\n    network_mode: host\n    networks: [back]\nnetworks:\n  back: {}\n",
        expect![[r#"
            error: docker-compose.yml:5:15: services.db.networks: 'networks' cannot be set with network_mode 'host'
        "#]],
    );
    check(
        "services:\n  db:\n    image: x\n    network_mode: host\n    hostname: db\n",
        expect![[r#"
            error: docker-compose.yml:5:15: services.db.hostname: 'hostname' cannot be set with network_mode 'host'
        "#]],
    );
    check(
        "services:\n  db:\n    image: x\n    network_mode: host\n    dns: 1.1.1.1\n",
        expect![[r#"
            error: docker-compose.yml:5:10: services.db.dns: 'dns' cannot be set with network_mode 'host'
        "#]],
    );
}
