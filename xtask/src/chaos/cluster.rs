//! The chaos harness: `scripts/cluster.sh` hosts (network namespaces `drvh1..3`, each with
//! its own dockerd), the release `drover server` in the root namespace on the bridge
//! (10.77.0.1, its data directory on a small tmpfs the disk scenario fills), one agent per
//! namespace, and the engines' own view of what runs. Everything started here is stopped by
//! PID when the [`Cluster`] is dropped, on failure too; the lock `/tmp/drover-cluster.lock`
//! (flock) keeps two users of the namespace names apart.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use crate::hosts::{engine_body, in_ns};

/// Hosts of every chaos cluster.
pub const HOSTS: usize = 3;
/// The agents' singleton lease (`proto::LEASE_MS`).
pub const LEASE: Duration = Duration::from_millis(proto::LEASE_MS);
const LOCK: &str = "/tmp/drover-cluster.lock";
const TMPFS_MB: u64 = 256;

/// A seeded PRNG (splitmix64): every random choice of a scenario comes from its seed.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
    /// A new generator for a thread of its own, derived from this one.
    pub fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }
}

/// What a scenario measured and which invariants it saw broken.
pub struct Report {
    pub name: &'static str,
    pub seed: u64,
    pub rounds: u32,
    pub figures: Vec<String>,
    pub broken: Vec<String>,
    /// A `--short` run (CI): a missed timing target is a figure, not a broken invariant.
    pub short: bool,
}

impl Report {
    pub fn new(name: &'static str, seed: u64, rounds: u32, short: bool) -> Report {
        Report {
            name,
            seed,
            rounds,
            figures: Vec::new(),
            broken: Vec::new(),
            short,
        }
    }
    pub fn figure(&mut self, s: impl Into<String>) {
        let s = s.into();
        println!("  [{}] {s}", self.name);
        self.figures.push(s);
    }
    /// An invariant broken, printed at once with the seed that reproduces it.
    pub fn broken(&mut self, round: u32, s: impl Into<String>) {
        let s = format!("round {round}: {}", s.into());
        println!(
            "  [{}] INVARIANT BROKEN (seed {}): {s}",
            self.name, self.seed
        );
        self.broken.push(s);
    }
    /// `check` false: the invariant is broken.
    pub fn check(&mut self, round: u32, ok: bool, s: impl FnOnce() -> String) {
        if !ok {
            self.broken(round, s());
        }
    }
    /// A timing target (`ok` false: missed): broken in a full run; in a `--short` run, which
    /// CI runs on shared machines, printed as a figure (timings never fail CI; correctness
    /// does).
    pub fn target(&mut self, round: u32, ok: bool, s: impl FnOnce() -> String) {
        match (ok, self.short) {
            (true, _) => {}
            (false, false) => self.broken(round, s()),
            (false, true) => self.figure(format!("round {round}: timing target missed: {}", s())),
        }
    }
}

/// One container as an engine lists it.
#[derive(Debug, Clone)]
pub struct Ctr {
    pub host: usize,
    pub id: String,
    pub name: String,
    pub stack: String,
    pub service: String,
    pub slot: u32,
    pub running: bool,
    /// The compose label `chaos.v` (which write of the stack it runs).
    pub version: String,
}

/// Percentiles of a sample (milliseconds).
pub fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Waits up to `limit` for `f` to give a value, every 100 ms.
pub fn wait_for<T>(limit: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
    wait_every(limit, Duration::from_millis(100), f)
}

/// [`wait_for`], looking every `every` (a figure measured with it is that precise).
pub fn wait_every<T>(
    limit: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// A service of busybox `sleep` without a network (cheap, and no per-host subnet limit),
/// with `chaos.v` naming the write that made it.
pub fn sleeper(service: &str, replicas: u32, version: u64, extra: &str) -> String {
    format!(
        "  {service}:\n    image: drover-test/busybox:1\n    command: [/bin/busybox, sleep, '86400']\n    network_mode: none\n    stop_grace_period: 1s\n    labels:\n      chaos.v: '{version}'\n    deploy:\n      replicas: {replicas}\n{extra}"
    )
}

/// An API answer: status and body.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
    pub fn json(&self) -> Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.body)?)
    }
}

/// The API from any thread: an HTTPS client trusting the server's CA.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub url: String,
    pub token: String,
    pub rt: tokio::runtime::Handle,
}

/// How a request failed.
#[derive(Debug)]
pub enum Failed {
    /// Never reached the server (nothing can have been written).
    Connect(String),
    /// Sent, but no answer: it may or may not have been applied.
    Unknown(String),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Connect(e) => write!(f, "not connected: {e}"),
            Failed::Unknown(e) => write!(f, "no answer: {e}"),
        }
    }
}

impl std::error::Error for Failed {}

impl Api {
    /// One request (path under `/v1/environments/default` when it starts with `~`).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Answer> {
        Ok(self.try_call(method, path, body)?)
    }

    pub fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Answer, Failed> {
        let path = match path.strip_prefix('~') {
            Some(p) => format!("/v1/environments/default{p}"),
            None => path.to_string(),
        };
        let method: reqwest::Method = method
            .parse()
            .map_err(|e| Failed::Connect(format!("{e}")))?;
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.rt.block_on(async {
            let resp = req.send().await.map_err(|e| {
                if e.is_connect() {
                    Failed::Connect(e.to_string())
                } else {
                    Failed::Unknown(e.to_string())
                }
            })?;
            let status = resp.status().as_u16();
            let body = resp
                .text()
                .await
                .map_err(|e| Failed::Unknown(e.to_string()))?;
            Ok(Answer { status, body })
        })
    }
}

pub struct Cluster {
    pub dir: PathBuf,
    pub bin: PathBuf,
    _lock: std::fs::File,
    server: Option<Child>,
    pub port: u16,
    pub url: String,
    pub token: String,
    agents: Vec<Option<Child>>,
    agent_args: Vec<String>,
    rt: tokio::runtime::Runtime,
    http: Option<Api>,
    /// Whether the server's data directory is a tmpfs mount of ours.
    mounted: bool,
    /// Host ids, by host number.
    pub host_ids: Vec<String>,
}

fn script() -> PathBuf {
    crate::root().join("scripts/cluster.sh")
}

fn netns_taken() -> bool {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with("drvh"))
        })
        .unwrap_or(false)
        || Path::new("/sys/class/net/drvbr0").exists()
}

/// Where this process keeps a cluster's hosts, logs and the server's data.
fn run_dir() -> PathBuf {
    std::env::temp_dir().join(format!("drover-chaos-{}", std::process::id()))
}

/// On Ctrl-C (or SIGTERM, SIGHUP) the run stops where it is, and what it started goes as
/// `Drop` would take it: this process's children (the server, agents, clients) killed by
/// PID, the hosts down, the tmpfs unmounted, the run's directory removed. Exits 130.
fn on_interrupt_clean_up() -> Result<()> {
    static SET: std::sync::Once = std::sync::Once::new();
    let mut result = Ok(());
    SET.call_once(|| {
        result = ctrlc::set_handler(|| {
            eprintln!("chaos: interrupted: stopping what it started");
            let me = std::process::id().to_string();
            let children: Vec<String> = std::fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .filter(|entry| {
                    let stat =
                        std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
                    // `pid (comm) state ppid ...`: the fields after the command's closing paren.
                    let ppid = stat
                        .rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().nth(1));
                    ppid == Some(me.as_str())
                })
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect();
            if !children.is_empty() {
                let _ = Command::new("kill").arg("-9").args(&children).status();
            }
            let dir = run_dir();
            let _ = Command::new(script())
                .args(["down", &HOSTS.to_string()])
                .arg(dir.join("hosts"))
                .status();
            let _ = Command::new("umount").arg(dir.join("server")).status();
            let _ = std::fs::remove_dir_all(&dir);
            std::process::exit(130);
        });
    });
    result.context("setting the interrupt handler")
}

impl Cluster {
    /// Takes the lock, waits (up to 5 minutes) until nobody else's `drvh*` namespaces are
    /// there, starts the hosts, the server and the agents.
    pub fn start(bin: &Path) -> Result<Cluster> {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK)?;
        let waited = Instant::now();
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
            }
            if waited.elapsed() > Duration::from_secs(300) {
                bail!("{LOCK} held by someone else for 5 minutes");
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        if wait_for(Duration::from_secs(300), || (!netns_taken()).then_some(())).is_none() {
            bail!("drvh* namespaces (another cluster) still there after 5 minutes");
        }
        let dir = run_dir();
        std::fs::create_dir_all(dir.join("server"))?;
        on_interrupt_clean_up()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let mut c = Cluster {
            dir,
            bin: bin.to_path_buf(),
            _lock: lock,
            server: None,
            port: 0,
            url: String::new(),
            token: String::new(),
            agents: Vec::new(),
            agent_args: Vec::new(),
            rt,
            http: None,
            mounted: false,
            host_ids: Vec::new(),
        };
        crate::run(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_MB}m"), "chaos"])
                .arg(c.dir.join("server")),
        )?;
        c.mounted = true;
        crate::run(
            Command::new(script())
                .args(["up", &HOSTS.to_string()])
                .arg(c.dir.join("hosts"))
                .env("CLUSTER_IMAGES", "drover-test/app:1 drover-test/busybox:1"),
        )?;
        c.port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        c.start_server()?;
        let printed = c.cli(&["host", "token", "create"])?;
        c.agent_args = printed
            .lines()
            .find(|l| l.starts_with("drover agent "))
            .context("no agent command printed")?
            .split_whitespace()
            .skip(1)
            .map(str::to_string)
            .collect();
        for i in 1..=HOSTS {
            let a = c.spawn_agent(i)?;
            c.agents.push(Some(a));
        }
        if wait_for(Duration::from_secs(60), || {
            (c.hosts_up().ok()? == HOSTS).then_some(())
        })
        .is_none()
        {
            bail!("the {HOSTS} hosts never came up");
        }
        for i in 1..=HOSTS {
            let id = std::fs::read_to_string(c.host_dir(i).join("agent/host-id"))?;
            c.host_ids.push(id.trim().to_string());
        }
        Ok(c)
    }

    pub fn host_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("hosts/h{i}"))
    }

    pub fn sock(&self, i: usize) -> PathBuf {
        self.host_dir(i).join("docker.sock")
    }

    pub fn server_data(&self) -> PathBuf {
        self.dir.join("server")
    }

    /// Starts `drover server` on 10.77.0.1:PORT with the same data directory; returns when
    /// it printed `ready`.
    pub fn start_server(&mut self) -> Result<Duration> {
        let t = Instant::now();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))?;
        let mut child = Command::new(&self.bin)
            .args([
                "server",
                "--listen",
                &format!("10.77.0.1:{}", self.port),
                "--data-dir",
            ])
            .arg(self.server_data())
            .env("DROVER_CONFIG", self.dir.join("cli.json"))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        let stdout = child.stdout.take().context("server stdout")?;
        self.server = Some(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                let ready = line.trim() == "ready";
                let _ = tx.send(line);
                if ready {
                    break;
                }
            }
            for _ in lines {}
        });
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .context("drover server did not print ready within 30 s")?;
            if let Some(url) = line.strip_prefix("Drover is listening on ") {
                self.url = url.trim().to_string();
            }
            if let Some(tok) = line.split_whitespace().find(|w| w.starts_with("drv_"))
                && self.token.is_empty()
            {
                self.token = tok.to_string();
            }
            if line.trim() == "ready" {
                break;
            }
        }
        if self.http.is_none() {
            let pem = std::fs::read_to_string(self.server_data().join("tls/ca.pem"))?;
            let cfg = tls::trusting_client_config(&pem)?;
            self.http = Some(Api {
                http: reqwest::Client::builder()
                    .tls_backend_preconfigured((*cfg).clone())
                    .timeout(Duration::from_secs(20))
                    .build()?,
                url: self.url.clone(),
                token: self.token.clone(),
                rt: self.rt.handle().clone(),
            });
        }
        Ok(t.elapsed())
    }

    /// `kill -9` of the server (by PID).
    pub fn kill_server(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
    }

    /// SIGTERM to the server, waiting (up to 10 s, then SIGKILL) until it exited.
    pub fn stop_server(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &s.id().to_string()])
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = s.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = s.kill();
            let _ = s.wait();
        }
    }

    fn spawn_agent(&self, i: usize) -> Result<Child> {
        let b = self.host_dir(i);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(b.join("agent.log"))?;
        Ok(in_ns(&format!("drvh{i}"), &self.bin.to_string_lossy())
            .args(&self.agent_args)
            .args(["--label", &format!("chaos=h{i}"), "--data-dir"])
            .arg(b.join("agent"))
            .env(
                "DOCKER_HOST",
                format!("unix://{}", b.join("docker.sock").display()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?)
    }

    /// `kill -9` of host `i`'s agent (by PID: nsenter execs it, so the child is the agent).
    pub fn kill_agent(&mut self, i: usize) {
        if let Some(mut a) = self.agents[i - 1].take() {
            let _ = a.kill();
            let _ = a.wait();
        }
    }

    pub fn start_agent(&mut self, i: usize) -> Result<()> {
        let a = self.spawn_agent(i)?;
        self.agents[i - 1] = Some(a);
        Ok(())
    }

    /// A `drover` client command against the server.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        crate::run(
            Command::new(&self.bin)
                .args(args)
                .env("DROVER_URL", &self.url)
                .env("DROVER_TOKEN", &self.token)
                .env("DROVER_CONFIG", self.dir.join("cli.json")),
        )
    }

    /// One API request (see [`Api::call`]).
    pub fn api(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Result<Answer> {
        self.http
            .as_ref()
            .context("no API client yet")?
            .call(method, path, body)
    }

    /// A handle on the API for other threads (it outlives server restarts: same address).
    pub fn api_handle(&self) -> Result<Api> {
        self.http.clone().context("no API client yet")
    }

    pub fn get(&self, path: &str) -> Result<serde_json::Value> {
        let a = self.api("GET", path, None)?;
        if !a.ok() {
            bail!("GET {path}: {} {}", a.status, a.body);
        }
        a.json()
    }

    /// Deploys a compose text as stack `name`.
    pub fn deploy(&self, name: &str, compose: &str) -> Result<Answer> {
        self.api(
            "POST",
            "~/stacks",
            Some(serde_json::json!({"name": name, "compose": compose})),
        )
    }

    pub fn deploy_ok(&self, name: &str, compose: &str) -> Result<()> {
        let a = self.deploy(name, compose)?;
        if !a.ok() {
            bail!("deploy {name}: {} {}", a.status, a.body);
        }
        Ok(())
    }

    /// Deploys `stack`: service `s`, `n` sleepers pinned to host 1 (`extra`: more of the
    /// service's keys), and waits (up to 3 minutes) until host 1's engine runs every one.
    /// Returns what is expected there, and the stack's name for [`differences`].
    pub fn fill_host_1(&self, stack: &str, n: u32, extra: &str) -> Result<(Expect, [String; 1])> {
        let pinned =
            format!("      placement:\n        constraints: [node.labels.chaos == h1]\n{extra}");
        self.deploy_ok(
            stack,
            &format!("services:\n{}", sleeper("s", n, 1, &pinned)),
        )?;
        let mut expect = Expect::new();
        expect.insert((stack.into(), "s".into()), (n, "1".into()));
        let stacks = [stack.to_string()];
        if wait_for(Duration::from_secs(180), || {
            differences(&self.engine_ps(1)?, &stacks, &expect)
                .is_empty()
                .then_some(())
        })
        .is_none()
        {
            bail!("{n} containers never ran on host 1");
        }
        Ok((expect, stacks))
    }

    pub fn remove(&self, name: &str) -> Result<Answer> {
        self.api("DELETE", &format!("~/stacks/{name}?wait=30"), None)
    }

    /// The hosts as the API lists them: (id, state).
    pub fn host_states(&self) -> Result<Vec<(String, String)>> {
        let v = self.get("~/hosts")?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .map(|h| {
                        (
                            h["id"].as_str().unwrap_or("").to_string(),
                            h["state"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    pub fn hosts_up(&self) -> Result<usize> {
        Ok(self
            .host_states()?
            .iter()
            .filter(|(_, s)| s == "up")
            .count())
    }

    pub fn host_state(&self, i: usize) -> Option<String> {
        let id = self.host_ids.get(i - 1)?;
        self.host_states()
            .ok()?
            .into_iter()
            .find(|(h, _)| h == id)
            .map(|(_, s)| s)
    }

    /// Every container of ours on host `i`'s engine (`None`: the engine did not answer).
    pub fn engine_ps(&self, i: usize) -> Option<Vec<Ctr>> {
        let filters = crate::hosts::percent_encode(r#"{"label":["io.drover.cluster"]}"#);
        let body = engine_body(
            &self.sock(i),
            &format!("/containers/json?all=1&filters={filters}"),
        )
        .ok()?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        Some(
            v.as_array()?
                .iter()
                .map(|c| {
                    let l = &c["Labels"];
                    let s = |k: &str| l[k].as_str().unwrap_or("").to_string();
                    Ctr {
                        host: i,
                        id: c["Id"].as_str().unwrap_or("").to_string(),
                        name: c["Names"][0]
                            .as_str()
                            .unwrap_or("")
                            .trim_start_matches('/')
                            .to_string(),
                        stack: s(proto::LABEL_STACK),
                        service: s(proto::LABEL_SERVICE),
                        slot: s(proto::LABEL_SLOT).parse().unwrap_or(0),
                        running: c["State"].as_str() == Some("running"),
                        version: s("chaos.v"),
                    }
                })
                .collect(),
        )
    }

    /// Every host's containers (an engine that does not answer gives none).
    pub fn all_ps(&self) -> Vec<Ctr> {
        (1..=HOSTS)
            .flat_map(|i| self.engine_ps(i).unwrap_or_default())
            .collect()
    }

    /// The engine's `start` and `die` events of our containers on host `i` between two
    /// moments (seconds since the epoch): (container name, action).
    pub fn engine_events(&self, i: usize, since: f64, until: f64) -> Result<Vec<(String, String)>> {
        let filters = crate::hosts::percent_encode(
            r#"{"type":["container"],"event":["start","die","create","destroy"],"label":["io.drover.cluster"]}"#,
        );
        let body = engine_body(
            &self.sock(i),
            &format!("/events?since={since:.3}&until={until:.3}&filters={filters}"),
        )?;
        let mut out = Vec::new();
        for v in serde_json::Deserializer::from_str(&body).into_iter::<serde_json::Value>() {
            let v = v?;
            out.push((
                v["Actor"]["Attributes"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                v["Action"].as_str().unwrap_or("").to_string(),
            ));
        }
        Ok(out)
    }

    /// `scripts/cluster.sh cut|heal I`.
    pub fn net(&self, how: &str, i: usize) -> Result<()> {
        crate::run(Command::new(script()).args([how, &i.to_string()]))?;
        Ok(())
    }

    /// `iptables ARGS` inside host `i`'s namespace.
    pub fn iptables(&self, i: usize, args: &[&str]) -> Result<()> {
        crate::run(in_ns(&format!("drvh{i}"), "iptables").args(args))?;
        Ok(())
    }

    /// Removes stacks, waiting until their containers are gone from every engine.
    pub fn remove_stacks(&self, names: &[String]) -> Result<()> {
        for n in names {
            let a = self.remove(n)?;
            if !a.ok() && a.status != 404 {
                bail!("remove {n}: {} {}", a.status, a.body);
            }
        }
        let gone = wait_for(Duration::from_secs(60), || {
            let left = self
                .all_ps()
                .into_iter()
                .filter(|c| names.contains(&c.stack))
                .count();
            (left == 0).then_some(())
        });
        if gone.is_none() {
            bail!("containers of {names:?} still there 60 s after removal");
        }
        Ok(())
    }

    /// Waits until every host is up again (after a scenario).
    pub fn settle(&mut self) -> Result<()> {
        if self.server.is_none() {
            self.start_server()?;
        }
        for i in 1..=HOSTS {
            if self.agents[i - 1].is_none() {
                self.start_agent(i)?;
            }
        }
        if wait_for(Duration::from_secs(60), || {
            (self.hosts_up().ok()? == HOSTS).then_some(())
        })
        .is_none()
        {
            bail!("hosts not all up after the scenario");
        }
        Ok(())
    }
}

/// Expected running containers: (stack, service) → (replicas, version label).
pub type Expect = BTreeMap<(String, String), (u32, String)>;

/// How the engines' containers of `stacks` differ from `expect`: `replicas` containers of
/// each service running, each of its version and a slot of its own (slot numbers need not
/// be `1..=replicas`: a roll may leave higher ones), nothing else of these stacks running.
/// Empty: as expected.
pub fn differences(ps: &[Ctr], stacks: &[String], expect: &Expect) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<(String, String), BTreeMap<u32, Vec<&Ctr>>> = BTreeMap::new();
    for c in ps.iter().filter(|c| c.running && stacks.contains(&c.stack)) {
        seen.entry((c.stack.clone(), c.service.clone()))
            .or_default()
            .entry(c.slot)
            .or_default()
            .push(c);
    }
    for ((stack, svc), (n, v)) in expect {
        let slots = seen
            .remove(&(stack.clone(), svc.clone()))
            .unwrap_or_default();
        if slots.len() != *n as usize {
            out.push(format!(
                "{stack}-{svc}: {} slots running {:?}, want {n}",
                slots.len(),
                slots.keys().collect::<Vec<_>>()
            ));
        }
        for (slot, cs) in &slots {
            if cs.len() > 1 {
                out.push(format!("{stack}-{svc}-{slot} runs {} times", cs.len()));
            }
            if let Some(c) = cs.iter().find(|c| &c.version != v) {
                out.push(format!(
                    "{stack}-{svc}-{slot} runs version {} on host {} (want {v})",
                    c.version, c.host
                ));
            }
        }
    }
    for ((stack, svc), slots) in seen {
        out.push(format!(
            "{stack}-{svc}: slots {:?} run but nothing wants them",
            slots.keys().collect::<Vec<_>>()
        ));
    }
    out
}

/// Slots running more than once across the engines: the same stack, service, slot and
/// version (`chaos.v`, which differs between a stack and one deployed again after its
/// removal) on several hosts. Second: overlaps of containers of the same slot with
/// different versions (an old one still stopping beside its successor elsewhere).
pub fn duplicates(ps: &[Ctr]) -> (Vec<String>, Vec<String>) {
    type Slot = (String, String, u32);
    let mut seen: BTreeMap<Slot, Vec<(usize, &str)>> = BTreeMap::new();
    for c in ps.iter().filter(|c| c.running) {
        seen.entry((c.stack.clone(), c.service.clone(), c.slot))
            .or_default()
            .push((c.host, &c.version));
    }
    let (mut same, mut overlap) = (Vec::new(), Vec::new());
    for ((st, sv, sl), h) in seen.into_iter().filter(|(_, h)| h.len() > 1) {
        let mut versions: Vec<&str> = h.iter().map(|x| x.1).collect();
        versions.sort();
        let distinct = {
            let mut v = versions.clone();
            v.dedup();
            v.len()
        };
        let line = format!(
            "{st}-{sv}-{sl} runs {} times ({h:?} as (host, version))",
            h.len()
        );
        if distinct < versions.len() {
            same.push(line);
        } else {
            overlap.push(line);
        }
    }
    (same, overlap)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for a in self.agents.iter_mut() {
            if let Some(mut a) = a.take() {
                let _ = a.kill();
                let _ = a.wait();
            }
        }
        self.kill_server();
        let _ = Command::new(script())
            .args(["down", &HOSTS.to_string()])
            .arg(self.dir.join("hosts"))
            .status();
        if self.mounted {
            let _ = Command::new("umount").arg(self.server_data()).status();
        }
        let dir = self.dir.to_string_lossy().to_string();
        let mounted = std::fs::read_to_string("/proc/mounts").is_ok_and(|m| m.contains(&dir));
        if std::env::var_os("CHAOS_KEEP").is_some() || mounted {
            eprintln!("chaos: logs and state kept in {dir}");
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
