//! Several `-f` files, `extends` and `include`, merged as compose merges them; errors name
//! the file a value came from.

mod common;

use common::{files, variables};
use compose::{Input, load, to_compose_yaml};
use expect_test::{Expect, expect};

fn check(main: &str, overrides: &[(&str, &str)], expected: Expect) {
    let variables = variables();
    let files = files();
    let overrides: Vec<(String, String)> = overrides
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    let out = match load(&Input {
        file_name: "compose.yml",
        text: main,
        project_name: Some("shop"),
        default_name: "shop",
        variables: &variables,
        profiles: &[],
        base_dir: Some("/srv/stack"),
        files: &files,
        overrides: &overrides,
    }) {
        Ok(l) => {
            let mut out = to_compose_yaml(&l.project);
            for w in l.warnings {
                out += &format!("warning: {w}\n");
            }
            out
        }
        Err(e) => format!("error: {e}\n"),
    };
    expected.assert_eq(&out);
}

const MAIN: &str = "services:
  web:
    image: web:1
    command: [serve, --port, \"80\"]
    environment: {A: \"1\", B: \"2\"}
    ports: [\"80:80\"]
    volumes: [\"data:/data\", \"./conf:/etc/web:ro\"]
    labels: [tier=front]
volumes:
  data: {}
";

#[test]
fn later_files_override_earlier_ones() {
    check(
        MAIN,
        &[(
            "compose.prod.yml",
            "services:
  web:
    image: web:2
    command: [serve]
    environment: [B=two, C=3]
    ports: [\"443:443\"]
    volumes: [\"/srv/web:/etc/web\"]
    labels: {tier: edge, team: shop}
  worker:
    image: worker:1
",
        )],
        expect![[r#"
            name: "shop"
            services:
              web:
                image: "web:2"
                command:
                  - "serve"
                environment:
                  A: "1"
                  B: "two"
                  C: "3"
                ports:
                  - target: 80
                    published: 80
                    protocol: "tcp"
                  - target: 443
                    published: 443
                    protocol: "tcp"
                volumes:
                  - type: "volume"
                    source: "data"
                    target: "/data"
                  - type: "bind"
                    source: "/srv/web"
                    target: "/etc/web"
                labels:
                  team: "shop"
                  tier: "edge"
              worker:
                image: "worker:1"
            volumes:
              data: {}
        "#]],
    );
}

#[test]
fn services_extend_others_here_or_in_files() {
    check(
        "services:
  base:
    image: web:1
    environment: {A: \"1\"}
    cap_add: [NET_ADMIN]
  web:
    extends: base
    environment: {B: \"2\"}
  api:
    extends: {service: app, file: base.yml}
    environment: [MODE=dev]
",
        &[],
        expect![[r#"
            name: "shop"
            services:
              api:
                image: "app:1"
                environment:
                  LOG: "info"
                  MODE: "dev"
                ports:
                  - target: 8080
                    published: 80
                    protocol: "tcp"
              base:
                image: "web:1"
                environment:
                  A: "1"
                cap_add:
                  - "NET_ADMIN"
              web:
                image: "web:1"
                environment:
                  A: "1"
                  B: "2"
                cap_add:
                  - "NET_ADMIN"
        "#]],
    );
}

#[test]
fn included_files_bring_their_services() {
    check(
        "include: [inc.yml]\nservices:\n  web:\n    image: web:1\n    depends_on: [cache]\n",
        &[],
        expect![[r#"
            name: "shop"
            services:
              cache:
                image: "redis:7"
                networks:
                  back: {}
              web:
                image: "web:1"
                depends_on:
                  cache:
                    condition: "service_started"
            networks:
              back: {}
        "#]],
    );
}

#[test]
fn mistakes_name_the_file_they_are_in() {
    check(
        "services:\n  web:\n    extends: {service: broken, file: base.yml}\n",
        &[],
        expect![[r#"
            error: base.yml:8:14: services.broken.extends: extends: no service 'nowhere'
        "#]],
    );
    check(
        "services:\n  web:\n    extends: {service: nope, file: base.yml}\n",
        &[],
        expect![[r#"
            error: compose.yml:3:14: services.web.extends: extends: no service 'nope' in base.yml
        "#]],
    );
    check(
        "services:\n  a:\n    extends: b\n  b:\n    extends: a\n",
        &[],
        expect![[r#"
            error: compose.yml:3:5: services.a.extends: extends cycle through service 'a'
        "#]],
    );
    check(
        "include: [dup.yml]\nservices:\n  web:\n    image: web:1\n",
        &[],
        expect![[r#"
            error: dup.yml:2:3: services.web: service 'web' is defined both here and in the including file
        "#]],
    );
    check(
        "include: [missing.yml]\nservices:\n  web:\n    image: web:1\n",
        &[],
        expect![[r#"
            error: compose.yml:1:11: include: missing.yml: no such file
        "#]],
    );
    check(
        MAIN,
        &[("over.yml", "services:\n  web:\n    ports: [\"http\"]\n")],
        expect![[r#"
            error: over.yml:3:13: services.web.ports[1]: invalid port 'http'
        "#]],
    );
}
