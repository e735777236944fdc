//! `bench-agents`: end-to-end scheduling through the real server with simulated agents.
//!
//! A release `drover server` on its durable SQLite store; N simulated agents in this process
//! speak the real agent protocol over WebSocket (hello, heartbeats, and an `Observed` report
//! saying every desired container runs — a fake engine, named as such); S stacks of one
//! service with R replicas each are submitted through the REST API. Printed: placements/s from
//! the first submit to every container reported running, p99 latency of API reads made
//! during the run, and the server's peak RSS. Then every agent drops its connection and
//! reconnects at once with the host credential it registered: the time until all
//! sessions are back, and the server CPU per reconnect. `--tls`: the server speaks TLS, the
//! agents pin its CA and the API client trusts it, so every figure includes TLS. Then
//! `--failover`: one host goes silent and the time until it is marked down and its
//! containers run elsewhere is printed.

use std::collections::BTreeMap;

use sha2::Digest as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use proto::{AgentMsg, ContainerState, Observed, ObservedContainer, ServerMsg};
use tokio_tungstenite::tungstenite::Message;

pub struct Shape {
    /// After convergence, API reads per second to sustain for 10 s (0: none).
    pub read_rate: u32,
    pub agents: usize,
    pub services: usize,
    pub replicas: u32,
    /// Deploys in flight at once.
    pub concurrency: usize,
    /// Serve and connect over TLS (agents pin the server's CA, the API client trusts it).
    pub tls: bool,
    /// Once converged, time the web UI's dashboard to first meaningful render in headless
    /// Chromium (`ui/tests/first-render.mjs`).
    pub ui: bool,
    /// Once converged, label this many hosts `drover.ingress=true` and time how long a new
    /// exposed service, then a scale of it, takes to reach every one's route table (the
    /// simulated agents join the mesh and give their containers addresses in their block).
    pub ingress: usize,
}

/// A simulated container's address: in its host's mesh block (once known), by its name.
fn sim_addr(
    block: Option<mesh::Ipv4Net>,
    name: &str,
) -> std::collections::BTreeMap<String, std::net::Ipv4Addr> {
    let Some(b) = block else {
        return Default::default();
    };
    let n = name
        .bytes()
        .fold(7u32, |h, x| h.wrapping_mul(31).wrapping_add(u32::from(x)));
    let size = (1u32 << (32 - u32::from(b.prefix_len())))
        .saturating_sub(4)
        .max(1);
    let ip = std::net::Ipv4Addr::from(u32::from(b.network()) + 2 + n % size);
    std::collections::BTreeMap::from([("sim_default".to_string(), ip)])
}

/// When an agent last got an ingress table, and the probe route's backends in it.
type ProbeSeen = Option<(Instant, usize)>;

/// The probe route the ingress measurement deploys.
const PROBE_HOST: &str = "probe.test";

/// Labels `shape.ingress` hosts as ingress hosts, then times how long a new exposed service
/// (10 replicas), and then its scale to 20, take to be in every ingress host's table.
async fn ingress_propagation(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    shape: &Shape,
    link: &SimLink,
) -> Result<()> {
    let api = |path: &str| format!("{url}/v1/environments/default{path}");
    let n = shape.ingress.min(shape.agents);
    for i in 0..n {
        let resp = http
            .put(api(&format!("/hosts/sim-{i:05}/labels")))
            .bearer_auth(token)
            .json(&serde_json::json!({"labels": {"drover.ingress": "true"}}))
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("labelling sim-{i:05}: {}", resp.text().await?);
        }
    }
    // Until every ingress host is on the mesh and has its table.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let deploy = |replicas: u32| {
        let mut project = compose::Project {
            name: "probe".into(),
            ..Default::default()
        };
        let mut svc = compose::Service {
            image: Some("fake/app:1".into()),
            replicas,
            ..Default::default()
        };
        svc.extensions.insert(
            "x-drover".into(),
            serde_json::json!({"expose": [{"host": PROBE_HOST, "port": 8080}]}),
        );
        project.services.insert("web".into(), svc);
        api_types::DeployRequest {
            project: Some(project),
            ..Default::default()
        }
    };
    for replicas in [10u32, 20] {
        let t = Instant::now();
        let resp = http
            .post(api("/stacks"))
            .bearer_auth(token)
            .json(&deploy(replicas))
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("deploying the probe: {}", resp.text().await?);
        }
        let (all, last) = loop {
            let (done, last) = {
                let seen = link
                    .probe
                    .lock()
                    .map_err(|_| anyhow::anyhow!("probe lock"))?;
                let at: Vec<Instant> = seen[..n]
                    .iter()
                    .filter_map(|s| s.filter(|(_, b)| *b == replicas as usize).map(|(at, _)| at))
                    .collect();
                (at.len() == n, at.into_iter().max())
            };
            if done {
                break (t.elapsed(), last);
            }
            if t.elapsed() > Duration::from_secs(60) {
                bail!("the probe route did not reach every ingress host in 60 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        println!(
            "ingress: {} with {replicas} backends in the route table of all {n} ingress hosts {:.0} ms after the deploy request (last table sent at {:.0} ms; {} hosts, {} containers)",
            if replicas == 10 {
                "a new route"
            } else {
                "a scale"
            },
            all.as_secs_f64() * 1000.0,
            last.map_or(0.0, |l| l.duration_since(t).as_secs_f64() * 1000.0),
            shape.agents,
            shape.services * shape.replicas as usize,
        );
    }
    Ok(())
}

/// The dashboard's time to first meaningful render, printed by `ui/tests/first-render.mjs`.
fn first_render(url: &str, token: &str, containers: usize, hosts: usize) -> Result<()> {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui");
    let status = std::process::Command::new("node")
        .arg("tests/first-render.mjs")
        .current_dir(&ui)
        .env("DROVER_URL", url)
        .env("DROVER_TOKEN", token)
        .env("CONTAINERS", containers.to_string())
        .env("HOSTS", hosts.to_string())
        .status()
        .context("node (ui/tests/first-render.mjs)")?;
    if !status.success() {
        bail!("ui/tests/first-render.mjs failed: {status}");
    }
    Ok(())
}

/// The server's CA certificate, when it speaks TLS.
static CA_PEM: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// An API client trusting the server's CA when it speaks TLS.
fn http_client() -> reqwest::Client {
    let mut b = reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(30));
    if let Some(pem) = CA_PEM.get()
        && let Ok(cfg) = tls::trusting_client_config(pem)
    {
        b = b.tls_backend_preconfigured((*cfg).clone());
    }
    b.build().unwrap_or_default()
}

/// What every simulated agent shares with the driver.
#[derive(Clone)]
struct SimLink {
    url: String,
    pin: Option<Arc<rustls::ClientConfig>>,
    /// Bumped to make every agent drop its connection and reconnect at once.
    reconnect: tokio::sync::watch::Receiver<u64>,
    /// Sessions welcomed so far, over all agents and reconnects.
    welcomed: Arc<std::sync::atomic::AtomicUsize>,
    /// Join the mesh (a made-up key and endpoint), so that ingress tables come.
    mesh: bool,
    /// Per agent: the backends of the probe route in its last ingress table, and when it came.
    probe: Arc<std::sync::Mutex<Vec<ProbeSeen>>>,
}

/// One simulated agent: keeps the desired state (full states and stack patches, as the real
/// agent does) and reports every desired container as running (whole, then changes, as the
/// real agent does) until `silent` is set. As the real agent, it registers with the token,
/// binding a credential of its own to its host, and reconnects with that credential when
/// the driver says so.
async fn sim_agent(link: SimLink, token: String, i: usize, silent: Arc<AtomicBool>) -> Result<()> {
    let url = format!("{}/v1/agent/connect", link.url)
        .replace("https://", "wss://")
        .replace("http://", "ws://");
    let mut auth = token;
    // As the real agent: a credential of its own, offered (hashed) when registering.
    let credential = format!("drh_sim_{}_{i:05}", std::process::id());
    let mut reconnect = link.reconnect.clone();
    let engine = proto::EngineStatus {
        up: true,
        version: Some("fake-engine".into()),
        cpus: Some(32),
        memory: Some(128 << 30),
        os: Some("linux".into()),
        arch: Some("amd64".into()),
        error: None,
    };
    let mut last = fake_report(&engine, vec![], 0);
    loop {
        reconnect.mark_unchanged();
        let ws = agent::open(&url, link.pin.as_ref(), &auth)
            .await
            .map_err(|e| anyhow::anyhow!("connect: {e:?}"))?;
        let again = session(
            ws,
            &link,
            &mut reconnect,
            &mut auth,
            &credential,
            &mut last,
            i,
            &silent,
            &engine,
        )
        .await?;
        if !again {
            return Ok(());
        }
    }
}

/// What the fake engine reports: every container given, running.
fn fake_report(
    engine: &proto::EngineStatus,
    containers: Vec<ObservedContainer>,
    generation: u64,
) -> Observed {
    Observed {
        generation,
        engine: engine.clone(),
        containers,
        errors: vec![],
        waiting: vec![],
        networks: vec![],
    }
}

/// One session of a simulated agent; true when the driver asked for a reconnect.
#[allow(clippy::too_many_arguments)]
async fn session(
    ws: agent::Ws,
    link: &SimLink,
    reconnect: &mut tokio::sync::watch::Receiver<u64>,
    auth: &mut String,
    credential: &str,
    last: &mut Observed,
    i: usize,
    silent: &AtomicBool,
    engine: &proto::EngineStatus,
) -> Result<bool> {
    let (mut sink, mut stream) = ws.split();
    let hello = AgentMsg::Hello(proto::Hello {
        protocol: proto::PROTOCOL_VERSION,
        host_id: format!("sim-{i:05}"),
        hostname: format!("sim{i:05}"),
        agent_version: "sim".into(),
        labels: BTreeMap::from([("region".to_string(), ["eu", "us", "ap"][i % 3].to_string())]),
        credential_hash: Some(hex::encode(sha2::Sha256::digest(credential.as_bytes()))),
        mesh: link.mesh.then(|| proto::MeshHello {
            public_key: format!("{:064x}", i + 1),
            endpoint: std::net::SocketAddr::from(([127, 0, 0, 1], 20000 + (i % 40000) as u16)),
        }),
    });
    sink.send(Message::Text(serde_json::to_string(&hello)?.into()))
        .await?;
    // As the real agent: the first report of a session whole, then what changed.
    sink.send(Message::Text(
        serde_json::to_string(&AgentMsg::Observed(last.clone()))?.into(),
    ))
    .await?;
    let report = |containers, generation| fake_report(engine, containers, generation);
    // The host's mesh block, once the server gives it: containers get addresses in it.
    let mut block: Option<mesh::Ipv4Net> = None;
    let mut beat = tokio::time::interval(Duration::from_secs(proto::HEARTBEAT_SECS));
    loop {
        tokio::select! {
            // Asked to reconnect; or the driver is done (the sender is gone): stop.
            changed = reconnect.changed() => return Ok(changed.is_ok()),
            msg = stream.next() => {
                let Some(Ok(Message::Text(text))) = msg else { break };
                if silent.load(Ordering::Relaxed) {
                    continue;
                }
                let running = |c: &proto::DesiredContainer| ObservedContainer {
                    id: c.name.clone(),
                    name: c.name.clone(),
                    env: c.env.clone(),
                    stack: c.stack.clone(),
                    service: c.service.clone(),
                    slot: c.slot,
                    spec_hash: c.spec_hash.clone(),
                    state: ContainerState::Running,
                    health: None,
                    exit_code: None,
                    image: String::new(),
                    status: "Up (fake engine)".into(),
                    addrs: sim_addr(block, &c.name),
                    network_of: None,
                };
                // What changed, worked out from the message alone (a real agent diffs
                // what its engine lists; the simulator need not pay for that).
                let patch = match serde_json::from_str::<ServerMsg>(&text) {
                    Ok(ServerMsg::Welcome { .. }) => {
                        // Registered: from now on the host's own credential.
                        *auth = credential.to_string();
                        link.welcomed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Ok(ServerMsg::Mesh(m)) => {
                        if block == Some(m.place.block) {
                            continue;
                        }
                        block = Some(m.place.block);
                        // Every container again, now with its address.
                        for c in &mut last.containers {
                            c.addrs = sim_addr(block, &c.name);
                        }
                        proto::ObservedPatch {
                            generation: last.generation,
                            engine: engine.clone(),
                            containers: last.containers.clone(),
                            gone: vec![],
                            errors: vec![],
                            waiting: vec![],
                            networks: None,
                        }
                    }
                    Ok(ServerMsg::Ingress(t)) => {
                        let backends = t.as_ref().and_then(|t| {
                            t.http
                                .iter()
                                .find(|r| r.host.as_deref() == Some(PROBE_HOST))
                                .map(|r| r.backends.len())
                        });
                        if let (Some(n), Ok(mut seen)) = (backends, link.probe.lock())
                            && let Some(slot) = seen.get_mut(i)
                        {
                            *slot = Some((Instant::now(), n));
                        }
                        continue;
                    }
                    Ok(ServerMsg::Desired(d)) => {
                        let now = report(d.containers.iter().map(running).collect(), d.generation);
                        let patch = now.changes_since(last);
                        *last = now;
                        patch
                    }
                    Ok(ServerMsg::DesiredStacks(d)) => {
                        let new: std::collections::HashSet<&str> = d
                            .stacks
                            .iter()
                            .flat_map(|p| p.containers.iter().map(|c| c.name.as_str()))
                            .collect();
                        let patched: std::collections::HashSet<(&str, &str)> = d
                            .stacks
                            .iter()
                            .map(|p| (p.env.as_str(), p.stack.as_str()))
                            .collect();
                        let patch = proto::ObservedPatch {
                            generation: d.generation,
                            engine: engine.clone(),
                            containers: d
                                .stacks
                                .iter()
                                .flat_map(|p| p.containers.iter().map(running))
                                .collect(),
                            gone: last
                                .containers
                                .iter()
                                .filter(|c| {
                                    patched.contains(&(c.env.as_str(), c.stack.as_str()))
                                        && !new.contains(c.name.as_str())
                                })
                                .map(|c| c.name.clone())
                                .collect(),
                            errors: vec![],
                            waiting: vec![],
                            networks: None,
                        };
                        last.apply(patch.clone());
                        patch
                    }
                    _ => continue,
                };
                let msg = AgentMsg::ObservedChanges(patch);
                sink.send(Message::Text(serde_json::to_string(&msg)?.into())).await?;
            }
            _ = beat.tick() => {
                if silent.load(Ordering::Relaxed) {
                    continue;
                }
                sink.send(Message::Text(serde_json::to_string(&AgentMsg::Heartbeat)?.into())).await?;
            }
        }
    }
    Ok(false)
}

/// Open-loop reads at `rate` per second for 10 s from a client thread of its own (one stack
/// or one host, alternating); the sorted latencies of those answered.
fn read_load(base: &str, token: &str, shape: &Shape, rate: u32) -> Vec<Duration> {
    let (base, token) = (base.to_string(), token.to_string());
    let (services, agents) = (shape.services, shape.agents);
    let run = async move {
        let http = http_client();
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
        let mut tasks = Vec::new();
        let end = Instant::now() + Duration::from_secs(10);
        let mut i: usize = 0;
        while Instant::now() < end {
            tick.tick().await;
            i += 1;
            let url = if i.is_multiple_of(2) {
                format!("{base}/stacks/sim{:04}", (i * 7919) % services)
            } else {
                format!("{base}/hosts/sim-{:05}", (i * 7919) % agents)
            };
            let (http, token) = (http.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                let s = Instant::now();
                let r = http.get(&url).bearer_auth(&token).send().await.ok()?;
                r.bytes().await.ok()?;
                Some(s.elapsed())
            }));
        }
        let mut lat = Vec::new();
        for t in tasks {
            if let Ok(Some(d)) = t.await {
                lat.push(d);
            }
        }
        lat.sort();
        lat
    };
    on_own_thread(run).join().unwrap_or_default()
}

/// Runs a client on a thread and runtime of its own, apart from the simulated agents, so
/// its latencies are the server's.
fn on_own_thread<T: Default + Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(fut))
            .unwrap_or_default()
    })
}

/// CPU seconds (user + system) a process has used so far (clock ticks of 1/100 s).
fn cpu_secs(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime and stime are 14 and 15.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .unwrap_or(0.0)
        / 100.0
}

fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    token: &str,
) -> Result<T> {
    Ok(http
        .get(url)
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?)
}

/// The `p`th percentile (0-100) of sorted `v`, in ms.
fn percentile_ms(v: &[Duration], p: usize) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v[(v.len() * p / 100).min(v.len() - 1)].as_secs_f64() * 1000.0
}

pub fn run(drover: &Path, shape: Shape, failover: bool) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(drover, shape, failover))
}

async fn run_async(drover: &Path, shape: Shape, failover: bool) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("drover-sim-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut server = std::process::Command::new(drover)
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .args(shape.tls.then_some("--tls"))
        .env("DROVER_CONFIG", dir.join("cli.json"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let stdout = server.stdout.take().context("stdout")?;
    let (mut url, mut token) = (String::new(), String::new());
    {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line?;
            if let Some(u) = line.strip_prefix("Drover is listening on ") {
                url = u.to_string();
            }
            if let Some(t) = line.strip_prefix("admin token (shown once, stored only as a hash): ")
            {
                token = t.to_string();
            }
            if line == "ready" {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
    }
    if shape.tls {
        let pem = std::fs::read_to_string(dir.join("data/tls/ca.pem"))?;
        let _ = CA_PEM.set(pem);
    }
    let pid = server.id();
    let result = drive(&url, &token, &shape, failover, pid).await;
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn drive(url: &str, token: &str, shape: &Shape, failover: bool, pid: u32) -> Result<()> {
    let http = http_client();
    let api = |path: &str| format!("{url}/v1/environments/default{path}");
    let created: api_types::HostToken = http
        .post(api("/hosts/tokens"))
        .bearer_auth(token)
        .json(&serde_json::json!({}))
        .send()
        .await?
        .json()
        .await?;
    let silent: Vec<Arc<AtomicBool>> = (0..shape.agents)
        .map(|_| Arc::new(AtomicBool::new(false)))
        .collect();
    let pin = match &created.ca_hash {
        Some(h) => Some(tls::pinned_client_config(h)?),
        None => None,
    };
    let (reconnect_tx, reconnect) = tokio::sync::watch::channel(0u64);
    let link = SimLink {
        url: url.to_string(),
        pin,
        reconnect,
        welcomed: Arc::default(),
        mesh: shape.ingress > 0,
        probe: Arc::new(std::sync::Mutex::new(vec![None; shape.agents])),
    };
    let t = Instant::now();
    let server_cpu0 = cpu_secs(&pid.to_string());
    for (i, s) in silent.iter().enumerate() {
        let (link, tok, s) = (link.clone(), created.token.clone(), s.clone());
        tokio::spawn(async move {
            let driver = link.reconnect.clone();
            // Errors once the driver is done are the server going away: not worth a line.
            if let Err(e) = sim_agent(link, tok, i, s).await
                && driver.has_changed().is_ok()
            {
                eprintln!("sim agent {i}: {e}");
            }
        });
    }
    loop {
        let hosts: Vec<api_types::HostInfo> = get_json(&http, &api("/hosts"), token).await?;
        if hosts.iter().filter(|h| h.state == "up").count() == shape.agents {
            break;
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!(
                "only {} of {} simulated agents came up",
                hosts.len(),
                shape.agents
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "{} simulated agents connected at once{} and registered (each binding a credential of its own to its host) in {:.1}s; server CPU {:.1}s, peak RSS {:.0} MB",
        shape.agents,
        if shape.tls {
            " over TLS (pinned CA)"
        } else {
            " over plain HTTP"
        },
        t.elapsed().as_secs_f64(),
        cpu_secs(&pid.to_string()) - server_cpu0,
        peak_rss_mb(pid)
    );

    // Reads during the run, at a steady rate: one stack or one host, as `drover stack ps`
    // and `drover host inspect` do. The reader is a client of its own (a thread and
    // runtime apart from the simulated agents), so its latency is the server's.
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (token, done) = (token.to_string(), done.clone());
        let base = api("");
        let (services, agents) = (shape.services, shape.agents);
        let read_all = async move {
            let http = http_client();
            let mut lat = Vec::new();
            let mut i: usize = 0;
            while !done.load(Ordering::Relaxed) {
                i += 1;
                let url = if i.is_multiple_of(2) {
                    format!("{base}/stacks/sim{:04}", (i * 7919) % services)
                } else {
                    format!("{base}/hosts/sim-{:05}", (i * 7919) % agents)
                };
                let s = Instant::now();
                if let Ok(r) = http.get(&url).bearer_auth(&token).send().await
                    && r.bytes().await.is_ok()
                {
                    lat.push(s.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            lat
        };
        on_own_thread(read_all)
    };

    let total = shape.services * shape.replicas as usize;
    let (server_cpu0, sim_cpu0) = (cpu_secs(&pid.to_string()), cpu_secs("self"));
    let start = Instant::now();
    let deploys = futures_util::stream::iter(0..shape.services).map(|s| {
        let mut project = compose::Project {
            name: format!("sim{s:04}"),
            ..Default::default()
        };
        let mut svc = compose::Service {
            image: Some("fake/app:1".into()),
            replicas: shape.replicas,
            ..Default::default()
        };
        if s % 7 == 0 {
            svc.placement.constraints = vec!["node.labels.region == eu".into()];
        }
        project.services.insert("app".into(), svc);
        let body = api_types::DeployRequest {
            project: Some(project),
            ..Default::default()
        };
        let (http, url) = (http.clone(), api("/stacks"));
        async move {
            let resp = http.post(url).bearer_auth(token).json(&body).send().await?;
            if !resp.status().is_success() {
                bail!("deploy {s}: {}", resp.text().await?);
            }
            Ok(())
        }
    });
    let results: Vec<Result<()>> = deploys
        .buffer_unordered(shape.concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    let submitted = start.elapsed();
    loop {
        let stacks: Vec<api_types::StackSummary> = get_json(&http, &api("/stacks"), token).await?;
        let running: usize = stacks.iter().map(|s| s.running).sum();
        if running == total {
            break;
        }
        if start.elapsed() > Duration::from_secs(900) {
            bail!("{running} of {total} running after 900 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all_running = start.elapsed();
    let (server_cpu, sim_cpu) = (
        cpu_secs(&pid.to_string()) - server_cpu0,
        cpu_secs("self") - sim_cpu0,
    );
    done.store(true, Ordering::Relaxed);
    let lat = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader thread panicked"))?;
    println!(
        "{total} containers ({} services x {}) on {} simulated agents: submitted in {:.1}s ({} deploys in flight), all running after {:.1}s = {:.0} placements/s end to end (target >= 5,000/s at 5,000 hosts x 1M)",
        shape.services,
        shape.replicas,
        shape.agents,
        submitted.as_secs_f64(),
        shape.concurrency,
        all_running.as_secs_f64(),
        total as f64 / all_running.as_secs_f64()
    );
    let mut lat = lat;
    lat.sort();
    println!(
        "API reads during the run (one stack or one host): {} requests, p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms (target <= 50 ms), max {:.1} ms; server peak RSS {:.0} MB",
        lat.len(),
        percentile_ms(&lat, 50),
        percentile_ms(&lat, 90),
        percentile_ms(&lat, 99),
        percentile_ms(&lat, 100),
        peak_rss_mb(pid)
    );
    println!(
        "CPU used meanwhile on this {}-core machine: server {server_cpu:.0} s, simulator {sim_cpu:.0} s",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let t = Instant::now();
    let _: Vec<api_types::StackSummary> = get_json(&http, &api("/stacks"), token).await?;
    let stacks_list = t.elapsed();
    let t = Instant::now();
    let _: Vec<api_types::HostInfo> = get_json(&http, &api("/hosts"), token).await?;
    println!(
        "listing all {} stacks: {:.0} ms; all {} hosts: {:.0} ms",
        shape.services,
        stacks_list.as_secs_f64() * 1000.0,
        shape.agents,
        t.elapsed().as_secs_f64() * 1000.0
    );
    if shape.ui {
        first_render(url, token, total, shape.agents)?;
    }
    if shape.ingress > 0 {
        ingress_propagation(&http, url, token, shape, &link).await?;
    }
    if shape.read_rate > 0 {
        let lat = read_load(&api(""), token, shape, shape.read_rate);
        println!(
            "{} reads/s for 10 s once converged (one stack or one host, {} containers): {} answered, p50 {:.1} ms, p99 {:.1} ms (target <= 50 ms at 1,000/s with 10,000 containers)",
            shape.read_rate,
            total,
            lat.len(),
            percentile_ms(&lat, 50),
            percentile_ms(&lat, 99)
        );
    }

    // Every agent drops its connection and reconnects at once with its host credential
    // (over TLS with --tls, handshakes included): what a server restart or a network blip
    // costs.
    let before = link.welcomed.load(Ordering::Relaxed);
    let cpu0 = cpu_secs(&pid.to_string());
    let t = Instant::now();
    reconnect_tx.send_modify(|v| *v += 1);
    loop {
        let back = link.welcomed.load(Ordering::Relaxed) - before;
        if back >= shape.agents {
            break;
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!("only {back} of {} agents reconnected", shape.agents);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let back_after = t.elapsed();
    // Then until every host is `up` again (its session heard from within the freshness
    // window), noting the worst state any host was seen in meanwhile.
    let mut worst: BTreeMap<String, usize> = BTreeMap::new();
    let all_up = loop {
        let hosts: Vec<api_types::HostInfo> = get_json(&http, &api("/hosts"), token).await?;
        let mut now: BTreeMap<String, usize> = BTreeMap::new();
        for h in &hosts {
            *now.entry(h.state.clone()).or_default() += 1;
        }
        for (k, v) in &now {
            let w = worst.entry(k.clone()).or_default();
            *w = (*w).max(*v);
        }
        if now.get("up") == Some(&shape.agents) {
            break t.elapsed();
        }
        if t.elapsed() > Duration::from_secs(300) {
            bail!("hosts not all up 300 s after the reconnect: {now:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let reconnect_cpu = cpu_secs(&pid.to_string()) - cpu0;
    println!(
        "{} agents reconnecting at once{} with their host credentials: all sessions back after {:.2}s, all hosts up after {:.2}s (most hosts seen at once per state: {worst:?}); server CPU {:.2}s ({:.2} ms per reconnect), peak RSS {:.0} MB",
        shape.agents,
        if shape.tls {
            " over TLS"
        } else {
            " over plain HTTP"
        },
        back_after.as_secs_f64(),
        all_up.as_secs_f64(),
        reconnect_cpu,
        reconnect_cpu * 1000.0 / shape.agents as f64,
        peak_rss_mb(pid),
    );

    if failover {
        // Silence the agent with the most containers.
        let hosts: Vec<api_types::HostInfo> = get_json(&http, &api("/hosts"), token).await?;
        let victim = hosts
            .iter()
            .max_by_key(|h| h.containers)
            .context("a host")?
            .clone();
        let idx: usize = victim
            .id
            .trim_start_matches("sim-")
            .parse()
            .context("sim host id")?;
        let t = Instant::now();
        silent[idx].store(true, Ordering::Relaxed);
        let mut down_at = None;
        let host_url = api(&format!("/hosts/{}", victim.id));
        loop {
            let host: api_types::HostDetail = get_json(&http, &host_url, token).await?;
            if down_at.is_none() && host.host.state == "down" {
                down_at = Some(t.elapsed());
            }
            if down_at.is_some() && host.host.containers == 0 {
                let stacks: Vec<api_types::StackSummary> =
                    get_json(&http, &api("/stacks"), token).await?;
                if stacks.iter().map(|s| s.running).sum::<usize>() == total {
                    break;
                }
            }
            if t.elapsed() > Duration::from_secs(120) {
                bail!("failover did not complete in 120 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "failover: host with {} containers silenced among {} hosts: down after {:.1}s, all replacements running after {:.1}s (targets 10 s / 15 s)",
            victim.containers,
            shape.agents,
            down_at.unwrap_or_default().as_secs_f64(),
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
