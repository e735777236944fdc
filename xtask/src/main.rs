//! Automation.
//! - `cargo run --release -p xtask -- bench-deploy [--runs N]`
//! - `cargo run --release -p xtask -- bench-hostile`
//! - `cargo run --release -p xtask -- bench-auth` (see `auth_bench.rs`: authorisation's
//!   cost per request, logins/s with argon2id)
//! - `cargo run --release -p xtask -- bench-monitor`: the memory of an hour of monitoring
//!   samples of 1,000 containers
//! - `cargo run --release -p xtask -- bench-scheduler`
//! - `cargo run --release -p xtask -- bench-mesh` (root; see `mesh_bench.rs`)
//! - `cargo run --release -p xtask -- bench-ingress [--duration S] [--connections C] [--rounds N] [--multi-thread-too]`
//!   (see `ingress_bench.rs`: Drover's ingress proxy vs HAProxy vs nginx, req/s and p99)
//! - `cargo run --release -p xtask -- bench-roll [--rounds N]` (root; see `roll_bench.rs`:
//!   a rolling upgrade by Drover and by Docker Swarm on the same three engines)
//! - `cargo run --release -p xtask -- bench-secrets [--rounds N] [--parallelism N|default] [--no-swarm]`
//!   (root; see `secrets_bench.rs`: a changed secret delivered to 100 containers on three
//!   hosts by Drover and by Docker Swarm)
//! - `cargo run --release -p xtask -- bench-agents [--agents N] [--services S] [--replicas R] [--concurrency C] [--read-rate R] [--failover] [--tls]`
//!   (see `sim.rs`: the server with simulated agents over the real protocol)
//! - `cargo run --release -p xtask -- chaos [--scenario NAME] [--rounds N] [--seed S] [--short]` (see
//!   `chaos/mod.rs`: the chaos and abuse suite); `chaos-seed` writes the fuzz corpus seeds
//!   (`chaos/hostile.rs`)
//!
//! bench-scheduler: the pure scheduler on the C1M shape (5,000 hosts of mixed capacity and
//! labels, 1,000 services x 1,000 replicas, 15 % constrained) and on kube-scheduler's
//! SchedulingBasic shape (5,000 nodes, 50,000 pods); placements/s and peak RSS.
//! Targets: >= 50,000 placements/s (Nomad C1M: 3,750/s; kube-scheduler floor: 810 pods/s).
//!
//! bench-hostile: how long `compose::load` takes to refuse hostile documents (alias bomb,
//! 10,000-deep nesting, a huge flat document), and the process's peak RSS after each
//! (target: each refused within 100 ms, bounded memory).
//!
//! bench-deploy: a 30-service stack deployed by `drover stack deploy` and by `docker-compose
//! up -d` (Debian's 1.29) on the same engine and images, alternating runs; prints the wall
//! times, the ratio (target: Drover <= 0.8x), and the idle RSS of `drover up` with the stack
//! running (target <= 50 MB). Needs a running engine and `drover-test/app:1`
//! (`scripts/build-test-images.sh`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

mod auth_bench;
mod chaos;
mod hosts;
mod ingress_bench;
mod mesh_bench;
mod roll_bench;
mod secrets_bench;
mod sim;

const SERVICES: usize = 30;

/// Counts the heap in use and its peak: `chaos --scenario hostile` measures each input's
/// peak with it (two relaxed atomic operations per allocation, and a `realloc` always
/// moves: in-process benchmarks pay that too).
#[global_allocator]
static ALLOC: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc;

fn main() -> Result<()> {
    tls::install_default_provider();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench-deploy") => {
            let runs = args
                .iter()
                .position(|a| a == "--runs")
                .and_then(|i| args.get(i + 1))
                .and_then(|n| n.parse().ok())
                .unwrap_or(3);
            bench_deploy(runs)
        }
        Some("bench-hostile") => bench_hostile(),
        Some("bench-auth") => auth_bench::bench(),
        Some("bench-monitor") => auth_bench::bench_monitor(),
        Some("bench-mesh") => mesh_bench::bench(&build_drover()?),
        Some("bench-ingress") => {
            let num = |flag: &str, default: u64| -> Result<u64> {
                match args.iter().position(|a| a == flag) {
                    None => Ok(default),
                    Some(i) => args
                        .get(i + 1)
                        .and_then(|n| n.parse().ok())
                        .with_context(|| format!("{flag} needs a number")),
                }
            };
            ingress_bench::bench(&ingress_bench::Opts {
                duration: num("--duration", 5)?.max(1),
                connections: u32::try_from(num("--connections", 50)?)?,
                rounds: usize::try_from(num("--rounds", 3)?)?.max(1),
                multi_thread_too: args.iter().any(|a| a == "--multi-thread-too"),
            })
        }
        Some("bench-roll") => {
            let rounds = args
                .iter()
                .position(|a| a == "--rounds")
                .and_then(|i| args.get(i + 1))
                .and_then(|n| n.parse().ok())
                .unwrap_or(4);
            roll_bench::bench(&build_drover()?, rounds)
        }
        Some("bench-secrets") => {
            let flag = |name: &str| {
                args.iter()
                    .position(|a| a == name)
                    .and_then(|i| args.get(i + 1))
            };
            let rounds = flag("--rounds").and_then(|n| n.parse().ok()).unwrap_or(3);
            let parallelism = match flag("--parallelism").map(String::as_str) {
                None => Some(0),
                Some("default") => None,
                Some(n) => Some(n.parse().context("--parallelism: a number or `default`")?),
            };
            let swarm = !args.iter().any(|a| a == "--no-swarm");
            secrets_bench::bench(&build_drover()?, rounds, parallelism, swarm)
        }
        Some("dns-load") => mesh_bench::dns_load(&args[1..]),
        Some("dns-wait") => mesh_bench::dns_wait(&args[1..]),
        Some("roll-client") => roll_bench::client(&args[1..]),
        Some("bench-scheduler") => bench_scheduler(),
        Some("chaos" | "chaos-faults") => chaos::run(&args[1..]),
        Some("chaos-replay") => chaos::hostile::worker(&args[1..]),
        Some("chaos-seed") => chaos::hostile::seed(),
        Some("bench-agents") => {
            let num = |flag: &str, default: usize| {
                args.iter()
                    .position(|a| a == flag)
                    .and_then(|i| args.get(i + 1))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(default)
            };
            // DROVER_BIN: a binary to measure instead (e.g. `--profile profiling` for perf).
            let ui = args.iter().any(|a| a == "--ui");
            if ui {
                // The UI is embedded in the binary: built first.
                run(Command::new("bash").arg(root().join("scripts/build-ui.sh")))?;
            }
            let bin = match std::env::var_os("DROVER_BIN") {
                Some(b) => PathBuf::from(b),
                None => build_drover()?,
            };
            sim::run(
                &bin,
                sim::Shape {
                    agents: num("--agents", 500),
                    services: num("--services", 100),
                    replicas: num("--replicas", 100) as u32,
                    concurrency: num("--concurrency", 16),
                    read_rate: num("--read-rate", 0) as u32,
                    tls: args.iter().any(|a| a == "--tls"),
                    ui,
                    ingress: num("--ingress", 0),
                },
                args.iter().any(|a| a == "--failover"),
            )
        }
        _ => {
            bail!(
                "usage: cargo run --release -p xtask -- bench-deploy [--runs N] | bench-hostile | bench-auth | bench-monitor | bench-mesh | bench-ingress [--duration S --connections C --rounds N --multi-thread-too] | bench-roll [--rounds N] | bench-secrets [--rounds N --parallelism N|default --no-swarm] | bench-scheduler | bench-agents [--agents N --services S --replicas R --concurrency C --read-rate R --failover --tls --ui --ingress N] | chaos [--scenario NAME --rounds N --seed S --short] | chaos-seed"
            )
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Builds the release `drover` binary; its path (in `CARGO_TARGET_DIR` when set).
fn build_drover() -> Result<PathBuf> {
    let root = root();
    run(Command::new("cargo")
        .args(["build", "--release", "-p", "drover"])
        .current_dir(&root))?;
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => root.join(t),
        None => root.join("target"),
    };
    Ok(target.join("release/drover"))
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

fn compose_file() -> String {
    // Ten chains of three (a <- b <- c): dependencies limit concurrency, as in real stacks.
    let mut s = String::from("services:\n");
    for i in 0..SERVICES {
        s.push_str(&format!(
            "  svc{i:02}:\n    image: drover-test/app:1\n    environment:\n      NAME: svc{i:02}\n    stop_grace_period: 1s\n"
        ));
        if i % 3 != 0 {
            s.push_str(&format!("    depends_on:\n      - svc{:02}\n", i - 1));
        }
    }
    s
}

struct Up {
    child: Child,
    url: String,
    token: String,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_up(drover: &Path, dir: &Path) -> Result<Up> {
    let mut child = Command::new(drover)
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .env("DROVER_CONFIG", dir.join("cli.json"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let (mut url, mut token) = (String::new(), String::new());
    for line in lines.by_ref() {
        let line = line?;
        if let Some(u) = line.strip_prefix("Drover is listening on ") {
            url = u.to_string();
        }
        if let Some(t) = line.strip_prefix("admin token (shown once, stored only as a hash): ") {
            token = t.to_string();
        }
        if line == "ready" {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    if token.is_empty() {
        bail!("drover up did not print a token");
    }
    Ok(Up { child, url, token })
}

fn rss_kb(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS")
}

fn count_containers(label: &str) -> Result<usize> {
    Ok(
        run(Command::new("docker").args(["ps", "-aq", "--filter", label]))?
            .lines()
            .count(),
    )
}

fn wait_gone(label: &str) -> Result<()> {
    let start = Instant::now();
    while count_containers(label)? > 0 {
        if start.elapsed() > Duration::from_secs(120) {
            bail!("containers with {label} did not go away");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn bench_deploy(runs: usize) -> Result<()> {
    let drover = build_drover()?;
    run(Command::new("docker").args(["image", "inspect", "drover-test/app:1"]))
        .context("test image missing: run scripts/build-test-images.sh")?;
    let compose_version = run(Command::new("docker-compose").arg("version").arg("--short"))
        .context("docker-compose missing: apt-get install docker-compose")?;

    let dir = std::env::temp_dir().join(format!("drover-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("docker-compose.yml");
    std::fs::write(&file, compose_file())?;
    let up = start_up(&drover, &dir)?;
    let cli = |args: &[&str]| -> Result<String> {
        run(Command::new(&drover)
            .args(args)
            .env("DROVER_URL", &up.url)
            .env("DROVER_TOKEN", &up.token))
    };
    let file_s = file.to_string_lossy().to_string();
    let (mut d_times, mut c_times) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let t = Instant::now();
        cli(&["stack", "deploy", "-f", &file_s, "-p", "benchdrover"])?;
        let d = t.elapsed().as_secs_f64();
        if count_containers("label=io.drover.stack=benchdrover")? != SERVICES {
            bail!("drover did not create {SERVICES} containers");
        }
        cli(&["stack", "rm", "benchdrover"])?;
        wait_gone("label=io.drover.stack=benchdrover")?;

        let t = Instant::now();
        run(Command::new("docker-compose")
            .args(["-p", "benchcompose", "-f", &file_s, "up", "-d"])
            .current_dir(&dir))?;
        let c = t.elapsed().as_secs_f64();
        run(Command::new("docker-compose")
            .args(["-p", "benchcompose", "-f", &file_s, "down", "-t", "1"])
            .current_dir(&dir))?;
        wait_gone("label=com.docker.compose.project=benchcompose")?;
        println!("run {}: drover {d:.2}s, docker-compose {c:.2}s", i + 1);
        d_times.push(d);
        c_times.push(c);
    }
    let (d, c) = (median(&mut d_times), median(&mut c_times));
    println!(
        "deploy {SERVICES} services (median of {runs}): drover stack deploy {d:.2}s, docker-compose {} up -d {c:.2}s, ratio {:.2}x (target <= 0.8x)",
        compose_version.trim(),
        d / c
    );

    cli(&["stack", "deploy", "-f", &file_s, "-p", "benchdrover"])?;
    std::thread::sleep(Duration::from_secs(5));
    let rss = rss_kb(up.child.id())?;
    println!(
        "idle RSS of drover up with {SERVICES} containers running: {:.1} MB (target <= 50 MB)",
        rss as f64 / 1024.0
    );
    cli(&["stack", "rm", "benchdrover"])?;
    wait_gone("label=io.drover.stack=benchdrover")?;
    drop(up);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn bench_hostile() -> Result<()> {
    let mut bomb = String::from("x-l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*l{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("x-l{i}: &l{i} [{refs}]\n"));
    }
    bomb.push_str("services:\n  web:\n    image: nginx\n    x-boom: *l9\n");
    let deep_flow = format!("services: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let deep_map = format!(
        "services: {}1{}\n",
        "{a: ".repeat(10_000),
        "}".repeat(10_000)
    );
    let flat = format!("x-many: [{}]\nservices: {{}}\n", "1,".repeat(1_900_000));
    let oversized = "#".repeat(compose::MAX_FILE_BYTES + 1);
    let cases = [
        ("alias bomb (10^9 nodes)", bomb),
        ("10,000-deep flow nesting", deep_flow),
        ("10,000-deep mapping nesting", deep_map),
        ("1.9M scalars, 3.8 MB", flat),
        ("over the 4 MiB size cap", oversized),
    ];
    let vars = std::collections::BTreeMap::new();
    let before = peak_rss_kb();
    println!("peak RSS before: {:.1} MB", before as f64 / 1024.0);
    for (name, text) in cases {
        let start = Instant::now();
        let result = compose::load(&compose::Input {
            file_name: "evil.yml",
            text: &text,
            project_name: Some("evil"),
            default_name: "evil",
            variables: &vars,
            profiles: &[],
            base_dir: None,
            files: &compose::NoFiles,
            overrides: &[],
        });
        let took = start.elapsed();
        let outcome = match result {
            Ok(_) => "ACCEPTED (should be refused)".to_string(),
            Err(e) => e.message,
        };
        println!(
            "{name:<28} refused in {:>7.2} ms, peak RSS {:>6.1} MB: {outcome}",
            took.as_secs_f64() * 1000.0,
            peak_rss_kb() as f64 / 1024.0
        );
    }
    Ok(())
}

/// 5,000 hosts: 4-32 cores, 16-128 GiB, region eu/us/ap, disk ssd/hdd (a fixed pattern, no
/// randomness, so runs compare).
fn bench_hosts(n: usize) -> Vec<scheduler::Host> {
    (0..n)
        .map(|i| {
            let cores = [4u64, 8, 16, 32][i % 4];
            let mem_gib = [16u64, 32, 64, 128][(i / 4) % 4];
            let region = ["eu", "us", "ap"][i % 3];
            let disk = if i % 5 < 2 { "ssd" } else { "hdd" };
            scheduler::Host {
                id: format!("host-{i:05}"),
                hostname: format!("node{i:05}"),
                labels: [("region", region), ("disk", disk)]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                cpu_milli: cores * 1000,
                memory: mem_gib << 30,
                schedulable: true,
            }
        })
        .collect()
}

fn bench_groups(services: usize, replicas: u32, constrained_every: usize) -> Vec<scheduler::Group> {
    (0..services)
        .map(|i| {
            let constraints = if i % constrained_every == 0 {
                let c = if i % 2 == 0 {
                    "node.labels.region == eu"
                } else {
                    "node.labels.disk == ssd"
                };
                scheduler::parse_constraint(c).into_iter().collect()
            } else {
                Vec::new()
            };
            scheduler::Group {
                key: format!("default/bench/svc{i:04}"),
                slots: (1..=replicas).collect(),
                cpu_milli: 10,
                memory: 16 << 20,
                constraints,
                ..Default::default()
            }
        })
        .collect()
}

fn bench_scheduler() -> Result<()> {
    let shapes: [(&str, usize, usize, u32); 2] = [
        (
            "C1M: 5,000 hosts, 1,000 services x 1,000 replicas, 15% constrained",
            5_000,
            1_000,
            1_000,
        ),
        (
            "SchedulingBasic: 5,000 nodes, 50,000 pods",
            5_000,
            50,
            1_000,
        ),
    ];
    for (name, hosts, services, replicas) in shapes {
        let snap = scheduler::Snapshot {
            hosts: bench_hosts(hosts),
            ..Default::default()
        };
        // C1M: one in 7 services constrained (~14-15 %); SchedulingBasic: none.
        let every = if services >= 1_000 { 7 } else { usize::MAX };
        let groups = bench_groups(services, replicas, every);
        let rss_before = peak_rss_kb();
        let start = Instant::now();
        let plan = scheduler::schedule(&snap, &groups, scheduler::Strategy::Spread, 42);
        let took = start.elapsed().as_secs_f64();
        let placed = plan.placed.len();
        println!(
            "{name}: {placed} placed, {} pending in {took:.2}s = {:.0} placements/s (target >= 50,000/s); peak RSS {:.0} MB (+{:.0} MB)",
            plan.pending.len(),
            placed as f64 / took,
            peak_rss_kb() as f64 / 1024.0,
            peak_rss_kb().saturating_sub(rss_before) as f64 / 1024.0
        );
    }
    Ok(())
}
