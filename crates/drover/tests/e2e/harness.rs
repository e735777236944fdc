//! End-to-end harness: runs the real `drover` binary against the real Docker engine of this
//! machine (the local socket, or `DOCKER_HOST`). Every test uses its own data directory, CLI
//! config and uniquely named stacks, and removes what it created (by stack label) on drop,
//! so tests run in parallel on one engine without touching each other or anything else.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const APP_IMAGE: &str = "drover-test/app:1";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_drover")
}

/// A name unique to this process and call, usable as a stack name.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Fails loudly when the engine or the test image is missing.
pub fn require_engine() {
    let out = Command::new("docker")
        .args(["image", "inspect", APP_IMAGE, "--format", "{{.Id}}"])
        .output()
        .expect("docker CLI runs");
    assert!(
        out.status.success(),
        "test image {APP_IMAGE} missing or engine down: run scripts/test.sh (it builds images): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI runs")
}

pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Names of the running and stopped containers of a stack, sorted.
pub fn stack_containers(stack: &str) -> Vec<String> {
    let out = docker_ok(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=io.drover.stack={stack}"),
        "--format",
        "{{.Names}}",
    ]);
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// `id started_at restart_count running` of a container.
pub fn container_state(name: &str) -> String {
    docker_ok(&[
        "inspect",
        "--format",
        "{{.Id}} {{.State.StartedAt}} {{.RestartCount}} {{.State.Running}}",
        name,
    ])
}

/// Polls `f` every 100 ms until it returns Some, or panics after `timeout` with `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A minimal HTTP GET to a loopback port; returns (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_get_at("127.0.0.1", port, path)
}

/// A minimal HTTP GET to `ip:port` (loopback, or a test namespace's address).
pub fn http_get_at(ip: &str, port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect((ip, port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// What `drover up|server` printed before "ready".
pub struct Ready {
    pub url: String,
    /// Only on the very first start.
    pub token: Option<String>,
}

/// Spawns `drover up|server` and reads its stdout up to "ready"; the rest is drained in the
/// background so the child never blocks on a full pipe. `Err` holds what it printed when it
/// exited before being ready.
pub fn spawn_ready(cmd: &mut Command) -> (Child, Result<Ready, String>) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn drover");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let (mut url, mut token, mut seen) = (String::new(), None, String::new());
    let ready = loop {
        let Some(Ok(line)) = lines.next() else {
            break false;
        };
        seen.push_str(&line);
        seen.push('\n');
        if let Some(u) = line.strip_prefix("Drover is listening on ") {
            url = u.trim().to_string();
        }
        if let Some(t) = line.strip_prefix("admin token (shown once, stored only as a hash): ") {
            token = Some(t.trim().to_string());
        }
        if line == "ready" {
            break true;
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let result = if ready {
        Ok(Ready { url, token })
    } else {
        Err(seen)
    };
    (child, result)
}

/// The arguments (after `drover`) of the `drover agent ...` command that
/// `drover host token create` printed.
pub fn printed_agent_args(out: &str) -> Vec<String> {
    let line = out
        .lines()
        .find(|l| l.starts_with("drover agent "))
        .unwrap_or_else(|| panic!("no `drover agent` command in: {out}"));
    line.split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect()
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A running Drover (`drover up`, or `server` + `agent`), with its own data dir and CLI config.
pub struct Drover {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub token: String,
    server: Option<Child>,
    agent: Option<Child>,
    /// The `drover agent` arguments `host token create` printed (made on first use).
    agent_args: Vec<String>,
    listen: String,
    stacks: Vec<String>,
    pub server_log: PathBuf,
}

impl Drover {
    /// `drover up` on a fresh data directory.
    pub fn up() -> Drover {
        require_engine();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut d = Drover {
            server_log: dir.path().join("server.log"),
            dir,
            url: String::new(),
            token: String::new(),
            server: None,
            agent: None,
            agent_args: Vec::new(),
            listen: format!("127.0.0.1:{}", free_port()),
            stacks: Vec::new(),
        };
        d.start("up");
        d
    }

    /// `drover server` alone (agents started with [`Drover::start_agent`]).
    pub fn server_only() -> Drover {
        require_engine();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut d = Drover {
            server_log: dir.path().join("server.log"),
            dir,
            url: String::new(),
            token: String::new(),
            server: None,
            agent: None,
            agent_args: Vec::new(),
            listen: format!("127.0.0.1:{}", free_port()),
            stacks: Vec::new(),
        };
        d.start("server");
        d
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("cli.json")
    }

    /// Starts `drover up|server` and waits for "ready"; learns URL and token (first start).
    pub fn start(&mut self, mode: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.server_log)
            .expect("log file");
        let mut cmd = Command::new(bin());
        cmd.args([mode, "--listen", &self.listen]);
        // Tests on the one engine of this machine run side by side: their networks stay
        // local (the mesh is tested on the cluster, one namespace per host).
        if mode == "up" {
            cmd.arg("--no-mesh");
        }
        cmd.arg("--data-dir")
            .arg(self.data_dir())
            .env("DROVER_CONFIG", self.config_path())
            .env("RUST_LOG", "info")
            .stderr(log);
        let (child, ready) = spawn_ready(&mut cmd);
        let ready = ready.unwrap_or_else(|seen| {
            panic!(
                "drover {mode} exited before ready; stdout: {seen}; log: {}",
                std::fs::read_to_string(&self.server_log).unwrap_or_default()
            )
        });
        self.url = ready.url;
        if let Some(t) = ready.token {
            self.token = t;
        }
        assert!(
            !self.token.is_empty(),
            "no admin token printed on first start"
        );
        self.server = Some(child);
    }

    pub fn start_agent(&mut self, extra_env: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))
            .expect("log file");
        if self.agent_args.is_empty() {
            self.agent_args = printed_agent_args(&self.ok(&["host", "token", "create"]));
        }
        let mut cmd = Command::new(bin());
        cmd.args(&self.agent_args)
            .arg("--no-mesh")
            .arg("--data-dir")
            .arg(self.dir.path().join("agent"))
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        self.agent = Some(cmd.spawn().expect("spawn agent"));
    }

    pub fn kill9_agent(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGKILL, the way a crash or an OOM kill ends the process.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Records a stack name for cleanup.
    pub fn track(&mut self, stack: &str) {
        self.stacks.push(stack.to_string());
    }

    pub fn cli(&self, args: &[&str]) -> Run {
        self.cli_in(Path::new("."), args)
    }

    pub fn cli_in(&self, cwd: &Path, args: &[&str]) -> Run {
        let out = Command::new(bin())
            .args(args)
            .current_dir(cwd)
            .env("DROVER_URL", &self.url)
            .env("DROVER_TOKEN", &self.token)
            .env("DROVER_CONFIG", self.config_path())
            .output()
            .expect("run drover CLI");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    }

    /// Runs the CLI as someone else: their own CLI config (`drover login` writes it), no
    /// admin token, `stdin` fed to it.
    pub fn cli_as(&self, config: &Path, args: &[&str], stdin: &str) -> Run {
        use std::io::Write;
        let mut child = Command::new(bin())
            .args(args)
            .env("DROVER_URL", &self.url)
            .env_remove("DROVER_TOKEN")
            .env("DROVER_CONFIG", config)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run drover CLI");
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(stdin.as_bytes());
        }
        let out = child.wait_with_output().expect("drover CLI output");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    }

    /// Runs a CLI command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.cli(args);
        assert_eq!(
            r.code,
            0,
            "drover {args:?} failed ({}):\nstdout: {}\nstderr: {}\nserver log tail: {}",
            r.code,
            r.stdout,
            r.stderr,
            self.log_tail()
        );
        r.stdout
    }

    /// The whole log of the server (and in-process agent).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.server_log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.server_log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Writes a compose file into the test dir and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write compose file");
        p
    }

    /// `drover stack deploy -f FILE -p STACK`, whatever its outcome.
    pub fn try_deploy(&self, stack: &str, file: &Path) -> Run {
        self.cli(&[
            "stack",
            "deploy",
            "-f",
            &file.to_string_lossy(),
            "-p",
            stack,
        ])
    }

    pub fn deploy(&mut self, stack: &str, file: &Path) -> String {
        self.track(stack);
        let f = file.to_string_lossy().to_string();
        self.ok(&["stack", "deploy", "-f", &f, "-p", stack, "--timeout", "90"])
    }
}

impl Drop for Drover {
    fn drop(&mut self) {
        self.kill9_agent();
        self.kill9();
        for stack in &self.stacks {
            let ids = docker(&[
                "ps",
                "-aq",
                "--filter",
                &format!("label=io.drover.stack={stack}"),
            ]);
            let ids = String::from_utf8_lossy(&ids.stdout).to_string();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f", "-v"];
                args.extend(ids);
                docker(&args);
            }
            let nets = docker(&[
                "network",
                "ls",
                "-q",
                "--filter",
                &format!("label=io.drover.stack={stack}"),
            ]);
            for n in String::from_utf8_lossy(&nets.stdout).split_whitespace() {
                docker(&["network", "rm", n]);
            }
            let vols = docker(&[
                "volume",
                "ls",
                "-q",
                "--filter",
                &format!("label=io.drover.stack={stack}"),
            ]);
            for v in String::from_utf8_lossy(&vols.stdout).split_whitespace() {
                docker(&["volume", "rm", "-f", v]);
            }
        }
    }
}

/// A raw HTTP/1.1 request to the server; returns (status, body).
pub fn api(
    url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let hostport = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(hostport).expect("connect to server");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    req.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes()).expect("send");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read");
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
