//! The server's side of the mesh: which hosts offered a tunnel (public key, endpoint, their
//! index in the environment), how their probes of each other go, and sending each host of
//! an environment its [`proto::MeshState`] whenever what it needs changed: peers (a host
//! joined, moved or was removed), subnets (networks created on some host), names (a
//! container started, stopped, turned unhealthy). The decisions are `mesh`'s; this only
//! gathers their inputs from sessions, reports and stacks, and delivers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use proto::{MeshHello, MeshState, PeerHealth, ServerMsg};

use crate::state::{AppState, now_ms};

/// Changes arriving closer together than this are sent as one.
const COALESCE: Duration = Duration::from_millis(30);

pub struct Hub {
    layout: mesh::Layout,
    inner: Mutex<Inner>,
    wake: tokio::sync::Notify,
}

#[derive(Default)]
struct Inner {
    members: HashMap<String, Joined>,
    /// Each host's probe results, and when they arrived (ms).
    health: HashMap<String, (Vec<PeerHealth>, u64)>,
    dirty: HashSet<String>,
    /// The last state sent to each host.
    sent: HashMap<String, MeshState>,
}

#[derive(Clone)]
struct Joined {
    env: String,
    env_block: mesh::Ipv4Net,
    index: u32,
    hello: MeshHello,
}

impl Default for Hub {
    fn default() -> Self {
        let range = mesh::DEFAULT_RANGE
            .parse()
            .unwrap_or_else(|_| mesh::Ipv4Net::from(std::net::Ipv4Addr::new(10, 192, 0, 0)));
        Hub::new(mesh::Layout { range })
    }
}

/// A host's mesh as the API shows it.
pub struct HostMesh {
    pub address: std::net::Ipv4Addr,
    pub endpoint: std::net::SocketAddr,
    pub peers: Vec<PeerHealth>,
    /// When the probe results arrived (ms since the epoch).
    pub reported_ms: Option<u64>,
}

impl Hub {
    pub fn new(layout: mesh::Layout) -> Hub {
        Hub {
            layout,
            inner: Mutex::default(),
            wake: tokio::sync::Notify::new(),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn layout(&self) -> mesh::Layout {
        self.layout
    }

    /// A host's agent offered its tunnel; `env_index` and `index` are the environment's and
    /// host's places (from the store).
    pub fn join(
        &self,
        env: &str,
        host: &str,
        env_index: u32,
        index: u32,
        hello: MeshHello,
        still_here: impl FnOnce() -> bool,
    ) -> Result<(), String> {
        if !mesh::valid_key(&hello.public_key) {
            return Err("its public key is not 64 hex digits".into());
        }
        let env_block = self.layout.env_block(env_index).ok_or_else(|| {
            format!(
                "environment {env} has no room in the mesh range {} ({} environments)",
                self.layout.range,
                self.layout.environments()
            )
        })?;
        let mut inner = self.inner();
        if inner
            .members
            .iter()
            .any(|(h, j)| h != host && j.hello.public_key == hello.public_key)
        {
            return Err("another host offers the same public key".into());
        }
        // Removed while this session was being admitted: forget() ran first; stay out.
        if !still_here() {
            return Err("the host was removed".into());
        }
        inner.members.insert(
            host.to_string(),
            Joined {
                env: env.to_string(),
                env_block,
                index,
                hello,
            },
        );
        // A new session needs the whole state again, and has probed nothing yet.
        inner.sent.remove(host);
        inner.health.remove(host);
        inner.dirty.insert(env.to_string());
        drop(inner);
        self.wake.notify_one();
        Ok(())
    }

    /// A host was removed: its peers drop it at once.
    pub fn forget(&self, host: &str) {
        let mut inner = self.inner();
        if let Some(j) = inner.members.remove(host) {
            inner.dirty.insert(j.env);
        }
        inner.health.remove(host);
        inner.sent.remove(host);
        drop(inner);
        self.wake.notify_one();
    }

    /// Something the environment's names or subnets come from changed.
    pub fn changed(&self, env: &str) {
        let mut inner = self.inner();
        if inner.members.values().any(|j| j.env == env) {
            inner.dirty.insert(env.to_string());
            drop(inner);
            self.wake.notify_one();
        }
    }

    pub fn set_health(&self, host: &str, peers: Vec<PeerHealth>) {
        self.inner()
            .health
            .insert(host.to_string(), (peers, now_ms()));
    }

    pub fn host(&self, host: &str) -> Option<HostMesh> {
        let inner = self.inner();
        let j = inner.members.get(host)?;
        let place = mesh::place(j.env_block, j.index)?;
        let (peers, reported) = match inner.health.get(host) {
            Some((p, at)) => (p.clone(), Some(*at)),
            None => (Vec::new(), None),
        };
        Some(HostMesh {
            address: place.ip,
            endpoint: j.hello.endpoint,
            peers,
            reported_ms: reported,
        })
    }

    /// The environment's block and each member host's id and address.
    pub fn addresses(&self, env: &str) -> Vec<(String, std::net::Ipv4Addr)> {
        let inner = self.inner();
        let mut out: Vec<(String, std::net::Ipv4Addr)> = inner
            .members
            .iter()
            .filter(|(_, j)| j.env == env)
            .filter_map(|(h, j)| Some((h.clone(), mesh::place(j.env_block, j.index)?.ip)))
            .collect();
        out.sort();
        out
    }
}

/// Sends every host of a changed environment its mesh state, forever.
pub async fn run(state: Arc<AppState>) {
    loop {
        state.mesh.wake.notified().await;
        tokio::time::sleep(COALESCE).await;
        let envs: Vec<String> = state.mesh.inner().dirty.drain().collect();
        for env in envs {
            push(&state, &env);
        }
    }
}

/// The environment's mesh members with their blocks and addresses.
fn placed_members(state: &AppState, env: &str) -> Vec<crate::ingress::Member> {
    let mut out: Vec<crate::ingress::Member> = state
        .mesh
        .inner()
        .members
        .iter()
        .filter(|(_, j)| j.env == env)
        .filter_map(|(h, j)| {
            let p = mesh::place(j.env_block, j.index)?;
            Some(crate::ingress::Member {
                host: h.clone(),
                block: p.block,
                ip: p.ip,
            })
        })
        .collect();
    out.sort_by(|a, b| a.host.cmp(&b.host));
    out
}

/// The environment's ingress route table as it stands (for the API).
pub fn ingress_table(state: &AppState, env: &str) -> (ingress::Table, Vec<String>) {
    let (_, names) = directory(state, env);
    crate::ingress::table(state, env, &placed_members(state, env), &names)
}

fn push(state: &AppState, env: &str) {
    let members: Vec<(String, Joined)> = state
        .mesh
        .inner()
        .members
        .iter()
        .filter(|(_, j)| j.env == env)
        .map(|(h, j)| (h.clone(), j.clone()))
        .collect();
    let Some((_, first)) = members.first() else {
        return;
    };
    let env_block = first.env_block;
    let list: Vec<mesh::Member> = members
        .iter()
        .map(|(h, j)| mesh::Member {
            host: h.clone(),
            index: j.index,
            public_key: j.hello.public_key.clone(),
            endpoint: j.hello.endpoint,
        })
        .collect();
    let (subnets, names) = directory(state, env);
    let mut for_ingress = crate::ingress::publish(state, env, &placed_members(state, env), &names);
    for (host, j) in &members {
        let Some(place) = mesh::place(env_block, j.index) else {
            continue;
        };
        let msg = MeshState {
            host: host.clone(),
            place,
            peers: mesh::peers(env_block, host, &list),
            subnets: subnets.clone(),
            names: names.clone(),
            ingress: for_ingress.remove(host).unwrap_or_default(),
        };
        if state.mesh.inner().sent.get(host) == Some(&msg) {
            continue;
        }
        if state.send_to(host, ServerMsg::Mesh(msg.clone())) {
            state.mesh.inner().sent.insert(host.clone(), msg);
        }
    }
}

/// Gathers what `mesh::directory` decides from: the member hosts' reports, where each slot
/// is placed, and the names each service gives.
fn directory(state: &AppState, env: &str) -> (Vec<mesh::Subnet>, Vec<mesh::Entry>) {
    let blocks: Vec<(String, mesh::Ipv4Net)> = state
        .mesh
        .inner()
        .members
        .iter()
        .filter(|(_, j)| j.env == env)
        .filter_map(|(h, j)| Some((h.clone(), mesh::place(j.env_block, j.index)?.block)))
        .collect();
    let mut placed = mesh::Placed::new();
    // The spec hash each placed container must run to be answered.
    let mut wanted: HashMap<(String, String, u32), std::sync::Arc<str>> = HashMap::new();
    let mut names: HashMap<(String, String), mesh::ServiceNames> = HashMap::new();
    {
        let model = state.model();
        for stack in model.stacks(env) {
            let p = &stack.row.project;
            // Slots of older revisions (during a roll): hashed once per revision.
            let mut older: HashMap<(u64, String), std::sync::Arc<str>> = HashMap::new();
            for (id, host) in &stack.slots {
                // A container leaving in a roll answers to no name while it drains; its
                // sidekicks leave with it.
                if let Some(h) = host.as_ref().filter(|_| !stack.is_draining(id)) {
                    let rev = stack.rev_of(id);
                    for c in stack.with_sidekicks(id) {
                        let key = (p.name.clone(), c.0.to_string(), c.1);
                        let hash = if rev == stack.row.revision {
                            stack.hashes.get(&*c.0).cloned()
                        } else {
                            let project = stack.project_of(rev);
                            let h = older.entry((rev, c.0.to_string())).or_insert_with(|| {
                                let spec = project.services.get(&*c.0);
                                spec.map(|s| s.spec_hash()).unwrap_or_default().into()
                            });
                            Some(h.clone())
                        };
                        if let Some(hash) = hash {
                            wanted.insert(key.clone(), hash);
                        }
                        placed.insert(key, h.to_string());
                    }
                }
            }
            for (svc_name, svc) in &p.services {
                let aliases = svc
                    .networks
                    .iter()
                    .filter(|(_, att)| !att.aliases.is_empty())
                    .map(|(key, att)| {
                        let engine_name = proto::network_name(&p.name, key, p.networks.get(key));
                        (engine_name, att.aliases.clone())
                    })
                    .collect();
                let links = svc
                    .links
                    .iter()
                    .filter_map(|l| l.split_once(':'))
                    .map(|(s, a)| (s.to_string(), a.to_string()))
                    .collect();
                names.insert(
                    (p.name.clone(), svc_name.clone()),
                    mesh::ServiceNames { aliases, links },
                );
            }
        }
    }
    let reported: Vec<mesh::Reported> = blocks
        .into_iter()
        .filter_map(|(host, block)| {
            let report = state.report(&host)?;
            Some(mesh::Reported {
                networks: report
                    .networks()
                    .iter()
                    .map(|n| (n.name.clone(), n.subnet))
                    .collect(),
                containers: report
                    .containers()
                    .filter(|c| c.env == env)
                    .map(|c| mesh::Seen {
                        name: c.name.clone(),
                        stack: c.stack.clone(),
                        service: c.service.clone(),
                        slot: c.slot,
                        running: c.state == proto::ContainerState::Running,
                        // Not ready until its check passed (if it has one).
                        unhealthy: c.health.is_some_and(|h| h != proto::Health::Healthy),
                        stale: wanted
                            .get(&(c.stack.clone(), c.service.clone(), c.slot))
                            .is_some_and(|h| **h != *c.spec_hash),
                        addrs: c.addrs.clone(),
                    })
                    .collect(),
                host,
                block,
            })
        })
        .collect();
    mesh::directory(&reported, &placed, &names)
}

/// Host `host`'s mesh as the API shows it: every peer it should have, with its probes'
/// results (a peer not probed yet counts as not reachable).
pub fn host_view(state: &AppState, host: &str, env: &str) -> Option<api_types::HostMesh> {
    let me = state.mesh.host(host)?;
    let now = now_ms();
    let received = me.reported_ms.unwrap_or(now);
    let names: HashMap<String, String> = state
        .model()
        .hosts(env)
        .iter()
        .map(|h| (h.id.clone(), h.name.clone()))
        .collect();
    let links: Vec<api_types::MeshLink> = state
        .mesh
        .addresses(env)
        .into_iter()
        .filter(|(h, _)| h != host)
        .map(|(peer, _)| {
            let probe = me.peers.iter().find(|p| p.host == peer);
            let ok = probe.is_some_and(|p| p.ok);
            let note = (!ok && state.is_connected(host) && state.is_connected(&peer)).then(|| {
                "both hosts reach the server but not each other through the tunnel \
                 (NAT or a firewall between them?)"
                    .to_string()
            });
            api_types::MeshLink {
                peer_name: names.get(&peer).cloned().unwrap_or_default(),
                ok,
                rtt_us: probe.and_then(|p| p.rtt_us),
                last_ok_ms: probe
                    .and_then(|p| p.last_ok_ms_ago)
                    .map(|ago| received.saturating_sub(ago)),
                since_ms: probe.map_or(received, |p| received.saturating_sub(p.for_ms)),
                note,
                peer,
            }
        })
        .collect();
    Some(api_types::HostMesh {
        address: me.address.to_string(),
        endpoint: me.endpoint.to_string(),
        reachable: links.iter().filter(|l| l.ok).count(),
        peers: links.len(),
        links,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::AgentConn;

    fn offer(n: u8) -> MeshHello {
        MeshHello {
            public_key: format!("{n:064x}"),
            endpoint: std::net::SocketAddr::from(([10, 77, 0, n], 51820)),
        }
    }

    #[test]
    fn hosts_peer_within_their_environment_only_and_removal_cuts_them_off() {
        let state = crate::state::test_state();
        let mut inbox = HashMap::new();
        for (n, (host, env, env_index, index)) in [
            ("a", "default", 0, 1),
            ("b", "default", 0, 2),
            ("x", "other", 1, 1),
        ]
        .into_iter()
        .enumerate()
        {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let conn = AgentConn {
                session: 1,
                env: env.into(),
                tx,
                changes: Default::default(),
            };
            state.register_agent(host, conn);
            state
                .mesh
                .join(env, host, env_index, index, offer(n as u8 + 1), || true)
                .expect("join");
            inbox.insert(host, rx);
        }
        let got = |inbox: &mut HashMap<&str, _>, host: &str| {
            let rx: &mut tokio::sync::mpsc::UnboundedReceiver<ServerMsg> =
                inbox.get_mut(host).expect("host");
            match rx.try_recv() {
                Ok(ServerMsg::Mesh(m)) => m,
                _ => panic!("no mesh state for {host}"),
            }
        };
        push(&state, "default");
        push(&state, "other");
        let a = got(&mut inbox, "a");
        let peers: Vec<&str> = a.peers.iter().map(|p| p.host.as_str()).collect();
        assert_eq!(peers, ["b"]);
        assert_eq!(a.place.env.to_string(), "10.192.0.0/16");
        assert_eq!(a.peers[0].endpoint.to_string(), "10.77.0.2:51820");
        let x = got(&mut inbox, "x");
        assert!(x.peers.is_empty(), "{:?}", x.peers);
        assert_eq!(x.place.env.to_string(), "10.193.0.0/16");
        assert_eq!(x.place.ip.to_string(), "10.193.0.1");
        // Unchanged: nothing is sent again.
        push(&state, "default");
        assert!(inbox.get_mut("a").expect("a").try_recv().is_err());
        // A key that is not 64 hex digits, or another host's key, is refused; so is a host
        // removed while it was joining.
        let mut bad = offer(9);
        bad.public_key = format!("{}\nremove=true", "a".repeat(64));
        assert!(state.mesh.join("default", "c", 0, 3, bad, || true).is_err());
        assert!(
            state
                .mesh
                .join("default", "c", 0, 3, offer(1), || true)
                .is_err()
        );
        assert!(
            state
                .mesh
                .join("default", "c", 0, 3, offer(9), || false)
                .is_err()
        );
        push(&state, "default");
        assert!(inbox.get_mut("a").expect("a").try_recv().is_err());
        // Removed: its peers drop it.
        state.mesh.forget("b");
        push(&state, "default");
        let a = got(&mut inbox, "a");
        assert!(a.peers.is_empty(), "{:?}", a.peers);
    }
}
