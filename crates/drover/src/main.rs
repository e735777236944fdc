//! `drover`: the one binary. `drover up` runs server + local agent + embedded store in one
//! process; `drover server` and `drover agent` run the halves separately; every other
//! subcommand is a client of the REST API (crate `cli`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "drover",
    version,
    about = "Run multi-container applications across a fleet of Docker hosts"
)]
struct Cli {
    #[command(flatten)]
    conn: cli::cmd::Conn,
    #[command(subcommand)]
    cmd: Top,
}

#[derive(Subcommand)]
enum Top {
    /// Start server, local agent and embedded store in one process (the quick start)
    Up(ServerArgs),
    /// Start the control plane only
    Server(ServerArgs),
    /// Start a host agent that connects to a server
    Agent(AgentArgs),
    #[command(flatten)]
    Client(cli::Command),
}

#[derive(Args)]
struct ServerArgs {
    /// Address for the REST API and agent connections
    #[arg(long, default_value = "127.0.0.1:7480")]
    listen: SocketAddr,
    /// Where the store lives [default: the user's data dir, e.g. ~/.local/share/drover]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Seconds without word from a host's agent before the host is down and its containers
    /// are replaced elsewhere
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..=3600))]
    down_after: u64,
}

#[derive(Args)]
struct AgentArgs {
    /// Server URL, e.g. http://10.0.0.5:7480
    #[arg(long, env = "DROVER_SERVER")]
    server: String,
    /// Registration token
    #[arg(long, env = "DROVER_AGENT_TOKEN", hide_env_values = true)]
    token: String,
    /// Where the agent keeps its host id [default: the user's data dir, drover-agent]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Host label (repeatable), e.g. --label region=eu
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("label must be KEY=VALUE, got {s:?}")),
    }
}

fn default_data_dir(name: &str) -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join(name)
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("drover: cannot start runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(async move {
        match cli.cmd {
            Top::Up(args) => report(serve(args, true).await),
            Top::Server(args) => report(serve(args, false).await),
            Top::Agent(args) => report(agent(args).await),
            Top::Client(cmd) => {
                init_logging("warn");
                match cli::run(cmd, cli.conn).await {
                    Ok(()) => 0,
                    Err(f) => {
                        eprintln!("drover: {f}");
                        f.code
                    }
                }
            }
        }
    });
    std::process::exit(code);
}

fn report(r: anyhow::Result<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("drover: {e:#}");
            1
        }
    }
}

async fn serve(args: ServerArgs, with_agent: bool) -> anyhow::Result<()> {
    init_logging("info");
    let data_dir = args.data_dir.unwrap_or_else(|| default_data_dir("drover"));
    let started = server::start(server::Config {
        listen: args.listen,
        data_dir: data_dir.clone(),
        timing: server::scheduling::Timing {
            down_after_ms: args.down_after * 1000,
            ..Default::default()
        },
    })
    .await?;
    let mut addr = started.addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{addr}");
    println!("Drover is listening on {url}");
    println!("data directory: {}", data_dir.display());
    match &started.new_admin_token {
        Some(token) => {
            println!("admin token (shown once, stored only as a hash): {token}");
            let path = cli::config::save(&cli::config::CliConfig {
                url: url.clone(),
                token: token.clone(),
            })
            .context("writing the CLI config")?;
            println!(
                "CLI config written to {} (drover commands need no flags)",
                path.display()
            );
        }
        None => {
            // Keep the CLI config pointing at this server if it holds one of our tokens.
            if let Some(mut cfg) = cli::config::load() {
                let known = started
                    .state
                    .store()
                    .token(&server::hash_token(&cfg.token))
                    .ok()
                    .flatten()
                    .is_some();
                if known && cfg.url != url {
                    cfg.url = url.clone();
                    cli::config::save(&cfg).context("updating the CLI config")?;
                }
                if known {
                    println!("admin token: in {}", cli::config::path().display());
                }
            }
        }
    }
    if with_agent {
        let token = started.state.issue_ephemeral_agent_token();
        let cfg = agent::Config {
            server: url.clone(),
            token,
            data_dir: data_dir.join("agent"),
            labels: BTreeMap::new(),
        };
        tokio::spawn(async move {
            if let Err(e) = agent::run(cfg).await {
                tracing::error!("local agent stopped: {e}");
            }
        });
    }
    println!("ready");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    init_logging("info");
    agent::run(agent::Config {
        server: args.server,
        token: args.token,
        data_dir: args
            .data_dir
            .unwrap_or_else(|| default_data_dir("drover-agent")),
        labels: args.labels.into_iter().collect(),
    })
    .await?;
    Ok(())
}
