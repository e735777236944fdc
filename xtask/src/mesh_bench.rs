//! `bench-mesh`: the network across hosts on two namespace hosts (scripts/cluster.sh), in one
//! run, interleaved rounds:
//! - TCP throughput (iperf3, 5 s) and round trip (ping, 200 × 10 ms) over the plain host link,
//!   over Debian's wireguard-go between the same two namespaces, and between two containers
//!   on the two hosts over Drover's mesh (the tools run in the containers' network namespaces);
//! - DNS answers/s and latency from one container: through the engine's resolver (what
//!   applications see) and straight to the mesh DNS;
//! - the time from a container starting on host 2 to its name answering on host 1.
//!
//! Needs root, iproute2, dockerd, iperf3, iputils-ping, wireguard-go and wireguard-tools.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};

use crate::hosts::{Hosts, in_ns};
use crate::run;

const ROUNDS: usize = 3;

/// The hosts, and wireguard-go's devices removed before they go.
struct Bench {
    hosts: Hosts,
}

impl Drop for Bench {
    fn drop(&mut self) {
        for i in 1..=2 {
            let _ = Command::new("ip")
                .args(["netns", "exec", &format!("drvh{i}"), "ip", "link", "del"])
                .arg(format!("wgb{i}"))
                .status();
        }
    }
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// iperf3 from `client` to `server_ip` served in `server`: Mbit/s received.
fn iperf(server: &str, client: &str, server_ip: &str) -> Result<f64> {
    let mut srv = in_ns(server, "iperf3")
        .args(["-s", "-1", "-B", server_ip])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(300));
    let out = run(in_ns(client, "iperf3").args(["-c", server_ip, "-t", "5", "-J"]));
    let _ = srv.kill();
    let _ = srv.wait();
    let v: serde_json::Value = serde_json::from_str(&out?)?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|b| b / 1e6)
        .context("iperf3 gave no throughput")
}

/// Average round trip of 200 pings 10 ms apart, ms.
fn rtt(client: &str, ip: &str) -> Result<f64> {
    let out = run(in_ns(client, "ping").args(["-c", "200", "-i", "0.01", "-q", ip]))?;
    let line = out
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .context("ping gave no summary")?;
    let stats = line.split('=').nth(1).context("ping summary")?;
    stats
        .trim()
        .split('/')
        .nth(1)
        .and_then(|v| v.parse().ok())
        .context("ping average")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Brings up wireguard-go between the two namespaces (wgb1 10.99.0.1, wgb2 10.99.0.2).
fn wireguard_go(b: &mut Bench) -> Result<()> {
    let key = |_: usize| -> Result<(String, String)> {
        let private = run(Command::new("wg").arg("genkey"))?.trim().to_string();
        let mut p = Command::new("wg")
            .arg("pubkey")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        std::io::Write::write_all(p.stdin.as_mut().context("stdin")?, private.as_bytes())?;
        let out = p.wait_with_output()?;
        Ok((
            private,
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        ))
    };
    let keys = [key(1)?, key(2)?];
    for i in 1..=2usize {
        let ns = format!("drvh{i}");
        let dev = format!("wgb{i}");
        let child = in_ns(&ns, "wireguard-go")
            .args(["-f", &dev])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        b.hosts.children.push(child);
        std::thread::sleep(Duration::from_millis(300));
        let keyfile = b.hosts.dir.join(format!("wg{i}.key"));
        std::fs::write(&keyfile, &keys[i - 1].0)?;
        let other = 3 - i;
        run(in_ns(&ns, "wg").args([
            "set",
            &dev,
            "listen-port",
            &format!("5190{i}"),
            "private-key",
            &keyfile.to_string_lossy(),
            "peer",
            &keys[other - 1].1,
            "endpoint",
            &format!("10.77.0.1{other}:5190{other}"),
            "allowed-ips",
            &format!("10.99.0.{other}/32"),
        ]))?;
        run(in_ns(&ns, "ip").args(["addr", "add", &format!("10.99.0.{i}/24"), "dev", &dev]))?;
        run(in_ns(&ns, "ip").args(["link", "set", &dev, "mtu", "1420", "up"]))?;
    }
    Ok(())
}

pub fn bench(drover: &Path) -> Result<()> {
    for tool in ["iperf3", "ping", "wireguard-go", "wg", "nsenter"] {
        run(Command::new("sh").args(["-c", &format!("command -v {tool}")])).with_context(|| {
            format!(
                "{tool} missing: apt-get install iperf3 iputils-ping wireguard-go wireguard-tools"
            )
        })?;
    }
    let mut b = Bench {
        hosts: Hosts::up("bench-mesh", 2, &["drover-test/app:1"])?,
    };
    b.hosts.start_server(drover)?;
    b.hosts.start_agents(drover)?;
    let dir = b.hosts.dir.clone();
    let app = "    image: drover-test/app:1\n    stop_grace_period: 1s\n";
    let two = format!(
        "services:\n  a:\n{app}    deploy:\n      placement:\n        constraints: [node.labels.bench == h1]\n  b:\n{app}    deploy:\n      placement:\n        constraints: [node.labels.bench == h2]\n"
    );
    let file = dir.join("bench.yml");
    std::fs::write(&file, &two)?;
    b.hosts.cli(
        drover,
        &[
            "stack",
            "deploy",
            "-f",
            &file.to_string_lossy(),
            "-p",
            "bench",
        ],
    )?;
    let pid_a = b
        .hosts
        .docker(1, &["inspect", "-f", "{{.State.Pid}}", "bench-a-1"])?;
    let pid_b = b
        .hosts
        .docker(2, &["inspect", "-f", "{{.State.Pid}}", "bench-b-1"])?;
    let ip_b = b.hosts.docker(
        2,
        &[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            "bench-b-1",
        ],
    )?;
    wireguard_go(&mut b)?;

    let (a, bb) = (format!("pid:{pid_a}"), format!("pid:{pid_b}"));
    // The tunnel alone, host to host: the mesh admits nothing but probes to a host, so the
    // bench opens iperf3's port on host 2's tunnel for its run.
    run(in_ns("drvh2", "iptables").args([
        "-w", "-I", "INPUT", "-i", "drover0", "-p", "tcp", "--dport", "5201", "-j", "ACCEPT",
    ]))?;
    let mesh_2 = run(
        Command::new("ip").args(["-n", "drvh2", "-4", "-o", "addr", "show", "dev", "drover0"])
    )?
    .split_whitespace()
    .skip_while(|w| *w != "inet")
    .nth(1)
    .and_then(|a| a.split('/').next())
    .context("host 2 has no mesh address")?
    .to_string();
    let paths: [(&str, &str, &str, &str); 4] = [
        ("plain host link", "drvh2", "drvh1", "10.77.0.12"),
        ("wireguard-go", "drvh2", "drvh1", "10.99.0.2"),
        ("drover mesh (hosts)", "drvh2", "drvh1", &mesh_2),
        ("drover mesh (containers)", &bb, &a, &ip_b),
    ];
    let mut tput = vec![Vec::new(); paths.len()];
    let mut lat = vec![Vec::new(); paths.len()];
    for round in 0..ROUNDS {
        for (i, (name, server, client, ip)) in paths.iter().enumerate() {
            let t = iperf(server, client, ip)?;
            let r = rtt(client, ip)?;
            eprintln!("round {}: {name}: {t:.0} Mbit/s, rtt {r:.3} ms", round + 1);
            tput[i].push(t);
            lat[i].push(r);
        }
    }
    let t: Vec<f64> = tput.into_iter().map(median).collect();
    let l: Vec<f64> = lat.into_iter().map(median).collect();
    println!(
        "\nTCP between two hosts (median of {ROUNDS} interleaved rounds; iperf3 5 s, ping 200 x 10 ms)"
    );
    println!("{:<26} {:>14} {:>12}", "path", "throughput", "rtt avg");
    for (i, (name, ..)) in paths.iter().enumerate() {
        println!("{:<26} {:>9.0} Mbit/s {:>9.3} ms", name, t[i], l[i]);
    }
    println!(
        "mesh / wireguard-go throughput, host to host: {:.2}x, container to container: {:.2}x (target >= 1.00)",
        t[2] / t[1],
        t[3] / t[1]
    );
    println!(
        "latency the mesh adds to the host link: host to host {:.3} ms, container to container {:.3} ms (target <= 0.200); wireguard-go adds {:.3} ms",
        l[2] - l[0],
        l[3] - l[0],
        l[1] - l[0]
    );

    // DNS from container a: through the engine's resolver, and straight to the mesh DNS.
    let mesh_dns = b.hosts.docker(
        1,
        &["inspect", "-f", "{{index .HostConfig.Dns 0}}", "bench-a-1"],
    )?;
    let me = std::env::current_exe()?;
    for (what, server) in [
        (
            "engine resolver 127.0.0.11 (what applications see)",
            "127.0.0.11:53".to_string(),
        ),
        ("mesh DNS directly", format!("{mesh_dns}:53")),
    ] {
        let out = run(in_ns(&a, &me.to_string_lossy()).args(["dns-load", &server, "b", "5", "4"]))?;
        println!("DNS from a container, {what}: {}", out.trim());
    }

    // A new container on host 2; how long until its name answers on host 1.
    let three = format!(
        "{two}  c:\n{app}    deploy:\n      placement:\n        constraints: [node.labels.bench == h2]\n"
    );
    std::fs::write(&file, &three)?;
    let waiter = in_ns(&a, &me.to_string_lossy())
        .args(["dns-wait", &format!("{mesh_dns}:53"), "c", "30"])
        .stdout(Stdio::piped())
        .spawn()?;
    b.hosts.cli(
        drover,
        &[
            "stack",
            "deploy",
            "-f",
            &file.to_string_lossy(),
            "-p",
            "bench",
        ],
    )?;
    let started = b
        .hosts
        .docker(2, &["inspect", "-f", "{{.State.StartedAt}}", "bench-c-1"])?;
    let started_ms = humantime::parse_rfc3339(&started)
        .with_context(|| format!("StartedAt {started}"))?
        .duration_since(UNIX_EPOCH)?
        .as_secs_f64()
        * 1000.0;
    let out = waiter.wait_with_output()?;
    let answered_ms: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("dns-wait gave no time")?;
    println!(
        "name propagation: a container started on host 2 answered by name on host 1 after {:.0} ms (target 2,000 ms)",
        answered_ms - started_ms
    );
    Ok(())
}

/// A DNS query for `name`'s A records.
pub fn query(name: &str) -> Result<Vec<u8>> {
    let mut q = Message::query();
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(Name::from_ascii(name)?, RecordType::A));
    Ok(q.to_vec()?)
}

/// `dns-load SERVER NAME SECONDS THREADS`: queries NAME at SERVER from THREADS threads, one
/// at a time each, for SECONDS; prints answers/s and latency percentiles.
pub fn dns_load(args: &[String]) -> Result<()> {
    let server: SocketAddr = args.first().context("server")?.parse()?;
    let name = args.get(1).context("name")?.clone();
    let secs: u64 = args.get(2).context("seconds")?.parse()?;
    let threads: usize = args.get(3).context("threads")?.parse()?;
    let packet = query(&name)?;
    let until = Instant::now() + Duration::from_secs(secs);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let packet = packet.clone();
            std::thread::spawn(move || -> Result<(Vec<u32>, u64)> {
                let sock = UdpSocket::bind("0.0.0.0:0")?;
                sock.connect(server)?;
                sock.set_read_timeout(Some(Duration::from_secs(1)))?;
                let (mut lat, mut failed) = (Vec::new(), 0u64);
                let mut buf = [0u8; 2048];
                while Instant::now() < until {
                    let t = Instant::now();
                    sock.send(&packet)?;
                    match sock.recv(&mut buf) {
                        Ok(n)
                            if Message::from_vec(&buf[..n])
                                .is_ok_and(|m| !m.answers.is_empty()) =>
                        {
                            lat.push(t.elapsed().as_micros() as u32);
                        }
                        _ => failed += 1,
                    }
                }
                Ok((lat, failed))
            })
        })
        .collect();
    let (mut lat, mut failed) = (Vec::new(), 0);
    for h in handles {
        let (l, f) = h
            .join()
            .map_err(|_| anyhow::anyhow!("dns thread panicked"))??;
        lat.extend(l);
        failed += f;
    }
    if lat.is_empty() {
        bail!("no answers for {name} from {server}");
    }
    lat.sort_unstable();
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
    println!(
        "{:.0} answers/s ({} threads), p50 {} us, p99 {} us, {failed} unanswered",
        lat.len() as f64 / secs as f64,
        threads,
        p(0.5),
        p(0.99)
    );
    Ok(())
}

/// `dns-wait SERVER NAME TIMEOUT`: asks every 5 ms until NAME has an address; prints when
/// (ms since the epoch).
pub fn dns_wait(args: &[String]) -> Result<()> {
    let server: SocketAddr = args.first().context("server")?.parse()?;
    let name = args.get(1).context("name")?;
    let timeout: u64 = args.get(2).context("timeout")?.parse()?;
    let packet = query(name)?;
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    sock.connect(server)?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let until = Instant::now() + Duration::from_secs(timeout);
    let mut buf = [0u8; 2048];
    while Instant::now() < until {
        sock.send(&packet)?;
        if let Ok(n) = sock.recv(&mut buf)
            && Message::from_vec(&buf[..n]).is_ok_and(|m| !m.answers.is_empty())
        {
            println!("{:.1}", now_ms());
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    bail!("{name} never answered")
}
