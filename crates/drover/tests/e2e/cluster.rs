//! Multi-host end-to-end test: three hosts, each a network namespace with its own Docker
//! engine and `drover agent` (scripts/cluster.sh), the server on the bridge at 10.77.0.1.
//! One test runs the scenarios in order on one cluster: spread, constraints, global services
//! following labels, resource exhaustion (pending with the reason), drain, host loss (time to
//! replacement printed), host return (stale copies removed), and a singleton that never runs
//! twice across a partition; and the network across hosts (`mesh.rs`). All traffic stays on the bridge and in the namespaces it creates.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

const HOSTS: usize = 3;

pub(crate) struct Cluster {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) url: String,
    token: String,
    server: Option<Child>,
    agents: Vec<Option<Child>>,
    /// `drover agent --server https://... --token T --ca-hash sha256:...`, as printed.
    agent_args: Vec<String>,
    /// The ACME test directory (pebble) the server is pointed at; started by the scenario
    /// that needs it.
    pub(crate) acme: crate::ingress::Pebble,
    /// Held while the cluster lives: the namespaces' names are fixed, so clusters (this
    /// test's, the chaos suite's) take turns.
    _lock: std::fs::File,
}

/// Waits for the machine's one cluster slot (an exclusive flock on a well-known file).
fn cluster_lock() -> std::fs::File {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/drover-cluster.lock")
        .expect("cluster lock file");
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).expect("cluster lock");
    f
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/cluster.sh")
}

impl Cluster {
    fn start() -> Cluster {
        require_engine();
        let lock = cluster_lock();
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new(script())
            .args(["up", &HOSTS.to_string()])
            .arg(dir.path().join("hosts"))
            .env("CLUSTER_IMAGES", "drover-test/app:1 drover-test/busybox:1")
            .output()
            .expect("cluster.sh");
        assert!(
            out.status.success(),
            "cluster.sh up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log");
        let acme = crate::ingress::Pebble::prepare(&dir.path().join("pebble"));
        let mut cmd = Command::new(bin());
        cmd.args([
            "server",
            "--listen",
            &format!("10.77.0.1:{port}"),
            "--acme-directory",
            &acme.directory(),
            "--acme-ca",
        ])
        .arg(acme.ca_file())
        .arg("--data-dir")
        .arg(dir.path().join("server"))
        .env("DROVER_CONFIG", dir.path().join("cli.json"))
        .stderr(log);
        let (server, ready) = spawn_ready(&mut cmd);
        let ready = ready.unwrap_or_else(|seen| panic!("drover server did not start: {seen}"));
        let token = ready.token.expect("admin token on first start");
        let mut c = Cluster {
            dir,
            url: ready.url,
            token,
            server: Some(server),
            agents: Vec::new(),
            agent_args: Vec::new(),
            acme,
            _lock: lock,
        };
        assert!(c.url.starts_with("https://"), "not HTTPS: {}", c.url);
        // Agents register with a host token, running the printed command as an operator
        // would.
        let created = c.ok(&["host", "token", "create"]);
        c.agent_args = printed_agent_args(&created);
        assert!(
            created.contains(&format!("--server {} ", c.url))
                && created.contains("--ca-hash sha256:"),
            "{created}"
        );
        for i in 1..=HOSTS {
            let region = if i < 3 { "eu" } else { "us" };
            let child = c.spawn_agent(i, region);
            c.agents.push(Some(child));
        }
        wait_for(Duration::from_secs(30), "3 hosts up", || {
            (c.ok(&["host", "ls"]).matches(" up ").count() == HOSTS).then_some(())
        });
        c
    }

    fn spawn_agent(&self, i: usize, region: &str) -> Child {
        self.spawn_agent_with(i, region, &self.agent_args)
    }

    /// Runs `drover agent ARGS --label region=R --data-dir <host i's>` in host i's namespace.
    fn spawn_agent_with(&self, i: usize, region: &str, args: &[String]) -> Child {
        let b = self.dir.path().join("hosts").join(format!("h{i}"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(b.join("agent.log"))
            .expect("agent log");
        Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/drvh{i}"))
            .arg(bin())
            .args(args)
            .args(["--label", &format!("region={region}"), "--data-dir"])
            .arg(b.join("agent"))
            .env(
                "DOCKER_HOST",
                format!("unix://{}", b.join("docker.sock").display()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn agent")
    }

    pub(crate) fn cli(&self, args: &[&str]) -> Run {
        let out = Command::new(bin())
            .args(args)
            .env("DROVER_URL", &self.url)
            .env("DROVER_TOKEN", &self.token)
            .env("DROVER_CONFIG", self.dir.path().join("cli.json"))
            .output()
            .expect("run drover CLI");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    }

    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let r = self.cli(args);
        assert_eq!(r.code, 0, "drover {args:?}: {}\n{}", r.stdout, r.stderr);
        r.stdout
    }

    /// Deploys and requires success.
    pub(crate) fn deploy_ok(&self, stack: &str, compose: &str) {
        let r = self.deploy(stack, compose);
        assert_eq!(r.code, 0, "deploy {stack}: {}\n{}", r.stdout, r.stderr);
    }

    fn deploy(&self, stack: &str, compose: &str) -> Run {
        self.deploy_with(stack, compose, &["--timeout", "60"])
    }

    fn deploy_with(&self, stack: &str, compose: &str, flags: &[&str]) -> Run {
        let file = self.dir.path().join(format!("{stack}.yml"));
        std::fs::write(&file, compose).expect("compose file");
        let file = file.to_string_lossy().to_string();
        let mut args = vec!["stack", "deploy", "-f", &file, "-p", stack];
        args.extend_from_slice(flags);
        self.cli(&args)
    }

    /// Running containers of `stack` (optionally one service) on host `i`, by engine.
    pub(crate) fn running(&self, i: usize, stack: &str, service: Option<&str>) -> Vec<String> {
        let sock = self.dir.path().join(format!("hosts/h{i}/docker.sock"));
        let mut args = vec![
            "-H".to_string(),
            format!("unix://{}", sock.display()),
            "ps".into(),
            "--filter".into(),
            format!("label=io.drover.stack={stack}"),
            "--filter".into(),
            "status=running".into(),
            "--format".into(),
            "{{.Names}}".into(),
        ];
        if let Some(s) = service {
            args.push("--filter".into());
            args.push(format!("label=io.drover.service={s}"));
        }
        let out = Command::new("docker").args(&args).output().expect("docker");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Running count of a service on each host.
    /// Whether each host runs, for every replica of `primary`, the same-numbered replica of
    /// `sidekick`, and nothing else of it.
    fn paired(&self, stack: &str, primary: &str, sidekick: &str) -> bool {
        (1..=HOSTS).all(|i| {
            let slots = |svc: &str| {
                let mut v: Vec<String> = self
                    .running(i, stack, Some(svc))
                    .iter()
                    .filter_map(|n| n.rsplit('-').next().map(str::to_string))
                    .collect();
                v.sort();
                v
            };
            slots(primary) == slots(sidekick)
        })
    }

    fn spread(&self, stack: &str, service: &str) -> Vec<usize> {
        (1..=HOSTS)
            .map(|i| self.running(i, stack, Some(service)).len())
            .collect()
    }

    fn net(&self, how: &str, i: usize) {
        let st = Command::new(script())
            .args([how, &i.to_string()])
            .status()
            .expect("cluster.sh");
        assert!(st.success());
    }

    pub(crate) fn host_id(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("hosts/h{i}/agent/host-id")))
            .expect("host id")
            .trim()
            .to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for a in self.agents.iter_mut().flatten() {
            let _ = a.kill();
            let _ = a.wait();
        }
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = Command::new(script())
            .args(["down", &HOSTS.to_string()])
            .arg(self.dir.path().join("hosts"))
            .status();
    }
}

pub(crate) fn app(extra: &str) -> String {
    format!("    image: drover-test/app:1\n    stop_grace_period: 1s\n{extra}")
}

#[test]
fn three_hosts_schedule_fail_over_and_fence() {
    let mut c = Cluster::start();
    joining_is_pinned_and_bound_to_credentials(&c);
    crate::mesh::one_network_across_hosts(&c);
    private_registry_on_two_hosts(&c);
    secrets_on_every_host(&c);
    crate::mesh::zero_downtime_upgrade(&c);
    crate::ingress::routes_across_hosts(&c);
    crate::ingress::acme_with_pebble(&c);

    // Spread: three replicas, one per host, each with its sidekick beside it.
    c.deploy_ok(
        "spread",
        &format!(
            "services:\n  web:\n{}    deploy:\n      replicas: 3\n  log:\n    image: drover-test/busybox:1\n    command: [/bin/busybox, sleep, '3600']\n    stop_grace_period: 1s\n    network_mode: service:web\n",
            app("")
        ),
    );
    assert_eq!(c.spread("spread", "web"), vec![1, 1, 1]);
    assert!(c.paired("spread", "web", "log"));

    // Constraints: only hosts labelled region=eu (1 and 2).
    c.deploy_ok(
        "eu",
        &format!(
            "services:\n  api:\n{}    deploy:\n      replicas: 4\n      placement:\n        constraints: [node.labels.region == eu]\n",
            app("")
        ),
    );
    assert_eq!(c.spread("eu", "api"), vec![2, 2, 0]);

    // Global: one per matching host, following label changes.
    c.deploy_ok(
        "glob",
        &format!(
            "services:\n  mon:\n{}    deploy:\n      mode: global\n      placement:\n        constraints: [node.labels.region == eu]\n",
            app("")
        ),
    );
    assert_eq!(c.spread("glob", "mon"), vec![1, 1, 0]);
    let h3 = c.host_id(3);
    c.ok(&["host", "label", &h3, "region=eu"]);
    wait_for(
        Duration::from_secs(20),
        "global service on the relabelled host",
        || (c.spread("glob", "mon") == [1, 1, 1]).then_some(()),
    );
    c.ok(&["host", "label", &h3, "region-"]);
    wait_for(
        Duration::from_secs(20),
        "global service off the host again",
        || (c.spread("glob", "mon") == [1, 1, 0]).then_some(()),
    );

    // Exhaustion: a reservation no host has stays pending, with the reason.
    let r = c.deploy_with(
        "big",
        &format!(
            "services:\n  huge:\n{}    deploy:\n      resources:\n        reservations:\n          memory: 100000g\n",
            app("")
        ),
        &["--detach"],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let ps = wait_for(Duration::from_secs(10), "pending reason", || {
        let ps = c.ok(&["stack", "ps", "big"]);
        ps.contains("no host fits").then_some(ps)
    });
    assert!(
        ps.contains("pending") && ps.contains("3 hosts short of memory"),
        "{ps}"
    );
    c.ok(&["stack", "rm", "big"]);

    // Drain: host 1's replicas move away; it runs nothing of ours afterwards.
    let h1 = c.host_id(1);
    c.ok(&["host", "drain", &h1]);
    wait_for(Duration::from_secs(30), "drained host to be empty", || {
        let empty = ["spread", "eu", "glob"]
            .iter()
            .all(|s| c.running(1, s, None).is_empty());
        let moved = c.spread("spread", "web").iter().sum::<usize>() == 3
            && c.spread("eu", "api") == [0, 4, 0];
        (empty && moved).then_some(())
    });
    assert!(c.ok(&["host", "ls"]).contains("(draining)"));
    c.ok(&["host", "drain", "--undo", &h1]);

    // Host loss: cut host 3's link; its replica is replaced on the others.
    for s in ["eu", "glob"] {
        c.ok(&["stack", "rm", s]);
    }
    let before = c.spread("spread", "web");
    assert!(before[2] >= 1, "host 3 runs a web replica: {before:?}");
    crate::mesh::failover_setup(&c);
    let cut = Instant::now();
    c.net("cut", 3);
    let down = wait_for(Duration::from_secs(30), "host 3 down", || {
        c.ok(&["host", "ls"])
            .lines()
            .any(|l| l.starts_with(&h3[..12]) && l.contains(" down"))
            .then(|| cut.elapsed())
    });
    let replaced = wait_for(Duration::from_secs(40), "web replaced on hosts 1-2", || {
        let s = c.spread("spread", "web");
        (s[0] + s[1] == 3).then(|| cut.elapsed())
    });
    // The sidekick moved with its primary.
    wait_for(
        Duration::from_secs(20),
        "sidekick beside the moved replica",
        || {
            let s = c.spread("spread", "log");
            (s[0] + s[1] == 3 && c.paired("spread", "web", "log")).then_some(())
        },
    );
    eprintln!(
        "host loss: marked down after {:.1} s, replacement running after {:.1} s (defaults; targets 10 s / 15 s)",
        down.as_secs_f64(),
        replaced.as_secs_f64()
    );
    crate::mesh::failover_keeps_names(&c);
    // The lost host's engine still runs its (now stale) copies, cut off from everything.
    assert_eq!(c.spread("spread", "web")[2], before[2]);

    // Return: the stale copy is removed, nothing duplicated.
    c.net("heal", 3);
    wait_for(
        Duration::from_secs(40),
        "stale copies removed on return",
        || {
            let s = c.spread("spread", "web");
            let done = s[2] == 0 && s.iter().sum::<usize>() == 3;
            (done && c.paired("spread", "web", "log")).then_some(())
        },
    );
    wait_for(Duration::from_secs(30), "host 3 up again", || {
        (c.ok(&["host", "ls"]).matches(" up ").count() == HOSTS).then_some(())
    });

    // Singleton across a partition: never two running at once.
    c.deploy_ok(
        "single",
        &format!(
            "services:\n  db:\n{}    x-drover:\n      singleton: true\n",
            app("")
        ),
    );
    let at = c.spread("single", "db");
    let home = at.iter().position(|n| *n == 1).expect("db runs somewhere") + 1;
    let cut = Instant::now();
    c.net("cut", home);
    let mut fenced_at = None;
    let moved = loop {
        let s = c.spread("single", "db");
        let total: usize = s.iter().sum();
        assert!(total <= 1, "singleton running twice: {s:?}");
        if s[home - 1] == 0 && fenced_at.is_none() {
            fenced_at = Some(cut.elapsed());
        }
        if total == 1 && s[home - 1] == 0 {
            break cut.elapsed();
        }
        assert!(
            cut.elapsed() < Duration::from_secs(60),
            "singleton never moved: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!(
        "singleton: fenced on the cut-off host after {:.1} s, running elsewhere after {:.1} s",
        fenced_at.unwrap_or_default().as_secs_f64(),
        moved.as_secs_f64()
    );
    c.net("heal", home);
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(8) {
        let s = c.spread("single", "db");
        assert!(
            s.iter().sum::<usize>() <= 1,
            "singleton running twice after heal: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(c.spread("single", "db").iter().sum::<usize>(), 1);

    removing_a_host_revokes_it_at_once(&mut c);
}

/// A fresh agent data directory on the host side (the server's bridge address is local),
/// for agents that must be refused.
fn scratch_agent(c: &Cluster, name: &str, args: &[String], host_id: Option<&str>) -> Run {
    let dir = c.dir.path().join("scratch").join(name);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    if let Some(id) = host_id {
        std::fs::write(dir.join("host-id"), id).expect("host id");
    }
    let mut child = Command::new(bin())
        .args(args)
        .arg("--no-mesh")
        .arg("--data-dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agent");
    let start = Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st.code().unwrap_or(-1);
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("agent {name} was not refused within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    Run {
        code,
        stdout: String::new(),
        stderr,
    }
}

/// Replaces the value after `flag` in a printed agent command.
fn with_arg(args: &[String], flag: &str, value: &str) -> Vec<String> {
    let mut out = args.to_vec();
    if let Some(i) = out.iter().position(|a| a == flag) {
        out[i + 1] = value.to_string();
    }
    out
}

fn joining_is_pinned_and_bound_to_credentials(c: &Cluster) {
    // Every agent exchanged the token for a credential of its own, kept 0600.
    for i in 1..=HOSTS {
        let cred = c.dir.path().join(format!("hosts/h{i}/agent/credential"));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&cred)
                .expect("credential kept")
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{}", cred.display());
    }

    // A wrong CA pin: refused with one clear line, nothing registered.
    let wrong = format!("sha256:{}", "0".repeat(64));
    let r = scratch_agent(
        c,
        "wrong-pin",
        &with_arg(&c.agent_args, "--ca-hash", &wrong),
        None,
    );
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("does not match the pinned CA hash"),
        "{}",
        r.stderr
    );

    // An impostor: a real token, an existing host's id. Refused and audited; the real
    // host keeps working.
    let h2 = c.host_id(2);
    let before = c.ok(&["host", "inspect", &h2]);
    let r = scratch_agent(c, "impostor", &c.agent_args, Some(&h2));
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("already registered"), "{}", r.stderr);
    assert!(c.ok(&["events"]).contains("host.impostor"));
    std::thread::sleep(Duration::from_secs(2));
    let hosts = c.ok(&["host", "ls"]);
    assert_eq!(hosts.matches(" up ").count(), HOSTS, "{hosts}");
    assert_eq!(
        c.ok(&["host", "inspect", &h2]).lines().next(),
        before.lines().next()
    );

    // Tokens: listed without secrets; a removed token and an expired one are refused at once.
    let created = c.ok(&["host", "token", "create", "--uses", "5"]);
    let args = printed_agent_args(&created);
    let secret = args[args.iter().position(|a| a == "--token").expect("--token") + 1].clone();
    let id = created
        .split_whitespace()
        .nth(2)
        .expect("token id")
        .to_string();
    let ls = c.ok(&["host", "token", "ls"]);
    assert!(ls.contains(&id) && !ls.contains(&secret), "{ls}");
    c.ok(&["host", "token", "rm", &id]);
    let removed_at = Instant::now();
    let r = scratch_agent(c, "removed-token", &args, None);
    assert!(
        r.stderr.contains("refused the registration token"),
        "{}",
        r.stderr
    );
    eprintln!(
        "removed token refused {:.2} s after removal",
        removed_at.elapsed().as_secs_f64()
    );
    let created = c.ok(&["host", "token", "create", "--ttl", "1s"]);
    std::thread::sleep(Duration::from_millis(1100));
    let r = scratch_agent(c, "expired-token", &printed_agent_args(&created), None);
    assert!(
        r.stderr.contains("refused the registration token"),
        "{}",
        r.stderr
    );
    assert!(!c.ok(&["host", "ls"]).contains("scratch"));
}

fn removing_a_host_revokes_it_at_once(c: &mut Cluster) {
    let h1 = c.host_id(1);
    let removed = Instant::now();
    c.ok(&["host", "rm", &h1]);
    // Its peers drop it from their tunnels.
    let cut_off = wait_for(
        Duration::from_secs(10),
        "peers without the removed host",
        || (crate::mesh::mesh_cells(c) == ["1/1", "1/1"]).then(|| removed.elapsed()),
    );
    let mut agent = c.agents[0].take().expect("agent 1 runs");
    // The session is closed at once; the agent fences and exits saying why.
    let code = wait_for(Duration::from_secs(20), "removed agent to exit", || {
        agent.try_wait().expect("wait").map(|s| s.code())
    });
    let exited = removed.elapsed();
    assert_ne!(code, Some(0));
    let log = std::fs::read_to_string(c.dir.path().join("hosts/h1/agent.log")).unwrap_or_default();
    assert!(log.contains("removed"), "{log}");
    assert!(!c.ok(&["host", "ls"]).contains(&h1[..12]));
    eprintln!(
        "host rm: agent told and exited after {:.2} s; peers down to 1/1 after {:.2} s (target 1 s)",
        exited.as_secs_f64(),
        cut_off.as_secs_f64()
    );
    // Its credential is dead: starting it again is refused, the host stays gone.
    let mut again = c.spawn_agent(1, "eu");
    let code = wait_for(Duration::from_secs(20), "revoked agent refused", || {
        again.try_wait().expect("wait").map(|s| s.code())
    });
    assert_ne!(code, Some(0));
    assert!(!c.ok(&["host", "ls"]).contains(&h1[..12]));
}

/// Agents on two hosts pull from a private registry (on the bridge) with the environment's
/// login.
fn private_registry_on_two_hosts(c: &Cluster) {
    let password = "cluster-reg-pass-7";
    let reg = crate::private_registry_at("10.77.0.1", "ci", password);
    let image = format!("{}/drover/app:c1", reg.addr);
    // Pushed from host 1's engine (it has the image, and takes the bridge's registries).
    let sock = c.dir.path().join("hosts/h1/docker.sock");
    let config = c.dir.path().join("docker-config");
    let docker_h1 = |args: &[&str], input: Option<&str>| {
        let mut child = Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args(args)
            .env("DOCKER_CONFIG", &config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker");
        if let Some(text) = input
            && let Some(mut stdin) = child.stdin.take()
        {
            std::io::Write::write_all(&mut stdin, text.as_bytes()).expect("stdin");
        }
        let out = child.wait_with_output().expect("docker");
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    docker_h1(
        &["login", &reg.addr, "-u", "ci", "--password-stdin"],
        Some(password),
    );
    docker_h1(&["tag", "drover-test/app:1", &image], None);
    docker_h1(&["push", &image], None);
    docker_h1(&["rmi", &image], None);
    let mut add = Command::new(bin())
        .args(["registry", "add", &reg.addr, "-u", "ci", "--password-stdin"])
        .env("DROVER_URL", &c.url)
        .env("DROVER_TOKEN", &c.token)
        .env("DROVER_CONFIG", c.dir.path().join("cli.json"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("registry add");
    if let Some(mut stdin) = add.stdin.take() {
        std::io::Write::write_all(&mut stdin, password.as_bytes()).expect("password");
    }
    let out = add.wait_with_output().expect("registry add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One replica on each of hosts 2 and 3 (the mesh scenario labelled host 1 `client`).
    c.deploy_ok(
        "reg",
        &format!(
            "services:\n  web:\n    image: {image}\n    stop_grace_period: 1s\n    deploy:\n      replicas: 2\n      placement:\n        constraints: [node.labels.net != client]\n        max_replicas_per_node: 1\n"
        ),
    );
    assert_eq!(c.running(2, "reg", Some("web")).len(), 1);
    assert_eq!(c.running(3, "reg", Some("web")).len(), 1);
    c.ok(&["stack", "rm", "reg"]);
    c.ok(&["registry", "rm", &reg.addr]);
}

/// A stack's secret reaches its replicas on every host, as a file with its value.
fn secrets_on_every_host(c: &Cluster) {
    let value = "cluster-secret-value";
    std::fs::write(c.dir.path().join("pw.txt"), value).expect("pw");
    c.deploy_ok(
        "sec",
        "services:\n  box:\n    image: drover-test/busybox:1\n    command: [/bin/busybox, sleep, '3600']\n    stop_grace_period: 1s\n    secrets: [pw]\n    deploy:\n      replicas: 3\nsecrets:\n  pw: {file: ./pw.txt}\n",
    );
    assert_eq!(c.spread("sec", "box"), vec![1, 1, 1]);
    for n in 1..=3 {
        let got = c.ok(&["exec", &format!("sec-box-{n}"), "cat", "/run/secrets/pw"]);
        assert_eq!(got, value, "replica {n}");
    }
    c.ok(&["stack", "rm", "sec"]);
}
