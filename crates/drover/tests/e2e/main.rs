//! End-to-end tests of `drover` against the real Docker engine. Run with `scripts/test.sh`
//! (it starts the engine and builds the `drover-test/*` images first).

mod catalogs;
mod cluster;
mod directory;
mod environments;
mod exec;
mod harness;
mod ingress;
mod keys;
mod mesh;
mod metrics;
mod secrets;
mod sidekicks;
mod ui;
mod users;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::*;

const HEALTH: &str = r#"["CMD", "/app", "health", "http://127.0.0.1:8080/health"]"#;

fn three_services(port: u16) -> String {
    format!(
        r#"
services:
  web:
    image: drover-test/app:1
    environment:
      NAME: web
    ports:
      - "127.0.0.1:{port}:8080"
    depends_on:
      api:
        condition: service_healthy
    restart: always
    stop_grace_period: 1s
  api:
    image: drover-test/app:1
    environment: {{ NAME: api }}
    networks:
      default:
        aliases: [backend]
      back: {{}}
    healthcheck:
      test: {HEALTH}
      interval: 1s
      timeout: 2s
      retries: 5
    depends_on: [db]
    restart: unless-stopped
    stop_grace_period: 1s
  db:
    image: drover-test/app:1
    environment: {{ NAME: db }}
    networks: [back]
    restart: always
    stop_grace_period: 1s
networks:
  back: {{}}
"#
    )
}

#[test]
fn three_service_stack_runs_and_is_kept_converged() {
    let mut d = Drover::up();
    let stack = unique("trio");
    let port = free_port();
    let file = d.write("compose.yml", &three_services(port));
    let out = d.deploy(&stack, &file);
    assert!(out.contains("is running: 3/3"), "{out}");

    // web calls api by service name and by alias over the stack network.
    let (code, body) = http_get(port, "/call/api:8080/").expect("web answers");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("name=api"), "{body}");
    let (code, body) = http_get(port, "/call/backend:8080/").expect("web answers");
    assert_eq!((code, body.contains("name=api")), (200, true), "{body}");

    // db is only on the `back` network: api reaches it, web cannot even resolve it.
    docker_ok(&[
        "exec",
        &format!("{stack}-api-1"),
        "/app",
        "health",
        "http://db:8080/health",
    ]);
    let (code, _) = http_get(port, "/call/db:8080/").expect("web answers");
    assert_eq!(code, 502, "web must not reach db across networks");

    // Listing commands.
    let ls = d.ok(&["stack", "ls"]);
    assert!(ls.contains(&stack) && ls.contains("converged"), "{ls}");
    let ps = d.ok(&["stack", "ps", &stack]);
    for svc in ["web", "api", "db"] {
        assert!(ps.contains(&format!("{stack}-{svc}-1")), "{ps}");
    }
    assert_eq!(ps.matches("running").count(), 3, "{ps}");
    assert!(d.ok(&["ps"]).contains(&format!("{stack}-api-1")));
    let logs = d.ok(&["logs", &format!("{stack}-web-1")]);
    assert!(logs.contains("listening on"), "{logs}");
    let logs = d.ok(&["logs", "--tail", "50", &stack]);
    assert!(logs.contains(&format!("{stack}-db-1 | ")), "{logs}");
    assert_eq!(stack_containers(&stack).len(), 3);

    // A container that belongs to someone else, even one that looks like ours, is never touched.
    let foreign = unique("foreign");
    docker_ok(&[
        "create",
        "--name",
        &foreign,
        "--label",
        "io.drover.cluster=someone-else",
        "--label",
        &format!("io.drover.stack={stack}"),
        APP_IMAGE,
    ]);

    // Killed: the restart policy brings it back.
    let before = container_state(&format!("{stack}-db-1"));
    docker_ok(&["kill", &format!("{stack}-db-1")]);
    wait_for(
        Duration::from_secs(30),
        "db to run again after kill",
        || {
            let now = container_state(&format!("{stack}-db-1"));
            (now != before && now.ends_with("true")).then_some(())
        },
    );

    // Stopped by hand (the engine will not restart it): Drover starts it again.
    docker_ok(&["stop", "-t", "1", &format!("{stack}-db-1")]);
    wait_for(
        Duration::from_secs(30),
        "db to be started again after stop",
        || {
            container_state(&format!("{stack}-db-1"))
                .ends_with("true")
                .then_some(())
        },
    );

    // Removed behind Drover's back: recreated under the same name.
    let old_id = docker_ok(&["inspect", "--format", "{{.Id}}", &format!("{stack}-web-1")]);
    docker_ok(&["rm", "-f", &format!("{stack}-web-1")]);
    wait_for(Duration::from_secs(30), "web to be recreated", || {
        let s = docker(&[
            "inspect",
            "--format",
            "{{.Id}} {{.State.Running}}",
            &format!("{stack}-web-1"),
        ]);
        let s = String::from_utf8_lossy(&s.stdout).trim().to_string();
        (!s.is_empty() && !s.starts_with(&old_id) && s.ends_with("true")).then_some(())
    });
    wait_for(Duration::from_secs(30), "web to serve again", || {
        http_get(port, "/call/api:8080/").filter(|(c, _)| *c == 200)
    });

    // Export writes a compose file that validates and redeploys with no change.
    let exported = d.dir.path().join("exported.yml");
    d.ok(&["stack", "export", &stack, "-o", &exported.to_string_lossy()]);
    let config = d.ok(&["stack", "config", "-f", &exported.to_string_lossy()]);
    assert!(config.contains("backend"), "{config}");
    let again = d.deploy(&stack, &exported);
    assert!(again.contains("0 changed, 3 unchanged"), "{again}");

    // Removal takes the stack's containers and network, and nothing else.
    d.ok(&["stack", "rm", &stack]);
    wait_for(Duration::from_secs(30), "stack containers to go", || {
        stack_containers(&stack)
            .iter()
            .all(|c| c == &foreign)
            .then_some(())
    });
    wait_for(Duration::from_secs(30), "stack networks to go", || {
        docker_ok(&["network", "ls", "--format", "{{.Name}}"])
            .lines()
            .all(|n| n != format!("{stack}_default") && n != format!("{stack}_back"))
            .then_some(())
    });
    assert_eq!(stack_containers(&stack), vec![foreign.clone()]);
    docker_ok(&["rm", "-f", &foreign]);
    let events = d.ok(&["events"]);
    assert!(
        events.contains("stack.created") && events.contains("stack.removed"),
        "{events}"
    );
}

#[test]
fn redeploy_changes_only_edited_services() {
    let mut d = Drover::up();
    let stack = unique("edit");
    let v1 = "services:\n  a:\n    image: drover-test/app:1\n    environment: [V=1]\n    stop_grace_period: 1s\n  b:\n    image: drover-test/app:1\n    stop_grace_period: 1s\n";
    let file = d.write("compose.yml", v1);
    d.deploy(&stack, &file);
    let a1 = container_state(&format!("{stack}-a-1"));
    let b1 = container_state(&format!("{stack}-b-1"));

    let v2 = v1.replace("V=1", "V=2").replace(
        "  b:\n    image: drover-test/app:1\n",
        "  b:\n    image: drover-test/app:1\n    deploy:\n      replicas: 2\n",
    );
    let file = d.write("compose.yml", &v2);
    let out = d.deploy(&stack, &file);
    assert!(out.contains("2 changed, 0 unchanged"), "{out}");
    let a2 = container_state(&format!("{stack}-a-1"));
    assert_ne!(
        a1.split(' ').next(),
        a2.split(' ').next(),
        "a was recreated"
    );
    let env = docker_ok(&[
        "inspect",
        "--format",
        "{{json .Config.Env}}",
        &format!("{stack}-a-1"),
    ]);
    assert!(env.contains("V=2"), "{env}");
    // b's spec did not change, only its scale: b-1 is untouched, b-2 is new.
    assert_eq!(container_state(&format!("{stack}-b-1")), b1);
    assert!(container_state(&format!("{stack}-b-2")).ends_with("true"));
    assert_eq!(stack_containers(&stack).len(), 3);

    // Same file again: nothing changes at all.
    let out = d.deploy(&stack, &file);
    assert!(out.contains("0 changed, 2 unchanged"), "{out}");
    assert_eq!(container_state(&format!("{stack}-a-1")), a2);
}

fn six_services() -> String {
    let mut s = String::from("services:\n");
    for i in 1..=6 {
        s.push_str(&format!(
            "  s{i}:\n    image: drover-test/app:1\n    restart: always\n    stop_grace_period: 1s\n"
        ));
        if i > 1 {
            s.push_str(&format!("    depends_on: [s{}]\n", i - 1));
        }
    }
    s
}

fn snapshot(stack: &str) -> Vec<String> {
    stack_containers(stack)
        .iter()
        .map(|c| format!("{c} {}", container_state(c)))
        .collect()
}

#[test]
fn kill_9_of_the_server_loses_nothing_and_disturbs_nothing() {
    let mut d = Drover::up();
    let file = d.write("compose.yml", &six_services());
    for delay_ms in [50u64, 250, 700] {
        let stack = unique("crash");
        d.track(&stack);
        // Deploy in the background and kill -9 the server while it runs.
        let child = std::process::Command::new(bin())
            .args([
                "stack",
                "deploy",
                "-f",
                &file.to_string_lossy(),
                "-p",
                &stack,
            ])
            .env("DROVER_URL", &d.url)
            .env("DROVER_TOKEN", &d.token)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn deploy");
        std::thread::sleep(Duration::from_millis(delay_ms));
        d.kill9();
        let mut child = child;
        let _ = child.wait();
        d.start("up");
        // Whether or not the first request landed, deploying again converges to one copy each.
        d.deploy(&stack, &file);
        let names = stack_containers(&stack);
        assert_eq!(
            names.len(),
            6,
            "exactly one container per service: {names:?}"
        );

        // Now a converged stack: kill -9 and restart change nothing on the host.
        let before = snapshot(&stack);
        d.kill9();
        d.start("up");
        wait_for(Duration::from_secs(20), "host to report again", || {
            d.ok(&["host", "ls"]).contains(" up ").then_some(())
        });
        let ps = wait_for(Duration::from_secs(20), "stack to show converged", || {
            let ls = d.ok(&["stack", "ls"]);
            ls.lines()
                .any(|l| l.contains(&stack) && l.contains("converged"))
                .then_some(ls)
        });
        assert!(ps.contains("6/6"), "{ps}");
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(
            snapshot(&stack),
            before,
            "no container restarted or duplicated"
        );
    }
}

#[test]
fn restarting_the_agent_alone_touches_no_container() {
    let mut d = Drover::server_only();
    d.start_agent(&[]);
    let stack = unique("agentrs");
    let file = d.write("compose.yml", &six_services());
    d.deploy(&stack, &file);
    let before = snapshot(&stack);
    d.kill9_agent();
    // With the agent gone the host is down and its containers keep running.
    wait_for(Duration::from_secs(20), "host to be down", || {
        d.ok(&["host", "ls"]).contains(" down ").then_some(())
    });
    assert_eq!(snapshot(&stack), before);
    d.start_agent(&[]);
    wait_for(Duration::from_secs(20), "host to be up again", || {
        d.ok(&["host", "ls"]).contains(" up ").then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(snapshot(&stack), before);
    let hosts = d.ok(&["host", "ls"]);
    assert_eq!(
        hosts.lines().count(),
        2,
        "the same host, not a second one: {hosts}"
    );
}

#[test]
fn engine_down_is_a_host_status_and_the_agent_recovers() {
    let mut d = Drover::server_only();
    let sock = d.dir.path().join("docker.sock");
    let host = format!("unix://{}", sock.display());
    d.start_agent(&[("DOCKER_HOST", host.as_str())]);
    let hosts = wait_for(Duration::from_secs(20), "host to show engine_down", || {
        let h = d.ok(&["host", "ls"]);
        (h.contains("engine_down") && h.contains("engine unreachable")).then_some(h)
    });
    assert!(hosts.contains("engine unreachable"), "{hosts}");
    // The engine "returns": the socket path now leads to the real engine.
    std::os::unix::fs::symlink("/var/run/docker.sock", &sock).expect("symlink");
    wait_for(Duration::from_secs(20), "host to come up", || {
        d.ok(&["host", "ls"]).contains(" up ").then_some(())
    });
    let stack = unique("engback");
    let file = d.write(
        "compose.yml",
        "services:\n  a:\n    image: drover-test/app:1\n",
    );
    d.deploy(&stack, &file);
}

#[test]
fn dependencies_one_shot_jobs_and_volumes() {
    let mut d = Drover::up();
    let stack = unique("deps");
    let bind = d.dir.path().join("conf");
    let file = d.write(
        "compose.yml",
        &format!(
            r#"
services:
  migrate:
    image: drover-test/app:1
    command: ["exit", "0"]
  app:
    image: drover-test/app:1
    depends_on:
      migrate:
        condition: service_completed_successfully
    volumes:
      - data:/data
      - {}:/conf:ro
      - type: tmpfs
        target: /scratch
    user: "1000"
    working_dir: /data
    hostname: apphost
    cap_drop: [NET_RAW]
    extra_hosts: ["gateway.test:10.1.2.3"]
    labels:
      team: core
    deploy:
      resources:
        limits:
          memory: 64m
          cpus: "0.5"
volumes:
  data:
"#,
            bind.display()
        ),
    );
    let out = d.deploy(&stack, &file);
    assert!(out.contains("is running"), "{out}");
    let app = format!("{stack}-app-1");
    let fmt = "{{.Config.User}}|{{.Config.WorkingDir}}|{{.Config.Hostname}}|{{.HostConfig.Memory}}|{{.HostConfig.NanoCpus}}|{{.HostConfig.CapDrop}}|{{.HostConfig.ExtraHosts}}|{{index .Config.Labels \"team\"}}";
    assert_eq!(
        docker_ok(&["inspect", "--format", fmt, &app]),
        "1000|/data|apphost|67108864|500000000|[NET_RAW]|[gateway.test:10.1.2.3]|core"
    );
    let mounts = docker_ok(&["inspect", "--format", "{{json .Mounts}}", &app]);
    assert!(mounts.contains(&format!("{stack}_data")), "{mounts}");
    assert!(mounts.contains("/conf"), "{mounts}");
    let tmpfs = docker_ok(&["inspect", "--format", "{{json .HostConfig.Tmpfs}}", &app]);
    assert!(tmpfs.contains("/scratch"), "{tmpfs}");
    let migrate = docker_ok(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}}",
        &format!("{stack}-migrate-1"),
    ]);
    assert_eq!(migrate, "exited 0");
    // Removing the stack keeps its named volume (data is never deleted implicitly).
    d.ok(&["stack", "rm", &stack]);
    wait_for(Duration::from_secs(30), "containers to go", || {
        stack_containers(&stack).is_empty().then_some(())
    });
    assert!(
        docker_ok(&["volume", "ls", "--format", "{{.Name}}"]).contains(&format!("{stack}_data"))
    );
}

#[test]
fn invalid_input_is_refused_clearly_and_creates_nothing() {
    let mut d = Drover::up();
    let stack = unique("bad");
    d.track(&stack);

    // Invalid compose: exit 2, file:line:column, nothing created.
    let file = d.write(
        "bad.yml",
        "services:\n  web:\n    image: drover-test/app:1\n    ports:\n      - \"99999:80\"\n",
    );
    let r = d.cli(&[
        "stack",
        "deploy",
        "-f",
        &file.to_string_lossy(),
        "-p",
        &stack,
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("bad.yml:5:"), "{}", r.stderr);
    assert_eq!(
        r.stderr.lines().count(),
        1,
        "one readable line: {}",
        r.stderr
    );
    assert!(!d.ok(&["stack", "ls"]).contains(&stack));
    assert!(stack_containers(&stack).is_empty());

    // A hostile file is refused (quickly, with bounded memory: the parser's limits).
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    bomb.push_str("services: {}\n");
    let file = d.write("bomb.yml", &bomb);
    let start = Instant::now();
    let r = d.cli(&["stack", "config", "-f", &file.to_string_lossy()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    eprintln!(
        "alias bomb refused in {:?}: {}",
        start.elapsed(),
        r.stderr.trim()
    );
    let deep = format!("services: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let file = d.write("deep.yml", &deep);
    let r = d.cli(&["stack", "config", "-f", &file.to_string_lossy()]);
    assert_eq!(r.code, 2, "{}", r.stderr);

    // An image the engine cannot find fails that service with why; the stack's others run.
    let file = d.write(
        "missing.yml",
        "services:\n  ok:\n    image: drover-test/app:1\n  gone:\n    image: 127.0.0.1:9/drover-missing:1\n",
    );
    let r = d.cli(&[
        "stack",
        "deploy",
        "-f",
        &file.to_string_lossy(),
        "-p",
        &stack,
        "--timeout",
        "60",
    ]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!("{stack}-gone-1")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("127.0.0.1:9/drover-missing:1"),
        "{}",
        r.stderr
    );
    let ps = d.ok(&["stack", "ps", &stack]);
    assert!(
        ps.lines()
            .any(|l| l.contains("-ok-1") && l.contains("running")),
        "{ps}"
    );

    // The API: no token, bad token, bad body, unknown environment.
    let (code, body) = api(&d.url, "GET", "/v1/environments", None, None);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("\"code\":\"unauthorized\""), "{body}");
    let (code, _) = api(&d.url, "GET", "/v1/whoami", Some("drv_wrong"), None);
    assert_eq!(code, 401);
    // The API document is no secret: open to anyone.
    let (code, body) = api(&d.url, "GET", "/v1/openapi.json", None, None);
    assert_eq!(code, 200);
    assert!(body.contains("/v1/environments/{env}/stacks"), "{body}");
    let (code, body) = api(
        &d.url,
        "POST",
        "/v1/environments/default/stacks",
        Some(&d.token),
        Some(r#"{"compose": 5}"#),
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("compose"), "{body}");
    let (code, body) = api(
        &d.url,
        "POST",
        "/v1/environments/default/stacks",
        Some(&d.token),
        Some(r#"{"name": "apibad", "compose": "services:\n  web:\n    imgae: x\n"}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("invalid_compose") && body.contains("3:"),
        "{body}"
    );
    let (code, _) = api(
        &d.url,
        "GET",
        "/v1/environments/nope/stacks",
        Some(&d.token),
        None,
    );
    assert_eq!(code, 404);
}

#[test]
fn build_context_is_sent_to_the_engine_and_rebuilt_on_change() {
    let mut d = Drover::up();
    let stack = unique("build");
    let port = free_port();
    let ctx = d.dir.path().join("app");
    std::fs::create_dir_all(&ctx).expect("context dir");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM drover-test/app:1\nARG FLAVOUR\nENV GREETING=built-$FLAVOUR\nCOPY note.txt /note.txt\n",
    )
    .expect("Dockerfile");
    std::fs::write(ctx.join("note.txt"), "one").expect("note");
    let file = d.write(
        "compose.yml",
        &format!(
            "services:\n  app:\n    build:\n      context: ./app\n      args:\n        FLAVOUR: plain\n    ports: [\"127.0.0.1:{port}:8080\"]\n    stop_grace_period: 1s\n"
        ),
    );
    let out = d.deploy(&stack, &file);
    assert!(out.contains("uploaded build context"), "{out}");
    let (code, body) = http_get(port, "/env/GREETING").expect("app answers");
    assert_eq!((code, body.trim()), (200, "built-plain"));
    let image1 = docker_ok(&[
        "inspect",
        "--format",
        "{{.Config.Image}}",
        &format!("{stack}-app-1"),
    ]);
    assert!(image1.starts_with(&format!("{stack}-app:")), "{image1}");

    // Same context: nothing changes. Edited context: a new image and a new container.
    let out = d.deploy(&stack, &file);
    assert!(out.contains("0 changed"), "{out}");
    std::fs::write(ctx.join("note.txt"), "two").expect("note");
    let out = d.deploy(&stack, &file);
    assert!(out.contains("1 changed"), "{out}");
    let image2 = docker_ok(&[
        "inspect",
        "--format",
        "{{.Config.Image}}",
        &format!("{stack}-app-1"),
    ]);
    assert_ne!(image1, image2);
    for image in [image1, image2] {
        docker(&["rmi", "-f", &image]);
    }
}

#[test]
fn logs_follow_and_interpolation_from_env_files() {
    let mut d = Drover::up();
    let stack = unique("logs");
    let port = free_port();
    let dir = d.dir.path().join("proj");
    std::fs::create_dir_all(&dir).expect("project dir");
    // `.env` beside the file feeds interpolation; `--env-file` replaces it; `env_file` fills
    // the container environment.
    std::fs::write(
        dir.join(".env"),
        format!("APP_PORT={port}\nGREETING=from-dotenv\n"),
    )
    .expect(".env");
    std::fs::write(dir.join("app.env"), "FROM_ENV_FILE=yes\n").expect("app.env");
    std::fs::write(
        dir.join("compose.yaml"),
        "services:\n  app:\n    image: drover-test/app:1\n    ports: [\"127.0.0.1:${APP_PORT}:8080\"]\n    env_file: app.env\n    environment:\n      GREETING: ${GREETING:-unset}\n      PRICE: $$5\n    stop_grace_period: 1s\n",
    )
    .expect("compose");
    d.track(&stack);
    let r = d.cli_in(&dir, &["stack", "deploy", "-p", &stack]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    for (var, want) in [
        ("GREETING", "from-dotenv"),
        ("FROM_ENV_FILE", "yes"),
        ("PRICE", "$5"),
    ] {
        let (code, body) = http_get(port, &format!("/env/{var}")).expect("app answers");
        assert_eq!((code, body.trim()), (200, want), "{var}");
    }
    let other = dir.join("other.env");
    std::fs::write(&other, format!("APP_PORT={port}\nGREETING=from-env-file\n"))
        .expect("other.env");
    let r = d.cli_in(
        &dir,
        &[
            "stack",
            "deploy",
            "-p",
            &stack,
            "--env-file",
            &other.to_string_lossy(),
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let (_, body) = http_get(port, "/env/GREETING").expect("app answers");
    assert_eq!(body.trim(), "from-env-file");

    // `logs -f` streams lines as they are written.
    let mut child = std::process::Command::new(bin())
        .args(["logs", "-f", &format!("{stack}-app-1")])
        .env("DROVER_URL", &d.url)
        .env("DROVER_TOKEN", &d.token)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn logs -f");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let marker = unique("marker");
    http_get(port, &format!("/{marker}")).expect("app answers");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    let found = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.contains(&marker) => break true,
            Ok(line) => seen.push(line),
            Err(_) if Instant::now() > deadline => break false,
            Err(_) => {}
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(found, "marker not streamed; saw {seen:?}");
}

#[test]
fn a_stalled_log_reader_disturbs_nothing_and_closed_pipes_end_cleanly() {
    let mut d = Drover::up();
    let stack = unique("chatty");
    d.track(&stack);
    let file = d.write(
        "chatty.yaml",
        "services:\n  chatty:\n    image: drover-test/busybox:1\n    command: [\"/bin/busybox\", \"sh\", \"-c\", \"while true; do echo 'a line of log text, written as fast as the shell can'; done\"]\n    stop_grace_period: 1s\n  quiet:\n    image: drover-test/app:1\n    stop_grace_period: 1s\n",
    );
    d.deploy(&stack, &file);
    let names = [format!("{stack}-chatty-1"), format!("{stack}-quiet-1")];
    let before: Vec<String> = names.iter().map(|n| container_state(n)).collect();

    // A client opens `logs -f` of the chatty container and never reads.
    let addr = d.url.trim_start_matches("http://").to_string();
    let mut stalled = TcpStream::connect(&addr).expect("connect");
    write!(
        stalled,
        "GET /v1/environments/default/containers/{}/logs?follow=true HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n",
        names[0], d.token
    )
    .expect("request");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let hosts = d.ok(&["host", "ls"]);
        assert!(
            hosts.contains(" up ") && !hosts.contains("disconnected") && !hosts.contains(" down"),
            "host not up while a log reader stalls: {hosts}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let after: Vec<String> = names.iter().map(|n| container_state(n)).collect();
    assert_eq!(
        before, after,
        "containers touched while a log reader stalled"
    );
    // The server still serves logs to readers that read.
    let tail = d.ok(&["logs", "--tail", "1", &names[0]]);
    assert!(tail.contains("a line of log text"), "{tail}");
    drop(stalled);

    // `logs -f | head -1` ends cleanly, with status 0, on the closed pipe.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; timeout 20 '{}' logs -f '{}' | head -1",
            bin(),
            names[0]
        ))
        .env("DROVER_URL", &d.url)
        .env("DROVER_TOKEN", &d.token)
        .env("DROVER_CONFIG", d.dir.path().join("cli.json"))
        .output()
        .expect("run pipeline");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

/// A deploy that cannot converge without the user says so within seconds, naming each
/// container and why; `stack rm` returns once the containers are gone.
#[test]
fn deploys_that_cannot_converge_fail_fast_and_rm_waits() {
    let mut d = Drover::up();
    let stack = unique("ff");
    d.track(&stack);
    let port = free_port();
    // Two replicas publishing one host port on the only host; a container that exits at once.
    let file = d.write(
        "ff.yml",
        &format!(
            "services:\n  web:\n    image: drover-test/app:1\n    stop_grace_period: 1s\n    ports: [\"{port}:8080\"]\n    deploy:\n      replicas: 2\n  job:\n    image: drover-test/app:1\n    command: [\"exit\", \"3\"]\n"
        ),
    );
    let start = Instant::now();
    let r = d.cli(&[
        "stack",
        "deploy",
        "-f",
        &file.to_string_lossy(),
        "-p",
        &stack,
        "--timeout",
        "120",
    ]);
    let took = start.elapsed();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("cannot converge"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    // The deploy fails as soon as one container cannot converge: the job's exit is named
    // with the port conflict when it came first (on a loaded machine the job may exit
    // after the conflict was found, and then the engine shows it).
    if !r
        .stderr
        .contains(&format!("{stack}-job-1: exited with code 3"))
    {
        let job = format!("{stack}-job-1");
        wait_for(Duration::from_secs(30), "the job to exit with 3", || {
            let out = docker(&[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.ExitCode}}",
                &job,
            ]);
            (String::from_utf8_lossy(&out.stdout).trim() == "exited 3").then_some(())
        });
    }
    assert!(
        r.stderr.contains(&format!("{stack}-web-")) && r.stderr.contains(&port.to_string()),
        "{}",
        r.stderr
    );
    eprintln!(
        "non-converging deploy refused after {:.1} s",
        took.as_secs_f64()
    );

    // rm waits until the containers are gone.
    assert!(!stack_containers(&stack).is_empty());
    let out = d.ok(&["stack", "rm", &stack]);
    assert!(out.contains("are gone"), "{out}");
    assert_eq!(stack_containers(&stack), Vec::<String>::new());
}

/// Makes a test-app container unhealthy (or healthy again) from inside.
fn set_health(container: &str, healthy: bool) {
    let path = if healthy { "healthy" } else { "unhealthy" };
    docker_ok(&[
        "exec",
        container,
        "/app",
        "health",
        &format!("http://127.0.0.1:8080/{path}"),
    ]);
}

/// The container's id; empty while there is none (between a removal and a creation).
/// A container's environment, one `K=V` per line.
fn env_of(name: &str) -> String {
    docker_ok(&[
        "inspect",
        "--format",
        "{{range .Config.Env}}{{println .}}{{end}}",
        name,
    ])
}

fn container_id(name: &str) -> String {
    let out = docker(&["inspect", "--format", "{{.Id}}", name]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An unhealthy container is recreated; a service that recreates on quorum leaves its
/// containers alone when most of it turns unhealthy at once (an outage they share).
#[test]
fn unhealthy_containers_are_recreated_as_their_policy_says() {
    let mut d = Drover::up();
    let stack = unique("hl");
    d.track(&stack);
    let check = "    healthcheck:\n      test: [\"CMD\", \"/app\", \"health\", \"http://127.0.0.1:8080/health\"]\n      interval: 1s\n      timeout: 1s\n      retries: 1\n";
    // q's replicas share their /tmp (the test app's unhealthy flag lives there): one flag
    // is an outage of all of them.
    let file = d.write(
        "hl.yml",
        &format!(
            "services:\n  web:\n    image: drover-test/app:1\n    stop_grace_period: 1s\n{check}  q:\n    image: drover-test/app:1\n    stop_grace_period: 1s\n{check}    volumes: [\"flag:/tmp\"]\n    deploy:\n      replicas: 3\n    x-drover:\n      singleton: false\n      health:\n        on_unhealthy: recreate_on_quorum\nvolumes:\n  flag: {{}}\n"
        ),
    );
    d.deploy(&stack, &file);
    let healthy = |name: &str| {
        let out = docker(&["inspect", "--format", "{{.State.Health.Status}}", name]);
        String::from_utf8_lossy(&out.stdout).trim() == "healthy"
    };
    let web = format!("{stack}-web-1");
    wait_for(Duration::from_secs(20), "web healthy", || {
        healthy(&web).then_some(())
    });

    // Default policy: recreated, and healthy again.
    let before = container_id(&web);
    set_health(&web, false);
    let turned = Instant::now();
    wait_for(Duration::from_secs(30), "unhealthy web recreated", || {
        let id = container_id(&web);
        (!id.is_empty() && id != before).then_some(())
    });
    eprintln!(
        "unhealthy container recreated {:.1} s after it was made unhealthy",
        turned.elapsed().as_secs_f64()
    );
    // Said in stack ps once the recreation is done (the new container started).
    wait_for(Duration::from_secs(20), "the recreation shown", || {
        d.ok(&["stack", "ps", &stack])
            .contains("was unhealthy: recreated")
            .then_some(())
    });
    wait_for(Duration::from_secs(20), "recreated web healthy", || {
        healthy(&web).then_some(())
    });

    // Quorum: all of q unhealthy at once; none is recreated.
    let q: Vec<String> = (1..=3).map(|i| format!("{stack}-q-{i}")).collect();
    for c in &q {
        wait_for(Duration::from_secs(20), "q healthy", || {
            healthy(c).then_some(())
        });
    }
    let ids: Vec<String> = q.iter().map(|c| container_id(c)).collect();
    set_health(&q[0], false);
    wait_for(Duration::from_secs(20), "q unhealthy", || {
        q.iter().all(|c| !healthy(c)).then_some(())
    });
    std::thread::sleep(Duration::from_secs(6));
    let now: Vec<String> = q.iter().map(|c| container_id(c)).collect();
    assert_eq!(now, ids, "recreated without a quorum");
    // The outage ends: all healthy again, none recreated.
    set_health(&q[0], true);
    for c in &q {
        wait_for(Duration::from_secs(20), "q healthy again", || {
            healthy(c).then_some(())
        });
    }
    assert_eq!(q.iter().map(|c| container_id(c)).collect::<Vec<_>>(), ids);
}

/// A private registry (Debian's `docker-registry` with htpasswd, on loopback) for one test;
/// stopped when dropped.
struct Registry {
    child: std::process::Child,
    dir: tempfile::TempDir,
    addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn private_registry(user: &str, password: &str) -> Registry {
    private_registry_at("127.0.0.1", user, password)
}

/// A private registry listening on `ip` (loopback, or the cluster's bridge address).
fn private_registry_at(ip: &str, user: &str, password: &str) -> Registry {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .expect("htpasswd (apt-get install apache2-utils)");
    std::fs::write(dir.path().join("htpasswd"), &out.stdout).expect("htpasswd file");
    let addr = format!("{ip}:{}", free_port());
    let config = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\nhttp:\n  addr: {addr}\nauth:\n  htpasswd:\n    realm: drover-test\n    path: {pw}\n",
        root = dir.path().join("data").display(),
        pw = dir.path().join("htpasswd").display()
    );
    let cfg = dir.path().join("config.yml");
    std::fs::write(&cfg, config).expect("registry config");
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("docker-registry (apt-get install docker-registry)");
    let r = Registry { child, dir, addr };
    wait_for(Duration::from_secs(20), "registry listening", || {
        TcpStream::connect(&r.addr).ok().map(|_| ())
    });
    r
}

/// Images of a private registry are pulled with the environment's login; without one the
/// deploy fails at once naming the image; the password never comes back out.
#[test]
fn private_registry_images_are_pulled_with_the_environments_login() {
    let password = "reg-s3cret-9f2";
    let reg = private_registry("ci", password);
    // Push the test image there, with a docker login kept in the test's own directory.
    let docker_config = reg.dir.path().join("docker-config");
    let image = format!("{}/drover/app:{}", reg.addr, unique("t"));
    let docker_as = |args: &[&str], input: Option<&str>| {
        let mut cmd = Command::new("docker");
        cmd.args(args)
            .env("DOCKER_CONFIG", &docker_config)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("docker");
        if let Some(text) = input
            && let Some(mut stdin) = child.stdin.take()
        {
            stdin.write_all(text.as_bytes()).expect("stdin");
        }
        let out = child.wait_with_output().expect("docker");
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    docker_as(
        &["login", &reg.addr, "-u", "ci", "--password-stdin"],
        Some(password),
    );
    docker_as(&["tag", "drover-test/app:1", &image], None);
    docker_as(&["push", &image], None);
    docker_as(&["rmi", &image], None);

    let mut d = Drover::up();
    let stack = unique("pr");
    d.track(&stack);
    let file = d.write(
        "pr.yml",
        &format!("services:\n  web:\n    image: {image}\n    stop_grace_period: 1s\n"),
    );
    let deploy = |d: &Drover| {
        d.cli(&[
            "stack",
            "deploy",
            "-f",
            &file.to_string_lossy(),
            "-p",
            &stack,
            "--timeout",
            "60",
        ])
    };
    // No login: refused by the registry, said at once, naming the image.
    let r = deploy(&d);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&image), "{}", r.stderr);

    // With the login (password on standard input only), it runs.
    let mut add = Command::new(bin())
        .args(["registry", "add", &reg.addr, "-u", "ci", "--password-stdin"])
        .env("DROVER_URL", &d.url)
        .env("DROVER_TOKEN", &d.token)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("drover registry add");
    add.stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("password");
    let out = add.wait_with_output().expect("registry add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = deploy(&d);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        docker_ok(&[
            "inspect",
            "--format",
            "{{.Config.Image}}",
            &format!("{stack}-web-1")
        ]),
        image
    );

    // The password is not shown, not in the container, not in the server's log.
    let ls = d.ok(&["registry", "ls"]);
    assert!(ls.contains(&reg.addr) && ls.contains("ci"), "{ls}");
    assert!(!ls.contains(password), "{ls}");
    let inspect = docker_ok(&["inspect", &format!("{stack}-web-1")]);
    assert!(!inspect.contains(password));
    assert!(!d.log().contains(password));
    let events = d.ok(&["events"]);
    assert!(
        events.contains("registry.add") && !events.contains(password),
        "{events}"
    );
    // pull_policy never: an image the host lacks is an error, not a pull.
    let other = format!("{}/drover/app:{}", reg.addr, unique("n"));
    docker_as(&["tag", "drover-test/app:1", &other], None);
    docker_as(&["push", &other], None);
    docker_as(&["rmi", &other], None);
    let never = d.write(
        "never.yml",
        &format!("services:\n  web:\n    image: {other}\n    pull_policy: never\n"),
    );
    let stack2 = unique("pn");
    d.track(&stack2);
    let r = d.cli(&[
        "stack",
        "deploy",
        "-f",
        &never.to_string_lossy(),
        "-p",
        &stack2,
    ]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("pull_policy is never"), "{}", r.stderr);

    d.ok(&["registry", "rm", &reg.addr]);
    assert!(!d.ok(&["registry", "ls"]).contains(&reg.addr));
    // pull_policy always: pulls even though the host has the image, so without the login
    // it is refused.
    let always = d.write(
        "always.yml",
        &format!("services:\n  web:\n    image: {image}\n    pull_policy: always\n"),
    );
    let stack3 = unique("pa");
    d.track(&stack3);
    let r = d.cli(&[
        "stack",
        "deploy",
        "-f",
        &always.to_string_lossy(),
        "-p",
        &stack3,
    ]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&image), "{}", r.stderr);
    let _ = docker(&["rmi", "-f", &image]);
}

/// Checks the agent runs itself (`x-drover.health` http and tcp): health shows in `ps`, and
/// a container failing its http check is recreated.
#[test]
fn agent_run_health_checks_judge_and_replace() {
    let mut d = Drover::up();
    let stack = unique("ac");
    d.track(&stack);
    let file = d.write(
        "ac.yml",
        "services:\n  web:\n    image: drover-test/app:1\n    stop_grace_period: 1s\n    x-drover:\n      health: {http: /health, port: 8080, interval: 500ms, retries: 2}\n  db:\n    image: drover-test/app:1\n    stop_grace_period: 1s\n    x-drover:\n      health: {tcp: 8080, interval: 500ms}\n",
    );
    d.deploy(&stack, &file);
    let web = format!("{stack}-web-1");
    let db = format!("{stack}-db-1");
    wait_for(Duration::from_secs(20), "both healthy in ps", || {
        let ps = d.ok(&["stack", "ps", &stack]);
        [&web, &db]
            .iter()
            .all(|n| {
                ps.lines()
                    .any(|l| l.starts_with(n.as_str()) && l.contains("running (healthy)"))
            })
            .then_some(())
    });
    let before = container_id(&web);
    set_health(&web, false);
    wait_for(
        Duration::from_secs(30),
        "web recreated after failing its check",
        || (container_id(&web) != before).then_some(()),
    );
    wait_for(Duration::from_secs(20), "recreated web healthy", || {
        let ps = d.ok(&["stack", "ps", &stack]);
        ps.lines()
            .any(|l| l.starts_with(web.as_str()) && l.contains("running (healthy)"))
            .then_some(())
    });
    // A check the server cannot read is refused at deploy, naming it.
    let bad = d.write(
        "bad.yml",
        "services:\n  web:\n    image: drover-test/app:1\n    x-drover:\n      health: {http: /health}\n",
    );
    let r = d.try_deploy(&stack, &bad);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("health.port"), "{}", r.stderr);
}

/// `service ls` and `service scale`: up and down, waiting until done; a global service and
/// bad targets are refused.
#[test]
fn services_are_listed_and_scaled() {
    let mut d = Drover::up();
    let stack = unique("sc");
    d.track(&stack);
    let file = d.write(
        "sc.yml",
        "services:\n  web:\n    image: drover-test/app:1\n    stop_grace_period: 1s\n  mon:\n    image: drover-test/app:1\n    stop_grace_period: 1s\n    deploy:\n      mode: global\n",
    );
    d.deploy(&stack, &file);
    let out = d.ok(&["service", "scale", &format!("{stack}/web=3")]);
    assert!(out.contains("is running"), "{out}");
    let ls = d.ok(&["service", "ls", &stack]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with(&format!("{stack}/web ")) && l.contains("3/3")),
        "{ls}"
    );
    let running = |service: &str| {
        stack_containers(&stack)
            .iter()
            .filter(|n| n.starts_with(&format!("{stack}-{service}-")))
            .count()
    };
    assert_eq!(running("web"), 3);
    d.ok(&["service", "scale", &format!("{stack}/web=1")]);
    wait_for(Duration::from_secs(20), "scaled down to one", || {
        (running("web") == 1).then_some(())
    });
    let events = d.ok(&["events"]);
    assert!(events.contains("stack.updated"), "{events}");

    let r = d.cli(&["service", "scale", &format!("{stack}/mon=2")]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("global"), "{}", r.stderr);
    let r = d.cli(&["service", "scale", "nonsense"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = d.cli(&["service", "scale", &format!("{stack}/nope=2")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
}

/// Every deploy is a revision; `stack history` lists them; `stack rollback` deploys an
/// earlier one again as a new revision.
#[test]
fn revisions_are_listed_and_rolled_back() {
    let mut d = Drover::up();
    let stack = unique("rv");
    d.track(&stack);
    let version = |v: &str| {
        format!(
            "services:\n  web:\n    image: drover-test/app:1\n    stop_grace_period: 1s\n    environment:\n      VERSION: \"{v}\"\n  api:\n    image: drover-test/app:1\n    stop_grace_period: 1s\n    environment:\n      VERSION: \"{v}\"\n"
        )
    };
    let web = format!("{stack}-web-1");
    for v in ["1", "2"] {
        let file = d.write(&format!("rv{v}.yml"), &version(v));
        d.deploy(&stack, &file);
    }
    assert!(env_of(&web).contains("VERSION=2"));
    let out = d.ok(&["stack", "rollback", &stack]);
    assert!(out.contains("revision 3"), "{out}");
    assert!(env_of(&web).contains("VERSION=1"), "{}", env_of(&web));
    let history = d.ok(&["stack", "history", &stack]);
    let lines: Vec<&str> = history.lines().skip(1).collect();
    assert_eq!(lines.len(), 3, "{history}");
    assert!(
        lines[0].starts_with("3 *") && lines[0].contains("rollback to revision 1"),
        "{history}"
    );
    assert!(lines[2].starts_with('1'), "{history}");
    // Back to 2 by number; an unknown revision is refused, naming it.
    d.ok(&["stack", "rollback", &stack, "--revision", "2"]);
    assert!(env_of(&web).contains("VERSION=2"));
    let r = d.cli(&["stack", "rollback", &stack, "--revision", "99"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no revision 99"), "{}", r.stderr);
    // One service back to the previous revision (3: VERSION 1); the other stays.
    d.ok(&["service", "rollback", &format!("{stack}/web")]);
    assert!(env_of(&web).contains("VERSION=1"), "{}", env_of(&web));
    let api = format!("{stack}-api-1");
    assert!(env_of(&api).contains("VERSION=2"), "{}", env_of(&api));
    let history = d.ok(&["stack", "history", &stack]);
    assert!(
        history.contains("rollback of web to revision 3"),
        "{history}"
    );
}

/// Rolling upgrades on one engine: a start-first roll gated on the agent's health check
/// replaces every container and never runs short; an upgrade whose containers fail their
/// check rolls back by itself (the deploy says so and exits 1); `service restart` replaces
/// every container in place (stop-first).
#[test]
fn rolling_upgrades_are_health_gated_and_roll_back_by_themselves() {
    let mut d = Drover::up();
    let stack = unique("ru");
    d.track(&stack);
    let version = |v: &str, check: &str| {
        format!(
            "services:\n  web:\n    image: drover-test/app:1\n    stop_grace_period: 1s\n    environment:\n      VERSION: \"{v}\"\n    deploy:\n      replicas: 3\n      update_config: {{parallelism: 2, order: start-first, failure_action: rollback}}\n    x-drover:\n      drain: 500ms\n      health: {{http: {check}, port: 8080, interval: 300ms, retries: 1}}\n"
        )
    };
    let running = |d: &Drover| -> Vec<String> {
        let ps = d.ok(&["stack", "ps", &stack]);
        ps.lines()
            .skip(1)
            .filter(|l| l.contains("running"))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    };
    let v1 = d.write("ru1.yml", &version("1", "/health"));
    d.deploy(&stack, &v1);
    assert_eq!(running(&d).len(), 3);

    // Version 2: new containers first, each healthy before an old one leaves.
    let v2 = d.write("ru2.yml", &version("2", "/health"));
    let watcher = {
        let stack = stack.clone();
        std::thread::spawn(move || {
            // The fewest healthy, up-to-date-or-old containers seen during the roll.
            let mut fewest = usize::MAX;
            let end = std::time::Instant::now() + Duration::from_secs(20);
            while std::time::Instant::now() < end {
                let out = docker_ok(&[
                    "ps",
                    "--filter",
                    &format!("label=io.drover.stack={stack}"),
                    "--format",
                    "{{.Status}}",
                ]);
                let healthy = out.lines().filter(|l| l.contains("Up")).count();
                fewest = fewest.min(healthy);
                std::thread::sleep(Duration::from_millis(50));
            }
            fewest
        })
    };
    let out = d.deploy(&stack, &v2);
    assert!(
        out.contains("web: rolling to revision 2 (start-first, 2 at a time)"),
        "{out}"
    );
    assert!(
        out.contains("web: revision 2 rolled out (3 updated"),
        "{out}"
    );
    let names = running(&d);
    assert_eq!(names.len(), 3, "{names:?}");
    for n in &names {
        assert!(env_of(n).contains("VERSION=2"), "{n}: {}", env_of(n));
    }
    assert!(
        !names.contains(&format!("{stack}-web-1")),
        "start-first makes new containers: {names:?}"
    );
    let fewest = watcher.join().expect("watcher");
    assert!(
        fewest >= 3,
        "the roll ran short: {fewest} containers up at one point"
    );

    // Version 3 never turns healthy: the roll rolls back by itself.
    let v3 = d.write("ru3.yml", &version("3", "/nope"));
    let f = v3.to_string_lossy().to_string();
    let r = d.cli(&["stack", "deploy", "-f", &f, "-p", &stack, "--timeout", "90"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("roll of web to revision 3 failed") && r.stderr.contains("rolled back"),
        "{}",
        r.stderr
    );
    let names = wait_for(Duration::from_secs(30), "back to 3 containers", || {
        let n = running(&d);
        (n.len() == 3).then_some(n)
    });
    for n in &names {
        assert!(env_of(n).contains("VERSION=2"), "{n}: {}", env_of(n));
    }
    let history = d.ok(&["stack", "history", &stack]);
    assert!(
        history.contains("automatic rollback of web to revision 2"),
        "{history}"
    );
    let events = d.ok(&["events"]);
    assert!(events.contains("roll.failed"), "{events}");

    // A restart replaces every container, in place when stop-first.
    let db = d.write(
        "ru4.yml",
        "services:\n  db:\n    image: drover-test/app:1\n    stop_grace_period: 1s\n    deploy:\n      replicas: 2\n    x-drover:\n      drain: 0s\n",
    );
    let db_stack = format!("{stack}db");
    d.deploy(&db_stack, &db);
    let before: Vec<String> = ["1", "2"]
        .iter()
        .map(|n| container_id(&format!("{db_stack}-db-{n}")))
        .collect();
    let out = d.ok(&["service", "restart", &format!("{db_stack}/db")]);
    assert!(out.contains("rolled out (2 updated"), "{out}");
    for (n, old) in ["1", "2"].iter().zip(&before) {
        let id = container_id(&format!("{db_stack}-db-{n}"));
        assert_ne!(&id, old, "db-{n} was not replaced");
    }
}
