//! Files shaped like docker/awesome-compose's samples: the keys they use that Drover used to
//! ignore (`secrets`, `container_name`, `expose`, `stop_signal`, `sysctls`, `stdin_open`,
//! `init`...) load with no warning.

mod common;

use common::load_text;

/// The keys issue "Compose, complete" lists as honoured.
const HONOURED: &[&str] = &[
    "secrets",
    "configs",
    "container_name",
    "expose",
    "stop_signal",
    "stop_grace_period",
    "sysctls",
    "ulimits",
    "tty",
    "stdin_open",
    "init",
    "shm_size",
    "tmpfs",
    "read_only",
    "dns",
    "dns_search",
    "dns_opt",
    "runtime",
    "logging",
    "group_add",
    "oom_score_adj",
    "pids_limit",
    "storage_opt",
    "extends",
    "include",
];

const SAMPLES: &[(&str, &str)] = &[
    (
        "react-express-mysql",
        "services:
  backend:
    build:
      context: backend
      target: development
    command: npm run start-watch
    environment:
      - DATABASE_DB=example
      - DATABASE_USER=root
      - DATABASE_PASSWORD=/run/secrets/db-password
      - DATABASE_HOST=db
    ports:
      - 80:80
      - 9229:9229
      - 9230:9230
    secrets:
      - db-password
    depends_on:
      db:
        condition: service_healthy
  db:
    image: mariadb:10.6.4-focal
    command: '--default-authentication-plugin=mysql_native_password'
    restart: always
    healthcheck:
      test: ['CMD-SHELL', 'mysqladmin ping -h 127.0.0.1 --password=\"$$(cat /run/secrets/db-password)\" --silent']
      interval: 3s
      retries: 5
      start_period: 30s
    secrets:
      - db-password
    volumes:
      - db-data:/var/lib/mysql
    environment:
      - MYSQL_DATABASE=example
      - MYSQL_ROOT_PASSWORD_FILE=/run/secrets/db-password
    expose:
      - 3306
      - 33060
volumes:
  db-data: {}
secrets:
  db-password:
    file: db/password.txt
",
    ),
    (
        "prometheus-grafana",
        "services:
  prometheus:
    image: prom/prometheus
    container_name: prometheus
    command:
      - '--config.file=/etc/prometheus/prometheus.yml'
    ports:
      - 9090:9090
    restart: unless-stopped
    volumes:
      - ./prometheus:/etc/prometheus
      - prom_data:/prometheus
  grafana:
    image: grafana/grafana
    container_name: grafana
    ports:
      - 3000:3000
    restart: unless-stopped
    environment:
      - GF_SECURITY_ADMIN_USER=admin
    volumes:
      - ./grafana:/etc/grafana/provisioning/datasources
volumes:
  prom_data: {}
",
    ),
    (
        "elasticsearch-logstash-kibana",
        "services:
  elasticsearch:
    image: elasticsearch:7.16.1
    container_name: es
    environment:
      discovery.type: single-node
      ES_JAVA_OPTS: \"-Xms512m -Xmx512m\"
    ports:
      - \"9200:9200\"
    ulimits:
      memlock: {soft: -1, hard: -1}
      nofile: 65536
    healthcheck:
      test: [\"CMD-SHELL\", \"curl --silent --fail localhost:9200/_cluster/health || exit 1\"]
      interval: 10s
      timeout: 10s
      retries: 3
  logstash:
    image: logstash:7.16.1
    container_name: log
    stdin_open: true
    tty: true
    stop_signal: SIGINT
    depends_on:
      - elasticsearch
",
    ),
    (
        "nginx-wsgi-flask",
        "services:
  nginx-proxy:
    build: nginx
    restart: always
    volumes:
      - ./nginx/default.conf:/tmp/default.conf
    environment:
      - FLASK_SERVER_ADDR=flask-app:8000
    ports:
      - \"80:80\"
    depends_on:
      - flask-app
    command: /app/start.sh
  flask-app:
    build: flask
    restart: always
    init: true
    sysctls:
      net.core.somaxconn: 1024
    shm_size: 64m
    read_only: true
    tmpfs: [/tmp]
    logging:
      driver: json-file
      options: {max-size: 10m}
    expose: [\"8000\"]
    configs:
      - source: app_conf
        target: /etc/app.conf
configs:
  app_conf:
    content: |
      WORKERS=2
",
    ),
];

#[test]
fn awesome_compose_shaped_files_load_without_warnings_on_honoured_keys() {
    for (name, text) in SAMPLES {
        let loaded = match load_text(&format!("{name}.yml"), text) {
            Ok(l) => l,
            Err(e) => panic!("{name}: {e}"),
        };
        for w in &loaded.warnings {
            let key = w.path.rsplit('.').next().unwrap_or_default();
            assert!(
                !HONOURED.contains(&key),
                "{name}: a key the issue lists is still warned about: {w}"
            );
        }
        assert!(!loaded.project.services.is_empty(), "{name}");
    }
}
