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
    Up(UpArgs),
    /// Start the control plane only
    Server(ServerArgs),
    /// Start a host agent that connects to a server
    Agent(AgentArgs),
    #[command(flatten)]
    Client(cli::Command),
}

#[derive(Args)]
struct UpArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    mesh: MeshArgs,
    #[command(flatten)]
    ingress: IngressArgs,
}

/// Where this host's ingress listens, once the host is labelled drover.ingress=true.
#[derive(Args, Clone)]
struct IngressArgs {
    /// The ingress's plain HTTP port, or IP:PORT
    #[arg(long, default_value = "80", value_name = "[IP:]PORT", value_parser = listen_addr)]
    ingress_http: SocketAddr,
    /// The ingress's HTTPS port, or IP:PORT
    #[arg(long, default_value = "443", value_name = "[IP:]PORT", value_parser = listen_addr)]
    ingress_https: SocketAddr,
}

impl IngressArgs {
    fn config(&self) -> proxy::Config {
        proxy::Config {
            http: self.ingress_http,
            https: self.ingress_https,
            tcp_ip: self.ingress_http.ip(),
        }
    }
}

/// A port (on every address) or IP:PORT.
fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    s.parse()
        .map_err(|_| format!("{s:?} is neither a port nor IP:PORT"))
}

/// How a host joins its environment's network across hosts.
#[derive(Args, Clone)]
struct MeshArgs {
    /// Keep this host's networks local: no tunnel to other hosts, no Drover DNS (names are
    /// the engine's, local containers only)
    #[arg(long)]
    no_mesh: bool,
    /// Name of the tunnel device
    #[arg(long, default_value = "drover0", value_name = "NAME")]
    mesh_interface: String,
    /// UDP port of the tunnel (WireGuard)
    #[arg(long, default_value_t = mesh::DEFAULT_PORT, value_name = "PORT")]
    mesh_port: u16,
    /// Where other hosts reach this host's tunnel, HOST or HOST:PORT [default: the address
    /// this host reaches the server from]
    #[arg(long, value_name = "HOST[:PORT]")]
    mesh_endpoint: Option<String>,
}

impl MeshArgs {
    fn config(&self) -> anyhow::Result<Option<agent::MeshConfig>> {
        if self.no_mesh {
            return Ok(None);
        }
        let name = &self.mesh_interface;
        if name.is_empty()
            || name.len() > 15
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            anyhow::bail!(
                "--mesh-interface {name:?}: a device name is 1 to 15 letters, digits, '-' or '_'"
            );
        }
        Ok(Some(agent::MeshConfig {
            interface: name.clone(),
            port: self.mesh_port,
            endpoint: self.mesh_endpoint.clone(),
        }))
    }
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
    /// Serve HTTPS with this certificate chain (PEM: the server's certificate first, the CA
    /// agents pin last) [default when --listen is not a loopback address: a CA and a
    /// certificate Drover makes and keeps in the data directory]
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS on a loopback address too (other addresses always are)
    #[arg(long)]
    tls: bool,
    /// An address agents and clients reach this server at, HOST or HOST:PORT (repeatable):
    /// it goes into the server certificate, and the first one into the printed
    /// `drover agent` command
    #[arg(long)]
    advertise: Vec<String>,
    /// The key that seals secrets, configs and registry passwords at rest (made on first
    /// start, mode 0600) [default: <data-dir>/secrets.key]
    #[arg(long)]
    secrets_key_file: Option<PathBuf>,
    /// Audit events older than this are pruned (e.g. 90d, 12h)
    #[arg(long, default_value = "90d", value_parser = duration_ms)]
    audit_retention: u64,
    /// At most this many audit events are kept (the oldest go first)
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    audit_max_rows: u64,
    /// Serve /metrics without a token (else an admin's, or a key from `apikey create --metrics`)
    #[arg(long)]
    metrics_public: bool,
    /// The ACME directory `tls: auto` certificates come from
    #[arg(long, default_value = server::acme::LETS_ENCRYPT, value_name = "URL")]
    acme_directory: String,
    /// The contact address of the ACME account
    #[arg(long, value_name = "EMAIL")]
    acme_email: Option<String>,
    /// Trust this CA (PEM) for the ACME directory's own HTTPS, e.g. a test directory's
    #[arg(long, value_name = "FILE")]
    acme_ca: Option<PathBuf>,
}

/// A duration flag in milliseconds.
fn duration_ms(s: &str) -> Result<u64, String> {
    compose::parse_duration(s).map(|ns| ns / 1_000_000)
}

#[derive(Args)]
struct AgentArgs {
    /// Server URL, e.g. https://10.0.0.5:7480
    #[arg(long, env = "DROVER_SERVER")]
    server: String,
    /// Registration token, exchanged on first connection for the host's own credential
    /// (not needed once the host has it)
    #[arg(long, env = "DROVER_AGENT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Read the registration token from a file instead ("-": standard input), so it need
    /// not appear in process listings
    #[arg(long, conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// sha256:HEX of the server's CA certificate, as `drover host token create` prints it:
    /// the agent talks to no other server [default: the one kept from the first join]
    #[arg(long, env = "DROVER_CA_HASH")]
    ca_hash: Option<String>,
    /// Where the agent keeps its host id and credential [default: the user's data dir,
    /// drover-agent]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Host label (repeatable), e.g. --label region=eu
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    #[command(flatten)]
    mesh: MeshArgs,
    #[command(flatten)]
    ingress: IngressArgs,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("label must be KEY=VALUE, got {s:?}")),
    }
}

/// A secret from a file, or from standard input for "-".
fn read_secret(path: &std::path::Path) -> anyhow::Result<String> {
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(std::io::stdin(), 4096), &mut s)
            .context("reading the token from standard input")?;
        s
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("reading the token from {}", path.display()))?
    };
    let token = text.trim().to_string();
    if token.is_empty() {
        if path.as_os_str() == "-" {
            anyhow::bail!("no token on standard input");
        }
        anyhow::bail!("no token in {}", path.display());
    }
    Ok(token)
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
            Top::Up(args) => report(serve(args.server, Some((args.mesh, args.ingress))).await),
            Top::Server(args) => report(serve(args, None).await),
            Top::Agent(args) => report(agent(args).await),
            Top::Client(cmd) => {
                init_logging("warn");
                match cli::run(cmd, cli.conn).await {
                    Ok(()) => 0,
                    Err(f) => {
                        // `drover exec` passes on its command's exit code, with nothing to say.
                        if !f.message.is_empty() {
                            eprintln!("drover: {f}");
                        }
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

/// Runs the server, and with `agent` (`drover up`) its in-process agent.
async fn serve(args: ServerArgs, agent: Option<(MeshArgs, IngressArgs)>) -> anyhow::Result<()> {
    init_logging("info");
    let with_agent = agent.is_some();
    let (mesh, ingress) = match &agent {
        Some((m, i)) => (m.config()?, i.config()),
        None => (None, proxy::Config::default()),
    };
    let data_dir = args.data_dir.unwrap_or_else(|| default_data_dir("drover"));
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => server::Tls::Files { cert, key },
        _ if args.tls || !args.listen.ip().is_loopback() => server::Tls::Auto,
        _ => server::Tls::Off,
    };
    let started = server::start(server::Config {
        listen: args.listen,
        data_dir: data_dir.clone(),
        timing: server::scheduling::Timing {
            down_after_ms: args.down_after * 1000,
            ..Default::default()
        },
        tls,
        advertise: args.advertise,
        secrets_key: args.secrets_key_file,
        audit_retention_ms: args.audit_retention,
        audit_max_rows: args.audit_max_rows,
        metrics_public: args.metrics_public,
        acme: server::acme::Config {
            directory: args.acme_directory,
            email: args.acme_email,
            ca_file: args.acme_ca,
        },
    })
    .await?;
    let mut addr = started.addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("{}://{addr}", started.scheme);
    let join = started.state.join_info();
    println!("Drover is listening on {url}");
    println!("data directory: {}", data_dir.display());
    if let Some(hash) = &join.ca_hash {
        println!("TLS: agents join with --ca-hash {hash}");
    }
    match &started.new_admin {
        Some(server::NewAdmin { token, password }) => {
            // Scripts read this line: keep it as it is. The token is the admin's API key.
            println!("admin token (shown once, stored only as a hash): {token}");
            println!("admin user: admin, password (shown once, stored only as a hash): {password}");
            let path = cli::config::save(&cli::config::CliConfig {
                url: url.clone(),
                token: token.clone(),
                ca_cert: started.ca_pem.clone(),
                env: None,
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
                if known && (cfg.url != url || cfg.ca_cert != started.ca_pem) {
                    cfg.url = url.clone();
                    cfg.ca_cert = started.ca_pem.clone();
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
            token: Some(token),
            ca_hash: join.ca_hash.clone(),
            data_dir: data_dir.join("agent"),
            labels: BTreeMap::new(),
            reclaim: true,
            mesh,
            ingress,
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
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => Some(t.trim().to_string()),
        (None, Some(path)) => Some(read_secret(path)?),
        (None, None) => None,
    };
    agent::run(agent::Config {
        server: args.server,
        token,
        ca_hash: args.ca_hash,
        data_dir: args
            .data_dir
            .unwrap_or_else(|| default_data_dir("drover-agent")),
        labels: args.labels.into_iter().collect(),
        reclaim: false,
        mesh: args.mesh.config()?,
        ingress: args.ingress.config(),
    })
    .await?;
    Ok(())
}
