//! `bench-ingress`: Drover's ingress proxy (`crates/proxy`, run as its `serve` example, a
//! process of its own) against HAProxy (Debian's 2.6) and nginx (Debian's `nginx-light`), in
//! one run, on loopback, with the same two backends (the proxy's `backend` example, one
//! thread each) and the same self-signed certificate (rcgen, for `localhost`):
//! - requests/s and p99 latency from `wrk -t2 -cC -dSs --latency` for plain HTTP keep-alive,
//!   plain HTTP with `Connection: close`, and the same two over TLS; and each proxy's CPU
//!   time per request (utime + stime of its processes, from /proc: steadier than req/s when
//!   the cores are shared);
//! - rounds interleaved (each round runs every case on every proxy, the proxies' order
//!   rotated from round to round) and the median of the rounds reported, with Drover's
//!   ratios to HAProxy (target: req/s >= HAProxy's, p99 <= 1.2x HAProxy's);
//! - then Drover's RSS (VmRSS, VmHWM) serving a table of 1,000 HTTP routes (1,000 host
//!   names, 2 backends each) after requests to a few of them.
//!
//! Each proxy runs 2 workers: Drover `--threads 2` (`proxy::Workers`: 2 threads, each a
//! current-thread tokio runtime with its own SO_REUSEPORT listeners), HAProxy `nbthread 2`,
//! nginx `worker_processes 2`. `--multi-thread-too` adds Drover as one `Proxy` on one
//! multi-thread runtime with 2 worker threads (`serve --multi-thread 2`, how the agent runs
//! it) as a 4th column. Each keeps connections to the backends alive, adds
//! `X-Forwarded-For` and `X-Forwarded-Proto`, logs no requests, and keeps a client
//! connection for up to 100,000 requests (nginx's default closes it after 1,000).
//!
//! Every process is started here and killed by its PID when the bench ends (or fails); the
//! temporary directory with configurations and the certificate goes too.
//! Needs `apt-get install haproxy nginx-light wrk`.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{root, run};

/// Workers of every proxy (this machine has 2 cores).
const WORKERS: usize = 2;
/// wrk's threads.
const WRK_THREADS: u32 = 2;
/// Routes of the memory measurement.
const ROUTES: usize = 1000;
/// The host name of the TLS route (wrk sends it as SNI).
const TLS_HOST: &str = "localhost";

pub struct Opts {
    pub duration: u64,
    pub connections: u32,
    pub rounds: usize,
    /// Drover on one multi-thread runtime too (`serve --multi-thread 2`), as a 4th column.
    pub multi_thread_too: bool,
}

/// A process started here: on drop, SIGTERM to it (nginx's master stops its workers), then
/// SIGKILL to it and to the children it had, by PID, if they are still there after 3 s.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> Result<Proc> {
        let log = std::fs::File::create(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Proc { name, child })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// It and its children (nginx's workers).
    fn tree(&self) -> Vec<u32> {
        let mut pids = vec![self.pid()];
        pids.extend(children(self.pid()));
        pids
    }

    fn alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited: {status}", self.name);
        }
        Ok(())
    }
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

fn signal(sig: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

impl Drop for Proc {
    fn drop(&mut self) {
        let kids = children(self.pid());
        signal("-TERM", self.pid());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for kid in kids {
            if std::fs::metadata(format!("/proc/{kid}")).is_ok() {
                signal("-KILL", kid);
            }
        }
    }
}

/// The temporary directory, removed on drop (after the processes, declared after it).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_port(proc: &mut Proc, port: u16) -> Result<()> {
    let start = Instant::now();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        proc.alive()?;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(20) {
            bail!("{} does not listen on {port}", proc.name);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kib(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time (user + system) of these processes, in clock ticks (1/100 s here).
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            // After the command's `(name)`: state is field 3, utime 14, stime 15.
            let rest = &stat[stat.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Drover,
    Haproxy,
    Nginx,
    /// Drover as one `Proxy` on one multi-thread runtime (`serve --multi-thread`).
    DroverMt,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Drover, Kind::Haproxy, Kind::Nginx];

    fn name(self) -> &'static str {
        match self {
            Kind::Drover => "Drover",
            Kind::Haproxy => "HAProxy",
            Kind::Nginx => "nginx",
            Kind::DroverMt => "Drover-mt",
        }
    }
}

struct Case {
    name: &'static str,
    tls: bool,
    close: bool,
}

const CASES: [Case; 4] = [
    Case {
        name: "HTTP keep-alive",
        tls: false,
        close: false,
    },
    Case {
        name: "HTTP Connection: close",
        tls: false,
        close: true,
    },
    Case {
        name: "TLS keep-alive",
        tls: true,
        close: false,
    },
    Case {
        name: "TLS Connection: close",
        tls: true,
        close: true,
    },
];

/// One proxy under test: its process and its two ports.
struct Proxy {
    kind: Kind,
    proc: Proc,
    http: u16,
    https: u16,
}

impl Proxy {
    fn url(&self, tls: bool) -> String {
        if tls {
            format!("https://{TLS_HOST}:{}/", self.https)
        } else {
            format!("http://127.0.0.1:{}/", self.http)
        }
    }
}

/// What one wrk run measured.
#[derive(Clone, Copy, Default)]
struct Sample {
    rps: f64,
    p99_ms: f64,
    /// Non-2xx answers and socket errors.
    errors: u64,
    requests: u64,
    /// The proxy's CPU time (user + system, all its processes) per request, µs.
    cpu_us: f64,
}

fn wrk(url: &str, close: bool, connections: u32, secs: u64, host: Option<&str>) -> Result<Sample> {
    let mut cmd = Command::new("wrk");
    cmd.arg(format!("-t{WRK_THREADS}"))
        .arg(format!("-c{}", connections.max(WRK_THREADS)))
        .arg(format!("-d{secs}s"))
        .arg("--latency");
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    if let Some(h) = host {
        cmd.args(["-H", &format!("Host: {h}")]);
    }
    let out = run(cmd.arg(url))?;
    parse_wrk(&out).with_context(|| format!("wrk {url}: {out}"))
}

fn parse_wrk(out: &str) -> Result<Sample> {
    let mut s = Sample::default();
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => s.rps = v.parse()?,
            [n, "requests", "in", ..] => s.requests = n.parse()?,
            ["99%", v] => s.p99_ms = duration_ms(v)?,
            ["Non-2xx", "or", "3xx", "responses:", n] => s.errors += n.parse::<u64>()?,
            ["Socket", "errors:", rest @ ..] => {
                // connect N, read N, write N, timeout N
                s.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    if s.rps == 0.0 {
        bail!("no Requests/sec");
    }
    Ok(s)
}

/// wrk's `1.23ms`, `456.00us`, `1.50s`, `2.00m`.
fn duration_ms(v: &str) -> Result<f64> {
    let split = v
        .find(|c: char| c.is_ascii_alphabetic())
        .context("a unit")?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse()?;
    Ok(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => bail!("unit {unit}"),
    })
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn backend(container: &str, addr: SocketAddr) -> ingress::Backend {
    ingress::Backend {
        container: container.into(),
        host: "bench".into(),
        addr,
    }
}

fn route(
    host: Option<String>,
    tls: ingress::Tls,
    backends: Vec<ingress::Backend>,
) -> ingress::HttpRoute {
    ingress::HttpRoute {
        host,
        path: "/".into(),
        stack: "bench".into(),
        service: "web".into(),
        tls,
        balance: ingress::Balance::RoundRobin,
        sticky: None,
        backends,
    }
}

/// Builds the proxy's examples; the directory holding them.
fn build_examples() -> Result<PathBuf> {
    let root = root();
    run(Command::new("cargo")
        .args(["build", "--release", "-p", "proxy", "--examples"])
        .current_dir(&root))?;
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => root.join(t),
        None => root.join("target"),
    };
    Ok(target.join("release/examples"))
}

fn haproxy_cfg(dir: &Path, http: u16, https: u16, backends: [u16; 2]) -> String {
    format!(
        "global
  nbthread {WORKERS}
  maxconn 4000
defaults
  mode http
  timeout connect 3s
  timeout client 30s
  timeout server 30s
  option forwardfor
  http-reuse always
frontend plain
  bind 127.0.0.1:{http}
  http-request set-header X-Forwarded-Proto http
  default_backend web
frontend tls
  bind 127.0.0.1:{https} ssl crt {pem} alpn h2,http/1.1
  http-request set-header X-Forwarded-Proto https
  default_backend web
backend web
  balance roundrobin
  server s1 127.0.0.1:{b1}
  server s2 127.0.0.1:{b2}
",
        pem = dir.join("haproxy.pem").display(),
        b1 = backends[0],
        b2 = backends[1],
    )
}

fn nginx_conf(dir: &Path, http: u16, https: u16, backends: [u16; 2]) -> String {
    let d = dir.display();
    format!(
        "worker_processes {WORKERS};
daemon off;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 4000; }}
http {{
  access_log off;
  client_body_temp_path {d}/nginx-body;
  proxy_temp_path {d}/nginx-proxy;
  keepalive_requests 100000;
  upstream web {{
    server 127.0.0.1:{b1};
    server 127.0.0.1:{b2};
    keepalive 64;
    keepalive_requests 100000;
  }}
  server {{
    listen 127.0.0.1:{http};
    listen 127.0.0.1:{https} ssl;
    ssl_certificate {d}/cert.pem;
    ssl_certificate_key {d}/key.pem;
    location / {{
      proxy_pass http://web;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }}
  }}
}}
",
        b1 = backends[0],
        b2 = backends[1],
    )
}

pub fn bench(opts: &Opts) -> Result<()> {
    for tool in ["haproxy", "nginx", "wrk"] {
        run(Command::new("sh").args(["-c", &format!("command -v {tool}")])).with_context(|| {
            format!("{tool} is missing: apt-get install haproxy nginx-light wrk")
        })?;
    }
    let bin = build_examples()?;
    let dir =
        TempDir(std::env::temp_dir().join(format!("drover-bench-ingress-{}", std::process::id())));
    let d = dir.0.clone();
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;

    let cert = rcgen::generate_simple_self_signed(vec![TLS_HOST.to_string()])?;
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    std::fs::write(d.join("cert.pem"), &cert_pem)?;
    std::fs::write(d.join("key.pem"), &key_pem)?;
    std::fs::write(d.join("haproxy.pem"), format!("{cert_pem}{key_pem}"))?;

    let backend_ports = [free_port()?, free_port()?];
    let mut backends = Vec::new();
    for (i, port) in backend_ports.iter().enumerate() {
        let mut p = Proc::spawn(
            "backend",
            Command::new(bin.join("backend")).args([
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--threads",
                "1",
            ]),
            &d.join(format!("backend{i}.log")),
        )?;
        wait_port(&mut p, *port)?;
        backends.push(p);
    }
    let b_addrs: Vec<SocketAddr> = backend_ports
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    let bench_backends = vec![backend("web-1", b_addrs[0]), backend("web-2", b_addrs[1])];

    // Drover: plain HTTP for any host; TLS for `localhost` (a route with a certificate is
    // redirected from plain HTTP, hence two routes).
    let table = ingress::Table {
        http: vec![
            route(None, ingress::Tls::None, bench_backends.clone()),
            route(
                Some(TLS_HOST.into()),
                ingress::Tls::Cert("bench".into()),
                bench_backends.clone(),
            ),
        ],
        certs: vec![ingress::Cert {
            name: "bench".into(),
            domains: vec![TLS_HOST.into()],
            chain_pem: cert_pem.clone(),
            key_pem: key_pem.clone(),
        }],
        ..ingress::Table::default()
    };
    std::fs::write(d.join("table.json"), serde_json::to_vec(&table)?)?;

    let mut proxies: Vec<Proxy> = Vec::new();
    let mut kinds = Kind::ALL.to_vec();
    if opts.multi_thread_too {
        kinds.push(Kind::DroverMt);
    }
    for kind in kinds {
        let (http, https) = (free_port()?, free_port()?);
        let log = d.join(format!("{}.log", kind.name()));
        let proc = match kind {
            Kind::Drover | Kind::DroverMt => Proc::spawn(
                "drover serve",
                Command::new(bin.join("serve"))
                    .args(["--http", &format!("127.0.0.1:{http}")])
                    .args(["--https", &format!("127.0.0.1:{https}")])
                    .arg("--table")
                    .arg(d.join("table.json"))
                    .args([
                        if kind == Kind::Drover {
                            "--threads"
                        } else {
                            "--multi-thread"
                        },
                        &WORKERS.to_string(),
                    ])
                    .env("RUST_LOG", "warn"),
                &log,
            )?,
            Kind::Haproxy => {
                let cfg = d.join("haproxy.cfg");
                std::fs::write(&cfg, haproxy_cfg(&d, http, https, backend_ports))?;
                Proc::spawn(
                    "haproxy",
                    Command::new("haproxy").arg("-db").arg("-f").arg(&cfg),
                    &log,
                )?
            }
            Kind::Nginx => {
                let cfg = d.join("nginx.conf");
                std::fs::write(&cfg, nginx_conf(&d, http, https, backend_ports))?;
                Proc::spawn(
                    "nginx",
                    Command::new("nginx")
                        .arg("-p")
                        .arg(&d)
                        .arg("-e")
                        .arg(d.join("nginx-error.log"))
                        .arg("-c")
                        .arg(&cfg),
                    &log,
                )?
            }
        };
        let mut proxy = Proxy {
            kind,
            proc,
            http,
            https,
        };
        wait_port(&mut proxy.proc, http)?;
        wait_port(&mut proxy.proc, https)?;
        proxies.push(proxy);
    }

    let (secs, conns) = (opts.duration, opts.connections);
    let load_before = loadavg();
    println!(
        "bench-ingress: {} rounds x {} cases x {} proxies, wrk -t{WRK_THREADS} -c{conns} -d{secs}s --latency; \
         {WORKERS} workers per proxy; 2 backends (proxy's backend example, 1 thread each); load average {load_before}",
        opts.rounds,
        CASES.len(),
        proxies.len()
    );
    // Warm-up: every proxy, every case, once, not counted (and every answer checked).
    for case in &CASES {
        for p in &mut proxies {
            p.proc.alive()?;
            let s = wrk(&p.url(case.tls), case.close, conns, 1, None)?;
            if s.errors > 0 {
                bail!(
                    "{} {}: {} errors in the warm-up (see {})",
                    p.kind.name(),
                    case.name,
                    s.errors,
                    d.display()
                );
            }
        }
    }
    // samples[case][proxy]
    let n = proxies.len();
    let mut samples = vec![vec![Vec::<Sample>::new(); n]; CASES.len()];
    let started = Instant::now();
    for round in 0..opts.rounds {
        for (c, case) in CASES.iter().enumerate() {
            for k in 0..n {
                let i = (k + round + c) % n;
                let p = &mut proxies[i];
                p.proc.alive()?;
                let pids = p.proc.tree();
                let before = cpu_ticks(&pids);
                let mut s = wrk(&p.url(case.tls), case.close, conns, secs, None)?;
                let ticks = cpu_ticks(&pids).saturating_sub(before);
                // Ticks are 10 ms.
                s.cpu_us = ticks as f64 * 10_000.0 / s.requests.max(1) as f64;
                samples[c][i].push(s);
            }
        }
        eprintln!(
            "round {}/{} done ({:.0} s, load average {})",
            round + 1,
            opts.rounds,
            started.elapsed().as_secs_f64(),
            loadavg()
        );
    }
    let load_after = loadavg();

    let n = proxies.len();
    let header = |cells: Vec<String>, tail: &str| {
        let cells: String = cells.iter().map(|c| format!(" {c:>16}")).collect();
        println!("{:<24}{cells}   {tail}", "");
    };
    println!();
    header(
        proxies.iter().map(|p| p.kind.name().to_owned()).collect(),
        "Drover/HAProxy",
    );
    header(
        vec!["req/s    p99".to_owned(); n],
        &format!("{:>7} {:>7}", "req/s", "p99"),
    );
    let mut verdicts = Vec::new();
    for (c, case) in CASES.iter().enumerate() {
        let of = |i: usize, f: fn(&Sample) -> f64| {
            median(&samples[c][i].iter().map(f).collect::<Vec<_>>())
        };
        let rps: Vec<f64> = (0..n).map(|i| of(i, |s| s.rps)).collect();
        let p99: Vec<f64> = (0..n).map(|i| of(i, |s| s.p99_ms)).collect();
        let cpu: Vec<f64> = (0..n).map(|i| of(i, |s| s.cpu_us)).collect();
        let (rps_ratio, p99_ratio) = (rps[0] / rps[1], p99[0] / p99[1]);
        let cells: String = (0..n)
            .map(|i| format!(" {:>7.0} {:>6.1}ms", rps[i], p99[i]))
            .collect();
        println!(
            "{:<24}{cells}   {rps_ratio:>6.2}x {p99_ratio:>6.2}x",
            case.name
        );
        let cells: String = cpu.iter().map(|c| format!(" {:>14.1}us", c)).collect();
        println!(
            "{:<24}{cells}   {:>6.2}x (CPU)",
            "  proxy CPU/request",
            cpu[0] / cpu[1]
        );
        verdicts.push((case.name, rps_ratio >= 1.0, p99_ratio <= 1.2));
    }
    println!();
    println!("every round (req/s | p99 ms | proxy CPU us/request):");
    for (c, case) in CASES.iter().enumerate() {
        for (i, p) in proxies.iter().enumerate() {
            let list = |f: fn(&Sample) -> f64, prec: usize| {
                samples[c][i]
                    .iter()
                    .map(|s| format!("{:.prec$}", f(s)))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let errors: u64 = samples[c][i].iter().map(|s| s.errors).sum();
            println!(
                "  {:<24} {:<9} {} | {} | {}{}",
                case.name,
                p.kind.name(),
                list(|s| s.rps, 0),
                list(|s| s.p99_ms, 1),
                list(|s| s.cpu_us, 0),
                if errors > 0 {
                    format!("  ({errors} errors)")
                } else {
                    String::new()
                }
            );
        }
    }
    let met = verdicts.iter().filter(|(_, r, p)| *r && *p).count();
    println!(
        "target (req/s >= HAProxy's, p99 <= 1.2x HAProxy's) met in {met}/{} cases{}",
        verdicts.len(),
        verdicts
            .iter()
            .filter(|(_, r, p)| !(*r && *p))
            .map(|(n, r, p)| format!(
                "; missed: {n}{}{}",
                if *r { "" } else { " (req/s)" },
                if *p { "" } else { " (p99)" }
            ))
            .collect::<String>()
    );
    println!("load average before {load_before}, after {load_after}");
    let rss = |p: &Proxy| -> u64 {
        p.proc
            .tree()
            .iter()
            .filter_map(|&pid| kib(pid, "VmRSS:"))
            .sum()
    };
    println!(
        "RSS after the runs (processes' sum):{}",
        proxies
            .iter()
            .map(|p| format!(" {} {:.1} MiB", p.kind.name(), rss(p) as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(",")
    );
    drop(proxies);

    memory(&bin, &d, &b_addrs)?;
    drop(backends);
    drop(dir);
    Ok(())
}

/// Drover's RSS with 1,000 routes (1,000 hosts, 2 backends each: the first few on the real
/// backends, the others on addresses never contacted), after 2 s of requests to 4 hosts.
fn memory(bin: &Path, d: &Path, real: &[SocketAddr]) -> Result<()> {
    const SERVED: usize = 4;
    let http = (0..ROUTES)
        .map(|i| {
            let backends = if i < SERVED {
                vec![
                    backend(&format!("app{i}-web-1"), real[0]),
                    backend(&format!("app{i}-web-2"), real[1]),
                ]
            } else {
                let ip = [127, 1, (i / 250) as u8, (i % 250 + 1) as u8];
                vec![
                    backend(&format!("app{i}-web-1"), SocketAddr::from((ip, 8080))),
                    backend(&format!("app{i}-web-2"), SocketAddr::from((ip, 8081))),
                ]
            };
            route(
                Some(format!("app{i:04}.bench.test")),
                ingress::Tls::None,
                backends,
            )
        })
        .collect();
    let table = ingress::Table {
        http,
        ..ingress::Table::default()
    };
    let path = d.join("table-1000.json");
    std::fs::File::create(&path)?.write_all(&serde_json::to_vec(&table)?)?;
    let (http, https) = (free_port()?, free_port()?);
    let mut p = Proc::spawn(
        "drover serve (1,000 routes)",
        Command::new(bin.join("serve"))
            .args(["--http", &format!("127.0.0.1:{http}")])
            .args(["--https", &format!("127.0.0.1:{https}")])
            .arg("--table")
            .arg(&path)
            .args(["--threads", &WORKERS.to_string()])
            .env("RUST_LOG", "warn"),
        &d.join("serve-1000.log"),
    )?;
    wait_port(&mut p, http)?;
    std::thread::sleep(Duration::from_millis(300));
    let at_start = kib(p.pid(), "VmRSS:").context("VmRSS")?;
    let url = format!("http://127.0.0.1:{http}/");
    let mut requests = 0.0;
    for i in 0..SERVED {
        let s = wrk(&url, false, 50, 2, Some(&format!("app{i:04}.bench.test")))?;
        if s.errors > 0 {
            bail!("app{i:04}.bench.test: {} errors", s.errors);
        }
        requests += s.rps * 2.0;
    }
    let (rss, hwm) = (
        kib(p.pid(), "VmRSS:").context("VmRSS")?,
        kib(p.pid(), "VmHWM:").context("VmHWM")?,
    );
    println!();
    println!(
        "Drover ingress with {ROUTES} HTTP routes ({ROUTES} hosts, {} backends): VmRSS {:.1} MiB at start; \
         after ~{:.0}k requests (wrk -c50, 2 s each to {SERVED} hosts) VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        2 * ROUTES,
        at_start as f64 / 1024.0,
        requests / 1000.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output() {
        let out = "Running 5s test @ http://127.0.0.1:8080/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.51ms    2.81ms  37.67ms   86.90%
  Latency Distribution
     50%    2.90ms
     75%    4.10ms
     90%    6.80ms
     99%    1.20s
  184955 requests in 12.06s, 15.70MB read
  Socket errors: connect 0, read 12, write 0, timeout 3
  Non-2xx or 3xx responses: 5
Requests/sec:  15342.10
Transfer/sec:      1.30MB
";
        let s = parse_wrk(out).expect("parse");
        assert_eq!(s.rps, 15342.10);
        assert_eq!(s.p99_ms, 1200.0);
        assert_eq!(s.errors, 20);
        assert_eq!(s.requests, 184955);
        assert_eq!(duration_ms("456.00us").expect("us"), 0.456);
    }
}
