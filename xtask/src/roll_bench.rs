//! `bench-roll`: a rolling upgrade of the same workload by Drover and by Docker Swarm, on the
//! same three namespace engines (scripts/cluster.sh), in one run, alternating.
//!
//! The workload: 12 replicas of the busybox test image serving `httpd` on 8080, with the same
//! engine health check on both sides (`wget` of itself every second), rolled `parallelism: 2`,
//! `delay: 0s`, `order: start-first`, health-gated, from `drover-bench/web:1` to `:2` and
//! back (two tags of `drover-test/busybox:1`). Both deployments run throughout, so each
//! side's upgrade happens with the other side idle next to it.
//!
//! Drover: `drover server` on the bridge and one agent per namespace; the upgrade is
//! `drover stack deploy` of the compose file with the other tag (it waits for the roll).
//! Swarm: host 1's engine inits the swarm, the others join; the service uses
//! `--endpoint-mode dnsrr` on an attachable overlay network (no IPVS in this kernel); the
//! upgrade is `docker service update --image` (it waits for convergence, and then its own
//! 5 s check that the tasks are stable).
//!
//! For each upgrade: the command's wall time; when the engines show the service converged
//! (12 running containers, all of the new image and healthy, no others), from samples of
//! the three engines' container lists every 100 ms; the longest stretch with fewer than 12
//! healthy containers of the service; and the failed requests of a client that asks the
//! service by name from a container on the service's network on host 1 (Drover: the mesh
//! DNS name; Swarm: the dnsrr name on the overlay): `roll-client`, this binary run in the
//! container's network namespace, resolves `web` at the container's resolver (the engine's
//! 127.0.0.11) for every request, as an application without a cache does, and GETs
//! `http://<first address>:8080/` (1 s timeouts each), one request every 50 ms. A failure
//! is counted by why: `dns` (no answer or no address), `connect` (refused or timed out),
//! `http` (no complete 200 answer).
//! And where the time went, from the engines' event streams for the new containers
//! (create to start, start to healthy, the orchestrator's reaction, the old ones leaving). (busybox `wget` cannot be the client: the static
//! busybox crashes resolving names.)
//!
//! Needs root, iproute2, Debian's dockerd and `drover-test/busybox:1`
//! (`scripts/build-test-images.sh`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hickory_proto::op::Message;
use hickory_proto::rr::RData;

use crate::hosts::{Hosts, engine_get, in_ns, percent_encode};
use crate::run;

const HOSTS: usize = 3;
const REPLICAS: usize = 12;
const SAMPLE: Duration = Duration::from_millis(100);
const IMAGE: &str = "drover-bench/web";
const HTTPD: &str = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www";
const HEALTH: &str = "wget -q -O /dev/null http://127.0.0.1:8080/";

/// The hosts (and their swarm), and the clients' counts.
struct Bench {
    hosts: Hosts,
    /// Each side's client: answered, and failed by why (no address, no connection, no
    /// 200 or no complete answer) so far.
    counts: [Arc<Counts>; 2],
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    dns: AtomicU64,
    connect: AtomicU64,
    http: AtomicU64,
}

/// Requests answered, and failed by why, between two moments.
#[derive(Clone, Copy, Default)]
struct Requests {
    ok: u64,
    dns: u64,
    connect: u64,
    http: u64,
}

impl Requests {
    fn failed(&self) -> u64 {
        self.dns + self.connect + self.http
    }

    fn total(&self) -> u64 {
        self.ok + self.failed()
    }

    fn minus(&self, earlier: &Requests) -> Requests {
        Requests {
            ok: self.ok - earlier.ok,
            dns: self.dns - earlier.dns,
            connect: self.connect - earlier.connect,
            http: self.http - earlier.http,
        }
    }

    fn plus(&self, o: &Requests) -> Requests {
        Requests {
            ok: self.ok + o.ok,
            dns: self.dns + o.dns,
            connect: self.connect + o.connect,
            http: self.http + o.http,
        }
    }

    /// `F/N failed (dns D, connect C, http H)`.
    fn show(&self) -> String {
        format!(
            "{}/{} (dns {}, connect {}, http {})",
            self.failed(),
            self.total(),
            self.dns,
            self.connect,
            self.http
        )
    }
}

/// One side of the comparison.
#[derive(Clone, Copy, PartialEq)]
enum System {
    Drover,
    Swarm,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Drover => "drover",
            System::Swarm => "swarm",
        }
    }

    /// The engine label filter that selects the service's containers.
    fn labels(self) -> &'static [&'static str] {
        match self {
            System::Drover => &["io.drover.stack=roll", "io.drover.service=web"],
            System::Swarm => &["com.docker.swarm.service.name=web"],
        }
    }

    /// The client container (on host 1).
    fn client(self) -> &'static str {
        match self {
            System::Drover => "roll-client-1",
            System::Swarm => "rollclient",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The service's containers at one moment, across the engines.
#[derive(Clone, Copy, Default)]
struct Sample {
    /// Seconds since the upgrade command started.
    t: f64,
    running: usize,
    healthy: usize,
    /// Running, healthy and of the target image.
    healthy_target: usize,
}

impl Sample {
    fn converged(&self) -> bool {
        self.running == REPLICAS && self.healthy_target == REPLICAS
    }
}

/// One upgrade's figures.
struct Outcome {
    command_s: f64,
    converged_s: f64,
    under_s: f64,
    min_healthy: usize,
    requests: Requests,
    steps: Steps,
}

/// Where an upgrade's time went, from the engines' events for the new containers (medians,
/// seconds): the command until the first create; create to start; start to healthy; from
/// the latest new container turning healthy to each later create (the orchestrator's
/// reaction); the last new container healthy to converged (old ones leaving).
#[derive(Clone, Copy, Default)]
struct Steps {
    first: f64,
    create: f64,
    health: f64,
    react: f64,
    tail: f64,
}

impl Steps {
    fn show(&self) -> String {
        format!(
            "first create {:.2}s, create->start {:.2}s, start->healthy {:.2}s, healthy->next create {:.2}s, last healthy->converged {:.2}s",
            self.first, self.create, self.health, self.react, self.tail
        )
    }
}

fn unix_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Follows an engine's events about the service's containers (create, start, health) from
/// now until `stop`; the thread returns the raw stream. (A later `since` query would not do:
/// the engine keeps only its last 256 events, a few seconds of health checks here.)
fn watch_events(
    sock: &Path,
    system: System,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<Result<String>>> {
    let filters = serde_json::json!({
        "type": ["container"],
        "event": ["create", "start", "health_status"],
        "label": system.labels(),
    })
    .to_string();
    let mut s = UnixStream::connect(sock)?;
    write!(
        s,
        "GET /events?filters={} HTTP/1.0\r\nHost: docker\r\n\r\n",
        percent_encode(&filters)
    )?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    // The engine answers the head once it has subscribed.
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) => bail!("engine closed the event stream"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) if Instant::now() < deadline => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        let text = String::from_utf8_lossy(&got).to_string();
        let (_, body) = text.split_once("\r\n\r\n").unwrap_or(("", ""));
        Ok(body.to_string())
    }))
}

/// Where the time went, from the engines' event streams (see [`Steps`]).
fn steps(streams: &[String], since: i64, converged_s: f64) -> Result<Steps> {
    // id -> (create, start, healthy)
    let mut seen: std::collections::BTreeMap<String, [Option<i64>; 3]> = Default::default();
    for body in streams {
        for ev in serde_json::Deserializer::from_str(body).into_iter::<serde_json::Value>() {
            let ev = ev?;
            let (Some(id), Some(action), Some(t)) = (
                ev["Actor"]["ID"].as_str(),
                ev["Action"].as_str(),
                ev["timeNano"].as_i64(),
            ) else {
                continue;
            };
            let which = match action {
                "create" => 0,
                "start" => 1,
                "health_status: healthy" => 2,
                _ => continue,
            };
            let e = seen.entry(id.to_string()).or_default();
            e[which].get_or_insert(t);
        }
    }
    let mut new: Vec<[i64; 3]> = seen
        .values()
        .filter_map(|[c, s, h]| Some([(*c)?, (*s)?, (*h)?]))
        .collect();
    new.sort();
    let secs = |ns: i64| ns as f64 / 1e9;
    let Some(first) = new.first() else {
        return Ok(Steps::default());
    };
    let last_healthy = new.iter().map(|c| c[2]).max().unwrap_or(0);
    // Each create after the first step's: how long after the latest new container turned
    // healthy (the event that let the roll go on, whether it steps in batches or per slot).
    let react = new
        .iter()
        .skip(2)
        .filter_map(|c| {
            new.iter()
                .map(|o| o[2])
                .filter(|h| *h <= c[0])
                .max()
                .map(|h| secs(c[0] - h))
        })
        .collect();
    Ok(Steps {
        first: secs(first[0] - since),
        create: median(new.iter().map(|c| secs(c[1] - c[0])).collect()),
        health: median(new.iter().map(|c| secs(c[2] - c[1])).collect()),
        react: median(react),
        tail: converged_s - secs(last_healthy - since),
    })
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The service's running containers on every engine.
fn sample(socks: &[PathBuf], system: System, target: u32, t: f64) -> Result<Sample> {
    let filters = serde_json::json!({ "label": system.labels() }).to_string();
    let path = format!("/containers/json?filters={}", percent_encode(&filters));
    let image = format!("{IMAGE}:{target}");
    let mut s = Sample {
        t,
        ..Sample::default()
    };
    for sock in socks {
        let list = engine_get(sock, &path)?;
        for c in list.as_array().context("container list")? {
            s.running += 1;
            let healthy = c["Status"]
                .as_str()
                .is_some_and(|st| st.contains("(healthy)"));
            if healthy {
                s.healthy += 1;
                if c["Image"].as_str() == Some(image.as_str()) {
                    s.healthy_target += 1;
                }
            }
        }
    }
    Ok(s)
}

/// Samples every 100 ms on a thread until `stop`.
fn sampler(
    socks: Vec<PathBuf>,
    system: System,
    target: u32,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Result<Vec<Sample>>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let next = Instant::now() + SAMPLE;
            out.push(sample(
                &socks,
                system,
                target,
                start.elapsed().as_secs_f64(),
            )?);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        Ok(out)
    })
}

/// Waits until the service is converged on `target` (12 healthy of it, no others).
fn wait_converged(socks: &[PathBuf], system: System, target: u32, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let s = sample(socks, system, target, 0.0)?;
        if s.converged() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!(
                "{}: not converged on :{target} after {}s ({} running, {} healthy, {} healthy on :{target})",
                system.name(),
                timeout.as_secs(),
                s.running,
                s.healthy,
                s.healthy_target
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A side's client's requests so far.
fn client_counts(b: &Bench, system: System) -> Requests {
    let c = &b.counts[system.index()];
    Requests {
        ok: c.ok.load(Ordering::Relaxed),
        dns: c.dns.load(Ordering::Relaxed),
        connect: c.connect.load(Ordering::Relaxed),
        http: c.http.load(Ordering::Relaxed),
    }
}

/// Starts `roll-client` in the network namespace of `system`'s client container, with the
/// container's own resolver; its results are counted as they come.
fn start_client(b: &mut Bench, system: System) -> Result<()> {
    let pid = b
        .hosts
        .docker(1, &["inspect", "-f", "{{.State.Pid}}", system.client()])?;
    let resolv = std::fs::read_to_string(format!("/proc/{pid}/root/etc/resolv.conf"))?;
    let resolver = resolv
        .lines()
        .find_map(|l| l.strip_prefix("nameserver "))
        .context("the client container has no nameserver")?
        .trim()
        .to_string();
    let mut child = in_ns(
        &format!("pid:{pid}"),
        &std::env::current_exe()?.to_string_lossy(),
    )
    .args(["roll-client", &resolver, "web", "8080"])
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()?;
    let stdout = child.stdout.take().context("client stdout")?;
    b.hosts.children.push(child);
    let counts = b.counts[system.index()].clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            let counter = match line.as_str() {
                "ok" => &counts.ok,
                "fail dns" => &counts.dns,
                l if l.starts_with("fail connect") => &counts.connect,
                _ => &counts.http,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            if line != "ok" {
                // Which address failed, how, and when: to match against the roll.
                eprintln!("bench-roll: {:.3} {} {line}", now_s(), system.name());
            }
        }
    });
    Ok(())
}

/// One request of `roll-client`: resolve, then GET / at the first address. Why it failed:
/// `dns` (no answer or no address), `connect`, `http` (no complete 200 answer).
fn request(resolver: SocketAddr, query: &[u8], port: u16) -> Result<(), String> {
    let ip = resolve(resolver, query).map_err(|_| "dns".to_string())?;
    let timeout = Duration::from_secs(1);
    let mut tcp = TcpStream::connect_timeout(&SocketAddr::new(ip, port), timeout)
        .map_err(|e| format!("connect {ip} {:?}", e.kind()))?;
    let mut get = || -> Result<()> {
        tcp.set_read_timeout(Some(timeout))?;
        tcp.set_write_timeout(Some(timeout))?;
        tcp.write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")?;
        let mut resp = Vec::new();
        tcp.read_to_end(&mut resp)?;
        if !resp.starts_with(b"HTTP/1.0 200") && !resp.starts_with(b"HTTP/1.1 200") {
            bail!("not a 200");
        }
        Ok(())
    };
    get().map_err(|_| format!("http {ip}"))
}

/// The first address in the answer to `query`.
fn resolve(resolver: SocketAddr, query: &[u8]) -> Result<IpAddr> {
    let timeout = Duration::from_secs(1);
    // A socket per query: a late answer to the last one is never taken for this one's.
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    sock.connect(resolver)?;
    sock.set_read_timeout(Some(timeout))?;
    sock.send(query)?;
    let mut buf = [0u8; 2048];
    let n = sock.recv(&mut buf)?;
    let answer = Message::from_vec(&buf[..n])?;
    let ip = answer
        .answers
        .iter()
        .find_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .context("no address")?;
    Ok(ip)
}

/// `roll-client RESOLVER NAME PORT`: every 50 ms, resolves NAME at RESOLVER and GETs
/// `http://<first address>:PORT/`; prints `ok` or `fail` for each request, forever.
pub fn client(args: &[String]) -> Result<()> {
    let resolver: IpAddr = args.first().context("resolver")?.parse()?;
    let name = args.get(1).context("name")?;
    let port: u16 = args.get(2).context("port")?.parse()?;
    let query = crate::mesh_bench::query(name)?;
    let mut out = std::io::stdout().lock();
    loop {
        let next = Instant::now() + Duration::from_millis(50);
        match request(SocketAddr::new(resolver, 53), &query, port) {
            Ok(()) => writeln!(out, "ok")?,
            Err(why) => writeln!(out, "fail {why}")?,
        }
        out.flush()?;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

fn compose(tag: u32) -> String {
    format!(
        r#"services:
  web:
    image: {IMAGE}:{tag}
    command: ["sh", "-c", "{HTTPD}"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD-SHELL", "{HEALTH}"]
      interval: 1s
      timeout: 1s
      retries: 3
      start_period: 2s
    deploy:
      replicas: {REPLICAS}
      update_config:
        parallelism: 2
        delay: 0s
        order: start-first
  client:
    image: drover-test/busybox:1
    command: ["sleep", "1000000"]
    stop_grace_period: 1s
    deploy:
      placement:
        constraints: [node.labels.bench == h1]
"#
    )
}

fn deploy_drover(b: &Bench, drover: &Path, tag: u32) -> Result<String> {
    let file = b.hosts.dir.join("roll.yml");
    std::fs::write(&file, compose(tag))?;
    b.hosts.cli(
        drover,
        &[
            "stack",
            "deploy",
            "-f",
            &file.to_string_lossy(),
            "-p",
            "roll",
        ],
    )
}

fn setup_swarm(b: &mut Bench) -> Result<()> {
    b.hosts.init_swarm()?;
    b.hosts.docker(
        1,
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--attachable",
            "--subnet",
            "10.30.0.0/24",
            "rollnet",
        ],
    )?;
    let replicas = REPLICAS.to_string();
    let mut args = vec![
        "service",
        "create",
        "--detach=false",
        "--quiet",
        "--no-resolve-image",
        "--name",
        "web",
        "--replicas",
        &replicas,
        "--endpoint-mode",
        "dnsrr",
        "--network",
        "rollnet",
        "--stop-grace-period",
        "1s",
        "--health-cmd",
        HEALTH,
        "--health-interval",
        "1s",
        "--health-timeout",
        "1s",
        "--health-retries",
        "3",
        "--health-start-period",
        "2s",
        "--update-parallelism",
        "2",
        "--update-delay",
        "0s",
        "--update-order",
        "start-first",
        "--update-failure-action",
        "pause",
    ];
    let image = format!("{IMAGE}:1");
    args.extend([image.as_str(), "sh", "-c", HTTPD]);
    b.hosts.docker(1, &args)?;
    b.hosts.docker(
        1,
        &[
            "run",
            "-d",
            "--name",
            "rollclient",
            "--network",
            "rollnet",
            "--stop-timeout",
            "1",
            "drover-test/busybox:1",
            "sleep",
            "1000000",
        ],
    )?;
    Ok(())
}

/// One upgrade of `system` to `target`, measured.
fn upgrade(b: &Bench, drover: &Path, system: System, target: u32) -> Result<Outcome> {
    let socks: Vec<PathBuf> = (1..=HOSTS).map(|i| b.hosts.sock(i)).collect();
    let before = client_counts(b, system);
    let stop = Arc::new(AtomicBool::new(false));
    let watches = socks
        .iter()
        .map(|sock| watch_events(sock, system, stop.clone()))
        .collect::<Result<Vec<_>>>()?;
    let start = Instant::now();
    let since_ns = unix_ns();
    let samples = sampler(socks.clone(), system, target, start, stop.clone());
    let result = match system {
        System::Drover => deploy_drover(b, drover, target),
        System::Swarm => {
            let image = format!("{IMAGE}:{target}");
            b.hosts.docker(
                1,
                &[
                    "service",
                    "update",
                    "--detach=false",
                    "--quiet",
                    "--no-resolve-image",
                    "--image",
                    &image,
                    "web",
                ],
            )
        }
    };
    let command_s = start.elapsed().as_secs_f64();
    let waited = result.and_then(|out| {
        if system == System::Drover
            && let Some(l) = out.lines().find(|l| l.contains("rolled out"))
        {
            eprintln!("    {}", l.trim());
        }
        wait_converged(&socks, system, target, Duration::from_secs(60))
    });
    // A last second of samples after convergence, then the figures.
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let samples = samples
        .join()
        .map_err(|_| anyhow::anyhow!("sampler panicked"))??;
    let streams = watches
        .into_iter()
        .map(|w| {
            w.join()
                .map_err(|_| anyhow::anyhow!("event watch panicked"))?
        })
        .collect::<Result<Vec<_>>>()?;
    waited?;
    let after = client_counts(b, system);

    // Converged: the first sample from which every later one is converged.
    let mut converged_s = f64::NAN;
    for s in samples.iter().rev() {
        if !s.converged() {
            break;
        }
        converged_s = s.t;
    }
    // Longest stretch with fewer healthy than asked: from the first such sample to the next
    // sample with enough.
    let (mut under_s, mut since): (f64, Option<f64>) = (0.0, None);
    for s in &samples {
        match (s.healthy < REPLICAS, since) {
            (true, None) => since = Some(s.t),
            (false, Some(t0)) => {
                under_s = under_s.max(s.t - t0);
                since = None;
            }
            _ => {}
        }
    }
    if let (Some(t0), Some(last)) = (since, samples.last()) {
        under_s = under_s.max(last.t - t0);
    }
    let min_healthy = samples.iter().map(|s| s.healthy).min().unwrap_or(0);
    Ok(Outcome {
        command_s,
        converged_s,
        under_s,
        min_healthy,
        requests: after.minus(&before),
        steps: steps(&streams, since_ns, converged_s)?,
    })
}

pub fn bench(drover: &Path, rounds: usize) -> Result<()> {
    run(Command::new("docker").args(["image", "inspect", "drover-test/busybox:1"]))
        .context("test image missing: run scripts/build-test-images.sh")?;
    let mut b = Bench {
        hosts: Hosts::up("bench-roll", HOSTS, &["drover-test/busybox:1"])?,
        counts: Default::default(),
    };
    for i in 1..=HOSTS {
        for tag in [1, 2] {
            b.hosts.docker(
                i,
                &["tag", "drover-test/busybox:1", &format!("{IMAGE}:{tag}")],
            )?;
        }
    }
    let socks: Vec<PathBuf> = (1..=HOSTS).map(|i| b.hosts.sock(i)).collect();

    eprintln!("bench-roll: drover server and {HOSTS} agents");
    b.hosts.start_server(drover)?;
    b.hosts.start_agents(drover)?;
    let t = Instant::now();
    deploy_drover(&b, drover, 1)?;
    wait_converged(&socks, System::Drover, 1, Duration::from_secs(120))?;
    eprintln!(
        "bench-roll: drover: {REPLICAS} replicas healthy in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    eprintln!("bench-roll: swarm of {HOSTS} engines");
    let t = Instant::now();
    setup_swarm(&mut b)?;
    wait_converged(&socks, System::Swarm, 1, Duration::from_secs(120))?;
    eprintln!(
        "bench-roll: swarm: {REPLICAS} replicas healthy in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    // Both clients must reach their service before anything is measured.
    for system in [System::Drover, System::Swarm] {
        start_client(&mut b, system)?;
        let start = Instant::now();
        while client_counts(&b, system).ok == 0 {
            if start.elapsed() > Duration::from_secs(30) {
                bail!("{}: the client never reached the service", system.name());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    let mut results: Vec<(System, Outcome)> = Vec::new();
    for round in 0..rounds {
        let (from, to) = if round % 2 == 0 { (1, 2) } else { (2, 1) };
        for system in [System::Drover, System::Swarm] {
            std::thread::sleep(Duration::from_secs(3));
            let o = upgrade(&b, drover, system, to)?;
            eprintln!(
                "round {}: {} :{from} -> :{to}: command {:.1}s, converged {:.1}s, under {REPLICAS} healthy {:.1}s at most (min {}), requests failed {}",
                round + 1,
                system.name(),
                o.command_s,
                o.converged_s,
                o.under_s,
                o.min_healthy,
                o.requests.show()
            );
            eprintln!("    {}", o.steps.show());
            results.push((system, o));
        }
    }

    let figures = |system: System| {
        let of = |f: fn(&Outcome) -> f64| {
            median(
                results
                    .iter()
                    .filter(|(s, _)| *s == system)
                    .map(|(_, o)| f(o))
                    .collect(),
            )
        };
        let mine = || results.iter().filter(move |(s, _)| *s == system);
        (
            of(|o| o.command_s),
            of(|o| o.converged_s),
            mine().map(|(_, o)| o.under_s).fold(0.0, f64::max),
            mine().map(|(_, o)| o.min_healthy).min().unwrap_or(0),
            mine().fold(Requests::default(), |a, (_, o)| a.plus(&o.requests)),
            Steps {
                first: of(|o| o.steps.first),
                create: of(|o| o.steps.create),
                health: of(|o| o.steps.health),
                react: of(|o| o.steps.react),
                tail: of(|o| o.steps.tail),
            },
        )
    };
    let d = figures(System::Drover);
    let s = figures(System::Swarm);
    println!(
        "\nrolling upgrade, {REPLICAS} replicas on {HOSTS} engines, parallelism 2, delay 0s, start-first, health check every 1s ({rounds} upgrades each, alternating; times are medians)"
    );
    println!(
        "{:<8} {:>10} {:>10} {:>18} {:>12}  failed requests",
        "system", "command", "converged", "under-healthy max", "min healthy"
    );
    for (name, f) in [("drover", d), ("swarm", s)] {
        println!(
            "{:<8} {:>9.1}s {:>9.1}s {:>17.1}s {:>12}  {}",
            name,
            f.0,
            f.1,
            f.2,
            f.3,
            f.4.show()
        );
    }
    println!("where the time went (medians, from the engines' events for the new containers):");
    for (name, f) in [("drover", d), ("swarm", s)] {
        println!("{name:<8} {}", f.5.show());
    }
    println!(
        "drover / swarm: command {:.2}x, converged {:.2}x",
        d.0 / s.0,
        d.1 / s.1
    );
    println!(
        "(command: `drover stack deploy` / `docker service update`, each waiting in its own way; converged: until the engines show {REPLICAS} healthy containers of the new image and no others; under-healthy max and min healthy: worst over all upgrades; failed requests: all upgrades together)"
    );
    // BENCH_KEEP=1 keeps the hosts' directory (server and agent logs) for a closer look.
    b.hosts.keep = std::env::var_os("BENCH_KEEP").is_some();
    Ok(())
}

/// Seconds since the epoch, for matching client failures against the logs.
fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
