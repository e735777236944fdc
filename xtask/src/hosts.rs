//! Namespace hosts for the benchmarks that need several engines (`bench-mesh`,
//! `bench-roll`, `bench-secrets`): `scripts/cluster.sh` hosts, each with its own dockerd, a
//! `drover server` on the bridge and one agent per namespace. Everything started is stopped
//! when the [`Hosts`] value is dropped, on error too.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{root, run};

/// The bridge `scripts/cluster.sh` makes (its names are fixed).
const BRIDGE: &str = "drvbr0";

pub struct Hosts {
    pub dir: PathBuf,
    pub n: usize,
    /// Processes started (server, agents, helpers), stopped by PID on drop.
    pub children: Vec<Child>,
    pub url: String,
    pub token: String,
    /// Keep the directory (logs) when done; a bench clears it once it succeeded.
    pub keep: bool,
    /// The engines form a Docker swarm ([`Hosts::init_swarm`]), left before they stop.
    pub swarm: bool,
}

impl Drop for Hosts {
    fn drop(&mut self) {
        if self.swarm {
            for i in (1..=self.n).rev() {
                let _ = self.docker(i, &["swarm", "leave", "--force"]);
            }
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new(root().join("scripts/cluster.sh"))
            .args(["down", &self.n.to_string()])
            .arg(self.dir.join("hosts"))
            .status();
        let dir = self.dir.to_string_lossy().to_string();
        let mounted = std::fs::read_to_string("/proc/mounts").is_ok_and(|m| m.contains(&dir));
        if self.keep || mounted {
            eprintln!("logs and state kept in {dir}");
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Hosts {
    /// `n` namespace hosts under a fresh temporary directory named after `what`, with the
    /// local engine's `images` loaded into each. Refuses to run while another cluster of
    /// `scripts/cluster.sh` is up (its names are fixed, and `up` tears down what is there).
    pub fn up(what: &str, n: usize, images: &[&str]) -> Result<Hosts> {
        if Command::new("ip")
            .args(["link", "show", BRIDGE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            bail!(
                "{BRIDGE} exists: another scripts/cluster.sh cluster is up (an e2e test?); run again when it is gone"
            );
        }
        let dir = std::env::temp_dir().join(format!("drover-{what}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let hosts = Hosts {
            dir,
            n,
            children: Vec::new(),
            url: String::new(),
            token: String::new(),
            keep: true,
            swarm: false,
        };
        run(Command::new(root().join("scripts/cluster.sh"))
            .args(["up", &n.to_string()])
            .arg(hosts.dir.join("hosts"))
            .env("CLUSTER_IMAGES", images.join(" ")))?;
        Ok(hosts)
    }

    /// Host `i`'s engine socket.
    pub fn sock(&self, i: usize) -> PathBuf {
        self.dir.join(format!("hosts/h{i}/docker.sock"))
    }

    /// The docker CLI against host `i`'s engine; trimmed stdout.
    pub fn docker(&self, i: usize, args: &[&str]) -> Result<String> {
        Ok(run(Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.sock(i).display()))
            .args(args))?
        .trim()
        .to_string())
    }

    /// A Docker swarm of the engines, the reference of the benches: host 1's engine inits it
    /// (advertising 10.77.0.11), the others join as workers. It is left on drop.
    pub fn init_swarm(&mut self) -> Result<()> {
        self.swarm = true;
        self.docker(1, &["swarm", "init", "--advertise-addr", "10.77.0.11"])?;
        let token = self.docker(1, &["swarm", "join-token", "-q", "worker"])?;
        for i in 2..=self.n {
            self.docker(
                i,
                &[
                    "swarm",
                    "join",
                    "--token",
                    &token,
                    "--advertise-addr",
                    &format!("10.77.0.1{i}"),
                    "10.77.0.11:2377",
                ],
            )?;
        }
        Ok(())
    }

    /// A `drover` client command against the server.
    pub fn cli(&self, drover: &Path, args: &[&str]) -> Result<String> {
        run(Command::new(drover)
            .args(args)
            .env("DROVER_URL", &self.url)
            .env("DROVER_TOKEN", &self.token)
            .env("DROVER_CONFIG", self.dir.join("cli.json")))
    }

    /// `drover server` on the bridge address (10.77.0.1), plain HTTP, its log in the directory.
    pub fn start_server(&mut self, drover: &Path) -> Result<()> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = Command::new(drover)
            .args([
                "server",
                "--listen",
                &format!("10.77.0.1:{port}"),
                "--data-dir",
            ])
            .arg(self.dir.join("server"))
            .env("DROVER_CONFIG", self.dir.join("cli.json"))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.dir.join("server.log"))?)
            .spawn()?;
        let stdout = child.stdout.take().context("server stdout")?;
        self.children.push(child);
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        for line in lines.by_ref() {
            let line = line?;
            if let Some(url) = line.strip_prefix("Drover is listening on ") {
                self.url = url.trim().to_string();
            }
            if let Some(t) = line.split_whitespace().find(|w| w.starts_with("drv_")) {
                self.token = t.to_string();
            }
            if line.trim() == "ready" {
                // Keep reading, so the server never blocks on a full pipe.
                std::thread::spawn(move || for _ in lines {});
                return Ok(());
            }
        }
        bail!("drover server exited before ready")
    }

    /// One agent per host, in its namespace, labelled `bench=hI`; returns once every host
    /// reaches every other over the mesh.
    pub fn start_agents(&mut self, drover: &Path) -> Result<()> {
        let printed = self.cli(drover, &["host", "token", "create"])?;
        let agent_args: Vec<String> = printed
            .lines()
            .find(|l| l.starts_with("drover agent "))
            .context("no agent command printed")?
            .split_whitespace()
            .skip(1)
            .map(str::to_string)
            .collect();
        for i in 1..=self.n {
            let h = self.dir.join(format!("hosts/h{i}"));
            let log = std::fs::File::create(h.join("agent.log"))?;
            let child = in_ns(&format!("drvh{i}"), &drover.to_string_lossy())
                .args(&agent_args)
                .args(["--label", &format!("bench=h{i}"), "--data-dir"])
                .arg(h.join("agent"))
                .env(
                    "DOCKER_HOST",
                    format!("unix://{}", h.join("docker.sock").display()),
                )
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()?;
            self.children.push(child);
        }
        let peers = format!(" {0}/{0} ", self.n - 1);
        let start = Instant::now();
        while self.cli(drover, &["host", "ls"])?.matches(&peers).count() < self.n {
            if start.elapsed() > Duration::from_secs(30) {
                bail!("the hosts never reached each other over the mesh");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }
}

/// A command in a namespace (`drvhI`), or in a container's (`pid:PID`).
pub fn in_ns(target: &str, program: &str) -> Command {
    let mut c = Command::new("nsenter");
    if let Some(pid) = target.strip_prefix("pid:") {
        c.arg(format!("--net=/proc/{pid}/ns/net"));
    } else {
        c.arg(format!("--net=/var/run/netns/{target}"));
    }
    c.arg(program);
    c
}

/// Percent-encoding of a query value (the engine API's `filters`).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET path` on an engine's socket (HTTP/1.0: the engine closes when done): the JSON body.
pub fn engine_get(sock: &Path, path: &str) -> Result<serde_json::Value> {
    Ok(serde_json::from_str(&engine_body(sock, path)?)?)
}

/// `GET path` on an engine's socket (HTTP/1.0: the engine closes when done): the body of a
/// 200 answer.
pub fn engine_body(sock: &Path, path: &str) -> Result<String> {
    let mut s = UnixStream::connect(sock).with_context(|| format!("{}", sock.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n")?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("engine answer without a body")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        bail!("engine answered {}", head.lines().next().unwrap_or(""));
    }
    Ok(body.to_string())
}
