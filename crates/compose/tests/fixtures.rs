//! One snapshot per real-world-shaped fixture in `tests/fixtures`. `UPDATE_EXPECT=1 cargo
//! test -p compose` rewrites the snapshots.

mod common;

use expect_test::{Expect, expect};

fn check_fixture(name: &str, text: &str, expect: Expect) {
    expect.assert_eq(&common::render(name, text));
}

#[test]
fn all_fixtures_round_trip() {
    // Every fixture that loads must export to YAML that loads back to the same project.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut loaded = 0;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    entries.sort();
    assert!(entries.len() >= 15, "expected at least 15 fixtures");
    for path in entries {
        let text = std::fs::read_to_string(&path).expect("fixture is UTF-8");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_owned();
        if let Ok(result) = common::load_text(&name, &text) {
            common::assert_round_trip(&name, &text, &result);
            loaded += 1;
        }
    }
    assert!(loaded >= 15, "only {loaded} fixtures loaded");
}

#[test]
fn crlf_is_really_crlf() {
    let text = include_str!("fixtures/crlf.yml");
    // Whatever git did to the file, test the CRLF form too.
    let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
    assert!(crlf.contains("\r\n"));
    assert_eq!(
        common::render("crlf.yml", &crlf),
        common::render("crlf.yml", &crlf.replace("\r\n", "\n"))
    );
}

#[test]
fn build() {
    check_fixture(
        "build.yml",
        include_str!("fixtures/build.yml"),
        expect![[r#"
        name: "mystack"
        services:
          backend:
            build:
              context: "."
              args:
                CGO_ENABLED: "0"
                GO_VERSION: "1.22"
            working_dir: "/app"
            cap_add:
              - "NET_ADMIN"
            cap_drop:
              - "ALL"
          frontend:
            image: "acme/frontend:dev"
            build:
              context: "./frontend"
              dockerfile: "Dockerfile.prod"
              args:
                HOME: "/home/dev"
                NODE_VERSION: "20"
              target: "runtime"
          tiny:
            build:
              context: "."
        --- warnings
        build.yml:11:7: services.frontend.build.cache_from: not supported yet, ignored
    "#]],
    );
}

#[test]
fn crlf() {
    check_fixture(
        "crlf.yml",
        include_str!("fixtures/crlf.yml"),
        expect![[r#"
        name: "mystack"
        services:
          web:
            image: "nginx:alpine"
            command:
              - "nginx"
              - "-g"
              - "daemon off;"
            environment:
              MULTI: "a\nb\n"
            ports:
              - target: 80
                published: 8080
                protocol: "tcp"
    "#]],
    );
}

#[test]
fn deploy_resources() {
    check_fixture(
        "deploy-resources.yml",
        include_str!("fixtures/deploy-resources.yml"),
        expect![[r#"
            name: "mystack"
            services:
              api:
                image: "acme/api:1"
                restart: "on-failure:3"
                deploy:
                  replicas: 3
                  resources:
                    limits:
                      cpus: "0.5"
                      memory: 1610612736
                      pids: 100
                    reservations:
                      cpus: "0.25"
                      memory: 20971520
                  update_config:
                    parallelism: 2
                    delay: "1s"
                    failure_action: "rollback"
                    monitor: "500ms"
                    max_failure_ratio: 0.25
                    order: "start-first"
                  rollback_config:
                    parallelism: 0
                    failure_action: "continue"
              batch:
                image: "acme/batch:1"
                restart: "on-failure"
                deploy:
                  replicas: 0
                  resources:
                    limits:
                      memory: 2147483648
              gpu:
                image: "nvidia/cuda:12.3.1-base-ubuntu22.04"
            --- warnings
            deploy-resources.yml:18:16: services.api.deploy.restart_policy.delay: not supported yet, ignored
            deploy-resources.yml:30:23: services.api.deploy.placement.constraints[0]: swarm roles, platforms and engine labels do not exist in Drover; constraint ignored
            deploy-resources.yml:44:11: services.gpu.deploy.resources.reservations.devices: not supported yet, ignored
        "#]],
    );
}

#[test]
fn empty_services() {
    check_fixture(
        "empty-services.yml",
        include_str!("fixtures/empty-services.yml"),
        expect![[r#"
        error: empty-services.yml:2:1: services: no services defined
    "#]],
    );
}

#[test]
fn env_file() {
    check_fixture(
        "env-file.yml",
        include_str!("fixtures/env-file.yml"),
        expect![[r#"
        name: "mystack"
        services:
          api:
            image: "node:20"
            environment:
              API_KEY: "abc$$def"
              LOG_LEVEL: "info"
              NODE_ENV: "production"
              SHARED: "api"
          web:
            image: "nginx"
            environment:
              A: "1"
              B: "overridden"
              C: "quoted value"
    "#]],
    );
}

#[test]
fn extensions() {
    check_fixture(
        "extensions.yml",
        include_str!("fixtures/extensions.yml"),
        expect![[r#"
        name: "ext-demo"
        services:
          api:
            image: "ghcr.io/acme/api:2.1"
            environment:
              LANG: "C.UTF-8"
              PORT: "8080"
              TZ: "Europe/Paris"
            deploy:
              resources:
                limits:
                  cpus: "0.25"
                  memory: 134217728
            x-drover:
              expose: "https"
              domains:
                - "api.example.com"
            x-logging:
              driver: "json-file"
              options:
                max-size: "10m"
                max-file: 3
          worker:
            image: "ghcr.io/acme/worker:2.1"
            environment:
              LANG: "C.UTF-8"
              TZ: "Europe/Paris"
            deploy:
              resources:
                limits:
                  cpus: "0.25"
                  memory: 268435456
                reservations:
                  cpus: "0.1"
        x-env:
          TZ: "Europe/Paris"
          LANG: "C.UTF-8"
        x-limits:
          cpus: "0.25"
          memory: "128M"
        x-logging:
          driver: "json-file"
          options:
            max-size: "10m"
            max-file: 3
        x-meta:
          owner: "platform-team"
          tier: 2
          ratio: 0.5
          on_call: true
          pager: null
          tags:
            - "web"
            - "critical"
          price: "$$5"
    "#]],
    );
}

#[test]
fn gitlab() {
    check_fixture(
        "gitlab.yml",
        include_str!("fixtures/gitlab.yml"),
        expect![[r##"
            name: "mystack"
            services:
              gitlab:
                image: "gitlab/gitlab-ee:1.25"
                environment:
                  GITLAB_OMNIBUS_CONFIG: "# Add any other gitlab.rb configuration here, each on its own line\nexternal_url 'https://gitlab.example.com'\ngitlab_rails['gitlab_shell_ssh_port'] = 2424\n"
                ports:
                  - target: 80
                    published: 80
                    protocol: "tcp"
                  - target: 443
                    published: 443
                    protocol: "tcp"
                  - target: 22
                    published: 2424
                    protocol: "tcp"
                volumes:
                  - type: "bind"
                    source: "/srv/gitlab/config"
                    target: "/etc/gitlab"
                  - type: "bind"
                    source: "/srv/gitlab/logs"
                    target: "/var/log/gitlab"
                  - type: "bind"
                    source: "/srv/gitlab/data"
                    target: "/var/opt/gitlab"
                restart: "always"
                hostname: "gitlab.example.com"
                container_name: "gitlab"
                shm_size: 268435456
              gitlab-runner:
                image: "gitlab/gitlab-runner:alpine"
                volumes:
                  - type: "bind"
                    source: "/srv/stack/runner/config"
                    target: "/etc/gitlab-runner"
                  - type: "bind"
                    source: "/var/run/docker.sock"
                    target: "/var/run/docker.sock"
                depends_on:
                  gitlab:
                    condition: "service_started"
                restart: "unless-stopped"
            --- warnings
            gitlab.yml:1:1: version: obsolete, ignored
        "##]],
    );
}

#[test]
fn healthchecks() {
    check_fixture(
        "healthchecks.yml",
        include_str!("fixtures/healthchecks.yml"),
        expect![[r#"
        name: "mystack"
        services:
          disabled:
            image: "some/image-with-healthcheck"
            healthcheck:
              test:
                - "NONE"
          exec-form:
            image: "postgres"
            healthcheck:
              test:
                - "CMD"
                - "pg_isready"
                - "-U"
                - "postgres"
              interval: "2s"
              timeout: "1s"
              start_period: "30s"
              retries: 10
          none:
            image: "other"
            healthcheck:
              test:
                - "NONE"
          shell-form:
            image: "redis"
            healthcheck:
              test:
                - "CMD-SHELL"
                - "redis-cli ping || exit 1"
              interval: "10s"
          timings-only:
            image: "other"
            healthcheck:
              interval: "1m"
              timeout: "1s500ms"
        --- warnings
        healthchecks.yml:15:7: services.exec-form.healthcheck.start_interval: not supported yet, ignored
    "#]],
    );
}

#[test]
fn interpolation() {
    check_fixture(
        "interpolation.yml",
        include_str!("fixtures/interpolation.yml"),
        expect![[r#"
        name: "interp"
        services:
          web:
            image: "nginx:1.25"
            environment:
              ALSO_UNSET: ""
              ALT: "tag-is-set"
              NESTED: "example.com"
              PASSTHROUGH: null
              UNSET_VALUE: ""
              WITH_DEFAULT: "fallback"
            ports:
              - target: 80
                published: 8080
                protocol: "tcp"
            labels:
              "${NOT_INTERPOLATED}": "value"
            deploy:
              replicas: 2
        --- warnings
        interpolation.yml:8:20: services.web.environment.UNSET_VALUE: variable UNSET_VAR is not set, using empty string
    "#]],
    );
}

#[test]
fn long_syntax() {
    check_fixture(
        "long-syntax.yml",
        include_str!("fixtures/long-syntax.yml"),
        expect![[r#"
        name: "mystack"
        services:
          api:
            image: "ghcr.io/acme/api"
            networks:
              back: {}
            healthcheck:
              test:
                - "CMD-SHELL"
                - "wget -qO- http://localhost:3000/health || exit 1"
              interval: "1m30s"
              timeout: "500ms"
              start_period: "1h"
              retries: 5
            extra_hosts:
              - "metadata:169.254.169.254"
              - "multi:10.0.0.1"
              - "multi:10.0.0.2"
          migrate:
            image: "ghcr.io/acme/api"
            command:
              - "./migrate"
              - "up"
            networks:
              back: {}
          web:
            image: "nginx:1.25"
            ports:
              - target: 80
                published: 8080
                protocol: "tcp"
              - target: 443
                published: 8443
                host_ip: "127.0.0.1"
                protocol: "tcp"
              - target: 53
                protocol: "udp"
              - target: 9000
                published: 8000
                protocol: "tcp"
              - target: 9001
                published: 8001
                protocol: "tcp"
              - target: 9002
                published: 8002
                protocol: "tcp"
              - target: 9999
                protocol: "tcp"
            volumes:
              - type: "volume"
                source: "static"
                target: "/usr/share/nginx/html"
                read_only: true
              - type: "bind"
                source: "/srv/stack/nginx.conf"
                target: "/etc/nginx/nginx.conf"
                read_only: true
              - type: "tmpfs"
                target: "/var/cache/nginx"
              - type: "volume"
                target: "/anonymous"
              - type: "volume"
                target: "/another/anon"
              - type: "bind"
                source: "/home/dev/certs"
                target: "/certs"
                read_only: true
              - type: "tmpfs"
                target: "/run"
              - type: "tmpfs"
                target: "/tmp"
            networks:
              back: {}
              front:
                aliases:
                  - "www"
                  - "web.local"
            depends_on:
              api:
                condition: "service_healthy"
              migrate:
                condition: "service_completed_successfully"
            extra_hosts:
              - "host.docker.internal:host-gateway"
              - "db.local:10.0.0.5"
              - "v6host:::1"
        networks:
          back:
            internal: true
            labels:
              com.example.tier: "back"
          front:
            external: true
            name: "shared-front"
        volumes:
          static:
            labels:
              com.example.description: "static files"
        --- warnings
        long-syntax.yml:25:9: services.web.volumes[1].bind: not supported yet, ignored
        long-syntax.yml:29:9: services.web.volumes[2].tmpfs: not supported yet, ignored
        long-syntax.yml:37:9: services.web.tmpfs[1]: tmpfs options are not supported yet, ignored
        long-syntax.yml:41:18: services.web.depends_on.api.restart: not supported yet, ignored
    "#]],
    );
}

#[test]
fn nextcloud() {
    check_fixture(
        "nextcloud.yml",
        include_str!("fixtures/nextcloud.yml"),
        expect![[r#"
        name: "mystack"
        services:
          app:
            image: "nextcloud:28-apache"
            environment:
              MYSQL_DATABASE: "nextcloud"
              MYSQL_HOST: "db"
              MYSQL_PASSWORD: "s3cr3t"
              MYSQL_USER: "nextcloud"
              REDIS_HOST: "redis"
            ports:
              - target: 80
                published: 8080
                protocol: "tcp"
            volumes:
              - type: "volume"
                source: "nextcloud"
                target: "/var/www/html"
              - type: "bind"
                source: "/srv/stack/apps"
                target: "/var/www/html/custom_apps"
            depends_on:
              db:
                condition: "service_started"
              redis:
                condition: "service_started"
            restart: "unless-stopped"
          cron:
            image: "nextcloud:28-apache"
            entrypoint:
              - "/cron.sh"
            environment:
              MYSQL_DATABASE: "nextcloud"
              MYSQL_HOST: "db"
              MYSQL_PASSWORD: "s3cr3t"
              MYSQL_USER: "nextcloud"
              REDIS_HOST: "redis"
            volumes:
              - type: "volume"
                source: "nextcloud"
                target: "/var/www/html"
              - type: "bind"
                source: "/srv/stack/apps"
                target: "/var/www/html/custom_apps"
            depends_on:
              db:
                condition: "service_started"
              redis:
                condition: "service_started"
            restart: "always"
          db:
            image: "mariadb:10.11"
            command:
              - "--transaction-isolation=READ-COMMITTED"
              - "--log-bin=binlog"
              - "--binlog-format=ROW"
            environment:
              MYSQL_DATABASE: "nextcloud"
              MYSQL_HOST: "db"
              MYSQL_PASSWORD: "s3cr3t"
              MYSQL_ROOT_PASSWORD: "s3cr3t"
              MYSQL_USER: "nextcloud"
              REDIS_HOST: "redis"
            volumes:
              - type: "volume"
                source: "db"
                target: "/var/lib/mysql"
            restart: "unless-stopped"
          redis:
            image: "redis:7-alpine"
            restart: "unless-stopped"
        volumes:
          db: {}
          nextcloud: {}
        x-nextcloud:
          image: "nextcloud:28-apache"
          volumes:
            - "nextcloud:/var/www/html"
            - "./apps:/var/www/html/custom_apps"
          environment:
            MYSQL_HOST: "db"
            MYSQL_DATABASE: "nextcloud"
            MYSQL_USER: "nextcloud"
            MYSQL_PASSWORD: "s3cr3t"
            REDIS_HOST: "redis"
          depends_on:
            - "db"
            - "redis"
        x-restart:
          restart: "unless-stopped"
    "#]],
    );
}

#[test]
fn odoo() {
    check_fixture(
        "odoo.yml",
        include_str!("fixtures/odoo.yml"),
        expect![[r#"
        name: "mystack"
        services:
          mydb:
            image: "postgres:15"
            environment:
              PGDATA: "/var/lib/postgresql/data/pgdata"
              POSTGRES_DB: "postgres"
              POSTGRES_PASSWORD: "s3cr3t"
              POSTGRES_USER: "odoo"
            volumes:
              - type: "volume"
                source: "odoo-db-data"
                target: "/var/lib/postgresql/data/pgdata"
            restart: "on-failure:5"
          web:
            image: "odoo:17.0"
            command:
              - "--"
              - "--dev=reload"
            environment:
              HOST: "mydb"
              PASSWORD: "s3cr3t"
              USER: "odoo"
            ports:
              - target: 8069
                published: 8069
                protocol: "tcp"
            volumes:
              - type: "volume"
                source: "odoo-web-data"
                target: "/var/lib/odoo"
              - type: "bind"
                source: "/srv/stack/config"
                target: "/etc/odoo"
              - type: "bind"
                source: "/srv/stack/addons"
                target: "/mnt/extra-addons"
            depends_on:
              mydb:
                condition: "service_started"
        volumes:
          odoo-db-data: {}
          odoo-web-data: {}
    "#]],
    );
}

#[test]
fn profiles() {
    check_fixture(
        "profiles.yml",
        include_str!("fixtures/profiles.yml"),
        expect![[r#"
        name: "mystack"
        services:
          admin:
            image: "adminer"
            profiles:
              - "debug"
              - "tools"
          app:
            image: "myapp:1.0"
            depends_on:
              db:
                condition: "service_started"
          db:
            image: "postgres:16"
          debugger:
            image: "busybox"
            command:
              - "sleep"
              - "infinity"
            depends_on:
              app:
                condition: "service_started"
            profiles:
              - "debug"
    "#]],
    );
}

#[test]
fn prometheus_grafana() {
    check_fixture(
        "prometheus-grafana.yml",
        include_str!("fixtures/prometheus-grafana.yml"),
        expect![[r#"
            name: "mystack"
            services:
              grafana:
                image: "grafana/grafana:10.2.0"
                environment:
                  GF_INSTALL_PLUGINS: "grafana-clock-panel"
                  GF_SECURITY_ADMIN_PASSWORD: "grafana"
                  GF_SECURITY_ADMIN_USER: "admin"
                ports:
                  - target: 3000
                    published: 3000
                    protocol: "tcp"
                volumes:
                  - type: "bind"
                    source: "/srv/stack/grafana/provisioning/datasources"
                    target: "/etc/grafana/provisioning/datasources"
                  - type: "volume"
                    source: "grafana_data"
                    target: "/var/lib/grafana"
                networks:
                  monitoring:
                    aliases:
                      - "dashboards"
                depends_on:
                  prometheus:
                    condition: "service_started"
                restart: "unless-stopped"
                container_name: "grafana"
              node-exporter:
                image: "prom/node-exporter:v1.7.0"
                command:
                  - "--path.rootfs=/host"
                volumes:
                  - type: "bind"
                    source: "/"
                    target: "/host"
                    read_only: true
                networks:
                  monitoring: {}
                pid: "host"
              prometheus:
                image: "prom/prometheus"
                command:
                  - "--config.file=/etc/prometheus/prometheus.yml"
                  - "--storage.tsdb.retention.time=15d"
                ports:
                  - target: 9090
                    published: 9090
                    protocol: "tcp"
                volumes:
                  - type: "bind"
                    source: "/srv/stack/prometheus"
                    target: "/etc/prometheus"
                    read_only: true
                  - type: "volume"
                    source: "prom_data"
                    target: "/prometheus"
                networks:
                  monitoring: {}
                restart: "unless-stopped"
                container_name: "prometheus"
            networks:
              monitoring:
                driver: "bridge"
            volumes:
              grafana_data: {}
              prom_data: {}
            --- warnings
            prometheus-grafana.yml:41:9: services.node-exporter.volumes[0]: volume option 'rslave' is not supported yet, ignored
        "#]],
    );
}

#[test]
fn quoting() {
    check_fixture(
        "quoting.yml",
        include_str!("fixtures/quoting.yml"),
        expect![[r#"
        name: "mystack"
        services:
          shell:
            image: "alpine"
            command:
              - "sh"
              - "-c"
              - "echo \"hello   world\" && echo $$HOME"
              - "second arg"
              - "third word"
            entrypoint:
              - "/bin/sh"
              - "-c"
            environment:
              DOLLARS: "cost: $$5 and $${NOT_A_VAR}"
              DOUBLE: "tab\there \"quoted\" é"
              EMPTY: ""
              FOLDED: "folded lines become one\n"
              HEX: "0xFF"
              LITERAL: "line one\n  line two"
              NUMBER_LIKE: "0755"
              OCTAL: "0o755"
              PLAIN: "plain value, with:colon"
              QUOTED_KEY: "yes"
              SINGLE: "it's single"
              TILDE: null
            labels:
              "com.example/odd key": "value"
              single.quoted: "v"
            user: "1000:1000"
            working_dir: "/srv/app"
    "#]],
    );
}

#[test]
fn secrets_configs() {
    check_fixture(
        "secrets-configs.yml",
        include_str!("fixtures/secrets-configs.yml"),
        expect![[r#"
            name: "mystack"
            services:
              db:
                image: "postgres:16"
                environment:
                  POSTGRES_PASSWORD_FILE: "/run/secrets/db_password"
                privileged: true
                secrets:
                  - "db_password"
                configs:
                  - source: "pg_conf"
                    target: "/etc/postgresql/postgresql.conf"
                sysctls:
                  net.core.somaxconn: "1024"
                ulimits:
                  nofile:
                    soft: 20000
                    hard: 40000
            secrets:
              db_password:
                file: "./db_password.txt"
            configs:
              pg_conf:
                file: "./postgresql.conf"
            --- warnings
            secrets-configs.yml:18:19: services.db.network_mode: network_mode 'bridge' is not supported (none, host and service:NAME are); ignored
        "#]],
    );
}

#[test]
fn tabs_unicode() {
    check_fixture(
        "tabs-unicode.yml",
        include_str!("fixtures/tabs-unicode.yml"),
        expect![[r#"
        name: "mystack"
        services:
          app:
            image: "alpine"
            command:
              - "echo"
              - "日本語"
            environment:
              EMOJI: "🚀"
              GREETING: "héllo wörld ✓ 你好"
              LITERAL_TAB: "a\tb"
              TABBED: "a\tb"
            labels:
              description: "Ünïcödé läbel"
              "名前": "値"
            hostname: "unicode-host"
    "#]],
    );
}

#[test]
fn traefik() {
    check_fixture(
        "traefik.yml",
        include_str!("fixtures/traefik.yml"),
        expect![[r#"
        name: "mystack"
        services:
          traefik:
            image: "traefik:v3.0"
            command:
              - "--api.insecure=true"
              - "--providers.docker=true"
              - "--providers.docker.exposedbydefault=false"
              - "--entrypoints.web.address=:80"
              - "--entrypoints.websecure.address=:443"
              - "--certificatesresolvers.myresolver.acme.tlschallenge=true"
              - "--certificatesresolvers.myresolver.acme.email=postmaster@example.com"
            ports:
              - target: 80
                published: 80
                protocol: "tcp"
              - target: 443
                published: 443
                protocol: "tcp"
              - target: 8080
                published: 8080
                host_ip: "127.0.0.1"
                protocol: "tcp"
            volumes:
              - type: "bind"
                source: "/srv/stack/letsencrypt"
                target: "/letsencrypt"
              - type: "bind"
                source: "/var/run/docker.sock"
                target: "/var/run/docker.sock"
                read_only: true
            labels:
              traefik.enable: "true"
              traefik.http.middlewares.auth.basicauth.users: "admin:$$apr1$$H6uskkkW$$IgXLP6ewTrSuBkTrqE8wj/"
              traefik.http.routers.dashboard.rule: "Host(`traefik.example.com`)"
          whoami:
            image: "traefik/whoami"
            labels:
              com.example.empty: ""
              traefik.enable: "true"
              traefik.http.routers.whoami.entrypoints: "websecure"
              traefik.http.routers.whoami.rule: "Host(`whoami.example.com`)"
              traefik.http.routers.whoami.tls.certresolver: "myresolver"
            deploy:
              replicas: 2
    "#]],
    );
}

#[test]
fn unknown_key() {
    check_fixture(
        "unknown-key.yml",
        include_str!("fixtures/unknown-key.yml"),
        expect![[r#"
        error: unknown-key.yml:3:5: services.web.imgae: unknown key 'imgae' in service 'web' (did you mean 'image'?)
    "#]],
    );
}

#[test]
fn version_2() {
    check_fixture(
        "version-2.yml",
        include_str!("fixtures/version-2.yml"),
        expect![[r#"
            name: "mystack"
            services:
              app:
                image: "myorg/app:1.25"
                environment:
                  DEBUG: "false"
                  NODE_ENV: "production"
                  RATIO: "0.75"
                  WORKERS: "4"
                deploy:
                  replicas: 3
                  resources:
                    limits:
                      cpus: "1.5"
                      memory: 536870912
                      pids: 200
                    reservations:
                      memory: 268435456
                links:
                  - "cache:cache"
                stop_grace_period: "1m30s"
              cache:
                image: "memcached:1.6-alpine"
                command:
                  - "memcached"
                  - "-m"
                  - "64"
                logging:
                  driver: "json-file"
                  options:
                    max-size: "10m"
            --- warnings
            version-2.yml:1:1: version: obsolete, ignored
        "#]],
    );
}

#[test]
fn voting_app() {
    check_fixture(
        "voting-app.yml",
        include_str!("fixtures/voting-app.yml"),
        expect![[r#"
        name: "mystack"
        services:
          db:
            image: "postgres:15-alpine"
            environment:
              POSTGRES_PASSWORD: "postgres"
              POSTGRES_USER: "postgres"
            volumes:
              - type: "volume"
                source: "db-data"
                target: "/var/lib/postgresql/data"
              - type: "bind"
                source: "/srv/stack/healthchecks"
                target: "/healthchecks"
            networks:
              back-tier: {}
            healthcheck:
              test:
                - "CMD-SHELL"
                - "/healthchecks/postgres.sh"
              interval: "5s"
          redis:
            image: "redis:alpine"
            volumes:
              - type: "bind"
                source: "/srv/stack/healthchecks"
                target: "/healthchecks"
            networks:
              back-tier: {}
            healthcheck:
              test:
                - "CMD-SHELL"
                - "/healthchecks/redis.sh"
              interval: "5s"
          result:
            build:
              context: "./result"
            entrypoint:
              - "nodemon"
              - "--inspect=0.0.0.0"
              - "server.js"
            ports:
              - target: 80
                published: 5001
                protocol: "tcp"
              - target: 9229
                published: 9229
                host_ip: "127.0.0.1"
                protocol: "tcp"
            volumes:
              - type: "bind"
                source: "/srv/stack/result"
                target: "/usr/local/app"
            networks:
              back-tier: {}
              front-tier: {}
            depends_on:
              db:
                condition: "service_healthy"
          vote:
            build:
              context: "./vote"
            command:
              - "python"
              - "app.py"
            ports:
              - target: 80
                published: 5000
                protocol: "tcp"
            volumes:
              - type: "bind"
                source: "/srv/stack/vote"
                target: "/app"
            networks:
              back-tier: {}
              front-tier: {}
            depends_on:
              redis:
                condition: "service_healthy"
            healthcheck:
              test:
                - "CMD"
                - "curl"
                - "-f"
                - "http://localhost"
              interval: "15s"
              timeout: "5s"
              start_period: "10s"
              retries: 3
          worker:
            build:
              context: "./worker"
            networks:
              back-tier: {}
            depends_on:
              db:
                condition: "service_healthy"
              redis:
                condition: "service_healthy"
        networks:
          back-tier: {}
          front-tier: {}
        volumes:
          db-data: {}
    "#]],
    );
}

#[test]
fn wordpress() {
    check_fixture(
        "wordpress.yml",
        include_str!("fixtures/wordpress.yml"),
        expect![[r#"
            name: "mystack"
            services:
              db:
                image: "mariadb:10.6.4-focal"
                command:
                  - "--default-authentication-plugin=mysql_native_password"
                environment:
                  MYSQL_DATABASE: "wordpress"
                  MYSQL_PASSWORD: "s3cr3t"
                  MYSQL_ROOT_PASSWORD: "somewordpress"
                  MYSQL_USER: "wordpress"
                volumes:
                  - type: "volume"
                    source: "db_data"
                    target: "/var/lib/mysql"
                restart: "always"
                expose:
                  - "3306/tcp"
                  - "33060/tcp"
              wordpress:
                image: "wordpress:latest"
                environment:
                  WORDPRESS_DB_HOST: "db"
                  WORDPRESS_DB_NAME: "wordpress"
                  WORDPRESS_DB_PASSWORD: "s3cr3t"
                  WORDPRESS_DB_USER: "wordpress"
                ports:
                  - target: 80
                    published: 80
                    protocol: "tcp"
                volumes:
                  - type: "volume"
                    source: "wp_data"
                    target: "/var/www/html"
                depends_on:
                  db:
                    condition: "service_started"
                restart: "always"
            volumes:
              db_data: {}
              wp_data: {}
        "#]],
    );
}

#[test]
fn placement() {
    check_fixture(
        "placement.yml",
        include_str!("fixtures/placement.yml"),
        expect![[r#"
            name: "mystack"
            services:
              cache:
                image: "redis:7"
                x-drover:
                  singleton: true
                  affinity:
                    - service: "web"
                      anti: true
                      hard: false
              node-exporter:
                image: "prom/node-exporter:v1.8.2"
                deploy:
                  mode: "global"
                  placement:
                    constraints:
                      - "node.labels.monitoring == on"
              web:
                image: "nginx:1.27"
                deploy:
                  replicas: 4
                  resources:
                    reservations:
                      cpus: "0.5"
                      memory: 268435456
                  placement:
                    constraints:
                      - "node.labels.region == eu"
                      - "node.hostname != db1"
                    max_replicas_per_node: 2
        "#]],
    );
}

#[test]
fn sidekicks() {
    check_fixture(
        "sidekicks.yml",
        include_str!("fixtures/sidekicks.yml"),
        expect![[r#"
            name: "mystack"
            services:
              backup:
                image: "busybox:1.36"
                command:
                  - "sh"
                  - "-c"
                  - "sleep infinity"
                volumes_from:
                  - "web:ro"
              helper:
                image: "busybox:1.36"
                x-drover:
                  sidekick_of: "log"
              isolated:
                image: "busybox:1.36"
                network_mode: "none"
              log:
                image: "fluent/fluent-bit:2.2"
                network_mode: "service:web"
              web:
                image: "nginx:1.25"
                volumes:
                  - type: "volume"
                    target: "/usr/share/nginx/html"
                deploy:
                  replicas: 3
        "#]],
    );
}

#[test]
fn secrets_long() {
    check_fixture(
        "secrets-long.yml",
        include_str!("fixtures/secrets-long.yml"),
        expect![[r#"
            name: "mystack"
            services:
              db:
                image: "mariadb:11"
                environment:
                  MARIADB_ROOT_PASSWORD_FILE: "/run/secrets/db-root"
                secrets:
                  - source: "db_root"
                    target: "db-root"
                    uid: "999"
                    gid: "999"
                    mode: "0440"
                  - "api_key"
                configs:
                  - source: "my_cnf"
                    target: "/etc/mysql/conf.d/my.cnf"
                    mode: "0444"
                  - "motd"
            secrets:
              api_key:
                external: true
                name: "shop-api-key"
              db_root:
                environment: "DB_ROOT_PASSWORD"
            configs:
              motd:
                external: true
              my_cnf:
                content: "[mysqld]\nmax_connections = 100\n"
        "#]],
    );
}

#[test]
fn service_keys() {
    check_fixture(
        "service-keys.yml",
        include_str!("fixtures/service-keys.yml"),
        expect![[r#"
            name: "mystack"
            services:
              db:
                image: "mariadb:11"
                stop_grace_period: "30s"
                container_name: "shop-db"
                platform: "linux/amd64"
                annotations:
                  com.example.team: "shop"
                stop_signal: "SIGINT"
                runtime: "runc"
                expose:
                  - "3306/tcp"
                  - "33060/tcp"
                  - "33061/tcp"
                  - "4444/udp"
                dns:
                  - "10.0.0.2"
                dns_search:
                  - "example.com"
                dns_opt:
                  - "use-vc"
                  - "ndots:2"
                group_add:
                  - "mail"
                  - "1001"
                sysctls:
                  net.core.somaxconn: "1024"
                storage_opt:
                  size: "20G"
                ulimits:
                  nofile:
                    soft: 20000
                    hard: 40000
                  nproc:
                    soft: 65535
                    hard: 65535
                tty: true
                stdin_open: true
                read_only: true
                init: true
                shm_size: 268435456
                oom_score_adj: -500
                logging:
                  driver: "json-file"
                  options:
                    max-file: "3"
                    max-size: "10m"
        "#]],
    );
}

#[test]
fn privileges() {
    check_fixture(
        "privileges.yml",
        include_str!("fixtures/privileges.yml"),
        expect![[r#"
            name: "mystack"
            services:
              agent:
                image: "portainer/agent:2"
                volumes:
                  - type: "bind"
                    source: "/var/run/docker.sock"
                    target: "/var/run/docker.sock"
                  - type: "bind"
                    source: "/var/lib/docker/volumes"
                    target: "/var/lib/docker/volumes"
                    read_only: true
                network_mode: "host"
                privileged: true
                pid: "host"
                ipc: "host"
              fuse:
                image: "rclone/rclone:1"
                ipc: "shareable"
                devices:
                  - "/dev/fuse:/dev/fuse:rwm"
                  - "/dev/null:/dev/xnull:rwm"
                  - "/dev/zero:/dev/zero:r"
                  - "/dev/sda:/dev/xvda:rw"
                  - "/dev/kvm:/dev/kvm:rwm"
                cap_add:
                  - "SYS_ADMIN"
                  - "CAP_net_admin"
                cap_drop:
                  - "ALL"
                security_opt:
                  - "apparmor=unconfined"
                  - "no-new-privileges:true"
        "#]],
    );
}
