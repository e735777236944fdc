//! Runs the ingress proxy from a JSON `ingress::Table` file (for benchmarks and trying it):
//!
//! ```text
//! cargo run --release -p proxy --example serve -- \
//!     --http 127.0.0.1:8080 --https 127.0.0.1:8443 --table table.json \
//!     [--tcp-ip 127.0.0.1] [--threads N | --multi-thread N]
//! ```
//!
//! `--threads N` (default: the number of CPUs): `proxy::Workers`, N threads each with a
//! current-thread runtime and its own listeners. `--multi-thread N`: one `proxy::Proxy` on
//! one multi-thread runtime with N worker threads (to compare).
//!
//! Prints `ready` once it listens. SIGHUP reads the table file again; Ctrl-C (or SIGTERM)
//! stops it, letting requests in flight finish for up to 5 s. Logs go to stderr
//! (`RUST_LOG`, default `warn`).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use proxy::{Config, Proxy, Workers};
use tokio::signal::unix::{SignalKind, signal};

struct Args {
    cfg: Config,
    table: PathBuf,
    threads: Option<usize>,
    multi_thread: Option<usize>,
}

const USAGE: &str = "usage: serve --http ADDR --https ADDR --table FILE [--tcp-ip IP] [--threads N | --multi-thread N]";

fn args() -> Result<Args, String> {
    let mut cfg = Config::default();
    let (mut http, mut https, mut table) = (None, None, None);
    let (mut threads, mut multi_thread) = (None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--http" => http = Some(addr(&value()?)?),
            "--https" => https = Some(addr(&value()?)?),
            "--table" => table = Some(PathBuf::from(value()?)),
            "--tcp-ip" => {
                let v = value()?;
                cfg.tcp_ip = v
                    .parse::<IpAddr>()
                    .map_err(|e| format!("--tcp-ip {v}: {e}"))?;
            }
            "--threads" | "--multi-thread" => {
                let v = value()?;
                let n = v.parse().map_err(|e| format!("{flag} {v}: {e}"))?;
                if flag == "--threads" {
                    threads = Some(n);
                } else {
                    multi_thread = Some(n);
                }
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    cfg.http = http.ok_or(USAGE)?;
    cfg.https = https.ok_or(USAGE)?;
    Ok(Args {
        cfg,
        table: table.ok_or(USAGE)?,
        threads,
        multi_thread,
    })
}

fn addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|e| format!("{s}: {e}"))
}

fn read_table(path: &Path) -> Result<ingress::Table, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn main() -> ExitCode {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // The proxy's own runtime (--multi-thread), else one for signals beside the workers.
    let runtime = match args.multi_thread {
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// One proxy on the multi-thread runtime, or workers.
enum Serving {
    One(Proxy),
    Workers(Workers),
}

impl Serving {
    fn update(&self, table: ingress::Table) -> Vec<proxy::Error> {
        match self {
            Serving::One(p) => p.update(table),
            Serving::Workers(w) => w.update(table),
        }
    }

    async fn shutdown(self, grace: Duration) {
        match self {
            Serving::One(p) => p.shutdown(grace).await,
            Serving::Workers(w) => w.shutdown(grace).await,
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let table = read_table(&args.table)?;
    let proxy = match args.multi_thread {
        Some(_) => Serving::One(Proxy::start(args.cfg).await.map_err(|e| e.to_string())?),
        None => {
            let n = args.threads.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
            });
            Serving::Workers(Workers::start(args.cfg, n).map_err(|e| e.to_string())?)
        }
    };
    for problem in proxy.update(table) {
        eprintln!("table: {problem}");
    }
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    println!("ready");
    loop {
        tokio::select! {
            _ = hup.recv() => match read_table(&args.table) {
                Ok(table) => {
                    for problem in proxy.update(table) {
                        eprintln!("table: {problem}");
                    }
                    eprintln!("table reloaded");
                }
                Err(e) => eprintln!("table not reloaded: {e}"),
            },
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    proxy.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
