//! What the environment's names and isolation are built from: the hosts' reports, believed
//! only inside each host's own block, and joined with where each replica is placed and the
//! names its service gives.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use crate::{Entry, Ipv4Net, Subnet};

/// One mesh host's report, as the directory needs it.
#[derive(Debug, Clone, Default)]
pub struct Reported {
    pub host: String,
    /// The host's block: nothing it reports outside it is believed.
    pub block: Ipv4Net,
    /// Its networks and their subnets.
    pub networks: Vec<(String, Option<Ipv4Net>)>,
    pub containers: Vec<Seen>,
}

/// One container a host reports.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub name: String,
    pub stack: String,
    pub service: String,
    pub slot: u32,
    pub running: bool,
    pub unhealthy: bool,
    /// It runs a spec its slot no longer asks for: it is about to be replaced (a roll
    /// replacing it in place, or a slot number given again to a new container).
    pub stale: bool,
    pub addrs: BTreeMap<String, Ipv4Addr>,
}

/// The names a service gives its containers besides its own: compose aliases by engine
/// network name, and its `links:` as (service, alias).
#[derive(Debug, Clone, Default)]
pub struct ServiceNames {
    pub aliases: BTreeMap<String, Vec<String>>,
    pub links: Vec<(String, String)>,
}

/// (stack, service, slot) → the host the slot is placed on.
pub type Placed = HashMap<(String, String, u32), String>;

/// The environment's subnets per host and its containers as names see them. A container is
/// ready when it runs, is not unhealthy, is its slot's placed copy (a copy left on a lost
/// host whose slot moved answers to no name) and runs the spec its slot asks for.
pub fn directory(
    hosts: &[Reported],
    placed: &Placed,
    names: &HashMap<(String, String), ServiceNames>,
) -> (Vec<Subnet>, Vec<Entry>) {
    let mut subnets = Vec::new();
    let mut entries = Vec::new();
    for h in hosts {
        for (network, subnet) in &h.networks {
            if let Some(s) = subnet.filter(|s| h.block.contains(s)) {
                subnets.push(Subnet {
                    network: network.clone(),
                    host: h.host.clone(),
                    subnet: s,
                });
            }
        }
        for c in &h.containers {
            let addrs: BTreeMap<String, Ipv4Addr> = c
                .addrs
                .iter()
                .filter(|(_, ip)| h.block.contains(*ip))
                .map(|(n, ip)| (n.clone(), *ip))
                .collect();
            if addrs.is_empty() {
                continue;
            }
            let current = placed
                .get(&(c.stack.clone(), c.service.clone(), c.slot))
                .is_some_and(|p| *p == h.host);
            let given = names.get(&(c.stack.clone(), c.service.clone()));
            entries.push(Entry {
                name: c.name.clone(),
                stack: c.stack.clone(),
                service: c.service.clone(),
                ready: current && c.running && !c.unhealthy && !c.stale,
                addrs,
                aliases: given.map(|g| g.aliases.clone()).unwrap_or_default(),
                links: given.map(|g| g.links.clone()).unwrap_or_default(),
            });
        }
    }
    subnets.sort();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    (subnets, entries)
}
