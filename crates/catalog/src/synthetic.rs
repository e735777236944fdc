//! A made-up catalog of any size, for benchmarks (the shell's and `examples/bench.rs`).

use std::collections::BTreeMap;

/// `templates` templates holding `versions` versions in all (spread evenly, each template
/// at least one): alternately Drover templates (a web app and its database, six
/// questions, a generated password) and Rancher ones (v2 compose files, a `.tpl` with
/// `if`/`range`/sprig every other one, `rancher-compose.yml` with scale, a health check
/// and questions, sidekick and scheduling labels).
pub fn synthetic_catalog(templates: usize, versions: usize) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut put = |path: String, text: String| {
        files.insert(path, text.into_bytes());
    };
    for t in 0..templates {
        let n = (versions / templates.max(1) + usize::from(t < versions % templates.max(1))).max(1);
        let name = format!("app{t:03}");
        let rancher = t % 2 == 1;
        if rancher {
            put(
                format!("templates/{name}/config.yml"),
                format!(
                    "name: App {t}\ndescription: Synthetic Rancher template {t}\nversion: 1.{}.0\n\
                     category: Test\nmaintainer: bench\nlicense: MIT\nprojectURL: https://example.com\n",
                    n - 1
                ),
            );
            put(
                format!("templates/{name}/catalogIcon-app.svg"),
                "<svg/>".into(),
            );
        } else {
            put(
                format!("templates/{name}/template.yml"),
                format!(
                    "name: App {t}\ndescription: Synthetic template {t}\ncategory: Test\n\
                     maintainer: bench\nhomepage: https://example.com\n"
                ),
            );
        }
        for v in 0..n {
            let version = format!("1.{v}.0");
            if rancher {
                let dir = format!("templates/{name}/{v}");
                let tpl = t % 4 == 1;
                let compose = format!(
                    "version: '2'\nservices:\n  web:\n    image: nginx:1.{v}\n    environment:\n      \
                     DB_PASSWORD: ${{DB_PASSWORD}}\n      MODE: ${{MODE}}\n    ports:\n      - \
                     ${{PORT}}:80\n    labels:\n      io.rancher.sidekicks: log\n      \
                     io.rancher.scheduler.affinity:host_label: tier=web\n      \
                     io.rancher.container.pull_image: always\n{}  log:\n    image: busybox:1.36\n    \
                     network_mode: container:web\n    command: [sleep, infinity]\n  db:\n    image: \
                     postgres:16.{v}\n    environment:\n      POSTGRES_PASSWORD: ${{DB_PASSWORD}}\n    \
                     volumes:\n      - data:/var/lib/postgresql/data\nvolumes:\n  data: {{}}\n",
                    if tpl {
                        "{{- if eq .Values.DEBUG \"true\" }}\n    command: [nginx-debug, -g, daemon off;]\n{{- end }}\n    \
                         extra_hosts:\n{{- range $i, $h := splitList \",\" .Values.HOSTS }}\n      - \"{{ $h }}:10.0.0.{{ $i }}\"\n{{- end }}\n"
                    } else {
                        ""
                    }
                );
                let file = if tpl {
                    "docker-compose.yml.tpl"
                } else {
                    "docker-compose.yml"
                };
                put(format!("{dir}/{file}"), compose);
                put(
                    format!("{dir}/rancher-compose.yml"),
                    format!(
                        ".catalog:\n  name: App {t}\n  version: {version}\n  description: v{v}\n  \
                         questions:\n    - variable: DB_PASSWORD\n      label: Database password\n      \
                         type: password\n      required: true\n      default: secret{v}\n    - \
                         variable: MODE\n      type: enum\n      options: [a, b]\n      default: a\n    \
                         - variable: PORT\n      type: int\n      min: 1\n      max: 65535\n      \
                         default: 8080\n    - variable: DEBUG\n      type: boolean\n      default: \
                         false\n    - variable: HOSTS\n      type: string\n      default: a,b\nversion: \
                         '2'\nservices:\n  web:\n    scale: 2\n    health_check:\n      port: 80\n      \
                         request_line: GET /healthz HTTP/1.0\n      interval: 2000\n      \
                         response_timeout: 2000\n      unhealthy_threshold: 3\n      healthy_threshold: 1\n"
                    ),
                );
                put(format!("{dir}/README.md"), format!("# App {t} {version}\n"));
            } else {
                let dir = format!("templates/{name}/{version}");
                put(
                    format!("{dir}/compose.yaml"),
                    format!(
                        "services:\n  web:\n    image: nginx:1.{v}\n    environment:\n      DB_PASSWORD: \
                         ${{DB_PASSWORD}}\n      TITLE: ${{TITLE}}\n    ports:\n      - \"${{PORT}}:80\"\n    \
                         depends_on: [db]\n    deploy:\n      replicas: ${{REPLICAS}}\n  db:\n    image: \
                         postgres:16.{v}\n    environment:\n      POSTGRES_PASSWORD: ${{DB_PASSWORD}}\n    \
                         volumes:\n      - data:/var/lib/postgresql/data\nvolumes:\n  data: {{}}\n"
                    ),
                );
                put(
                    format!("{dir}/questions.yml"),
                    "questions:\n  - variable: DB_PASSWORD\n    label: Database password\n    type: password\n    \
                     generate: true\n  - variable: TITLE\n    type: string\n    default: My app\n    max: 64\n  \
                     - variable: PORT\n    type: int\n    default: 8080\n    min: 1\n    max: 65535\n  - \
                     variable: REPLICAS\n    type: int\n    default: 1\n    min: 1\n    max: 10\n  - variable: \
                     SMTP\n    type: boolean\n    default: false\n  - variable: SMTP_HOST\n    type: hostname\n    \
                     required: true\n    show_if: SMTP=true\n"
                        .into(),
                );
            }
        }
    }
    files
}
