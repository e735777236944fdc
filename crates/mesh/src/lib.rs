//! The decisions of Drover's network across hosts, pure: no I/O, no clock, no randomness.
//!
//! - **Addresses** ([`Layout`]): the cluster's mesh range is cut into one /16 per environment.
//!   In an environment's /16, host `h` (1..=63) has the mesh address `.0.h` (on its tunnel
//!   device) and the /22 block number `h`, from which its agent takes one /27 for each network
//!   with containers on that host ([`free_subnet`]). Subnets never overlap across hosts, so
//!   routing between hosts is one route for the environment's /16 into the tunnel and, per
//!   peer, the peer's address and block as its allowed IPs ([`peers`]).
//! - **Isolation** ([`allows`]): traffic from the tunnel reaches a local network's subnet only
//!   from the subnets of the same network on other hosts; everything else from the tunnel is
//!   dropped. Environments never share a tunnel (peers are hosts of the same environment).
//! - **Names** ([`Names`]): what Drover's DNS answers a container, from the directory of the
//!   environment's containers: service names, compose aliases, container names,
//!   `SERVICE.STACK` and `links:` aliases, on the networks the asking container shares with
//!   the answer, only for containers that run and are not unhealthy.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};

pub use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

pub mod catalog;
mod directory;
#[cfg(test)]
mod tests;

pub use directory::{Placed, Reported, Seen, ServiceNames, directory};

/// The default mesh range of a cluster (64 environments of 63 hosts).
pub const DEFAULT_RANGE: &str = "10.192.0.0/10";
/// Each environment's share of the range.
pub const ENV_PREFIX: u8 = 16;
/// Each host's block in its environment.
pub const HOST_PREFIX: u8 = 22;
/// Each network's subnet on one host.
pub const SUBNET_PREFIX: u8 = 27;
/// Hosts per environment on the mesh.
pub const MAX_HOSTS: u32 = (1 << (HOST_PREFIX - ENV_PREFIX)) - 1;
/// The UDP port tunnels listen on unless told otherwise.
pub const DEFAULT_PORT: u16 = 51820;
/// The UDP port on each host's mesh address that answers peers' probes.
pub const PROBE_PORT: u16 = 51821;
/// Seconds a name's answer may be cached.
pub const TTL_SECS: u32 = 1;

/// Where a cluster's environments and hosts sit in its mesh range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub range: Ipv4Net,
}

impl Layout {
    /// A layout for `range`, which must hold at least one environment.
    pub fn new(range: Ipv4Net) -> Result<Layout, String> {
        if range.prefix_len() > ENV_PREFIX {
            return Err(format!(
                "mesh range {range} is smaller than one environment's /{ENV_PREFIX}"
            ));
        }
        Ok(Layout {
            range: range.trunc(),
        })
    }

    pub fn environments(&self) -> u32 {
        1 << (ENV_PREFIX - self.range.prefix_len())
    }

    /// The /16 of the environment with this index (0-based), if the range has one.
    pub fn env_block(&self, env_index: u32) -> Option<Ipv4Net> {
        if env_index >= self.environments() {
            return None;
        }
        let base = u32::from(self.range.network()) + (env_index << (32 - ENV_PREFIX));
        Ipv4Net::new(Ipv4Addr::from(base), ENV_PREFIX).ok()
    }
}

/// A host's place in its environment's block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// The host's address on the mesh (its tunnel device; its DNS server and probe answerer).
    pub ip: Ipv4Addr,
    /// Where the subnets of the host's networks come from.
    pub block: Ipv4Net,
    /// The whole environment: routed into the tunnel.
    pub env: Ipv4Net,
}

/// Host `index` (1..=[`MAX_HOSTS`]) of the environment block `env`.
pub fn place(env: Ipv4Net, index: u32) -> Option<Place> {
    if index == 0 || index > MAX_HOSTS {
        return None;
    }
    let base = u32::from(env.network());
    Some(Place {
        ip: Ipv4Addr::from(base + index),
        block: Ipv4Net::new(
            Ipv4Addr::from(base + (index << (32 - HOST_PREFIX))),
            HOST_PREFIX,
        )
        .ok()?,
        env,
    })
}

/// The lowest host index not in `used`.
pub fn free_index(used: &BTreeSet<u32>) -> Option<u32> {
    (1..=MAX_HOSTS).find(|i| !used.contains(i))
}

/// The lowest /27 of `block` that overlaps none of `used`.
pub fn free_subnet(block: Ipv4Net, used: &[Ipv4Net]) -> Option<Ipv4Net> {
    block
        .subnets(SUBNET_PREFIX)
        .ok()?
        .find(|s| !used.iter().any(|u| u.contains(s) || s.contains(u)))
}

/// Whether `key` is a WireGuard public key as Drover writes it: 64 hex digits.
pub fn valid_key(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One host of an environment as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub host: String,
    pub index: u32,
    /// Base64 WireGuard public key (the private key never leaves the host).
    pub public_key: String,
    /// Where its tunnel listens, as its peers should reach it.
    pub endpoint: SocketAddr,
}

/// A WireGuard peer of one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub host: String,
    pub public_key: String,
    pub endpoint: SocketAddr,
    /// The peer's mesh address and host block.
    pub allowed: Vec<Ipv4Net>,
    pub ip: Ipv4Addr,
}

/// The peers host `me` needs: every other member with a valid index.
pub fn peers(env: Ipv4Net, me: &str, members: &[Member]) -> Vec<Peer> {
    let mut out: Vec<Peer> = members
        .iter()
        .filter(|m| m.host != me)
        .filter_map(|m| {
            let p = place(env, m.index)?;
            Some(Peer {
                host: m.host.clone(),
                public_key: m.public_key.clone(),
                endpoint: m.endpoint,
                allowed: vec![Ipv4Net::from(p.ip), p.block],
                ip: p.ip,
            })
        })
        .collect();
    out.sort_by(|a, b| a.host.cmp(&b.host));
    out
}

/// The subnet one network has on one host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Subnet {
    pub network: String,
    pub host: String,
    pub subnet: Ipv4Net,
}

/// Traffic from the tunnel that host `me` forwards: from a network's subnet on another host
/// to the same network's subnet here, and from any other address of a container on that
/// network (a container on several networks sends from the address of the network its
/// route takes, not always the shared one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Allow {
    pub network: String,
    pub src: Ipv4Net,
    pub dst: Ipv4Net,
}

pub fn allows(me: &str, subnets: &[Subnet], entries: &[Entry]) -> Vec<Allow> {
    let local: Vec<&Subnet> = subnets.iter().filter(|s| s.host == me).collect();
    let is_local = |ip: &Ipv4Addr| local.iter().any(|s| s.subnet.contains(ip));
    let mut out = BTreeSet::new();
    for here in &local {
        let mut add = |src: Ipv4Net| {
            out.insert(Allow {
                network: here.network.clone(),
                src,
                dst: here.subnet,
            });
        };
        for remote in subnets
            .iter()
            .filter(|s| s.host != me && s.network == here.network)
        {
            add(remote.subnet);
        }
        for e in entries
            .iter()
            .filter(|e| e.addrs.contains_key(&here.network))
        {
            for (network, ip) in &e.addrs {
                if *network != here.network && !is_local(ip) {
                    add(Ipv4Net::from(*ip));
                }
            }
        }
    }
    out.into_iter().collect()
}

/// One container of the environment, as names see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Engine container name.
    pub name: String,
    pub stack: String,
    pub service: String,
    /// Running and not unhealthy.
    pub ready: bool,
    /// Engine network name → the container's address on it.
    pub addrs: BTreeMap<String, Ipv4Addr>,
    /// Engine network name → compose aliases on it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, Vec<String>>,
    /// `links:` of its service: (service linked to, name it is known by here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<(String, String)>,
}

/// What a name resolves to for one asker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The addresses (possibly none: the name is Drover's but nothing is ready behind it).
    Drover(Vec<Ipv4Addr>),
    /// Not a name Drover knows: ask the host's resolvers.
    Elsewhere,
}

/// The names of one environment, indexed for answering.
#[derive(Debug, Default)]
pub struct Names {
    /// (network, name) → addresses of ready containers.
    by_name: HashMap<(String, String), Vec<Ipv4Addr>>,
    /// Every name Drover answers for, on any network (answered empty where not visible).
    known: std::collections::HashSet<String>,
    /// Container address → (its networks, its links).
    askers: HashMap<Ipv4Addr, Asker>,
}

#[derive(Debug, Default)]
struct Asker {
    stack: String,
    networks: Vec<String>,
    links: Vec<(String, String)>,
}

impl Names {
    pub fn build(entries: &[Entry]) -> Names {
        let mut n = Names::default();
        for e in entries {
            let mut names = vec![
                e.service.clone(),
                e.name.clone(),
                format!("{}.{}", e.service, e.stack),
            ];
            for a in e.aliases.values().flatten() {
                names.push(a.clone());
            }
            for name in &names {
                n.known.insert(name.to_ascii_lowercase());
            }
            for (network, ip) in &e.addrs {
                n.askers.insert(
                    *ip,
                    Asker {
                        stack: e.stack.clone(),
                        networks: e.addrs.keys().cloned().collect(),
                        links: e.links.clone(),
                    },
                );
                if !e.ready {
                    continue;
                }
                let own_aliases = e.aliases.get(network).into_iter().flatten();
                let on_network = names[..3].iter().chain(own_aliases);
                for name in on_network {
                    let ips = n
                        .by_name
                        .entry((network.clone(), name.to_ascii_lowercase()))
                        .or_default();
                    if !ips.contains(ip) {
                        ips.push(*ip);
                    }
                }
            }
        }
        for e in entries {
            for (_, alias) in &e.links {
                n.known.insert(alias.to_ascii_lowercase());
            }
        }
        for ips in n.by_name.values_mut() {
            ips.sort();
        }
        n
    }

    /// The answer to `asker` (a container address) asking for `qname` (any case, with or
    /// without the final dot).
    pub fn resolve(&self, asker: Ipv4Addr, qname: &str) -> Resolution {
        let name = qname.trim_end_matches('.').to_ascii_lowercase();
        if !self.known.contains(&name) {
            return Resolution::Elsewhere;
        }
        let Some(who) = self.askers.get(&asker) else {
            return Resolution::Drover(Vec::new());
        };
        // A `links:` alias names the linked service of the asker's own stack.
        let target = who
            .links
            .iter()
            .find(|(_, alias)| alias.eq_ignore_ascii_case(&name))
            .map(|(service, _)| format!("{service}.{}", who.stack).to_ascii_lowercase());
        let looked_up = target.as_deref().unwrap_or(&name);
        let mut out: Vec<Ipv4Addr> = Vec::new();
        for network in &who.networks {
            if let Some(ips) = self.by_name.get(&(network.clone(), looked_up.to_string())) {
                for ip in ips {
                    if !out.contains(ip) {
                        out.push(*ip);
                    }
                }
            }
        }
        out.sort();
        Resolution::Drover(out)
    }
}
