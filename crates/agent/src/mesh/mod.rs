//! The host's part of the mesh: a WireGuard tunnel to every other host of the environment,
//! the route and isolation rules around it, Drover's DNS, and probes of every peer. The
//! server sends the whole mesh state ([`proto::MeshState`]) on every change; this applies it
//! idempotently, and again every few seconds, so whatever was lost (a deleted route, a
//! flushed chain) comes back by itself.

mod dns;
mod probe;
mod system;
mod tunnel;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

pub use tunnel::Tunnel;

/// How the agent joins the mesh.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// The tunnel device's name.
    pub interface: String,
    /// UDP port the tunnel listens on.
    pub port: u16,
    /// Address peers reach this host at (default: the address this host reaches the
    /// server from).
    pub endpoint: Option<String>,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            interface: "drover0".into(),
            port: mesh::DEFAULT_PORT,
            endpoint: None,
        }
    }
}

const KEY_FILE: &str = "mesh-key";
/// How often the whole state is applied again (repairs).
const REAPPLY: Duration = Duration::from_secs(3);

pub struct Mesh {
    pub hello: proto::MeshHello,
    iface: String,
    tunnel: Tunnel,
    state: watch::Sender<Option<proto::MeshState>>,
    pub health: watch::Sender<Vec<proto::PeerHealth>>,
    names: dns::Table,
    /// Held while a network's subnet is chosen and created.
    pub alloc: tokio::sync::Mutex<()>,
    /// The server gave this host no place on the mesh (for this session): run locally.
    off: std::sync::atomic::AtomicBool,
}

impl Mesh {
    /// Makes (or loads) the host's key, starts the tunnel and works out the endpoint.
    pub async fn start(cfg: &MeshConfig, data_dir: &Path, server: &str) -> Result<Mesh, String> {
        let key_path = data_dir.join(KEY_FILE);
        let private = match std::fs::read_to_string(&key_path) {
            Ok(k) if tunnel::public_key(k.trim()).is_some() => k.trim().to_string(),
            _ => {
                let k = tunnel::new_private_key()?;
                tls::write_private(&key_path, k.as_bytes()).map_err(|e| e.to_string())?;
                k
            }
        };
        let public_key = tunnel::public_key(&private).ok_or("bad mesh key")?;
        let endpoint = endpoint(cfg, server).await?;
        let tunnel = Tunnel::start(&cfg.interface, &private, cfg.port)?;
        Ok(Mesh {
            hello: proto::MeshHello {
                public_key,
                endpoint,
            },
            iface: cfg.interface.clone(),
            tunnel,
            state: watch::channel(None).0,
            health: watch::channel(Vec::new()).0,
            names: Arc::new(RwLock::new(mesh::Names::default())),
            alloc: tokio::sync::Mutex::new(()),
            off: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// This host's place, once the server has sent it.
    pub fn place(&self) -> Option<mesh::Place> {
        self.state.borrow().as_ref().map(|s| s.place)
    }

    pub fn set_state(&self, s: proto::MeshState) {
        self.off.store(false, std::sync::atomic::Ordering::Relaxed);
        self.state.send_replace(Some(s));
    }

    /// The server gave no place: networks stay local until it gives one.
    pub fn set_off(&self, reason: &str) {
        if !self.off.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!("{reason}");
        }
    }

    /// Whether this host runs on the mesh now.
    pub fn on(&self) -> bool {
        !self.off.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Applies the mesh state on every change and every few seconds, forever.
    pub async fn run(self: Arc<Self>) {
        let mut rx = self.state.subscribe();
        let peers_tx = watch::channel(BTreeMap::<String, Ipv4Addr>::new()).0;
        let mut serving: Option<(Ipv4Addr, Vec<tokio::task::JoinHandle<()>>)> = None;
        let mut last_names: Option<Vec<mesh::Entry>> = None;
        let mut last_allows: Option<Vec<mesh::Allow>> = None;
        let mut last_error = String::new();
        loop {
            let current = rx.borrow_and_update().clone();
            if let Some(s) = current {
                // Names change at once (a draining container must stop being answered
                // when the server says, however long the host's iptables take); when the
                // subnets allowed change too, only once the rules let the traffic through.
                let mut allows = mesh::allows(&s.host, &s.subnets, &s.names);
                allows.extend(s.ingress.iter().cloned());
                let rules_first = last_allows.as_ref() != Some(&allows);
                if !rules_first {
                    self.set_names(&s, &mut last_names);
                }
                let result = self.apply(&s, &allows).await;
                if result.is_ok() {
                    last_allows = Some(allows);
                }
                self.set_names(&s, &mut last_names);
                peers_tx.send_if_modified(|p| {
                    let wanted: BTreeMap<String, Ipv4Addr> =
                        s.peers.iter().map(|p| (p.host.clone(), p.ip)).collect();
                    let changed = *p != wanted;
                    *p = wanted;
                    changed
                });
                match result {
                    Ok(()) => {
                        if serving.as_ref().map(|(ip, _)| *ip) != Some(s.place.ip) {
                            if let Some((_, tasks)) = serving.take() {
                                tasks.iter().for_each(|t| t.abort());
                            }
                            serving = Some((s.place.ip, self.serve(s.place.ip, &peers_tx)));
                        }
                        last_error.clear();
                    }
                    Err(e) if e != last_error => {
                        tracing::warn!("mesh: {e}");
                        last_error = e;
                    }
                    Err(_) => {}
                }
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                () = tokio::time::sleep(REAPPLY) => {}
            }
        }
    }

    async fn apply(&self, s: &proto::MeshState, allows: &[mesh::Allow]) -> Result<(), String> {
        system::configure_device(&self.iface, &s.place).await?;
        self.tunnel.set_peers(&s.peers)?;
        system::apply_rules(&self.iface, &system::rules(allows, s.place.env)).await
    }

    /// Answers names as `s` says, if that changed.
    fn set_names(&self, s: &proto::MeshState, last: &mut Option<Vec<mesh::Entry>>) {
        if last.as_ref() == Some(&s.names) {
            return;
        }
        let built = mesh::Names::build(&s.names);
        if let Ok(mut n) = self.names.write() {
            *n = built;
        }
        *last = Some(s.names.clone());
    }

    /// Starts the DNS server and the prober on the mesh address.
    fn serve(
        &self,
        ip: Ipv4Addr,
        peers: &watch::Sender<BTreeMap<String, Ipv4Addr>>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let names = self.names.clone();
        let dns = tokio::spawn(async move {
            loop {
                if let Err(e) = dns::serve(ip, names.clone()).await {
                    tracing::warn!("mesh DNS on {ip}:53: {e}");
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
        let (rx, out) = (peers.subscribe(), self.health.clone());
        let probe = tokio::spawn(async move {
            loop {
                if let Err(e) = probe::run(ip, rx.clone(), out.clone()).await {
                    tracing::warn!("mesh probes on {ip}: {e}");
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
        vec![dns, probe]
    }
}

/// Where peers reach this host: the configured endpoint, else the address this host uses
/// to reach the server, else (a server on this host) the address of its default route.
async fn endpoint(cfg: &MeshConfig, server: &str) -> Result<SocketAddr, String> {
    if let Some(e) = &cfg.endpoint {
        let with_port = if e.parse::<SocketAddr>().is_ok() {
            e.clone()
        } else {
            format!("{e}:{}", cfg.port)
        };
        return tokio::net::lookup_host(&with_port)
            .await
            .map_err(|err| format!("--mesh-endpoint {e}: {err}"))?
            .find(SocketAddr::is_ipv4)
            .ok_or_else(|| format!("--mesh-endpoint {e}: no IPv4 address"));
    }
    let authority = server
        .split("://")
        .nth(1)
        .unwrap_or(server)
        .trim_end_matches('/');
    let target = tokio::net::lookup_host(authority)
        .await
        .map_err(|e| format!("server address {authority}: {e}"))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("server address {authority}: no IPv4 address"))?;
    let mut ip = route_source(target).await?;
    if ip.is_loopback() {
        // The server is on this host (`drover up`): peers need the address of the host's
        // default route (TEST-NET-1 only picks the route; nothing is sent).
        if let Ok(out) = route_source(SocketAddr::from(([192, 0, 2, 1], 9))).await {
            ip = out;
        }
    }
    Ok(SocketAddr::new(ip, cfg.port))
}

/// The source address this host uses towards `target` (a UDP "connect" sends nothing).
async fn route_source(target: SocketAddr) -> Result<std::net::IpAddr, String> {
    let sock = tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .await
        .map_err(|e| e.to_string())?;
    sock.connect(target).await.map_err(|e| e.to_string())?;
    Ok(sock.local_addr().map_err(|e| e.to_string())?.ip())
}
